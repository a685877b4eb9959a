package gateway

import (
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/thingnet/thingnet/client"
	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/internal/testutil"
	"github.com/thingnet/thingnet/proof"
	"github.com/thingnet/thingnet/reading"
	"github.com/thingnet/thingnet/record"
)

// TestLogEntries follows the log as the organisation's admin (values) and
// as another organisation's admin (withheld, but every entry answered so
// the follower advances), until the anchor covers them.
func TestLogEntries(t *testing.T) {
	tn := startTestNet(t)
	ctx := testutil.Context(t, time.Minute)
	for seq := uint64(1); seq <= 3; seq++ {
		raw, _ := reading.Sign(tn.sensor, tn.sensor.ID(), temp(seq, float64(seq)))
		if _, err := tn.post(t, raw); err != nil {
			t.Fatal(err)
		}
	}
	var page *client.LogEntries
	testutil.WaitFor(t, ctx, "the three entries anchored", func() bool {
		var err error
		page, err = tn.client.LogEntries(ctx, 1, 10)
		return err == nil && page.Anchored >= 3
	})
	if page.Gateway != tn.gwKey.ID() || page.Size != 3 || page.Next != 3 || len(page.Entries) != 2 {
		t.Fatalf("LogEntries(1, 10) = %+v; want entries 1 and 2 of 3", page)
	}
	for k, e := range page.Entries {
		if e.Withheld != nil || e.Org != "acme" || len(e.Readings) != 1 || e.Readings[0].Seq != uint64(k+2) || e.AnchorHeight == 0 || len(e.EntryHash) != 32 {
			t.Errorf("entry %d = %+v; want seq %d of acme, anchored", e.Index, e, k+2)
		}
	}
	other := testutil.Key(t, identity.Ed25519)
	if _, err := tn.client.Send(ctx, other, "", &record.OrgCreate{ID: "rival-" + strconv.FormatInt(time.Now().UnixNano(), 36)}, true); err != nil {
		t.Fatal(err)
	}
	rival := client.New(tn.client.BaseURL).WithIdentity(&client.Identity{Key: other, ChainID: "gw-test"})
	rp, err := rival.LogEntries(ctx, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if rp.Next != 3 || len(rp.Entries) != 3 {
		t.Fatalf("rival page = %+v; want all three entries", rp)
	}
	for _, e := range rp.Entries {
		if e.Withheld == nil || e.Withheld.Code != proof.CodeWithheld || e.Readings != nil || e.Org != "" {
			t.Errorf("rival sees entry %d = %+v; want it withheld", e.Index, e)
		}
	}
	if _, err := client.New(tn.client.BaseURL).LogEntries(ctx, 0, 1001); err == nil {
		t.Error("limit 1001 accepted")
	}
	if p, err := rival.LogEntries(ctx, 7, 0); err != nil || p.Next != 7 || len(p.Entries) != 0 || p.Size != 3 {
		t.Errorf("LogEntries past the end = %+v, %v; want the sizes only", p, err)
	}
}

// FuzzLogRange: the query parameters of GET /v1/log/entries parse to a
// range within bounds, or to an error, never a panic.
func FuzzLogRange(f *testing.F) {
	for _, s := range []string{"from=0&limit=10", "from=18446744073709551615&limit=1000", "limit=-1", "from=-3", "from=1e3", "limit=1001", "", "from=&limit=", "limit=0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, query string) {
		q, err := url.ParseQuery(query)
		if err != nil {
			return
		}
		from, limit, err := parseLogRange(q)
		if err != nil {
			if from != 0 || limit != 0 {
				t.Fatalf("parseLogRange(%q) = %d, %d with error %v", query, from, limit, err)
			}
			return
		}
		if limit < 0 || limit > client.MaxLogEntries {
			t.Fatalf("parseLogRange(%q) limit = %d", query, limit)
		}
		if v := strings.TrimLeft(q.Get("from"), "0"); (v != "" || from != 0) && strconv.FormatUint(from, 10) != v {
			t.Fatalf("parseLogRange(%q) from = %d", query, from)
		}
	})
}

package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
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

// TestReadsArePrivate tries every read path of the gateway (list, get,
// stream, MQTT subscription) as an anonymous caller, as another
// organisation's admin and with a token that does not check: no value is
// disclosed, the refusal says what is missing, and the public part of a
// reading (its entry hash, inclusion and anchor) still verifies. Then a
// public mark opens the device to anyone, and a read grant's quota stops
// its holder.
func TestReadsArePrivate(t *testing.T) {
	tn := startTestNet(t)
	ctx := testutil.Context(t, 2*time.Minute)
	secret := 271.828
	raw, _ := reading.Sign(tn.sensor, tn.sensor.ID(), reading.Reading{Seq: 1, Time: time.UnixMilli(1_700_000_000_000), ContentType: "temperature/celsius", Value: &secret})
	idx, err := tn.post(t, raw)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tn.client.WaitReadingProof(ctx, idx, 50*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	other := testutil.Key(t, identity.Ed25519)
	if _, err := tn.client.Send(ctx, other, "", &record.OrgCreate{ID: "rival"}, true); err != nil {
		t.Fatal(err)
	}
	base := client.New(tn.client.BaseURL)
	anon := base
	rival := base.WithIdentity(&client.Identity{Key: other, ChainID: "gw-test"})
	wrongChain := base.WithIdentity(&client.Identity{Key: tn.admin, ChainID: "another-chain"})
	const leak = "271.828"

	for _, c := range []struct {
		name   string
		cl     *client.Client
		status int
		code   string
	}{
		{"anonymous", anon, http.StatusUnauthorized, "unauthenticated"},
		{"another organisation's admin", rival, http.StatusForbidden, "forbidden"},
		{"a token for another chain", wrongChain, http.StatusUnauthorized, "unauthenticated"},
	} {
		// List.
		var body []byte
		err := c.cl.Get(ctx, "/v1/readings?device="+tn.sensor.ID(), &body)
		var ae *client.Error
		if !errors.As(err, &ae) || ae.Status != c.status || ae.Code != c.code {
			t.Errorf("%s: list = %v; want %d %s", c.name, err, c.status, c.code)
		} else if strings.Contains(ae.Message, leak) {
			t.Errorf("%s: list refusal discloses the value", c.name)
		}
		// Query: the device refused as by list; of its class or
		// organisation, nothing, the device counted as withheld.
		err = c.cl.Get(ctx, "/v1/readings/query?bucket=1h&device="+url.QueryEscape(tn.sensor.ID()), &body)
		if !errors.As(err, &ae) || ae.Status != c.status || ae.Code != c.code || strings.Contains(ae.Message, leak) {
			t.Errorf("%s: query of the device = %v; want %d %s", c.name, err, c.status, c.code)
		}
		for _, q := range []string{"class=sensor", "org=acme", "org=acme&bucket=1d", "class=sensor&time=received&bucket=1m"} {
			err = c.cl.Get(ctx, "/v1/readings/query?"+q, &body)
			if c.status == http.StatusUnauthorized && c.name != "anonymous" {
				if !errors.As(err, &ae) || ae.Status != http.StatusUnauthorized {
					t.Errorf("%s: query %s = %v; want 401", c.name, q, err)
				}
				continue
			}
			var a client.QueryAnswer
			if err == nil {
				err = json.Unmarshal(body, &a)
			}
			if err != nil || len(a.Items) != 0 || len(a.Buckets) != 0 || a.Withheld != 1 || a.Devices != 0 || strings.Contains(string(body), leak) || strings.Contains(string(body), tn.sensor.ID()) {
				t.Errorf("%s: query %s = %s, %v; want no values, 1 device withheld", c.name, q, body, err)
			}
		}
		// Get: the public part only.
		err = c.cl.Get(ctx, "/v1/readings/0", &body)
		if c.status == http.StatusUnauthorized && c.name != "anonymous" {
			if !errors.As(err, &ae) || ae.Status != http.StatusUnauthorized {
				t.Errorf("%s: get = %v; want 401 (a token that does not check is never taken for anonymous)", c.name, err)
			}
		} else {
			if err != nil {
				t.Fatalf("%s: get: %v", c.name, err)
			}
			if strings.Contains(string(body), leak) || strings.Contains(string(body), "envelope") {
				t.Errorf("%s: get discloses the reading: %s", c.name, body)
			}
			var p proof.Reading
			if err := json.Unmarshal(body, &p); err != nil {
				t.Fatal(err)
			}
			if p.Withheld == nil || p.Withheld.Code != proof.CodeWithheld || p.Signer != nil {
				t.Errorf("%s: get = %+v; want withheld, without the signer", c.name, p)
			}
			an, err := proof.VerifyAnchored(ctx, client.Checker{Client: anon, ChainID: "gw-test"}, &p)
			if err != nil {
				t.Errorf("%s: the public part does not verify: %v", c.name, err)
			} else if string(an.EntryHash) != string(proof.LeafHash(reading.EntryBytes(p.AuthHeight, p.ReceivedAt, raw))) {
				t.Errorf("%s: the entry hash is not the stored entry's", c.name)
			}
			if _, err := proof.VerifyReading(ctx, client.Checker{Client: anon, ChainID: "gw-test"}, &p); !errors.Is(err, proof.ErrWithheld) {
				t.Errorf("%s: VerifyReading of a withheld reading = %v; want ErrWithheld", c.name, err)
			}
		}
		// Stream.
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, tn.client.BaseURL+"/v1/readings/stream?device="+tn.sensor.ID(), nil)
		if err := c.cl.Authorize(ctx, req); err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		if resp.StatusCode != c.status || strings.Contains(string(b), leak) {
			t.Errorf("%s: stream = %d %s; want %d", c.name, resp.StatusCode, b, c.status)
		}
	}
	// Its organisation's admin reads the value through the query.
	var a client.QueryAnswer
	if err := tn.client.Get(ctx, "/v1/readings/query?org=acme&bucket=1d", &a); err != nil || len(a.Buckets) != 1 || a.Buckets[0].Last != secret || a.Withheld != 0 {
		t.Fatalf("the admin's query = %+v, %v; want the value", a, err)
	}
	if tn.gw.MaySubscribe(other.ID(), ReadingsTopic(tn.sensor.ID())) {
		t.Error("a key that is not a device may subscribe over MQTT")
	}

	// Public by class: anyone reads, with no token.
	if _, err := tn.client.Send(ctx, tn.admin, "", &record.OrgPolicy{Org: "acme", Public: []string{"class:sensor"}}, true); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, func() bool {
		var page struct{ Items []client.ReadingItem }
		return anon.Get(ctx, "/v1/readings?device="+tn.sensor.ID(), &page) == nil && len(page.Items) == 1
	})
	if p, err := anon.Reading(ctx, idx); err != nil || p.Withheld != nil {
		t.Fatalf("public reading: %+v, %v", p, err)
	} else if _, err := proof.VerifyReading(ctx, client.Checker{Client: anon, ChainID: "gw-test"}, p); err != nil {
		t.Fatalf("public reading does not verify: %v", err)
	}
	if _, err := tn.client.Send(ctx, tn.admin, "", &record.OrgPolicy{Org: "acme"}, true); err != nil {
		t.Fatal(err)
	}

	// A read grant with a quota of 2 a day: the third read is refused.
	if _, err := tn.client.Send(ctx, tn.admin, "", &record.GrantAdd{Grantor: "org:acme", Subject: "org:rival", Action: record.ActionRead, Resource: "device:" + tn.sensor.ID(), Quota: 2}, true); err != nil {
		t.Fatal(err)
	}
	var page struct{ Items []client.ReadingItem }
	waitFor(t, ctx, func() bool { return rival.Get(ctx, "/v1/readings?device="+tn.sensor.ID(), &page) == nil })
	if err := rival.Get(ctx, "/v1/readings?device="+tn.sensor.ID(), &page); err != nil || len(page.Items) != 1 || *page.Items[0].Value != secret {
		t.Fatalf("grantee's second read: %+v, %v", page, err)
	}
	var ae *client.Error
	if err := rival.Get(ctx, "/v1/readings?device="+tn.sensor.ID(), &page); !errors.As(err, &ae) || ae.Status != http.StatusTooManyRequests {
		t.Fatalf("grantee's third read = %v; want 429 past its quota", err)
	}
}

// waitFor polls cond until it holds or ctx ends.
func waitFor(t *testing.T, ctx context.Context, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatal("condition not met before the deadline")
		case <-time.After(20 * time.Millisecond):
		}
	}
}

package devnet

import (
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/thingnet/thingnet/chain"
	"github.com/thingnet/thingnet/client"
	"github.com/thingnet/thingnet/internal/testutil"
	"github.com/thingnet/thingnet/record"
)

// TestFleetExchange runs the fleet's exchange: the camera's clip is added
// to its gateway's file service and its manifest recorded on the ledger,
// the camera's message reaches the sleeping display through its mailbox at
// another gateway, the display fetches the clip through that gateway,
// decrypts it and checks its digest, and its answer reaches the camera
// directly over the mesh; a second start resumes it with the same devices.
func TestFleetExchange(t *testing.T) {
	base, err := chain.FreePortBase(4)
	if err != nil {
		t.Fatal(err)
	}
	d := startDevnet(t, t.TempDir(), base)
	defer d.Stop()
	ctx := testutil.Context(t, 4*time.Minute)
	var mu sync.Mutex
	seen := map[string]int{}
	fl, err := d.StartFleet(ctx, FleetConfig{Size: 1, Wake: time.Hour, Exchange: true, ClipEvery: 4 * time.Second, ClipSize: 100 << 10,
		DisplayWake: 5 * time.Minute, OnEvent: func(e Event) {
			mu.Lock()
			defer mu.Unlock()
			if seen[e.Kind] == 0 || e.Kind == EventError {
				t.Logf("%s: %s", e.Kind, e.Text)
			}
			seen[e.Kind]++
		}})
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	defer func() {
		if !stopped {
			fl.Stop()
		}
	}()
	testutil.WaitFor(t, ctx, "a clip fetched, verified and answered directly, and a wake-up", func() bool {
		st := fl.Exchange()
		return st.Fetched > 0 && st.Direct > 0 && st.Woken > 0
	})
	st := fl.Exchange()
	if st.Clips == 0 || st.Deposited == 0 || st.Pulled == 0 {
		t.Errorf("exchange %+v: every step should have run", st)
	}
	// The manifest is on the ledger: private, by the camera, its key
	// wrapped for the camera and the display.
	var page struct {
		Items []record.FileManifest `json:"items"`
	}
	if err := client.New(d.APIURL(2)).Get(ctx, "/v1/files/"+DemoOrg, &page); err != nil {
		t.Fatal(err)
	}
	cam, disp := fl.exchange.cam.ID(), fl.exchange.disp.ID()
	found := false
	for _, m := range page.Items {
		if strings.HasPrefix(m.Name, CameraName+"-clip-") {
			found = true
			if !m.Private || m.Owner != cam || m.KeyFor(cam) == nil || m.KeyFor(disp) == nil {
				t.Errorf("clip manifest %+v: want private, owned by the camera, with keys for it and the display", m)
			}
		}
	}
	if !found {
		t.Errorf("no clip manifest among %d files of %s", len(page.Items), DemoOrg)
	}
	t.Logf("exchange: %+v", st)

	// A second start finds the camera, the display and their grants, and
	// the exchange goes on.
	stopped = true
	if err := fl.Stop(); err != nil {
		t.Fatal(err)
	}
	fl2, err := d.StartFleet(ctx, FleetConfig{Size: 1, Wake: time.Hour, Exchange: true, ClipEvery: 4 * time.Second, ClipSize: 10 << 10,
		DisplayWake: 5 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer fl2.Stop()
	if fl2.exchange.cam.ID() != cam || fl2.exchange.disp.ID() != disp {
		t.Errorf("the restarted exchange has other devices")
	}
	testutil.WaitFor(t, ctx, "a clip fetched and answered after the restart", func() bool {
		st := fl2.Exchange()
		return st.Fetched > 0 && st.Direct > 0
	})
}

// FuzzClipNote: the display's decoder of the camera's message refuses
// what is not a well-formed note, with an error, and what it takes
// survives a round trip.
func FuzzClipNote(f *testing.F) {
	good, _ := json.Marshal(clipNote{Org: DemoOrg, Name: "cam-0000-clip-1-1", CID: "bafkreiazyttshzd4fqgr7dap5e7az6uy3gpqqcdoijx2btewucplplndva",
		Size: 102400, SHA256: strings.Repeat("ab", 32)})
	f.Add(good)
	f.Add([]byte(`{"org":"demo","name":"a/b","cid":"x","size":1,"sha256":""}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"org":"demo"} {}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, b []byte) {
		n, err := parseClipNote(b)
		if err != nil {
			return
		}
		again, _ := json.Marshal(n)
		m, err := parseClipNote(again)
		if err != nil || m != n {
			t.Fatalf("%q parsed as %+v, which re-encoded parses as %+v, %v", b, n, m, err)
		}
		if n.Org != DemoOrg || n.Size <= 0 || len(n.SHA256) != 64 || !clipName(n.Name) || strings.ContainsAny(n.Name, "/?#%") || n.Name == ".." {
			t.Fatalf("accepted %+v", n)
		}
	})
}

func TestClipNoteErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`{"org":"acme","name":"c","cid":"bafkreiazyttshzd4fqgr7dap5e7az6uy3gpqqcdoijx2btewucplplndva","size":1,"sha256":"` + strings.Repeat("0", 64) + `"}`, "organisation"},
		{`{"org":"demo","name":"a/b","cid":"bafkreiazyttshzd4fqgr7dap5e7az6uy3gpqqcdoijx2btewucplplndva","size":1,"sha256":"` + strings.Repeat("0", 64) + `"}`, "file name"},
		{`{"org":"demo","name":"c","cid":"bafkreiazyttshzd4fqgr7dap5e7az6uy3gpqqcdoijx2btewucplplndva","size":1,"sha256":"00"}`, "sha256"},
		{`{"org":"demo","name":"c","cid":"bafkreiazyttshzd4fqgr7dap5e7az6uy3gpqqcdoijx2btewucplplndva","size":0,"sha256":"` + strings.Repeat("0", 64) + `"}`, "size"},
		{`{"org":"demo","name":"c","cid":"nope","size":1,"sha256":"` + strings.Repeat("0", 64) + `"}`, "clip note"},
		{`{"org":"demo","extra":1}`, "unknown field"},
		{`[`, "does not decode"},
	} {
		if _, err := parseClipNote([]byte(tc.in)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("parseClipNote(%s) = %v; want an error naming %q", tc.in, err, tc.want)
		}
	}
}

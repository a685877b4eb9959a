package devnet

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/thingnet/thingnet/api"
	"github.com/thingnet/thingnet/chain"
	"github.com/thingnet/thingnet/ledger"
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
	ctx := ctxT(t, 4*time.Minute)
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
	waitFor(t, ctx, "a clip fetched, verified and answered directly, and a wake-up", func() bool {
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
		Items []ledger.FileManifest `json:"items"`
	}
	if err := api.NewClient(d.APIURL(2)).Get(ctx, "/v1/files/"+DemoOrg, &page); err != nil {
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
	waitFor(t, ctx, "a clip fetched and answered after the restart", func() bool {
		st := fl2.Exchange()
		return st.Fetched > 0 && st.Direct > 0
	})
}

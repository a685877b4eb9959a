package devnet

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/thingnet/thingnet/client"
	"github.com/thingnet/thingnet/device"
	"github.com/thingnet/thingnet/device/meshnode"
	"github.com/thingnet/thingnet/files"
	"github.com/thingnet/thingnet/files/firmware"
	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/lightclient"
	"github.com/thingnet/thingnet/mesh"
	"github.com/thingnet/thingnet/mesh/message"
	"github.com/thingnet/thingnet/record"
)

// The devices of the fleet's exchange (FleetConfig.Exchange).
const (
	CameraName  = "cam-0000"
	DisplayName = "display-0000"
)

// Kinds of exchange events (Event.Kind).
const (
	EventClip    = "clip"    // the camera added a clip to its gateway's file service and recorded its manifest
	EventMailbox = "mailbox" // the camera left a sealed message, asking for a wake-up, in the display's mailbox
	EventWoken   = "woken"   // the display pulled the message from its mailbox (woken early, or at its own wake)
	EventFetch   = "fetch"   // the display fetched the clip through its gateway, decrypted it and checked its digest
	EventDirect  = "direct"  // the display's answer reached the camera directly over the mesh
	EventError   = "error"   // a step failed (retried at the next clip)
)

// Event is one step of the exchange, for the devnet's output.
type Event struct {
	Kind string
	Text string
}

// ExchangeStats counts the exchange's steps.
type ExchangeStats struct {
	Clips     int64 // clips recorded (file added, manifest on the ledger)
	Deposited int64 // messages left in the display's mailbox
	Woken     int64 // of those, the ones on which the gateway woke the display
	Pulled    int64 // messages the display took from its mailbox
	Fetched   int64 // clips the display fetched, decrypted and checked
	Direct    int64 // the display's answers delivered to the camera directly
	Errors    int64
}

// clipNote is the camera's message to the display: which clip, and the
// SHA-256 of its plaintext, signed (the message) by the camera.
type clipNote struct {
	Org    string `json:"org"`
	Name   string `json:"name"`
	CID    string `json:"cid"`
	Size   int    `json:"size"`
	SHA256 string `json:"sha256"`
}

// maxClipNote bounds a clip note's JSON.
const maxClipNote = 1024

// parseClipNote decodes and checks the camera's message to the display.
func parseClipNote(b []byte) (clipNote, error) {
	var n clipNote
	if len(b) > maxClipNote {
		return n, fmt.Errorf("clip note of %d bytes; at most %d", len(b), maxClipNote)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&n); err != nil {
		return n, fmt.Errorf("clip note does not decode: %w", err)
	}
	if dec.More() {
		return n, errors.New("clip note: data after the JSON object")
	}
	sum, err := hex.DecodeString(n.SHA256)
	switch {
	case n.Org != DemoOrg:
		return n, fmt.Errorf("clip note: organisation %q; the exchange's clips are %s's", n.Org, DemoOrg)
	case !clipName(n.Name):
		return n, fmt.Errorf("clip note: file name %q: want 1 to 128 of A-Z a-z 0-9 . _ -, not starting with '.'", n.Name)
	case err != nil || len(sum) != sha256.Size:
		return n, fmt.Errorf("clip note: sha256 %q is not 64 hex digits", n.SHA256)
	case n.Size <= 0 || n.Size > maxClipSize:
		return n, fmt.Errorf("clip note: size %d; want 1 to %d bytes", n.Size, maxClipSize)
	}
	if _, err := firmware.ParseCID(n.CID); err != nil {
		return n, fmt.Errorf("clip note: %w", err)
	}
	return n, nil
}

// clipName reports whether s is a file name the display asks for: safe in
// a URL path as it is.
func clipName(s string) bool {
	if s == "" || len(s) > 128 || s[0] == '.' {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}

// maxClipSize bounds the clips the display fetches.
const maxClipSize = 64 << 20

// exchange is a camera and a display of the demo organisation: the
// camera records clips into files and tells the sleeping display through
// its mailbox; the display fetches and checks them and answers directly.
type exchange struct {
	d         *Devnet
	c         FleetConfig
	camGW     int // the camera's gateway (files, mesh)
	dispGW    int // the display's gateway (mailbox, fetches)
	cam, disp *device.Device
	camNode   *mesh.Node
	camAuth   *device.MeshAuthority // the camera's proved answers, kept a minute
	dispNode  *mesh.Node
	work      chan clipNote

	clips, deposited, woken, pulled, fetched, direct, errs atomic.Int64

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// startExchange registers the camera and the display (once), grants each
// the right to message the other (once), starts their mesh nodes and the
// display's agent, and runs the camera's clip loop.
func (f *Fleet) startExchange(ctx context.Context, d *Devnet, c FleetConfig, admin *identity.Key, trust *lightclient.TrustOptions) (err error) {
	x := &exchange{d: d, c: c, camGW: 0, dispGW: 1 % d.Size(), work: make(chan clipNote, 16)}
	gws := d.Gateways()
	prefer := func(i int) []device.Gateway { return append(append([]device.Gateway{}, gws[i:]...), gws[:i]...) }
	newDev := func(name string, gw int) (*device.Device, error) {
		dir := filepath.Join(d.Home(), "fleet", name)
		k, _, err := device.LoadOrCreateKey(dir, identity.Ed25519)
		if err != nil {
			return nil, err
		}
		return device.New(k, device.WithGateways(prefer(gw)...), device.WithChainID(d.ChainID()), device.WithStateDir(dir),
			device.WithTrust(*trust), device.WithLogger(d.log.With("module", "fleet", "device", name)))
	}
	if x.cam, err = newDev(CameraName, x.camGW); err != nil {
		return err
	}
	if x.disp, err = newDev(DisplayName, x.dispGW); err != nil {
		return errors.Join(err, x.cam.Close())
	}
	x.camAuth = x.cam.MeshAuthority(0)
	defer func() {
		if err != nil {
			err = errors.Join(err, x.stop())
		}
	}()
	var regs []*record.DeviceRegister
	for _, r := range []struct {
		dev         *device.Device
		name, class string
		extra       map[string]string
	}{
		{x.cam, CameraName, "camera", nil},
		// The display keeps its mailbox at its gateway, and may be woken
		// up to 100 times a day (the gateway also caps each sender).
		{x.disp, DisplayName, "display", map[string]string{message.LabelMailboxes: d.gwKeys[x.dispGW].ID(), message.LabelDownlinks: "100"}},
	} {
		k := r.dev.Key()
		proof, err := k.Sign(record.PossessionMessage(d.ChainID(), DemoOrg, k.ID()))
		if err != nil {
			return err
		}
		labels := map[string]string{"name": r.name, "simulated": "true"}
		for l, v := range r.extra {
			labels[l] = v
		}
		regs = append(regs, &record.DeviceRegister{Org: DemoOrg, Device: k.ID(), Class: r.class, Proof: proof, Labels: labels})
	}
	cl := client.New(d.APIURL(0))
	if _, err := device.RegisterAll(ctx, cl, admin, d.ChainID(), regs); err != nil {
		return fmt.Errorf("registering the camera and the display: %w", err)
	}
	if err := x.grant(ctx, cl, admin); err != nil {
		return fmt.Errorf("granting the camera and the display each other's messages: %w", err)
	}
	if x.camNode, err = meshnode.Start(x.cam, meshnode.Options{Listen: []string{"/ip4/127.0.0.1/tcp/0"}, Bootstrap: x.gatewayAddrs(x.camGW, x.dispGW),
		Handler: x.cameraHandler}); err != nil {
		return fmt.Errorf("the camera's mesh node: %w", err)
	}
	if x.dispNode, err = meshnode.Start(x.disp, meshnode.Options{Listen: []string{"/ip4/127.0.0.1/tcp/0"}, Bootstrap: x.gatewayAddrs(x.dispGW),
		Handler: x.displayHandler}); err != nil {
		return fmt.Errorf("the display's mesh node: %w", err)
	}
	// Direct messages: the display knows where the camera listens (on a
	// LAN, mDNS tells it).
	if _, err := x.dispNode.AddPeer(x.camNode.Addrs()[0]); err != nil {
		return err
	}
	s, err := device.NewSensor(device.SensorClasses[0], 99)
	if err != nil {
		return err
	}
	agent := &device.Agent{Device: x.disp, Sensors: []device.Sensor{s}, Wake: c.DisplayWake, Jitter: 0.1, Log: d.log.With("module", "fleet"),
		Mesh: x.dispNode, MailboxGateway: d.gwKeys[x.dispGW].ID()}
	rctx, cancel := context.WithCancel(context.Background())
	x.cancel = cancel
	x.wg.Go(func() { _ = agent.Run(rctx) })
	x.wg.Go(func() { x.display(rctx) })
	x.wg.Go(func() { x.camera(rctx) })
	f.exchange = x
	return nil
}

// gatewayAddrs are the mesh addresses of gateways is.
func (x *exchange) gatewayAddrs(is ...int) []string {
	var out []string
	for _, i := range is {
		if m := x.d.Mesh(i); m != nil && len(m.Addrs()) > 0 {
			out = append(out, m.Addrs()[0])
		}
	}
	return out
}

// grant lets the camera message the display and the display the camera,
// unless the ledger already holds those grants.
func (x *exchange) grant(ctx context.Context, cl *client.Client, admin *identity.Key) error {
	st, err := x.d.App(0).View(0)
	if err != nil {
		return err
	}
	cam, disp := "device:"+x.cam.ID(), "device:"+x.disp.ID()
	for _, g := range [][2]string{{cam, disp}, {disp, cam}} {
		ok, err := st.HasGrant(g[0], message.KindMessage, []string{g[1]}, st.Height+1)
		if err != nil {
			return err
		}
		if ok {
			continue
		}
		if _, err := cl.Send(ctx, admin, "", &record.GrantAdd{Grantor: "org:" + DemoOrg, Subject: g[0], Action: message.KindMessage, Resource: g[1]}, true); err != nil {
			return err
		}
	}
	return nil
}

func (x *exchange) event(kind, format string, args ...any) {
	if x.c.OnEvent != nil {
		x.c.OnEvent(Event{Kind: kind, Text: fmt.Sprintf(format, args...)})
	}
}

func (x *exchange) fail(step string, err error) {
	x.errs.Add(1)
	x.event(EventError, "%s: %v", step, err)
}

// camera records a clip every ClipEvery.
func (x *exchange) camera(ctx context.Context) {
	for n := 1; ; n++ {
		if err := x.shoot(ctx, n); err != nil && ctx.Err() == nil {
			x.fail(CameraName+": clip", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(x.c.ClipEvery):
		}
	}
}

// makeClip is the simulated camera's recording: a header line and
// pseudo-random bytes.
func makeClip(name string, size int) []byte {
	seed := sha256.Sum256([]byte(name))
	r := rand.NewChaCha8(seed)
	b := make([]byte, size)
	_, _ = r.Read(b)
	copy(b, fmt.Sprintf("thingnet devnet clip %s\n", name))
	return b
}

// shoot records clip n: encrypted with a new content key, added to the
// camera's gateway's file service with the camera's token, its manifest
// (the key wrapped for the camera and the display, whose ledger key the
// light client proves) recorded on the ledger by the camera's signed
// file.publish; then a sealed message with the clip's digest goes into
// the display's mailbox, asking to wake it.
func (x *exchange) shoot(ctx context.Context, n int) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	name := fmt.Sprintf("%s-clip-%d-%d", CameraName, time.Now().Unix(), n)
	clip := makeClip(name, x.c.ClipSize)
	sum := sha256.Sum256(clip)
	key, err := files.NewContentKey()
	if err != nil {
		return err
	}
	var ct bytes.Buffer
	if _, err := files.Encrypt(&ct, bytes.NewReader(clip), key); err != nil {
		return err
	}
	camKey := x.cam.Key()
	tok, err := files.DeviceToken(camKey, x.cam.ID(), x.d.ChainID())
	if err != nil {
		return err
	}
	fc := &files.Client{Base: x.d.APIURL(x.camGW), Token: tok, Device: x.cam.ID()}
	added, err := fc.Add(ctx, &ct, nil)
	if err != nil {
		return fmt.Errorf("adding the clip at node%d: %w", x.camGW, err)
	}
	disp, err := x.camAuth.Device(x.disp.ID()) // its key, proved
	if err != nil {
		return fmt.Errorf("the display's key: %w", err)
	}
	keys, err := files.WrapKey(key, DemoOrg, name, 1, []files.Recipient{{ID: x.cam.ID(), Key: camKey.Public()}, {ID: disp.ID, Key: disp.Key}})
	if err != nil {
		return err
	}
	res, err := client.New(x.d.APIURL(x.camGW)).Send(ctx, camKey, "", &record.FilePublish{Org: DemoOrg, Name: name, CID: added.CID,
		Size: added.Size, ContentType: "video/x-simulated", Private: true, Keys: keys}, true)
	if err != nil {
		return fmt.Errorf("recording the manifest: %w", err)
	}
	x.clips.Add(1)
	x.event(EventClip, "%s recorded a %d-byte clip: encrypted, added to node%d's file service (%s), manifest %s/%s recorded by its signed file.publish at height %d, key wrapped for itself and %s",
		CameraName, len(clip), x.camGW, added.CID, DemoOrg, name, res.Height, DisplayName)
	body, _ := json.Marshal(clipNote{Org: DemoOrg, Name: name, CID: added.CID, Size: len(clip), SHA256: hex.EncodeToString(sum[:])})
	env, err := x.camNode.Compose(message.Outgoing{To: x.disp.ID(), Type: "application/json", Body: body, Seal: true, Wake: true})
	if err != nil {
		return err
	}
	var wakes0 uint64
	if m := x.d.Mesh(x.dispGW); m != nil {
		wakes0 = m.Stats().Wakes
	}
	r, err := x.camNode.Deposit(ctx, x.d.gwKeys[x.dispGW].ID(), env)
	if err != nil {
		return fmt.Errorf("leaving the message at node%d: %w", x.dispGW, err)
	}
	if r.Status != message.StatusDelivered {
		return fmt.Errorf("node%d's mailbox refused the message: %s %s", x.dispGW, r.Status, r.Reason)
	}
	x.deposited.Add(1)
	woke := "it sleeps on and reads it at its next wake (not listening, or over its wake-up budget)"
	if m := x.d.Mesh(x.dispGW); m != nil && m.Stats().Wakes > wakes0 {
		x.woken.Add(1)
		woke = fmt.Sprintf("node%d woke it up", x.dispGW)
	}
	x.event(EventMailbox, "%s left a sealed, signed message for %s in its mailbox at node%d (grant: %s may message %s), asking for a wake-up: %s",
		CameraName, DisplayName, x.dispGW, CameraName, DisplayName, woke)
	return nil
}

// displayHandler takes the camera's messages, checked by the mesh node
// (signature, grant and sender proved by the light client, replay); the
// display's worker fetches the clips.
func (x *exchange) displayHandler(_ context.Context, m *mesh.Delivery) error {
	if m.From != x.cam.ID() {
		return fmt.Errorf("the display expects messages from the camera only, not %s", m.From)
	}
	n, err := parseClipNote(m.Plaintext)
	if err != nil {
		return err
	}
	x.pulled.Add(1)
	x.event(EventWoken, "%s took %s's message from its mailbox at node%d (via %s): clip %s/%s", DisplayName, CameraName, x.dispGW, m.Via, n.Org, n.Name)
	select {
	case x.work <- n:
		return nil
	default:
		return errors.New("the display is busy; the message stays in the mailbox")
	}
}

// display fetches each announced clip and answers the camera directly.
func (x *exchange) display(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case n := <-x.work:
			if err := x.view(ctx, n); err != nil && ctx.Err() == nil {
				x.fail(DisplayName+": clip "+n.Name, err)
			}
		}
	}
}

// view reads the clip's manifest, opens the content key wrapped for the
// display, fetches the clip through the display's gateway (which gets the
// blocks from the camera's by bitswap, each checked against its hash),
// decrypts it, checks it against the digest the camera signed, and
// answers the camera directly over the mesh.
func (x *exchange) view(ctx context.Context, n clipNote) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	var rec struct {
		Record record.FileManifest `json:"record"`
	}
	if err := client.New(x.d.APIURL(x.dispGW)).Get(ctx, "/v1/files/"+n.Org+"/"+n.Name, &rec); err != nil {
		return fmt.Errorf("reading the manifest: %w", err)
	}
	m := &rec.Record
	if m.Size > maxClipSize+1<<20 { // the plaintext's bound, and the encryption's overhead
		return fmt.Errorf("the manifest says %d bytes; the display fetches clips of at most %d", m.Size, maxClipSize)
	}
	if m.CID != n.CID || m.Owner != x.cam.ID() {
		return fmt.Errorf("the manifest says CID %s by %s; the camera's message %s by %s", m.CID, m.Owner, n.CID, x.cam.ID())
	}
	key, err := files.UnwrapKey(m, x.disp.ID(), x.disp.Key())
	if err != nil {
		return err
	}
	var ct bytes.Buffer
	if _, err := (&files.Client{Base: x.d.APIURL(x.dispGW)}).Get(ctx, m.CID, &ct, nil); err != nil {
		return fmt.Errorf("fetching through node%d: %w", x.dispGW, err)
	}
	clip, err := files.Decrypt(ct.Bytes(), key)
	if err != nil {
		return err
	}
	sum := sha256.Sum256(clip)
	if got := hex.EncodeToString(sum[:]); got != n.SHA256 || len(clip) != n.Size {
		return fmt.Errorf("the clip fetched has SHA-256 %s and %d bytes; the camera signed %s and %d", got, len(clip), n.SHA256, n.Size)
	}
	x.fetched.Add(1)
	x.event(EventFetch, "%s fetched %s/%s through node%d (blocks from node%d by bitswap), opened the key wrapped for it, decrypted %d bytes: SHA-256 %s… matches the camera's signed message",
		DisplayName, n.Org, n.Name, x.dispGW, x.camGW, len(clip), n.SHA256[:16])
	env, err := x.dispNode.Compose(message.Outgoing{To: x.cam.ID(), Type: "text/plain", Body: []byte("viewed " + n.Name + " sha256 ok")})
	if err != nil {
		return err
	}
	r, err := x.dispNode.Send(ctx, env)
	if err != nil {
		return fmt.Errorf("answering the camera directly: %w", err)
	}
	if r.Status != message.StatusDelivered {
		return fmt.Errorf("the camera refused the answer: %s %s", r.Status, r.Reason)
	}
	return nil
}

// cameraHandler takes the display's direct answers.
func (x *exchange) cameraHandler(_ context.Context, m *mesh.Delivery) error {
	if m.From != x.disp.ID() {
		return fmt.Errorf("the camera expects messages from the display only, not %s", m.From)
	}
	x.direct.Add(1)
	x.event(EventDirect, "%s answered %s directly over the mesh (libp2p from its node to the camera's, no gateway in between, signed, granted): %q",
		DisplayName, CameraName, m.Plaintext)
	return nil
}

func (x *exchange) stats() ExchangeStats {
	return ExchangeStats{Clips: x.clips.Load(), Deposited: x.deposited.Load(), Woken: x.woken.Load(), Pulled: x.pulled.Load(),
		Fetched: x.fetched.Load(), Direct: x.direct.Load(), Errors: x.errs.Load()}
}

// stop stops the loops, the mesh nodes and the devices.
func (x *exchange) stop() error {
	if x.cancel != nil {
		x.cancel()
	}
	x.wg.Wait()
	var errs []error
	for _, n := range []*mesh.Node{x.camNode, x.dispNode} {
		if n != nil {
			errs = append(errs, n.Close())
		}
	}
	for _, d := range []*device.Device{x.cam, x.disp} {
		if d != nil {
			errs = append(errs, d.Close())
		}
	}
	return errors.Join(errs...)
}

package gateway

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/thingnet/thingnet/client"
	"github.com/thingnet/thingnet/device"
	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/internal/testutil"
	"github.com/thingnet/thingnet/lightclient"
	"github.com/thingnet/thingnet/reading"
	"github.com/thingnet/thingnet/record"
)

// TestSealedReadings: a device seals its readings to its organisation's
// data key (verified with its light client) and sends them over HTTP and
// MQTT; the gateway stores, anchors and proves them (proof.VerifyReading)
// without their plaintext reaching its disk; the admin opens them; a
// grantee opens them once the admin shares the data key, while the log
// does not change; another organisation's key does not; after a rotation
// old readings still open.
func TestSealedReadings(t *testing.T) {
	tn := startTestNet(t)
	ctx := testutil.Context(t, 2*time.Minute)
	b, err := tn.gw.StartMQTT(MQTTConfig{Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()

	// acme publishes data key version 1.
	dk1 := testutil.Key(t, identity.Ed25519)
	publish := func(dk *identity.Key, want uint64) {
		t.Helper()
		pub, err := dk.HPKEPublicKey(identity.SuiteX25519)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tn.client.Send(ctx, tn.admin, "", &record.OrgDataKey{Org: "acme", Suite: uint8(identity.SuiteX25519), Key: pub}, true); err != nil {
			t.Fatal(err)
		}
		got, err := tn.client.DataKey(ctx, "acme", 0, false)
		if err != nil || got.Record.Version != want || !bytes.Equal(got.Record.Key, pub) {
			t.Fatalf("current data key = %+v, %v; want version %d", got, err, want)
		}
	}
	publish(dk1, 1)

	// A second device, for MQTT (each device object keeps its own seqs).
	meter := testutil.Key(t, identity.Ed25519)
	pp, _ := meter.Sign(record.PossessionMessage("gw-test", "acme", meter.ID()))
	if _, err := tn.client.Send(ctx, tn.admin, "", &record.DeviceRegister{Org: "acme", Device: meter.ID(), Class: "meter", Proof: pp}, true); err != nil {
		t.Fatal(err)
	}
	h, err := tn.client.Header(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	trust := lightclient.TrustOptions{Height: 2, Hash: h.SignedHeader.Hash(), Period: time.Hour}
	gw := device.Gateway{API: tn.client.BaseURL, MQTT: b.Addr()}
	newDevice := func(k *identity.Key, tr device.Transport) *device.Device {
		d, err := device.New(k, device.WithGateways(gw), device.WithTransport(tr), device.WithChainID("gw-test"),
			device.WithTrust(trust), device.WithStateDir(t.TempDir()), device.WithSealing(time.Nanosecond))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Close() })
		return d
	}
	sensor, mqttMeter := newDevice(tn.sensor, device.HTTP), newDevice(meter, device.MQTT)

	// Secrets: random, so that finding them on disk means they leaked.
	secret := func() []byte {
		b := make([]byte, 48)
		rand.Read(b)
		return b
	}
	type sent struct {
		index uint64
		plain []byte
		value *float64
	}
	send := func(d *device.Device, r reading.Reading) sent {
		t.Helper()
		rc, err := d.Send(ctx, r)
		if err != nil {
			t.Fatalf("send: %v", err)
		}
		if rc.Index < 0 {
			if err := waitSealed(ctx, func() bool { return tn.gw.Log().Size() > 0 }); err != nil {
				t.Fatal(err)
			}
		}
		e, err := reading.Decode(rc.Envelope)
		if err != nil || e.Readings[0].Sealed == nil || e.Readings[0].Sealed.Version == 0 {
			t.Fatalf("the device sent %+v, %v; want a sealed reading", e, err)
		}
		idx := findEntry(t, tn, rc.Envelope)
		return sent{index: idx, plain: r.Bytes, value: r.Value}
	}
	v := 21.5
	s1 := send(sensor, reading.Reading{ContentType: "application/octet-stream", Bytes: secret()})
	s2 := send(mqttMeter, reading.Reading{ContentType: "application/octet-stream", Bytes: secret()})
	s3 := send(sensor, reading.Reading{ContentType: "temperature/celsius", Value: &v})

	// Stored, anchored and verified end to end, sealed.
	envs := map[uint64]*reading.Envelope{}
	for _, s := range []sent{s1, s2, s3} {
		p := tn.proof(t, s.index)
		ver, err := tn.client.VerifyReading(ctx, "gw-test", p)
		if err != nil {
			t.Fatalf("VerifyReading(%d): %v", s.index, err)
		}
		envs[s.index] = ver.Envelope
	}

	// The plaintext is nowhere in the gateway's (or the ledger's) files;
	// the sealed value is (the search does see the stored bytes).
	sealedCommit := envs[s1.index].Readings[0].Sealed.Commit
	found := searchFiles(t, tn.dir, s1.plain, s2.plain, sealedCommit)
	if found[0] != "" || found[1] != "" {
		t.Fatalf("plaintext found on disk: %q, %q", found[0], found[1])
	}
	if found[2] == "" {
		t.Fatal("the search found not even the sealed reading's commitment: it does not see the stored bytes")
	}
	t.Logf("the sealed value's commitment is in %s; no plaintext anywhere under %s", found[2], tn.dir)

	// The admin opens them with the data key.
	admin := &client.Opener{Client: tn.client, ChainID: "gw-test", Lookup: lookup(map[uint64]*identity.Key{1: dk1})}
	check := func(o *client.Opener, s sent) error {
		t.Helper()
		r, err := o.Open(ctx, envs[s.index].Readings[0])
		if err != nil {
			return err
		}
		if s.plain != nil && !bytes.Equal(r.Bytes, s.plain) || s.value != nil && (r.Value == nil || *r.Value != *s.value) {
			t.Fatalf("opened %+v; want %x / %v", r, s.plain, s.value)
		}
		return nil
	}
	for _, s := range []sent{s1, s2, s3} {
		if err := check(admin, s); err != nil {
			t.Fatalf("the admin cannot open entry %d: %v", s.index, err)
		}
	}
	// Another organisation's key does not open them.
	other := &client.Opener{Client: tn.client, ChainID: "gw-test", Lookup: func(string, uint64) (*identity.Key, error) { return testutil.Key(t, identity.Ed25519), nil }}
	if err := check(other, s1); err == nil {
		t.Fatal("another key opened the reading")
	}
	if _, err := reading.Open(testutil.Key(t, identity.Ed25519), "gw-test", envs[s1.index].Readings[0]); !errors.Is(err, reading.ErrSealed) {
		t.Fatalf("reading.Open with another key: %v", err)
	}

	// A new grantee: a read grant and a share of the data key; the log
	// does not change.
	reader := testutil.Key(t, identity.Ed25519)
	readerClient := client.New(tn.client.BaseURL).WithIdentity(&client.Identity{Key: reader, ChainID: "gw-test"})
	grantee := &client.Opener{Client: readerClient, ChainID: "gw-test", Reader: reader, ReaderID: reader.ID()}
	if err := check(grantee, s1); !errors.Is(err, client.ErrNoDataKey) {
		t.Fatalf("the grantee before the share: %v; want ErrNoDataKey", err)
	}
	size, root := tn.gw.Log().Root()
	entry, _ := tn.gw.Log().Entry(s1.index)
	// The reader is the admin of a partner organisation, which acme
	// grants read access to its readings.
	if _, err := tn.client.Send(ctx, reader, "", &record.OrgCreate{ID: "partner"}, true); err != nil {
		t.Fatal(err)
	}
	if _, err := tn.client.Send(ctx, tn.admin, "", &record.GrantAdd{Grantor: "org:acme", Subject: "org:partner", Action: record.ActionRead, Resource: "org:acme"}, true); err != nil {
		t.Fatal(err)
	}
	share, err := client.WrapDataKey("gw-test", "acme", 1, reader.ID(), dk1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tn.client.Send(ctx, tn.admin, "", share, true); err != nil {
		t.Fatal(err)
	}
	// A share for someone else is not the reader's.
	if _, err := client.UnwrapDataKey("gw-test", &record.DataKeyShare{Org: "acme", Version: 1, Grantee: tn.admin.ID(), Suite: share.Suite, Sealed: share.Sealed}, tn.admin, &record.DataKey{Org: "acme", Version: 1}); err == nil {
		t.Fatal("the admin unwrapped the reader's share")
	}
	grantee = &client.Opener{Client: readerClient, ChainID: "gw-test", Reader: reader, ReaderID: reader.ID()}
	p, err := readerClient.Reading(ctx, s1.index) // the grantee reads the envelope itself
	if err != nil || p.Withheld != nil {
		t.Fatalf("the grantee's read: %+v, %v", p, err)
	}
	for _, s := range []sent{s1, s2, s3} {
		if err := check(grantee, s); err != nil {
			t.Fatalf("the grantee cannot open entry %d: %v", s.index, err)
		}
	}
	size2, root2 := tn.gw.Log().Root()
	entry2, _ := tn.gw.Log().Entry(s1.index)
	if size2 != size || root2 != root || !bytes.Equal(entry, entry2) {
		t.Fatalf("the log changed when the grantee was added: size %d -> %d", size, size2)
	}

	// Rotation: version 2; the devices seal to it from their next reading;
	// old readings still open, for the admin and the grantee.
	dk2 := testutil.Key(t, identity.Ed25519)
	publish(dk2, 2)
	s4 := send(sensor, reading.Reading{ContentType: "application/octet-stream", Bytes: secret()})
	p4 := tn.proof(t, s4.index)
	e4, err := reading.Decode(p4.Envelope)
	if err != nil || e4.Readings[0].Sealed.Version != 2 {
		t.Fatalf("after the rotation the device sealed to %+v, %v; want version 2", e4, err)
	}
	envs[s4.index] = e4
	admin.Lookup = lookup(map[uint64]*identity.Key{1: dk1, 2: dk2})
	for _, s := range []sent{s1, s4} {
		if err := check(admin, s); err != nil {
			t.Fatalf("after the rotation the admin cannot open entry %d: %v", s.index, err)
		}
	}
	if err := check(grantee, s1); err != nil {
		t.Fatalf("after the rotation the grantee cannot open an old reading: %v", err)
	}
	if err := check(grantee, s4); !errors.Is(err, client.ErrNoDataKey) {
		t.Fatalf("the grantee opened a reading of version 2 without its share: %v", err)
	}
}

func lookup(keys map[uint64]*identity.Key) func(string, uint64) (*identity.Key, error) {
	return func(org string, v uint64) (*identity.Key, error) {
		if k, ok := keys[v]; ok && org == "acme" {
			return k, nil
		}
		return nil, client.ErrNoDataKey
	}
}

// findEntry returns the log index of an envelope, waiting for it.
func findEntry(t *testing.T, tn *testNet, env []byte) uint64 {
	t.Helper()
	ctx := testutil.Context(t, 30*time.Second)
	var idx uint64
	err := waitSealed(ctx, func() bool {
		l := tn.gw.Log()
		for i := l.Size(); i > 0; i-- {
			raw, err := l.Entry(i - 1)
			if err != nil {
				continue
			}
			if e, err := reading.DecodeEntry(raw); err == nil && bytes.Equal(e.Envelope.Raw, env) {
				idx = i - 1
				return true
			}
		}
		return false
	})
	if err != nil {
		t.Fatalf("the envelope never reached the log: %v", err)
	}
	return idx
}

func waitSealed(ctx context.Context, cond func() bool) error {
	for !cond() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

// searchFiles returns, for each needle, a file under dir that holds it
// ("" if none): every regular file, Pebble's WAL and SSTables included.
func searchFiles(t *testing.T, dir string, needles ...[]byte) []string {
	t.Helper()
	found := make([]string, len(needles))
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // a file removed while walking (a rotated WAL)
			}
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		for i, n := range needles {
			if found[i] == "" && bytes.Contains(b, n) {
				found[i] = path
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

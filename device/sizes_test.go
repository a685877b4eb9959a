package device_test

import (
	"fmt"
	"net/url"
	"strconv"
	"testing"

	"github.com/cometbft/cometbft/types"
	"github.com/thingnet/thingnet/client"
	"github.com/thingnet/thingnet/device"
	"github.com/thingnet/thingnet/lightclient"
	"github.com/thingnet/thingnet/proof"
	"github.com/thingnet/thingnet/record"

	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/reading"
)

// TestWireSizes measures the bytes a device sends and receives per reading
// and per proof on a devnet of 4 validators, for docs/protocol.md ("Bytes
// on the wire"). Run with -v to see the table.
func TestWireSizes(t *testing.T) {
	tn := startNet(t)
	ctx := ctxT(t)
	me := tn.register(t, identity.Ed25519)
	other := tn.register(t, identity.Ed25519)
	tn.send(t, me, &record.GrantAdd{Grantor: "device:" + me.ID(), Subject: "device:" + other.ID(), Action: "message", Resource: "device:" + me.ID()})
	d, err := device.New(me, device.WithGateways(tn.gw(0)), device.WithTrust(tn.trust), device.WithStateDir(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	var rows [][2]string
	row := func(what string, n int) { rows = append(rows, [2]string{what, strconv.Itoa(n)}) }

	one, _, err := d.Sign([]reading.Reading{temp(21.5)})
	if err != nil {
		t.Fatal(err)
	}
	row("reading envelope, one reading (Ed25519, float16 value)", len(one))
	ten := make([]reading.Reading, 10)
	for i := range ten {
		ten[i] = temp(21.5)
	}
	batch, _, _ := d.Sign(ten)
	row("reading envelope, batch of 10", len(batch))
	tok, _ := d.Token(ctx)
	row("CWT (device.MQTT password, bytes)", len(tok))

	rc, err := d.Send(ctx, temp(21.5))
	if err != nil {
		t.Fatal(err)
	}
	waitAnchored(t, ctx, d, rc)
	if ok, err := d.IsActiveAndGranted(ctx, other.ID(), "message"); err != nil || !ok {
		t.Fatalf("IsActiveAndGranted: %v %v", ok, err)
	}
	state, _ := d.TrustedState()
	row("light-client state (trusted header + 4 validators, protobuf)", len(state))
	// The same state with the height of a ledger grown by 100,000 blocks:
	// only the height's varints grow (the signatures are not valid for it;
	// only the size counts).
	var st lightclient.State
	if err := st.UnmarshalBinary(state); err != nil {
		t.Fatal(err)
	}
	h := *st.Header.Header
	cm := *st.Header.Commit
	h.Height += 100_000
	cm.Height = h.Height
	st.Header = &types.SignedHeader{Header: &h, Commit: &cm}
	grown, err := st.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	row(fmt.Sprintf("the same at height %d", h.Height), len(grown))

	c := client.New(tn.d.APIURL(0)).WithIdentity(&client.Identity{Key: me}) // reads as the device
	var raw []byte
	if err := c.Get(ctx, "/v1/headers/"+strconv.FormatInt(d.TrustedHeight(), 10), &raw); err != nil {
		t.Fatal(err)
	}
	row("GET /v1/headers/{h} answer (JSON, 4 validators)", len(raw))
	p, _, err := c.ProvedRecord(ctx, "/v1/devices/"+url.PathEscape(other.ID()), nil)
	if err != nil {
		t.Fatal(err)
	}
	row("device record (CBOR value)", len(p.Value))
	row("device record proof (ICS-23, protobuf)", len(p.Proof))
	if err := c.Get(ctx, "/v1/devices/"+url.PathEscape(other.ID())+"?prove=true", &raw); err != nil {
		t.Fatal(err)
	}
	row("GET /v1/devices/{id}?prove=true answer (JSON)", len(raw))
	var page struct {
		Items []record.Grant `json:"items"`
	}
	if err := c.Get(ctx, "/v1/grants?subject=device:"+url.QueryEscape(other.ID()), &page); err != nil || len(page.Items) == 0 {
		t.Fatalf("grants: %v", err)
	}
	gp, _, err := c.ProvedRecord(ctx, "/v1/grants/"+fmt.Sprint(page.Items[0].ID), nil)
	if err != nil {
		t.Fatal(err)
	}
	row("grant record (CBOR value)", len(gp.Value))
	row("grant proof (ICS-23, protobuf)", len(gp.Proof))
	absent, _, err := c.ProvedRecord(ctx, "/v1/devices/did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp", nil)
	if err != nil {
		t.Fatal(err)
	}
	row("absence proof of a device (ICS-23, protobuf)", len(absent.Proof))
	var rp proof.Reading
	if err := c.Get(ctx, "/v1/readings/"+strconv.FormatInt(rc.Index, 10), &rp); err != nil {
		t.Fatal(err)
	}
	row(fmt.Sprintf("reading inclusion proof (%d hashes of 32 bytes, log of %d)", len(rp.Inclusion), rp.Anchor.Size), 32*len(rp.Inclusion))
	row("anchor record + its proof", len(rp.AnchorProof.Value)+len(rp.AnchorProof.Proof))
	row("signer's history event + next record, with their proofs", len(rp.Signer.Event.Value)+len(rp.Signer.Event.Proof)+len(rp.Signer.Next.Value)+len(rp.Signer.Next.Proof))
	if err := c.Get(ctx, "/v1/readings/"+strconv.FormatInt(rc.Index, 10), &raw); err != nil {
		t.Fatal(err)
	}
	row("GET /v1/readings/{index} answer (JSON)", len(raw))
	t.Log("| what | bytes |\n| --- | --- |")
	for _, r := range rows {
		t.Logf("| %s | %s |", r[0], r[1])
	}
	if len(state) > 64<<10 {
		t.Errorf("light-client state %d bytes, over 64 KiB", len(state))
	}
}

package device

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"

	"github.com/thingnet/thingnet/client"
	"github.com/thingnet/thingnet/record"
)

// ErrFirmwareNotApproved is returned by FirmwareApproved when the ledger
// proves the image may not run on this device: no such release, a release
// with another digest, another device class, or no approval by the
// device's organisation. Do not install it.
var ErrFirmwareNotApproved = errors.New("device: firmware not approved for this device")

// FirmwareApproval is what FirmwareApproved established, each fact proved
// against a header the light client verified, all in one state.
type FirmwareApproval struct {
	Vendor string
	Class  string // the device's class, from its proved record
	Org    string // the device's organisation, from its proved record
	Seq    uint64
	Digest []byte
	Height int64 // the state the proofs are of

	Release  *record.FirmwareReleaseRecord // the release Vendor/Class/Seq; nil if proved absent
	Approval *record.FirmwareApproval      // Org's approval of Digest for Class; nil if proved absent
	Approved bool
	Reason   string // why not, when not approved
}

// FirmwareApproved checks, before an install, that the ledger holds the
// release vendor/class #seq with this image digest and that this device's
// organisation approved that image for this device's class. The device's
// record, the release and the approval come with state proofs of one state,
// verified by the light client; a gateway whose answer does not verify is
// set aside and the next one asked. A gateway can withhold an approval
// (the answer is then a refusal), never invent one.
//
// A refusal the ledger proves is ErrFirmwareNotApproved, returned with the
// proved facts; any other error means no gateway gave a verifiable answer.
func (d *Device) FirmwareApproved(ctx context.Context, vendor, class string, seq uint64, digest []byte) (*FirmwareApproval, error) {
	if len(digest) != sha256.Size {
		return nil, fmt.Errorf("device: firmware digest is %d bytes; want the image's SHA-256 (32)", len(digest))
	}
	var out *FirmwareApproval
	err := d.verified(ctx, "checking firmware "+vendor+"/"+class+" #"+strconv.FormatUint(seq, 10), func(gw Gateway) error {
		a, err := d.firmwareApproved(ctx, d.apiClient(gw), vendor, class, seq, digest)
		out = a
		return err
	})
	if err != nil {
		return nil, err
	}
	if !out.Approved {
		return out, fmt.Errorf("%w: %s", ErrFirmwareNotApproved, out.Reason)
	}
	return out, nil
}

func (d *Device) firmwareApproved(ctx context.Context, c *client.Client, vendor, class string, seq uint64, digest []byte) (*FirmwareApproval, error) {
	self, p, err := d.provedSelf(ctx, c)
	if err != nil {
		return nil, err
	}
	a := &FirmwareApproval{Vendor: vendor, Class: self.Class, Org: self.Org, Seq: seq, Digest: digest, Height: p.Height}
	if class != self.Class {
		a.Reason = fmt.Sprintf("the image is for class %q, this device is of class %q", class, self.Class)
		return a, nil
	}

	var rel record.FirmwareReleaseRecord
	found, err := d.provedKey(ctx, c, record.FirmwareKey(vendor, class, seq), p.Height, &rel)
	if err != nil {
		return nil, fmt.Errorf("release %s/%s #%d: %w", vendor, class, seq, err)
	}
	if !found {
		a.Reason = fmt.Sprintf("the ledger has no release %s/%s #%d", vendor, class, seq)
		return a, nil
	}
	if m := rel.Manifest; m.Vendor != vendor || m.Class != class || m.Seq != seq {
		return nil, fmt.Errorf("the record under release %s/%s #%d is of %s/%s #%d", vendor, class, seq, m.Vendor, m.Class, m.Seq)
	}
	a.Release = &rel
	if !bytes.Equal(rel.Manifest.Digest, digest) {
		a.Reason = fmt.Sprintf("release %s/%s #%d is image %x, not %x", vendor, class, seq, rel.Manifest.Digest, digest)
		return a, nil
	}

	var ap record.FirmwareApproval
	found, err = d.provedKey(ctx, c, record.FirmwareApprovalKey(self.Org, class, digest), p.Height, &ap)
	if err != nil {
		return nil, fmt.Errorf("approval by %s: %w", self.Org, err)
	}
	if !found {
		a.Reason = fmt.Sprintf("organisation %s has not approved image %x for class %s", self.Org, digest, class)
		return a, nil
	}
	if ap.Org != self.Org || ap.Class != class || !bytes.Equal(ap.Digest, digest) {
		return nil, fmt.Errorf("the record under the approval of %x by %s/%s is of %x by %s/%s", digest, self.Org, class, ap.Digest, ap.Org, ap.Class)
	}
	a.Approval = &ap
	if ap.Vendor != vendor || ap.Seq != seq {
		a.Reason = fmt.Sprintf("organisation %s approved this image as release %s #%d, not %s #%d", self.Org, ap.Vendor, ap.Seq, vendor, seq)
		return a, nil
	}
	a.Approved = true
	return a, nil
}

// provedKey fetches any state key with its proof in the state after block
// height (/v1/proofs), verifies it and decodes the proved value into rec;
// found false means the key is proved absent. The caller holds checkMu.
func (d *Device) provedKey(ctx context.Context, c *client.Client, key []byte, height int64, rec any) (bool, error) {
	var p record.Proof
	if ahead := d.proofs[proofSlot(height, key)]; ahead != nil {
		p = *ahead
	} else {
		q := url.Values{"key": {hex.EncodeToString(key)}, "height": {strconv.FormatInt(height, 10)}}
		if err := c.Get(ctx, "/v1/proofs?"+q.Encode(), &p); err != nil {
			return false, err
		}
	}
	if p.Height != height {
		return false, fmt.Errorf("%w: asked for the state after block %d, the gateway proved the one after %d", record.ErrBadProof, height, p.Height)
	}
	if err := d.verifyProof(ctx, &p, key); err != nil {
		return false, err
	}
	if p.Value == nil {
		return false, nil
	}
	if err := record.Unmarshal(p.Value, rec); err != nil {
		return false, err
	}
	return true, nil
}

// prefetch asks for the proofs of keys in the state after block height
// in one request (GET /v1/proofs with several keys), for the provedKey
// calls that follow: a wake's configuration and jobs take two or three
// round trips, not one per key. Nothing is trusted here — provedKey
// verifies each proof as if fetched alone — and a gateway that does not
// answer the batch (an older node) is simply asked key by key. The caller
// holds checkMu.
func (d *Device) prefetch(ctx context.Context, c *client.Client, height int64, keys ...[]byte) {
	var want [][]byte
	for _, k := range keys {
		if d.proofs[proofSlot(height, k)] == nil && !slices.ContainsFunc(want, func(w []byte) bool { return bytes.Equal(w, k) }) {
			want = append(want, k)
		}
	}
	for len(want) >= 2 {
		n := min(len(want), client.MaxProofKeys)
		got, err := c.ProveKeys(ctx, height, want[:n]...)
		if err != nil || got.Height != height {
			return
		}
		if d.proofs == nil {
			d.proofs = make(map[string]*record.Proof)
		}
		for i, p := range got.Proofs {
			if p != nil {
				d.proofs[proofSlot(height, want[i])] = p
			}
		}
		want = want[n:]
	}
}

// proofSlot is the key of d.proofs.
func proofSlot(height int64, key []byte) string {
	return strconv.FormatInt(height, 10) + "/" + string(key)
}

// ReportFirmware records on the ledger (a firmware.report tx signed by the
// device's key) that the device now runs image digest, version; the
// device's history keeps every report, and a report of an image its
// organisation did not approve flags the device. It returns once the tx is
// committed. A gateway that cannot be reached is set aside and the next
// one used; a refusal by the ledger is returned as is.
func (d *Device) ReportFirmware(ctx context.Context, version string, digest []byte) error {
	return d.reportFirmware(ctx, &record.FirmwareReport{Digest: digest, Version: version}, "reporting firmware "+version)
}

func (d *Device) reportFirmware(ctx context.Context, m *record.FirmwareReport, what string) error {
	if err := m.ValidateBasic(); err != nil {
		return fmt.Errorf("device: firmware report: %w", err)
	}
	return d.submit(ctx, m, what)
}

// ErrTxRefused wraps the ledger's refusal of a tx the device signed (a
// report): another gateway would refuse it too.
var ErrTxRefused = errors.New("device: refused by the ledger")

// submit signs m with the device's key and submits it, waiting for its
// commit; a gateway that cannot be reached is set aside and the next one
// used; a refusal (a 4xx other than 429) is returned wrapping ErrTxRefused.
func (d *Device) submit(ctx context.Context, m record.Msg, what string) error {
	var refused error
	err := d.each(ctx, what, func(_ int, gw Gateway) error {
		_, err := d.apiClient(gw).Send(ctx, d.key, d.id, m, true)
		var ae *client.Error
		if errors.As(err, &ae) && ae.Status >= 400 && ae.Status < 500 && ae.Status != http.StatusTooManyRequests {
			refused = err // the ledger (or the gateway's checks) said no: another gateway would too
			return nil
		}
		return err
	})
	if err != nil {
		return err
	}
	if refused != nil {
		return fmt.Errorf("%w: %s: %w", ErrTxRefused, what, refused)
	}
	return nil
}

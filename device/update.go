package device

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/thingnet/thingnet/client"
	"github.com/thingnet/thingnet/files/firmware"
	"github.com/thingnet/thingnet/record"
)

// FirmwareOffer is what OfferedFirmware established: the device's record,
// its organisation's rollout for its class and, when the open wave covers
// this device, the release and the approval, each proved against one
// header the light client verified.
type FirmwareOffer struct {
	Org    string
	Class  string
	Height int64 // the state the proofs are of; waves are counted at Height+1 (the proved header)

	Device   *record.Device                // this device's proved record (Firmware: the version it last reported)
	Rollout  *record.FirmwareRolloutRecord // nil: proved to have none
	Wave     uint64                        // the wave open at Height+1
	Bucket   uint64                        // this device's place in the rollout, 0..99
	Release  *record.FirmwareReleaseRecord // the offered release, when Offered
	Approval *record.FirmwareApproval      // the organisation's approval of it, when Offered
	Offered  bool
	Reason   string // why not, when not offered
}

// OfferedFirmware asks which release, if any, the rollout of the device's
// organisation for its class offers to this device now: the rollout must
// be active and its open wave must cover the device's bucket. The device's
// record, the rollout, the release and the approval are fetched from one
// gateway with state proofs of one state and verified by the light client;
// a gateway that lies (a changed record) or omits one (an absence proof
// that does not verify) or answers from a stale state is set aside and the
// next one asked. Not offered is Offered false with the reason, not an
// error.
func (d *Device) OfferedFirmware(ctx context.Context) (*FirmwareOffer, error) {
	var out *FirmwareOffer
	err := d.verified(ctx, "asking for a firmware rollout", func(gw Gateway) error {
		o, err := d.offeredFirmware(ctx, d.apiClient(gw))
		out = o
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (d *Device) offeredFirmware(ctx context.Context, c *client.Client) (*FirmwareOffer, error) {
	self, p, err := d.provedSelf(ctx, c)
	if err != nil {
		return nil, err
	}
	o := &FirmwareOffer{Org: self.Org, Class: self.Class, Height: p.Height, Device: self}

	var ro record.FirmwareRolloutRecord
	found, err := d.provedKey(ctx, c, record.FirmwareRolloutKey(self.Org, self.Class), p.Height, &ro)
	if err != nil {
		return nil, fmt.Errorf("rollout of %s/%s: %w", self.Org, self.Class, err)
	}
	if !found {
		o.Reason = fmt.Sprintf("organisation %s has no rollout for class %s", self.Org, self.Class)
		return o, nil
	}
	if ro.Org != self.Org || ro.Class != self.Class {
		return nil, fmt.Errorf("the record under the rollout of %s/%s is of %s/%s", self.Org, self.Class, ro.Org, ro.Class)
	}
	o.Rollout = &ro
	h := p.Height + 1
	o.Wave, o.Bucket = ro.Wave(h), ro.Bucket(d.id)
	switch {
	case ro.Status != record.RolloutActive:
		o.Reason = fmt.Sprintf("the rollout of %s #%d is %s", ro.Version, ro.Seq, ro.Status)
		return o, nil
	case !ro.Offers(d.id, h):
		o.Reason = fmt.Sprintf("wave %d of the rollout of %s #%d covers buckets below %d; this device is in bucket %d",
			o.Wave, ro.Version, ro.Seq, min(o.Wave*uint64(ro.Percent), 100), o.Bucket)
		return o, nil
	}

	var rel record.FirmwareReleaseRecord
	found, err = d.provedKey(ctx, c, record.FirmwareKey(ro.Vendor, ro.Class, ro.Seq), p.Height, &rel)
	if err != nil {
		return nil, fmt.Errorf("release %s/%s #%d: %w", ro.Vendor, ro.Class, ro.Seq, err)
	}
	if !found {
		o.Reason = fmt.Sprintf("the ledger has no release %s/%s #%d", ro.Vendor, ro.Class, ro.Seq)
		return o, nil
	}
	if m := rel.Manifest; m.Vendor != ro.Vendor || m.Class != ro.Class || m.Seq != ro.Seq {
		return nil, fmt.Errorf("the record under release %s/%s #%d is of %s/%s #%d", ro.Vendor, ro.Class, ro.Seq, m.Vendor, m.Class, m.Seq)
	}
	if !bytes.Equal(rel.Manifest.Digest, ro.Digest) {
		o.Reason = fmt.Sprintf("release %s/%s #%d is image %x, the rollout is of %x", ro.Vendor, ro.Class, ro.Seq, rel.Manifest.Digest, ro.Digest)
		return o, nil
	}

	var ap record.FirmwareApproval
	found, err = d.provedKey(ctx, c, record.FirmwareApprovalKey(self.Org, self.Class, ro.Digest), p.Height, &ap)
	if err != nil {
		return nil, fmt.Errorf("approval by %s: %w", self.Org, err)
	}
	if !found {
		o.Reason = fmt.Sprintf("organisation %s has not approved image %x for class %s", self.Org, ro.Digest, self.Class)
		return o, nil
	}
	if ap.Org != self.Org || ap.Class != self.Class || !bytes.Equal(ap.Digest, ro.Digest) {
		return nil, fmt.Errorf("the record under the approval of %x by %s/%s is of %x by %s/%s", ro.Digest, self.Org, self.Class, ap.Digest, ap.Org, ap.Class)
	}
	if ap.Vendor != ro.Vendor || ap.Seq != ro.Seq {
		o.Reason = fmt.Sprintf("organisation %s approved this image as release %s #%d, not %s #%d", self.Org, ap.Vendor, ap.Seq, ro.Vendor, ro.Seq)
		return o, nil
	}
	o.Release, o.Approval, o.Offered = &rel, &ap, true
	return o, nil
}

// ReportFirmwareFailure records on the ledger that installing image
// digest, version failed and why (a firmware.report with Failed and the
// reason, signed by the device's key); the device keeps running what it
// ran. It counts against the organisation's rollout of that image, which
// aborts at its failure threshold. It returns once the tx is committed.
func (d *Device) ReportFirmwareFailure(ctx context.Context, version string, digest []byte, reason string) error {
	if len(reason) > record.MaxFirmwareReason {
		r := []rune(reason)
		for len(string(r))+3 > record.MaxFirmwareReason {
			r = r[:len(r)-1]
		}
		reason = string(r) + "..."
	}
	reason = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, reason)
	return d.reportFirmware(ctx, &record.FirmwareReport{Digest: digest, Version: version, Failed: true, Reason: reason}, "reporting a failed install of "+version)
}

// ImageWriter receives a firmware image while it is fetched (an
// Installer's inactive slot). Reset discards what was written, when the
// image a gateway served turned out not to match and the next one's is
// written from the start.
type ImageWriter interface {
	io.Writer
	Reset() error
}

// ErrNoImage is returned by FetchFirmware when no source served the image
// the release names.
var ErrNoImage = errors.New("device: no source served a firmware image matching the release")

// FileSource fetches files by CID over the mesh: a file service on the
// device's own mesh node (meshnode.Files adapts a *files.Service).
type FileSource interface {
	// Stat returns the size of the file root.
	Stat(ctx context.Context, root cid.Cid) (uint64, error)
	// Get writes the file root to w.
	Get(ctx context.Context, root cid.Cid, w io.Writer) error
}

// UseFiles gives the device a file source on its own mesh node
// (meshnode.Start, meshnode.Files): FetchFirmware then fetches images
// over bitswap first, from the peers it is connected to or finds, and
// from its gateways' content endpoint only if that fails. Nil stops it.
func (d *Device) UseFiles(s FileSource) {
	d.mu.Lock()
	d.files = s
	d.mu.Unlock()
}

// FetchFirmware streams the image of a release into w, from the device's
// file service over the mesh (UseFiles) if it has one, else from its
// gateways' content endpoint (GET /v1/content/{cid}), checking the size
// and SHA-256 against the release's manifest as it reads: memory stays
// bounded whatever the image size, a source that sends more than the
// manifest's size is cut off at that size, and an image that does not
// match is discarded (w.Reset) and the next source tried. It returns nil
// only when w holds exactly the image the manifest names; the caller
// installs nothing otherwise.
func (d *Device) FetchFirmware(ctx context.Context, rel *record.FirmwareReleaseRecord, w ImageWriter) error {
	if rel == nil || w == nil {
		return errors.New("device: FetchFirmware needs a release and a writer")
	}
	m := &rel.Manifest
	if err := m.Validate(); err != nil {
		return fmt.Errorf("device: release %s/%s #%d: %w", m.Vendor, m.Class, m.Seq, err)
	}
	if m.CID == "" {
		return fmt.Errorf("%w: release %s/%s #%d names no CID", ErrNoImage, m.Vendor, m.Class, m.Seq)
	}
	root, err := firmware.ParseCID(m.CID)
	if err != nil {
		return fmt.Errorf("device: release %s/%s #%d: %w", m.Vendor, m.Class, m.Seq, err)
	}
	what := fmt.Sprintf("fetching firmware %s/%s #%d (%s)", m.Vendor, m.Class, m.Seq, m.CID)
	var meshErr error
	d.mu.Lock()
	svc := d.files
	d.mu.Unlock()
	if svc != nil {
		err := d.fetchMesh(ctx, svc, root, m, w)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return err
		}
		d.cfg.log.Warn("device: firmware image over the mesh failed; trying the gateways", "device", d.id, "cid", m.CID, "err", err)
		meshErr = fmt.Errorf("mesh: %w", err)
		if rerr := w.Reset(); rerr != nil {
			return fmt.Errorf("device: discarding a wrong image: %w", rerr)
		}
	}
	err = d.each(ctx, what, func(_ int, gw Gateway) error {
		err := d.fetchImage(ctx, gw, m, w)
		if err == nil {
			return nil
		}
		if rerr := w.Reset(); rerr != nil {
			return errors.Join(err, fmt.Errorf("discarding the image: %w", rerr))
		}
		return err
	})
	if err != nil {
		if meshErr != nil {
			err = errors.Join(meshErr, err)
		}
		return fmt.Errorf("%w: %w", ErrNoImage, err)
	}
	return nil
}

// fetchMesh streams the image over bitswap through the checker into w. The
// root must be found within the device's timeout, and the download must
// not stall longer than that: a mesh with no provider falls back to the
// gateways instead of waiting for ever.
func (d *Device) fetchMesh(ctx context.Context, svc FileSource, root cid.Cid, m *record.FirmwareManifest, w io.Writer) error {
	sctx, cancel := context.WithTimeout(ctx, d.cfg.timeout)
	size, err := svc.Stat(sctx, root)
	cancel()
	if err != nil {
		return err
	}
	if size != m.Size {
		return fmt.Errorf("%w: the file is %d bytes, the release %d", firmware.ErrImageMismatch, size, m.Size)
	}
	c := firmware.NewImageChecker(m)
	gctx, sw, stop := guard(ctx, d.cfg.timeout, io.MultiWriter(c, w))
	defer stop()
	err = svc.Get(gctx, root, sw)
	if sw.stalled.Load() {
		return fmt.Errorf("the download stalled: no bytes for %v", d.cfg.timeout)
	}
	if err != nil {
		return err
	}
	return c.Check()
}

// stallWriter notes when bytes last went through.
type stallWriter struct {
	w       io.Writer
	last    atomic.Int64 // unix nanoseconds
	stalled atomic.Bool
}

func (s *stallWriter) Write(b []byte) (int, error) {
	s.last.Store(time.Now().UnixNano())
	return s.w.Write(b)
}

// guard returns a context that is cancelled when nothing has been written
// through the returned writer for limit (from now): a download that
// stalls is given up instead of waited on for ever. stop ends the watch.
func guard(ctx context.Context, limit time.Duration, w io.Writer) (gctx context.Context, sw *stallWriter, stop context.CancelFunc) {
	gctx, cancel := context.WithCancel(ctx)
	sw = &stallWriter{w: w}
	sw.last.Store(time.Now().UnixNano())
	go func() {
		t := time.NewTicker(max(limit/4, time.Millisecond))
		defer t.Stop()
		for {
			select {
			case <-gctx.Done():
				return
			case now := <-t.C:
				if now.Sub(time.Unix(0, sw.last.Load())) > limit {
					sw.stalled.Store(true)
					cancel()
					return
				}
			}
		}
	}()
	return gctx, sw, cancel
}

// fetchImage streams one gateway's copy of the image through the checker
// into w.
func (d *Device) fetchImage(ctx context.Context, gw Gateway, m *record.FirmwareManifest, w io.Writer) error {
	c := firmware.NewImageChecker(m)
	// No overall timeout: an image takes as long as it takes. The answer
	// must start, and bytes keep coming, within the device's timeout.
	gctx, sw, stop := guard(ctx, d.cfg.timeout, io.MultiWriter(c, w))
	defer stop()
	req, err := http.NewRequestWithContext(gctx, http.MethodGet, strings.TrimSuffix(gw.API, "/")+"/v1/content/"+m.CID, nil)
	if err != nil {
		return err
	}
	tr := &http.Transport{DialContext: (&net.Dialer{Timeout: d.cfg.timeout}).DialContext, ResponseHeaderTimeout: d.cfg.timeout}
	defer tr.CloseIdleConnections()
	res, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		if sw.stalled.Load() {
			return fmt.Errorf("GET /v1/content/%s: no answer within %v", m.CID, d.cfg.timeout)
		}
		return err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(res.Body, 4096))
		return fmt.Errorf("GET /v1/content/%s: %s: %s", m.CID, res.Status, strings.TrimSpace(string(b)))
	}
	if res.ContentLength >= 0 && uint64(res.ContentLength) != m.Size {
		return fmt.Errorf("%w: the gateway announces %d bytes, the release is %d", firmware.ErrImageMismatch, res.ContentLength, m.Size)
	}
	// At most one byte past the size is read: the checker refuses it.
	if _, err := io.Copy(sw, io.LimitReader(res.Body, int64(m.Size)+1)); err != nil {
		if sw.stalled.Load() {
			return fmt.Errorf("GET /v1/content/%s: the download stalled: no bytes for %v", m.CID, d.cfg.timeout)
		}
		return err
	}
	return c.Check()
}

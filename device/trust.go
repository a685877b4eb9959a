package device

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"

	"github.com/cometbft/cometbft/types"

	"github.com/thingnet/thingnet/internal/atomicfile"
	"github.com/thingnet/thingnet/lightclient"
	"github.com/thingnet/thingnet/record"
)

// TrustedFile is the name of the light client's state in the state
// directory: lightclient.State's encoding (a version byte and a protobuf
// LightBlock: one signed header and its validator set).
const TrustedFile = "trusted.state"

// ErrNoTrust is returned by the checks when the device has no trusted
// header: no state was saved yet and WithTrust was not given.
var ErrNoTrust = errors.New("device: no trusted header: provision the device with WithTrust (a header's height and hash from its organisation)")

// switchSource is the light client's source: the gateway the check in
// progress is asking.
type switchSource struct {
	d *Device
	i atomic.Int32
}

func (s *switchSource) Header(ctx context.Context, height int64) (*types.SignedHeader, *types.ValidatorSet, error) {
	gw := s.d.cfg.gateways[s.i.Load()]
	return lightclient.APISource(s.d.apiClient(gw)).Header(ctx, height)
}

func (d *Device) trustedPath() string {
	if d.cfg.stateDir == "" {
		return ""
	}
	return filepath.Join(d.cfg.stateDir, TrustedFile)
}

// loadTrusted restores the light client from the state directory, with no
// network.
func (d *Device) loadTrusted() error {
	p := d.trustedPath()
	if p == "" {
		return nil
	}
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("device: reading the trusted state: %w", err)
	}
	var st lightclient.State
	if err := st.UnmarshalBinary(b); err != nil {
		return fmt.Errorf("device: %s: %w (remove it and provision the device again with WithTrust)", p, err)
	}
	if d.chainID != "" && st.ChainID != d.chainID {
		return fmt.Errorf("device: %s is of chain %q, the device is configured for %q", p, st.ChainID, d.chainID)
	}
	lc, err := lightclient.Restore(st.ChainID, b, d.src, d.cfg.lcOpts...)
	if err != nil {
		return fmt.Errorf("device: restoring the light client from %s: %w", p, err)
	}
	d.lc, d.chainID, d.saved = lc, st.ChainID, st.Header.Height
	return nil
}

// saveTrusted writes the trusted state if it moved since the last save.
// The caller holds checkMu.
func (d *Device) saveTrusted() error {
	p := d.trustedPath()
	if p == "" || d.lc == nil {
		return nil
	}
	st := d.lc.State()
	if st.Header.Height == d.saved {
		return nil
	}
	b, err := st.MarshalBinary()
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(p, b); err != nil {
		return fmt.Errorf("device: saving the trusted state: %w", err)
	}
	d.saved = st.Header.Height
	return nil
}

// TrustedState returns the encoded light-client state (what the state
// directory holds), or nil before the device trusts any header.
func (d *Device) TrustedState() ([]byte, error) {
	d.checkMu.Lock()
	defer d.checkMu.Unlock()
	if d.lc == nil {
		return nil, nil
	}
	st := d.lc.State()
	return st.MarshalBinary()
}

// TrustedHeight is the height of the trusted header (0: none yet).
func (d *Device) TrustedHeight() int64 {
	d.checkMu.Lock()
	defer d.checkMu.Unlock()
	if d.lc == nil {
		return 0
	}
	return d.lc.Trusted().Height
}

// verified runs check against each gateway in turn, with the light client
// fetching headers from that gateway, until one gives an answer that
// verifies; then it saves the trusted state if it moved.
func (d *Device) verified(ctx context.Context, what string, check func(gw Gateway) error) error {
	chainID, err := d.ChainID(ctx)
	if err != nil {
		return err
	}
	d.checkMu.Lock()
	defer d.checkMu.Unlock()
	if d.lc == nil && d.cfg.trust == nil {
		return ErrNoTrust
	}
	err = d.each(ctx, what, func(i int, gw Gateway) error {
		d.src.i.Store(int32(i))
		clear(d.proofs) // proofs fetched ahead come from one gateway: a forged one is not asked of the next
		if d.lc == nil {
			lc, err := lightclient.New(ctx, chainID, *d.cfg.trust, d.src, d.cfg.lcOpts...)
			if err != nil {
				return fmt.Errorf("provisioning the light client: %w", err)
			}
			d.lc = lc
		}
		return check(gw)
	})
	if serr := d.saveTrusted(); serr != nil {
		return errors.Join(err, serr)
	}
	return err
}

// verifyProof checks that p proves key (its value, or its absence) in a
// state the light client verifies. The caller holds checkMu (inside
// verified).
func (d *Device) verifyProof(ctx context.Context, p *record.Proof, key []byte) error {
	if p == nil {
		return fmt.Errorf("%w: the gateway sent no proof", record.ErrBadProof)
	}
	if !bytes.Equal(p.Key, key) {
		return fmt.Errorf("%w: the gateway sent a proof of %q, not of %q", record.ErrBadProof, p.Key, key)
	}
	return d.lc.VerifyProof(ctx, p)
}

// lightChecker checks reading proofs with the device's light client.
type lightChecker struct{ d *Device }

func (l lightChecker) CheckProof(ctx context.Context, p *record.Proof) (int64, error) {
	return p.Height + 1, l.d.lc.VerifyProof(ctx, p)
}

package lightclient

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/cometbft/cometbft/light"
	"github.com/cometbft/cometbft/types"
	"github.com/thingnet/thingnet/record"
)

const twoWeeks = 14 * 24 * time.Hour

// TestLightClient runs a light client against a real 4-validator network:
// provisioning, updates, proofs of presence and absence, lying sources,
// persistence and expiry. The subtests share the network and run in order.
func TestLightClient(t *testing.T) {
	tn := startNet(t, "lc-test")
	src := APISource(tn.clients[1])
	trust := TrustOptions{Height: 2, Hash: tn.trustedHash(t, 2), Period: twoWeeks}

	t.Run("wrong trust is refused", func(t *testing.T) {
		bad := trust
		bad.Hash = bytes.Clone(trust.Hash)
		bad.Hash[0] ^= 1
		if _, err := New(testCtx(t), tn.chainID, bad, src); !errors.Is(err, ErrTrustedHashMismatch) {
			t.Errorf("wrong hash: err = %v; want ErrTrustedHashMismatch", err)
		}
		bad.Hash = trust.Hash[:20]
		if _, err := New(testCtx(t), tn.chainID, bad, src); !errors.Is(err, ErrBadTrustOptions) {
			t.Errorf("short hash: err = %v; want ErrBadTrustOptions", err)
		}
		if _, err := New(testCtx(t), "another-chain", trust, src); !errors.Is(err, ErrBadHeader) {
			t.Errorf("another chain: err = %v; want ErrBadHeader", err)
		}
	})

	lc, err := New(testCtx(t), tn.chainID, trust, src)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if h := lc.Trusted().Height; h != 2 {
		t.Fatalf("trusted height %d; want 2", h)
	}

	t.Run("update and verify proofs", func(t *testing.T) {
		ctx := testCtx(t)
		dev, regHeight := tn.register(t)
		tn.waitHeight(t, regHeight+1)
		sh, err := lc.Update(ctx)
		if err != nil {
			t.Fatalf("Update: %v", err)
		}
		if sh.Height <= regHeight {
			t.Fatalf("updated to %d; want above %d", sh.Height, regHeight)
		}
		// Proofs come from another node than the headers; neither is trusted.
		p, found := tn.deviceProof(t, 2, dev.ID())
		if !found {
			t.Fatalf("device %s not found", dev.ID())
		}
		if err := lc.VerifyProof(ctx, p); err != nil {
			t.Fatalf("VerifyProof(device): %v", err)
		}
		absent, found := tn.deviceProof(t, 2, newKey(t).ID())
		if found {
			t.Fatal("a new key is registered")
		}
		if err := lc.VerifyProof(ctx, absent); err != nil {
			t.Fatalf("VerifyProof(absence): %v", err)
		}
		if got := lc.Trusted().Height; got < absent.Height+1 {
			t.Errorf("trusted height %d after a proof of height %d", got, absent.Height)
		}

		p, _ = tn.deviceProof(t, 2, dev.ID())
		if err := lc.VerifyProof(ctx, p); err != nil {
			t.Fatalf("VerifyProof(device again): %v", err)
		}
		value := *p
		value.Value = bytes.Clone(p.Value)
		value.Value[len(value.Value)-1] ^= 1
		if err := lc.VerifyProof(ctx, &value); !errors.Is(err, record.ErrBadProof) {
			t.Errorf("tampered value: err = %v; want record.ErrBadProof", err)
		}
		denial := *p
		denial.Value = nil
		if err := lc.VerifyProof(ctx, &denial); !errors.Is(err, record.ErrBadProof) {
			t.Errorf("inclusion proof passed off as absence: err = %v; want record.ErrBadProof", err)
		}
		root := *p
		root.Root = bytes.Repeat([]byte{1}, 32)
		if err := lc.VerifyProof(ctx, &root); !errors.Is(err, ErrAppHashMismatch) {
			t.Errorf("wrong root: err = %v; want ErrAppHashMismatch", err)
		}
		// A proof relabelled as of a height before the device was registered
		// is checked against that height's (backwards verified) app hash,
		// and fails. (Blocks without transactions keep the app hash, so
		// a later height could legitimately verify.)
		old := *p
		old.Height = regHeight - 1
		if err := lc.VerifyProof(ctx, &old); !errors.Is(err, ErrAppHashMismatch) && !errors.Is(err, record.ErrBadProof) {
			t.Errorf("proof relabelled as of height %d, before the device was registered: err = %v; want ErrAppHashMismatch or record.ErrBadProof", old.Height, err)
		}
		trusted := lc.Trusted()
		first, err := lc.VerifyTo(ctx, 1)
		if err != nil {
			t.Fatalf("VerifyTo(1), backwards: %v", err)
		}
		if first.Height != 1 || !bytes.Equal(first.Hash(), tn.trustedHash(t, 1)) {
			t.Errorf("VerifyTo(1) = header %d %X; want the chain's header 1", first.Height, first.Hash())
		}
		if got := lc.Trusted(); got != trusted {
			t.Errorf("VerifyTo(1) moved the trusted header from %d to %d", trusted.Height, got.Height)
		}
	})

	t.Run("old proofs verify backwards", func(t *testing.T) {
		ctx := testCtx(t)
		dev, regHeight := tn.register(t)
		tn.waitHeight(t, regHeight+1)
		p, found := tn.deviceProof(t, 2, dev.ID())
		if !found {
			t.Fatalf("device %s not found", dev.ID())
		}
		// The device moves on; the proof (a record anchored a while ago)
		// is now well below its trusted header.
		tn.waitHeight(t, p.Height+6)
		trusted, err := lc.Update(ctx)
		if err != nil {
			t.Fatalf("Update: %v", err)
		}
		if trusted.Height < p.Height+5 {
			t.Fatalf("trusted height %d; want at least %d", trusted.Height, p.Height+5)
		}
		if err := lc.VerifyProof(ctx, p); err != nil {
			t.Fatalf("VerifyProof of height %d with header %d trusted: %v", p.Height, trusted.Height, err)
		}
		if got := lc.Trusted(); got != trusted {
			t.Errorf("VerifyProof below the trusted height moved the trusted header from %d to %d", trusted.Height, got.Height)
		}
		sh, err := lc.VerifyBack(ctx, p.Height+1)
		if err != nil {
			t.Fatalf("VerifyBack(%d): %v", p.Height+1, err)
		}
		if !bytes.Equal(sh.Hash(), tn.trustedHash(t, p.Height+1)) {
			t.Errorf("VerifyBack(%d) = %X; not the chain's header", p.Height+1, sh.Hash())
		}
		if p.Root != nil && !bytes.Equal(p.Root, sh.AppHash) {
			t.Errorf("proof root %X; app hash of header %d %X", p.Root, sh.Height, []byte(sh.AppHash))
		}
		if got, err := lc.VerifyBack(ctx, trusted.Height); err != nil || got != trusted {
			t.Errorf("VerifyBack(trusted height) = %v, %v; want the trusted header", got, err)
		}
		if _, err := lc.VerifyBack(ctx, trusted.Height+1); err == nil {
			t.Error("VerifyBack above the trusted height succeeded")
		}
		value := *p
		value.Value = bytes.Clone(p.Value)
		value.Value[len(value.Value)-1] ^= 1
		if err := lc.VerifyProof(ctx, &value); !errors.Is(err, record.ErrBadProof) {
			t.Errorf("old proof with a tampered value: err = %v; want record.ErrBadProof", err)
		}

		state, err := stateOf(lc).MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		// Sources that lie about one old header: the one carrying the
		// proof's app hash, or one the walk goes through.
		for _, l := range []struct {
			name string
			at   int64
			lie  func(*types.SignedHeader, *types.ValidatorSet) (*types.SignedHeader, *types.ValidatorSet, error)
			want error
		}{
			{"app hash changed, commit kept", p.Height + 1, tamperAppHash, ErrBadHeader},
			{"app hash changed, commit relinked", p.Height + 1, relinkAppHash, ErrNotVerified},
			{"header on the way relinked", p.Height + 3, relinkAppHash, ErrNotVerified},
			{"header of another chain", p.Height + 2, otherChain(tn.nodeSigner(t)), ErrBadHeader},
		} {
			dev, err := Restore(tn.chainID, state, &lieAt{Source: APISource(tn.clients[2]), at: l.at, lie: l.lie})
			if err != nil {
				t.Fatal(err)
			}
			if err := dev.VerifyProof(testCtx(t), p); !errors.Is(err, l.want) {
				t.Errorf("%s: VerifyProof: err = %v; want %v", l.name, err, l.want)
			} else {
				t.Logf("%s: %v", l.name, err)
			}
			if _, err := dev.VerifyBack(testCtx(t), p.Height+1); !errors.Is(err, l.want) {
				t.Errorf("%s: VerifyBack: err = %v; want %v", l.name, err, l.want)
			}
			if got := dev.Trusted(); got.Height != trusted.Height || !bytes.Equal(got.Hash(), trusted.Hash()) {
				t.Errorf("%s: the trusted header moved to %d", l.name, got.Height)
			}
		}

		// The bound: a walk longer than WithMaxBackwards is refused before
		// anything is fetched.
		gap := trusted.Height - (p.Height + 1)
		counted := &counting{Source: APISource(tn.clients[3])}
		short, err := Restore(tn.chainID, state, counted, WithMaxBackwards(gap-1))
		if err != nil {
			t.Fatal(err)
		}
		if err := short.VerifyProof(testCtx(t), p); !errors.Is(err, ErrBelowTrusted) {
			t.Errorf("proof %d headers back, bound %d: err = %v; want ErrBelowTrusted", gap, gap-1, err)
		} else {
			t.Logf("bound %d: %v", gap-1, err)
		}
		if _, err := short.VerifyTo(testCtx(t), p.Height+1); !errors.Is(err, ErrBelowTrusted) {
			t.Errorf("VerifyTo %d headers back, bound %d: err = %v; want ErrBelowTrusted", gap, gap-1, err)
		}
		if n := counted.n.Load(); n != 0 {
			t.Errorf("a refused walk fetched %d headers", n)
		}
		if _, err := short.VerifyBack(testCtx(t), p.Height+2); err != nil {
			t.Errorf("VerifyBack %d headers back, bound %d: %v", gap-1, gap-1, err)
		}
		if n := counted.n.Load(); n != gap-1 {
			t.Errorf("a walk of %d headers fetched %d", gap-1, n)
		}
		exact, err := Restore(tn.chainID, state, counted, WithMaxBackwards(gap))
		if err != nil {
			t.Fatal(err)
		}
		if err := exact.VerifyProof(testCtx(t), p); err != nil {
			t.Errorf("proof %d headers back, bound %d: %v", gap, gap, err)
		}
		none, err := Restore(tn.chainID, state, counted, WithMaxBackwards(0))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := none.VerifyBack(testCtx(t), trusted.Height-1); !errors.Is(err, ErrBelowTrusted) {
			t.Errorf("WithMaxBackwards(0): err = %v; want ErrBelowTrusted", err)
		}
	})

	t.Run("lying sources are refused", func(t *testing.T) {
		state, err := stateOf(lc).MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		trusted := lc.Trusted()
		tn.waitHeight(t, trusted.Height+2)
		liars := []struct {
			name string
			lie  func(*types.SignedHeader, *types.ValidatorSet) (*types.SignedHeader, *types.ValidatorSet, error)
			want error
		}{
			{"tampered app hash", tamperAppHash, ErrBadHeader},
			{"signed by a validator set of fresh keys", signedByStrangers, ErrNotVerified},
			{"header of another chain signed by the same validators", otherChain(tn.nodeSigner(t)), ErrBadHeader},
		}
		for _, l := range liars {
			dev, err := Restore(tn.chainID, state, &liar{Source: APISource(tn.clients[2]), from: trusted.Height + 1, lie: l.lie})
			if err != nil {
				t.Fatal(err)
			}
			_, err = dev.Update(testCtx(t))
			if !errors.Is(err, l.want) {
				t.Errorf("%s: Update: err = %v; want %v", l.name, err, l.want)
			}
			t.Logf("%s: %v", l.name, err)
			if _, err := dev.VerifyTo(testCtx(t), trusted.Height+2); !errors.Is(err, l.want) {
				t.Errorf("%s: VerifyTo: err = %v; want %v", l.name, err, l.want)
			}
			if got := dev.Trusted(); got.Height != trusted.Height || !bytes.Equal(got.Hash(), trusted.Hash()) {
				t.Errorf("%s: the trusted header moved to %d", l.name, got.Height)
			}
		}
		// The device drops the lying gateway and resumes with another.
		dev, err := Restore(tn.chainID, state, APISource(tn.clients[3]))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := dev.Update(testCtx(t)); err != nil {
			t.Errorf("Update from an honest source: %v", err)
		}
	})

	t.Run("state survives a restart and stays the same size", func(t *testing.T) {
		st := lc.State()
		saved, err := st.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		dev, err := Restore(tn.chainID, saved, APISource(tn.clients[3]))
		if err != nil {
			t.Fatalf("Restore: %v", err)
		}
		if got := dev.Trusted(); !bytes.Equal(got.Hash(), st.Header.Hash()) {
			t.Fatalf("restored header %d %X; want %d %X", got.Height, got.Hash(), st.Header.Height, st.Header.Hash())
		}
		if _, err := Restore("another-chain", saved, src); !errors.Is(err, ErrBadState) {
			t.Errorf("state of another chain: err = %v; want ErrBadState", err)
		}
		// The chain grows; the restored client follows it.
		tn.waitHeight(t, st.Header.Height+8)
		key, _ := tn.register(t)
		p, _ := tn.deviceProof(t, 0, key.ID())
		if err := dev.VerifyProof(testCtx(t), p); err != nil {
			t.Fatalf("VerifyProof after Restore: %v", err)
		}
		later := dev.State()
		grown, err := later.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("state of 4 validators: %d bytes at height %d, %d bytes at height %d",
			len(saved), st.Header.Height, len(grown), later.Header.Height)
		// The state is one header and one validator set: it changes only by
		// a few varint bytes and by the commit's signatures (a validator
		// whose precommit came late is absent), never with the height.
		if d := len(grown) - len(saved); d > commitSigSlack || d < -commitSigSlack {
			t.Errorf("state went from %d to %d bytes over %d blocks", len(saved), len(grown), later.Header.Height-st.Header.Height)
		}
	})

	t.Run("expired trusting period is refused", func(t *testing.T) {
		future := WithClock(func() time.Time { return time.Now().Add(twoWeeks + time.Hour) })
		if _, err := New(testCtx(t), tn.chainID, trust, src, future); !errors.Is(err, ErrExpired) {
			t.Errorf("New: err = %v; want ErrExpired", err)
		}
		saved, err := stateOf(lc).MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		dev, err := Restore(tn.chainID, saved, src, future)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := dev.Update(testCtx(t)); !errors.Is(err, ErrExpired) {
			t.Errorf("Update: err = %v; want ErrExpired", err)
		}
	})
}

// commitSigSlack bounds how much two states of the same validator set may
// differ: two commit signatures (about 110 bytes each) and varints.
const commitSigSlack = 256

// TestValidatorSetChange changes the validator set so much that the old set
// cannot vouch for the new one in one skip, and checks that bisection gets
// there: node 0's power goes from 10 (of 40) to 100 (of 130), the client
// trusts a header of that set, then node 0 leaves, and the remaining three
// validators held only 30 of the 130 the client trusts.
func TestValidatorSetChange(t *testing.T) {
	tn := startNet(t, "lc-valset")
	src := &counting{Source: APISource(tn.clients[1])}
	lc, err := New(testCtx(t), tn.chainID, TrustOptions{Height: 2, Hash: tn.trustedHash(t, 2), Period: twoWeeks}, src)
	if err != nil {
		t.Fatalf("New: %v", err)
	}

	h := tn.setPower(t, 1, 0, 100, 0, 1, 2) // 30 of 40 approve
	tn.waitHeight(t, h+2)
	if _, err := lc.VerifyTo(testCtx(t), h+2); err != nil {
		t.Fatalf("VerifyTo(%d), node 0 at power 100: %v", h+2, err)
	}
	if p := lc.State().Validators.TotalVotingPower(); p != 130 {
		t.Fatalf("trusted validator power %d; want 130", p)
	}

	h = tn.setPower(t, 2, 0, 0, 0, 1) // 110 of 130 approve
	tn.waitHeight(t, h+3)
	target, targetVals, err := APISource(tn.clients[1]).Header(testCtx(t), h+3)
	if err != nil {
		t.Fatal(err)
	}
	if targetVals.Size() != 3 {
		t.Fatalf("validators at %d: %d; want 3", target.Height, targetVals.Size())
	}
	st := lc.State()
	err = light.VerifyNonAdjacent(st.Header, st.Validators, target, targetVals, twoWeeks, time.Now(), DefaultMaxClockDrift, light.DefaultTrustLevel)
	var cantTrust light.ErrNewValSetCantBeTrusted
	if !errors.As(err, &cantTrust) {
		t.Fatalf("a direct skip from %d to %d: err = %v; want ErrNewValSetCantBeTrusted", st.Header.Height, target.Height, err)
	}

	before := src.n.Load()
	got, err := lc.VerifyTo(testCtx(t), target.Height)
	if err != nil {
		t.Fatalf("VerifyTo(%d) across the change: %v", target.Height, err)
	}
	fetched := src.n.Load() - before
	t.Logf("verified %d from %d fetching %d headers", target.Height, st.Header.Height, fetched)
	if !bytes.Equal(got.Hash(), target.Hash()) {
		t.Fatalf("verified header %X; want %X", got.Hash(), target.Hash())
	}
	if fetched < 2 {
		t.Errorf("fetched %d headers: no bisection", fetched)
	}
	if n := lc.State().Validators.Size(); n != 3 {
		t.Errorf("trusted validator set has %d validators; want 3", n)
	}

	dev, _ := tn.register(t)
	p, _ := tn.deviceProof(t, 2, dev.ID())
	if err := lc.VerifyProof(testCtx(t), p); err != nil {
		t.Errorf("VerifyProof under the new validator set: %v", err)
	}
}

func stateOf(c *Client) *State { s := c.State(); return &s }

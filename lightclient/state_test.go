package lightclient

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	cmtmath "github.com/cometbft/cometbft/libs/math"
	"github.com/cometbft/cometbft/types"
)

// TestStateSize measures the persisted state for 4 and 100 validators and
// checks that it does not depend on the height: at height 10 and at height
// 10^12 it differs only by the varint encoding of the height.
func TestStateSize(t *testing.T) {
	for _, n := range []int{4, 100} {
		vals, sign := freshValidators(n)
		var sizes []int
		for _, height := range []int64{10, 1_000_000_000_000} {
			sh := synthHeader(t, "size-test", height, time.Now().UTC(), types.BlockID{Hash: bytes.Repeat([]byte{1}, 32), PartSetHeader: testParts}, vals, sign)
			st := State{ChainID: "size-test", Header: sh, Validators: vals}
			b, err := st.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			var back State
			if err := back.UnmarshalBinary(b); err != nil {
				t.Fatalf("UnmarshalBinary: %v", err)
			}
			if !bytes.Equal(back.Header.Hash(), sh.Hash()) || !bytes.Equal(back.Validators.Hash(), vals.Hash()) || back.ChainID != "size-test" {
				t.Fatalf("%d validators: the state did not survive the round trip", n)
			}
			sizes = append(sizes, len(b))
		}
		t.Logf("state of %d validators: %d bytes at height 10, %d bytes at height 10^12", n, sizes[0], sizes[1])
		if d := sizes[1] - sizes[0]; d < 0 || d > 16 {
			t.Errorf("%d validators: state grew by %d bytes from height 10 to 10^12", n, d)
		}
		if sizes[1] > 64<<10 {
			t.Errorf("%d validators: state is %d bytes; the device budget is 64 KiB", n, sizes[1])
		}
	}
}

func TestStateRefusesCorruption(t *testing.T) {
	src := synthChain(t, "corrupt-test", 3, 4)
	lb := src.blocks[3]
	good, err := (&State{ChainID: "corrupt-test", Header: lb.SignedHeader, Validators: lb.ValidatorSet}).MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	sig := lb.Commit.Signatures[0].Signature
	at := bytes.Index(good, sig)
	if at < 0 {
		t.Fatal("signature not found in the encoding")
	}
	cases := map[string][]byte{
		"empty":             nil,
		"unknown version":   append([]byte{9}, good[1:]...),
		"truncated":         good[:len(good)/2],
		"flipped signature": append(append(bytes.Clone(good[:at]), sig[0]^1), good[at+1:]...),
	}
	for name, b := range cases {
		var st State
		if err := st.UnmarshalBinary(b); !errors.Is(err, ErrBadState) {
			t.Errorf("%s: err = %v; want ErrBadState", name, err)
		}
	}
	if _, err := (&State{}).MarshalBinary(); !errors.Is(err, ErrBadState) {
		t.Errorf("MarshalBinary of an empty state: err = %v; want ErrBadState", err)
	}
}

func TestOptionsAreChecked(t *testing.T) {
	src := synthChain(t, "opts-test", 3, 4)
	trust := TrustOptions{Height: 1, Hash: src.blocks[1].Hash(), Period: time.Hour}
	ctx := context.Background()
	if _, err := New(ctx, "opts-test", trust, src); err != nil {
		t.Fatalf("New: %v", err)
	}
	for name, opt := range map[string]Option{
		"trust level 1/4":        WithTrustLevel(cmtmath.Fraction{Numerator: 1, Denominator: 4}),
		"nil clock":              WithClock(nil),
		"negative drift":         WithMaxClockDrift(-time.Second),
		"negative max backwards": WithMaxBackwards(-1),
	} {
		if _, err := New(ctx, "opts-test", trust, src, opt); !errors.Is(err, ErrBadOption) {
			t.Errorf("%s: err = %v; want ErrBadOption", name, err)
		}
	}
	for name, bad := range map[string]TrustOptions{
		"zero height": {Height: 0, Hash: trust.Hash, Period: time.Hour},
		"no period":   {Height: 1, Hash: trust.Hash},
		"no hash":     {Height: 1, Period: time.Hour},
	} {
		if _, err := New(ctx, "opts-test", bad, src); !errors.Is(err, ErrBadTrustOptions) {
			t.Errorf("%s: err = %v; want ErrBadTrustOptions", name, err)
		}
	}
}

// TestMalformedAnswers: what a source sends is checked before it is used.
func TestMalformedAnswers(t *testing.T) {
	src := synthChain(t, "bad-test", 6, 4)
	lc, err := New(context.Background(), "bad-test", TrustOptions{Height: 1, Hash: src.blocks[1].Hash(), Period: time.Hour}, src, WithHeaderWait(0))
	if err != nil {
		t.Fatal(err)
	}
	src.blocks[4] = src.blocks[3] // a source answering another height
	if _, err := lc.VerifyTo(context.Background(), 4); !errors.Is(err, ErrBadHeader) {
		t.Errorf("header of another height: err = %v; want ErrBadHeader", err)
	}
	src.blocks[5] = types.LightBlock{SignedHeader: &types.SignedHeader{}, ValidatorSet: src.blocks[5].ValidatorSet}
	if _, err := lc.VerifyTo(context.Background(), 5); !errors.Is(err, ErrBadHeader) {
		t.Errorf("empty header: err = %v; want ErrBadHeader", err)
	}
	if _, err := lc.VerifyTo(context.Background(), 7); !errors.Is(err, ErrHeaderNotFound) {
		t.Errorf("missing height: err = %v; want ErrHeaderNotFound", err)
	}
	if got, err := lc.VerifyTo(context.Background(), 6); err != nil || got.Height != 6 {
		t.Errorf("VerifyTo(6) = %v, %v", got, err)
	}

	v := src.blocks[6].ValidatorSet.Validators
	for name, list := range map[string][]*types.Validator{
		"empty":      nil,
		"duplicate":  {v[0].Copy(), v[0].Copy()},
		"zero power": {{Address: v[0].Address, PubKey: v[0].PubKey, VotingPower: 0}},
		"nil":        {nil},
	} {
		if _, err := validatorSet(list); err == nil {
			t.Errorf("validator set %s accepted", name)
		}
	}
}

// TestConcurrentUse runs verifications, proofs of state and reads at once
// (meant for -race).
func TestConcurrentUse(t *testing.T) {
	src := synthChain(t, "race-test", 40, 4)
	lc, err := New(context.Background(), "race-test", TrustOptions{Height: 1, Hash: src.blocks[1].Hash(), Period: time.Hour}, src)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			_, err := lc.VerifyTo(context.Background(), int64(10+3*i))
			if err != nil && !errors.Is(err, ErrBelowTrusted) {
				t.Errorf("VerifyTo(%d): %v", 10+3*i, err)
			}
			if _, err := stateOf(lc).MarshalBinary(); err != nil {
				t.Error(err)
			}
			_ = lc.Trusted().Height
		})
	}
	wg.Wait()
	if _, err := lc.Update(context.Background()); err != nil {
		t.Fatal(err)
	}
	if h := lc.Trusted().Height; h != 40 {
		t.Errorf("trusted height %d after Update; want 40", h)
	}
}

// TestVerifyBackSynth checks backwards verification on a synthetic chain:
// the bound, the default and a header that does not link.
func TestVerifyBackSynth(t *testing.T) {
	if c, err := newConfig(nil); err != nil || c.maxBackwards != DefaultMaxBackwards {
		t.Fatalf("default max backwards %d, %v; want %d", c.maxBackwards, err, DefaultMaxBackwards)
	}
	ctx := context.Background()
	src := synthChain(t, "back-test", 20, 4)
	lc, err := New(ctx, "back-test", TrustOptions{Height: 20, Hash: src.blocks[20].Hash(), Period: time.Hour}, src, WithMaxBackwards(5))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := lc.VerifyBack(ctx, 15); err != nil || !bytes.Equal(got.Hash(), src.blocks[15].Hash()) {
		t.Errorf("VerifyBack(15) = %v, %v; want header 15", got, err)
	}
	if _, err := lc.VerifyBack(ctx, 14); !errors.Is(err, ErrBelowTrusted) {
		t.Errorf("VerifyBack(14), bound 5: err = %v; want ErrBelowTrusted", err)
	}
	if _, err := lc.VerifyBack(ctx, 0); err == nil {
		t.Error("VerifyBack(0) succeeded")
	}
	lied, _, err := relinkAppHash(src.blocks[17].SignedHeader, nil)
	if err != nil {
		t.Fatal(err)
	}
	src.blocks[17] = types.LightBlock{SignedHeader: lied, ValidatorSet: src.blocks[17].ValidatorSet}
	if _, err := lc.VerifyBack(ctx, 16); !errors.Is(err, ErrNotVerified) {
		t.Errorf("VerifyBack(16) through a relinked header: err = %v; want ErrNotVerified", err)
	}
	if got, err := lc.VerifyBack(ctx, 18); err != nil || got.Height != 18 {
		t.Errorf("VerifyBack(18) = %v, %v", got, err)
	}
	if h := lc.Trusted().Height; h != 20 {
		t.Errorf("trusted height %d; want 20", h)
	}
}

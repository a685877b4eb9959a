package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"time"

	"github.com/cometbft/cometbft/types"
	"github.com/thingnet/thingnet/client"
	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/lightclient"
	"github.com/thingnet/thingnet/reading"
)

// measureHeaders is how many consecutive headers -measure verifies per
// round (each from the one before it, as a device that wakes every
// block would).
const measureHeaders = 10

// measure prints what a signed reading and a light-client header update
// cost this process in CPU time (user + system, from getrusage: under
// qemu-user that is the emulator's, so compare it with a native run on
// the same machine), each measured for about d, then the Go runtime's
// memory. The header update is split in two: fetching it from the
// gateway (HTTP, JSON decoding) and verifying it from the one before
// (commit signatures, validator set hash). Nothing is sent: the
// readings signed here are not the device's (their sequence numbers are
// not taken from its store).
func measure(ctx context.Context, out io.Writer, k *identity.Key, chainID, api string, d time.Duration) error {
	v := 21.5
	now := time.Now()
	var seq uint64
	signUS, signN, err := perOp(d, func() error {
		seq++
		_, err := reading.Sign(k, k.ID(), reading.Reading{ContentType: "temperature/celsius", Value: &v, Seq: seq, Time: now})
		return err
	})
	if err != nil {
		return fmt.Errorf("measure: signing: %w", err)
	}

	src := lightclient.APISource(client.New(api))
	latest, _, err := src.Header(ctx, 0)
	if err != nil {
		return fmt.Errorf("measure: the latest header: %w", err)
	}
	first := latest.Height - measureHeaders
	if first < 1 {
		return fmt.Errorf("measure: the chain is at height %d; it needs %d blocks", latest.Height, measureHeaders+1)
	}
	mem := memSource{}
	h := first
	fetchUS, fetchN, err := perOp(d, func() error {
		sh, vals, err := src.Header(ctx, h)
		if err != nil {
			return err
		}
		mem[h] = types.LightBlock{SignedHeader: sh, ValidatorSet: vals}
		if h++; h > latest.Height {
			h = first
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("measure: fetching headers: %w", err)
	}
	if len(mem) < measureHeaders+1 {
		for h := first; h <= latest.Height; h++ { // a slow device: fetch the rest, untimed
			if _, ok := mem[h]; !ok {
				sh, vals, err := src.Header(ctx, h)
				if err != nil {
					return fmt.Errorf("measure: fetching headers: %w", err)
				}
				mem[h] = types.LightBlock{SignedHeader: sh, ValidatorSet: vals}
			}
		}
	}
	trusted := mem[first]
	lc, err := lightclient.New(ctx, chainID, lightclient.TrustOptions{Height: first, Hash: trusted.Hash(), Period: 14 * 24 * time.Hour}, mem)
	if err != nil {
		return fmt.Errorf("measure: trusting header %d: %w", first, err)
	}
	st := lc.State()
	state, err := st.MarshalBinary()
	if err != nil {
		return err
	}
	next := first + 1
	verifyUS, verifyN, err := perOp(d, func() error {
		if next > latest.Height { // start the chain again from the first header
			if lc, err = lightclient.Restore(chainID, state, mem); err != nil {
				return err
			}
			next = first + 1
		}
		_, err := lc.VerifyTo(ctx, next)
		next++
		return err
	})
	if err != nil {
		return fmt.Errorf("measure: verifying headers: %w", err)
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	fmt.Fprintf(out, "measure: %s/%s, %d validators\n", runtime.GOOS, runtime.GOARCH, trusted.ValidatorSet.Size())
	fmt.Fprintf(out, "measure: sign_us=%.1f (%d) header_fetch_us=%.1f (%d) header_verify_us=%.1f (%d) go_sys_kib=%d heap_inuse_kib=%d\n",
		signUS, signN, fetchUS, fetchN, verifyUS, verifyN, ms.Sys>>10, ms.HeapInuse>>10)
	return nil
}

// perOp runs op until it has used about d of CPU time (at least 5 times,
// at most 1,000,000) and returns the CPU time per call in microseconds.
func perOp(d time.Duration, op func() error) (float64, int, error) {
	start := cpuTime()
	n := 0
	for ; n < 1_000_000; n++ {
		if used := cpuTime() - start; n >= 5 && used >= d {
			break
		}
		if err := op(); err != nil {
			return 0, n, err
		}
	}
	used := cpuTime() - start
	if used <= 0 {
		return 0, n, errors.New("no CPU time measured (no getrusage here?)")
	}
	return float64(used.Microseconds()) / float64(n), n, nil
}

// memSource serves the headers -measure fetched.
type memSource map[int64]types.LightBlock

func (m memSource) Header(_ context.Context, h int64) (*types.SignedHeader, *types.ValidatorSet, error) {
	lb, ok := m[h]
	if !ok {
		return nil, nil, fmt.Errorf("%w: height %d was not fetched", lightclient.ErrHeaderNotFound, h)
	}
	return lb.SignedHeader, lb.ValidatorSet, nil
}

// printStats prints what the process used: for the per-architecture table
// of docs/device-sdk.md.
func printStats(out io.Writer) {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	fmt.Fprintf(out, "stats: cpu_ms=%d go_sys_kib=%d heap_inuse_kib=%d gc=%d\n", cpuTime().Milliseconds(), ms.Sys>>10, ms.HeapInuse>>10, ms.NumGC)
}

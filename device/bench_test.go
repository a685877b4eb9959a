package device_test

import (
	"context"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/cometbft/cometbft/light"

	"github.com/thingnet/thingnet/client"
	"github.com/thingnet/thingnet/device"
	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/lightclient"
	"github.com/thingnet/thingnet/reading"
	"github.com/thingnet/thingnet/record"
)

// BenchmarkSign is the device's cost per envelope: encode and sign (one
// signature), with the bytes on the wire per reading. No network.
func BenchmarkSign(b *testing.B) {
	for _, alg := range []identity.Algorithm{identity.Ed25519, identity.P256} {
		for _, n := range []int{1, 10, 100} {
			b.Run(alg.String()+"/batch-"+strconv.Itoa(n), func(b *testing.B) {
				k, _ := identity.GenerateKey(alg)
				d, err := device.New(k, device.WithGateways(device.Gateway{API: "http://127.0.0.1:1"}))
				if err != nil {
					b.Fatal(err)
				}
				rs := make([]reading.Reading, n)
				for i := range rs {
					rs[i] = temp(21.5)
				}
				var size int
				b.ReportAllocs()
				for b.Loop() {
					raw, _, err := d.Sign(rs)
					if err != nil {
						b.Fatal(err)
					}
					size = len(raw)
				}
				b.ReportMetric(float64(size)/float64(n), "wire-B/reading")
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n)/1e3, "µs/reading")
			})
		}
	}
}

// BenchmarkVerify is the device's cost of checking what a gateway sent,
// once fetched (from a devnet of 4 validators): a header from the trusted
// one (CometBFT's light.Verify, the work of a light-client update), and a
// record's ICS-23 proof.
func BenchmarkVerify(b *testing.B) {
	tn := startNet(b)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := client.New(tn.d.APIURL(0))
	src := lightclient.APISource(c)
	trustedSH, trustedVals, err := src.Header(ctx, tn.trust.Height)
	if err != nil {
		b.Fatal(err)
	}
	var p *record.Proof
	p, _, err = c.ProvedRecord(ctx, "/v1/devices/"+url.PathEscape(tn.admin.ID()), nil) // absence proof: the admin is no device
	if err != nil {
		b.Fatal(err)
	}
	gw, _, err := c.ProvedRecord(ctx, "/v1/orgs/demo", nil)
	if err != nil {
		b.Fatal(err)
	}
	if err := tn.d.WaitForHeight(ctx, gw.Height+1); err != nil {
		b.Fatal(err)
	}
	sh, vals, err := src.Header(ctx, gw.Height+1)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("header-skip", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := light.Verify(trustedSH, trustedVals, sh, vals, 24*time.Hour, time.Now(), 10*time.Second, light.DefaultTrustLevel); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("record-proof", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := record.VerifyProof(sh.AppHash, gw.Key, gw.Value, gw.Proof); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("absence-proof", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := record.VerifyProof(p.Root, p.Key, p.Value, p.Proof); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkCheck is a whole check over loopback HTTP against a devnet:
// IsActiveAndGranted (two records, two proofs, a header), the way a device
// pays it when it acts on a message. It proves the latest state, so it
// waits for the next block's header: its time is mostly the block interval.
func BenchmarkCheck(b *testing.B) {
	tn := startNet(b)
	me := tn.register(b, identity.Ed25519)
	other := tn.register(b, identity.Ed25519)
	tn.send(b, me, &record.GrantAdd{Grantor: "device:" + me.ID(), Subject: "device:" + other.ID(), Action: "message", Resource: "device:" + me.ID()})
	d, err := device.New(me, device.WithGateways(tn.gw(0)), device.WithTrust(tn.trust))
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	for b.Loop() {
		if ok, err := d.IsActiveAndGranted(ctx, other.ID(), "message"); err != nil || !ok {
			b.Fatal(ok, err)
		}
	}
}

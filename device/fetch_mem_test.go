package device_test

import (
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/thingnet/thingnet/device"
	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/record"
)

// imageReader is a reproducible pseudo-random image of n bytes, made as
// it is read (no copy of it is ever held).
func imageReader(n int64) io.Reader {
	rng := rand.NewChaCha8([32]byte{7})
	return io.LimitReader(rng, n)
}

// discard is an ImageWriter that keeps nothing (a slot on flash, as far as
// the heap is concerned).
type discard struct{ n int64 }

func (d *discard) Write(p []byte) (int, error) { d.n += int64(len(p)); return len(p), nil }
func (d *discard) Reset() error                { d.n = 0; return nil }

// FetchFirmware's memory does not grow with the image: 64 MiB streamed
// from a gateway and checked allocate well under 4 MiB in all. Measured in
// a child process, away from the package's devnet.
func TestFetchFirmwareMemory(t *testing.T) {
	if os.Getenv("THINGNET_FETCH_MEM") != "1" {
		cmd := exec.Command(os.Args[0], "-test.run=^TestFetchFirmwareMemory$", "-test.v")
		cmd.Env = append(os.Environ(), "THINGNET_FETCH_MEM=1")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		for _, l := range strings.Split(string(out), "\n") {
			if strings.Contains(l, "allocated") {
				t.Log(strings.TrimSpace(l))
			}
		}
		return
	}
	const size = 64 << 20
	h := sha256.New()
	io.Copy(h, imageReader(size))
	m := record.FirmwareManifest{Vendor: "acme", Class: "valve", Version: "9", Seq: 9, Digest: h.Sum(nil), Size: size,
		CID: "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/content/"+m.CID {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Length", strconv.Itoa(size))
		io.Copy(w, imageReader(size))
	}))
	defer srv.Close()
	k, _ := identity.GenerateKey(identity.Ed25519)
	d, err := device.New(k, device.WithGateways(device.Gateway{API: srv.URL}), device.WithChainID("x"))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	rel := &record.FirmwareReleaseRecord{Manifest: m}
	w := &discard{}
	// One small fetch first, so one-off allocations (the HTTP transport,
	// TLS-free dialer state) are not counted.
	small := rel.Manifest
	small.Size = 1
	if err := d.FetchFirmware(t.Context(), &record.FirmwareReleaseRecord{Manifest: small}, w); err == nil {
		t.Fatal("a 1-byte release matched a 64 MiB image")
	}
	// Side by side, 3 rounds: the baseline is a plain GET of the same
	// bytes into io.Discard (no hashing, no size check, no writer).
	var plain, fetch []time.Duration
	var alloc uint64
	for range 3 {
		start := time.Now()
		res, err := http.Get(srv.URL + "/v1/content/" + m.CID)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		plain = append(plain, time.Since(start))

		w.Reset()
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		start = time.Now()
		if err := d.FetchFirmware(t.Context(), rel, w); err != nil {
			t.Fatal(err)
		}
		fetch = append(fetch, time.Since(start))
		runtime.ReadMemStats(&after)
		alloc = max(alloc, after.TotalAlloc-before.TotalAlloc)
		if w.n != size {
			t.Fatalf("%d bytes written", w.n)
		}
	}
	mp, mf := median(plain), median(fetch)
	mib := float64(size) / (1 << 20)
	t.Logf("FetchFirmware: %d MiB image, at most %s allocated in all (server included); median %.0f MiB/s vs a plain GET %.0f MiB/s (%.2fx the time)",
		size>>20, kib(alloc), mib/mf.Seconds(), mib/mp.Seconds(), mf.Seconds()/mp.Seconds())
	if alloc > 4<<20 {
		t.Fatalf("%s allocated to fetch a %d MiB image: memory grows with the image", kib(alloc), size>>20)
	}
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

func kib(n uint64) string { return fmt.Sprintf("%d KiB", n>>10) }

// A gateway that stops sending halfway is given up after the device's
// timeout (no bytes for that long), and one that answers nothing at all
// after it too; the image then comes from the next gateway, whole.
func TestFetchFirmwareStall(t *testing.T) {
	const size = 1 << 20
	img, _ := io.ReadAll(imageReader(size))
	sum := sha256.Sum256(img)
	m := record.FirmwareManifest{Vendor: "acme", Class: "valve", Version: "9", Seq: 9, Digest: sum[:], Size: size,
		CID: "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"}
	serve := func(stallAfter int) *httptest.Server {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if stallAfter < 0 { // no answer at all
				<-r.Context().Done()
				return
			}
			w.Header().Set("Content-Length", strconv.Itoa(size))
			w.Write(img[:stallAfter])
			w.(http.Flusher).Flush()
			if stallAfter < size {
				<-r.Context().Done()
			}
		}))
		t.Cleanup(s.Close)
		return s
	}
	half, silent, honest := serve(size/2), serve(-1), serve(size)
	k, _ := identity.GenerateKey(identity.Ed25519)
	d, err := device.New(k, device.WithGateways(device.Gateway{API: half.URL}, device.Gateway{API: silent.URL}, device.Gateway{API: honest.URL}),
		device.WithChainID("x"), device.WithTimeout(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	w := &discard{}
	start := time.Now()
	if err := d.FetchFirmware(t.Context(), &record.FirmwareReleaseRecord{Manifest: m}, w); err != nil {
		t.Fatal(err)
	}
	if w.n != size || d.Gateway().API != honest.URL {
		t.Fatalf("%d bytes, from %s", w.n, d.Gateway().API)
	}
	if el := time.Since(start); el < 2*time.Second || el > 20*time.Second {
		t.Errorf("took %v; want about two timeouts (1 s each)", el)
	}
}

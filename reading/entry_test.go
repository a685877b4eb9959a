package reading

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/thingnet/thingnet/identity"
)

func TestEntryLayouts(t *testing.T) {
	k := seededKey(t, identity.Ed25519, 7)
	env := mustSign(t, k, k.ID(), temp(1, 21.5))

	// Layout 1: the envelope alone, as gateways stored it before.
	e, err := DecodeEntry(env)
	if err != nil {
		t.Fatal(err)
	}
	if e.Layout != 1 || e.AuthHeight != 0 || !bytes.Equal(e.Envelope.Raw, env) {
		t.Fatalf("layout 1: got layout %d, height %d", e.Layout, e.AuthHeight)
	}
	if !bytes.Equal(EntryBytes(0, 0, env), env) {
		t.Fatal("EntryBytes(0, 0, env) is not the envelope")
	}

	// Layout 2: 0x02, the height (8 bytes BE), the envelope.
	b := EntryBytes(258, 0, env)
	want := append([]byte{0x02, 0, 0, 0, 0, 0, 0, 1, 2}, env...)
	if !bytes.Equal(b, want) {
		t.Fatalf("layout 2 entry % x..., want % x...", b[:12], want[:12])
	}
	e, err = DecodeEntry(b)
	if err != nil {
		t.Fatal(err)
	}
	if e.Layout != 2 || e.AuthHeight != 258 || !bytes.Equal(e.Envelope.Raw, env) {
		t.Fatalf("layout 2: got layout %d, height %d", e.Layout, e.AuthHeight)
	}
	b[len(b)-1] ^= 0xff // the envelope's bytes are its own: decoding copied them
	if !bytes.Equal(e.Envelope.Raw, env) {
		t.Fatal("the decoded envelope shares memory with the entry")
	}

	// Layout 3: 0x03, the height (8 bytes BE), the receive time (Unix ms,
	// 8 bytes BE), the envelope. A gateway writes it (NewEntry).
	b, err = NewEntry(258, time.UnixMilli(0x01020304050), env)
	if err != nil {
		t.Fatal(err)
	}
	want = append([]byte{0x03, 0, 0, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0x10, 0x20, 0x30, 0x40, 0x50}, env...)
	if !bytes.Equal(b, want) {
		t.Fatalf("layout 3 entry % x..., want % x...", b[:20], want[:20])
	}
	e, err = DecodeEntry(b)
	if err != nil {
		t.Fatal(err)
	}
	if e.Layout != 3 || e.AuthHeight != 258 || e.ReceivedAt != 0x01020304050 || !bytes.Equal(e.Envelope.Raw, env) {
		t.Fatalf("layout 3: got layout %d, height %d, received %d", e.Layout, e.AuthHeight, e.ReceivedAt)
	}

	if _, err := NewEntry(0, time.Now(), env); !errors.Is(err, ErrInvalid) {
		t.Fatalf("NewEntry at height 0: %v, want ErrInvalid", err)
	}
	if _, err := NewEntry(1, time.UnixMilli(0), env); !errors.Is(err, ErrInvalid) {
		t.Fatalf("NewEntry received at 1970: %v, want ErrInvalid", err)
	}
	bad := map[string][]byte{
		"empty":             nil,
		"short header":      {0x02, 0, 0, 1},
		"height 0":          append([]byte{0x02, 0, 0, 0, 0, 0, 0, 0, 0}, env...),
		"height above 63":   append([]byte{0x02, 0x80, 0, 0, 0, 0, 0, 0, 1}, env...),
		"no envelope":       {0x02, 0, 0, 0, 0, 0, 0, 0, 1},
		"bad envelope":      append([]byte{0x02, 0, 0, 0, 0, 0, 0, 0, 1}, env[:len(env)-1]...),
		"unknown layout":    append([]byte{0x04}, env...),
		"short layout 3":    append([]byte{0x03, 0, 0, 0, 0, 0, 0, 0, 1}, env[:4]...),
		"layout 3 time 0":   append([]byte{0x03, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0}, env...),
		"layout 3 in 10000": append([]byte{0x03, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0xe7, 0, 0, 0, 0, 0}, env...),
		"layout 3 height 0": append([]byte{0x03, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, env...),
	}
	for name, b := range bad {
		if _, err := DecodeEntry(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: DecodeEntry = %v, want ErrMalformed", name, err)
		}
	}
}

// FuzzDecodeEntry checks that DecodeEntry never panics, and that what it
// accepts re-encodes to the same bytes.
func FuzzDecodeEntry(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
		f.Add(EntryBytes(1, 0, s))
		f.Add(EntryBytes(1<<40, 0, s))
		f.Add(EntryBytes(7, 1_765_000_000_000, s))
	}
	f.Add([]byte{0x02})
	f.Add([]byte{0x02, 0, 0, 0, 0, 0, 0, 0, 1})
	f.Add([]byte{0x03, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := DecodeEntry(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		if (e.Layout == 1) != (e.AuthHeight == 0) || e.AuthHeight < 0 || (e.Layout == 3) != (e.ReceivedAt > 0) {
			t.Fatalf("layout %d with height %d, received at %d", e.Layout, e.AuthHeight, e.ReceivedAt)
		}
		if got := EntryBytes(e.AuthHeight, e.ReceivedAt, e.Envelope.Raw); !bytes.Equal(got, b) {
			t.Fatalf("re-encoded entry differs:\n% x\n% x", got, b)
		}
	})
}

package message

import (
	"encoding/binary"
	"fmt"
	"sync"
)

// ReplayWindow is the anti-replay rule of IPsec (RFC 4303 §3.4.3) per
// sender, with a window of 1,024: a sequence number is fresh if it is above
// the highest seen, or among the 1,024 below it and not seen yet. Messages
// may so arrive out of order (many in flight at once, direct and via a
// mailbox) but never twice.
type ReplayWindow struct {
	top  uint64
	seen [WindowSize / 64]uint64 // bit i: top-i was seen
}

// WindowSize is how far below the highest sequence number seen a message
// may arrive and still be taken.
const WindowSize = 1024

// windowBytes is the size of a window's binary form.
const windowBytes = 8 + WindowSize/8

func (w *ReplayWindow) bit(i uint64) (int, uint64) { return int(i / 64), 1 << (i % 64) }

// MarshalBinary: top, then the bitmap, big-endian.
func (w *ReplayWindow) MarshalBinary() []byte {
	b := binary.BigEndian.AppendUint64(make([]byte, 0, windowBytes), w.top)
	for _, v := range w.seen {
		b = binary.BigEndian.AppendUint64(b, v)
	}
	return b
}

// UnmarshalBinary reads what MarshalBinary wrote.
func (w *ReplayWindow) UnmarshalBinary(b []byte) error {
	if len(b) != windowBytes {
		return fmt.Errorf("mesh: replay window is %d bytes, want %d", len(b), windowBytes)
	}
	w.top = binary.BigEndian.Uint64(b)
	for i := range w.seen {
		w.seen[i] = binary.BigEndian.Uint64(b[8+8*i:])
	}
	return nil
}

// WindowStore keeps replay windows (opaque bytes) across restarts. Load
// returns nil for a key never saved.
type WindowStore interface {
	LoadWindow(key string) ([]byte, error)
	SaveWindow(key string, w []byte) error
}

func (g *ReplayGuard) window(key string) (*ReplayWindow, error) {
	if w, ok := g.byKey[key]; ok {
		return w, nil
	}
	w := &ReplayWindow{}
	if g.store != nil {
		b, err := g.store.LoadWindow(key)
		if err != nil {
			return nil, err
		}
		if b != nil {
			if err := w.UnmarshalBinary(b); err != nil {
				return nil, err
			}
		}
	}
	g.byKey[key] = w
	return w, nil
}

// ReplayGuard holds a window per key: the sender for direct and topic
// messages, sender and receiver for mailboxes. Only senders the ledger
// knows and authorizes reach it, so it is bounded by the ledger's devices
// (24 bytes and the key each). With a store, windows survive restarts. A
// mesh node keeps one; so does a receiver that takes messages over another
// transport (a mailbox read over HTTP by a device with no libp2p host).
type ReplayGuard struct {
	mu    sync.Mutex
	byKey map[string]*ReplayWindow
	store WindowStore
}

// NewReplayGuard keeps its windows in store (nil: memory only).
func NewReplayGuard(store WindowStore) *ReplayGuard {
	return &ReplayGuard{byKey: map[string]*ReplayWindow{}, store: store}
}

// Accept records seq for key if it is fresh and reports whether it was.
func (g *ReplayGuard) Accept(key string, seq uint64) (bool, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	w, err := g.window(key)
	if err != nil || !w.Fresh(seq) {
		return false, err
	}
	next := *w
	next.Mark(seq)
	if g.store != nil {
		if err := g.store.SaveWindow(key, next.MarshalBinary()); err != nil {
			return false, err
		}
	}
	*w = next
	return true, nil
}

// Fresh reports whether seq is fresh: above the highest seen, or within
// the window below it and not seen yet.
func (w *ReplayWindow) Fresh(seq uint64) bool {
	switch {
	case seq > w.top:
		return true
	case w.top-seq >= WindowSize:
		return false
	default:
		word, mask := w.bit(w.top - seq)
		return w.seen[word]&mask == 0
	}
}

// Mark records seq as seen, moving the window up if seq is above it.
func (w *ReplayWindow) Mark(seq uint64) {
	if seq > w.top {
		shift := seq - w.top
		if shift >= WindowSize {
			w.seen = [WindowSize / 64]uint64{}
		} else {
			// Shift the bitmap up by shift bits (bit i becomes i+shift).
			words, bits := int(shift/64), shift%64
			for i := len(w.seen) - 1; i >= 0; i-- {
				var v uint64
				if j := i - words; j >= 0 {
					v = w.seen[j] << bits
					if bits > 0 && j-1 >= 0 {
						v |= w.seen[j-1] >> (64 - bits)
					}
				}
				w.seen[i] = v
			}
		}
		w.top = seq
	}
	word, mask := w.bit(w.top - seq)
	w.seen[word] |= mask
}

// Check reports whether seq is fresh for key, without recording it.
func (g *ReplayGuard) Check(key string, seq uint64) (bool, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	w, err := g.window(key)
	if err != nil {
		return false, err
	}
	return w.Fresh(seq), nil
}

package mesh

import "sync"

// replayWindow is the anti-replay rule of IPsec (RFC 4303 §3.4.3) per
// sender: a sequence number is fresh if it is above the highest seen, or
// within the last 64 below it and not seen yet. Messages may so arrive out
// of order (direct and via a mailbox) but never twice.
type replayWindow struct {
	top  uint64
	seen uint64 // bit i: top-i was seen
}

const windowSize = 64

func (w *replayWindow) fresh(seq uint64) bool {
	switch {
	case seq > w.top:
		return true
	case w.top-seq >= windowSize:
		return false
	default:
		return w.seen&(1<<(w.top-seq)) == 0
	}
}

func (w *replayWindow) mark(seq uint64) {
	if seq > w.top {
		shift := seq - w.top
		if shift >= windowSize {
			w.seen = 0
		} else {
			w.seen <<= shift
		}
		w.top = seq
		w.seen |= 1
		return
	}
	w.seen |= 1 << (w.top - seq)
}

// replayGuard holds a window per key: the sender for direct and topic
// messages, sender and receiver for mailboxes. Only senders the ledger
// knows and authorizes reach it, so it is bounded by the ledger's devices
// (24 bytes and the key each). With a store, windows survive restarts.
type replayGuard struct {
	mu    sync.Mutex
	byKey map[string]*replayWindow
	store WindowStore
}

// WindowStore keeps replay windows across restarts. Load returns false for
// a key never saved.
type WindowStore interface {
	LoadWindow(key string) (top, seen uint64, ok bool, err error)
	SaveWindow(key string, top, seen uint64) error
}

func newReplayGuard(store WindowStore) *replayGuard {
	return &replayGuard{byKey: map[string]*replayWindow{}, store: store}
}

func (g *replayGuard) window(key string) (*replayWindow, error) {
	if w, ok := g.byKey[key]; ok {
		return w, nil
	}
	w := &replayWindow{}
	if g.store != nil {
		top, seen, ok, err := g.store.LoadWindow(key)
		if err != nil {
			return nil, err
		}
		if ok {
			w.top, w.seen = top, seen
		}
	}
	g.byKey[key] = w
	return w, nil
}

// check reports whether seq is fresh for key, without recording it.
func (g *replayGuard) check(key string, seq uint64) (bool, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	w, err := g.window(key)
	if err != nil {
		return false, err
	}
	return w.fresh(seq), nil
}

// accept records seq for key if it is fresh and reports whether it was.
func (g *replayGuard) accept(key string, seq uint64) (bool, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	w, err := g.window(key)
	if err != nil || !w.fresh(seq) {
		return false, err
	}
	next := *w
	next.mark(seq)
	if g.store != nil {
		if err := g.store.SaveWindow(key, next.top, next.seen); err != nil {
			return false, err
		}
	}
	*w = next
	return true, nil
}

package coap

import (
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/net/blockwise"
	"github.com/plgd-dev/go-coap/v3/options"

	"github.com/thingnet/thingnet/internal/testutil"
)

// block1 is a Block1 option of block num of 1024 bytes.
func block1(num int, more bool) message.Option {
	v := uint32(num)<<4 | uint32(blockwise.SZX1024)
	if more {
		v |= 1 << 3
	}
	return uintOption(message.Block1, v)
}

// TestBlockwiseUpload: an envelope far larger than a datagram goes up in
// Block1 blocks, is stored whole, and costs its source one message of its
// size at the Limiter.
func TestBlockwiseUpload(t *testing.T) {
	e := start(t, nil)
	dev := newDevice(t, e.ingest)
	env := dev.large(t, 3, 40<<10) // ~120 KiB, under the 128 KiB maximum
	cc := e.dial(t, "", options.WithMaxMessageSize(256<<10))
	if got := post(t, cc, PathShort, env); got != codes.Changed {
		t.Fatalf("block-wise POST of %d bytes = %v; want 2.04", len(env), got)
	}
	if !e.ingest.has(env) {
		t.Fatal("the assembled envelope is not the one sent")
	}
	msgs, size := e.limits.count("addr:127.0.0.1")
	if msgs != 1 || size != len(env) {
		t.Errorf("Limiter charged %d messages of %d bytes; want 1 of %d (the upload's Size1)", msgs, size, len(env))
	}
	st := e.srv.Stats()
	t.Logf("%d datagrams for an envelope of %d bytes", st.Datagrams, len(env))
	if st.Transfers != 0 {
		t.Errorf("Stats.Transfers = %d after the upload; want 0", st.Transfers)
	}
}

// TestBlockwiseTooLarge: go-coap's client announces the size (Size1) and
// is refused at the first block.
func TestBlockwiseTooLarge(t *testing.T) {
	e := start(t, func(c *Config) { c.MaxPayload = 4096 })
	dev := newDevice(t, e.ingest)
	cc := e.dial(t, "")
	resp := postResp(t, cc, PathShort, dev.large(t, 1, 8<<10))
	defer cc.ReleaseMessage(resp)
	if resp.Code() != codes.RequestEntityTooLarge {
		t.Fatalf("POST of 8 KiB with MaxPayload 4096 = %v; want 4.13", resp.Code())
	}
	if v, err := resp.GetOptionUint32(message.Size1); err != nil || v != 4096 {
		t.Errorf("4.13 Size1 = %d, %v; want 4096", v, err)
	}
	if e.ingest.callCount() != 0 {
		t.Error("Ingest was called")
	}
}

// TestBlockwiseTooLargeUnannounced: blocks sent without Size1 are taken
// until one would go past MaxPayload; every answer on the way respects the
// amplification bound.
func TestBlockwiseTooLargeUnannounced(t *testing.T) {
	e := start(t, func(c *Config) { c.MaxPayload = 4096 })
	r := e.raw(t, "")
	chunk := make([]byte, 1024)
	for i := range 4 {
		ans := r.exchange(postR(t, uint16(i), []byte{7}, chunk, block1(i, true)))
		if ans.Code != codes.Continue {
			t.Fatalf("block %d: %v; want 2.31 Continue", i, ans.Code)
		}
	}
	ans := r.exchange(postR(t, 4, []byte{7}, chunk, block1(4, true)))
	if ans.Code != codes.RequestEntityTooLarge {
		t.Fatalf("block 4 (bytes 4096 to 5120): %v; want 4.13", ans.Code)
	}
	if e.ingest.callCount() != 0 {
		t.Error("Ingest was called")
	}
}

// TestMaxTransfers: uploads being assembled are bounded; a stalled one
// gives its slot back after BlockwiseTimeout, and an idle session ends
// after SessionIdle.
func TestMaxTransfers(t *testing.T) {
	e := start(t, func(c *Config) {
		c.MaxTransfers = 1
		c.BlockwiseTimeout = 150 * time.Millisecond
		c.SessionIdle = 300 * time.Millisecond
	})
	a, b := e.raw(t, "127.0.0.1"), e.raw(t, "127.0.0.2")
	chunk := make([]byte, 1024)
	if ans := a.exchange(postR(t, 1, nil, chunk, block1(0, true))); ans.Code != codes.Continue {
		t.Fatalf("first upload: %v; want 2.31", ans.Code)
	}
	if ans := b.exchange(postR(t, 1, nil, chunk, block1(0, true))); ans.Code != codes.ServiceUnavailable {
		t.Fatalf("second upload with MaxTransfers 1: %v; want 5.03", ans.Code)
	}
	if st := e.srv.Stats(); st.Transfers != 1 || st.Sessions != 1 {
		t.Fatalf("Stats transfers %d sessions %d; want 1, 1", st.Transfers, st.Sessions)
	}
	testutil.WaitFor(t, testutil.Context(t, 5*time.Second), "the stalled upload to give its slot back", func() bool { return e.srv.Stats().Transfers == 0 })
	if ans := b.exchange(postR(t, 2, nil, chunk, block1(0, true))); ans.Code != codes.Continue {
		t.Fatalf("upload after the stalled one expired: %v; want 2.31", ans.Code)
	}
	testutil.WaitFor(t, testutil.Context(t, 5*time.Second), "idle sessions to end", func() bool { return e.srv.Stats().Sessions == 0 })
}

package ledger

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/merkle/testonly"

	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/record"
)

// TestLogArchive records archived ranges: only a gateway, only within its
// anchored log, only contiguous from entry 0.
func TestLogArchive(t *testing.T) {
	admin := mustKey(t, identity.Ed25519)
	c := newChain(t, orgGenesis(admin, "acme"), "")
	gw := mustKey(t, identity.Ed25519)
	m := registerMsg(t, gw, "acme")
	m.Class = record.ClassGateway
	c.must(admin, "", m)
	sensor := c.register(admin, "acme", identity.Ed25519)
	log := testonly.New(rfc6962.DefaultHasher)
	for i := range 10 {
		log.AppendData(fmt.Appendf(nil, "reading %d", i))
	}
	digest := bytes.Repeat([]byte{1}, 32)
	arch := func(first, count uint64) *record.LogArchiveMsg {
		return &record.LogArchiveMsg{First: first, Count: count, CID: "bafkreiarchive" + fmt.Sprint(first), Digest: digest, Size: 100}
	}
	c.want(record.CodeConflict, gw, "", arch(0, 4)) // nothing anchored
	c.must(gw, "", &record.DataAnchor{Size: log.Size(), Root: log.Hash()})
	c.want(record.CodeUnauthorized, sensor, "", arch(0, 4))
	c.want(record.CodeConflict, gw, "", arch(2, 4))  // not from 0
	c.want(record.CodeConflict, gw, "", arch(0, 11)) // beyond the anchored 10
	c.must(gw, "", arch(0, 4))
	c.want(record.CodeConflict, gw, "", arch(0, 4)) // again
	c.want(record.CodeConflict, gw, "", arch(5, 2)) // a gap
	c.must(gw, "", arch(4, 4))

	st := c.view()
	for _, tc := range []struct {
		index uint64
		first uint64
		found bool
	}{{0, 0, true}, {3, 0, true}, {4, 4, true}, {7, 4, true}, {8, 0, false}} {
		a, err := st.LogArchiveCovering(gw.ID(), tc.index)
		if tc.found && (err != nil || a.First != tc.first || a.Gateway != gw.ID()) || !tc.found && !errors.Is(err, ErrNotFound) {
			t.Errorf("LogArchiveCovering(%d) = %+v, %v; want first %d (found %v)", tc.index, a, err, tc.first, tc.found)
		}
	}
	if last, err := st.LastLogArchive(gw.ID()); err != nil || last.End() != 8 {
		t.Errorf("LastLogArchive = %+v, %v; want the range ending at 8", last, err)
	}
	if _, err := st.LastLogArchive(sensor.ID()); !errors.Is(err, ErrNotFound) {
		t.Errorf("LastLogArchive(sensor) = %v; want ErrNotFound", err)
	}
	n := 0
	if err := st.LogArchives("", func(*record.LogArchive) bool { n++; return true }); err != nil || n != 2 {
		t.Errorf("LogArchives = %d, %v; want 2", n, err)
	}

	// A re-cut replaces a recorded range exactly, by another segment; the
	// replaced CIDs are listed for pinners to drop.
	recut := func(first, count uint64, cid string) *record.LogArchiveMsg {
		m := arch(first, count)
		m.CID, m.Recut = cid, true
		return m
	}
	c.want(record.CodeConflict, gw, "", recut(0, 3, "bafkreirecut0"))         // not a recorded range
	c.want(record.CodeConflict, gw, "", recut(8, 2, "bafkreirecut8"))         // not recorded at all
	c.want(record.CodeConflict, gw, "", recut(0, 4, "bafkreiarchive0"))       // the same segment
	c.want(record.CodeUnauthorized, sensor, "", recut(0, 4, "bafkreirecut0")) // not a gateway
	c.must(gw, "", recut(0, 4, "bafkreirecut0"))
	c.must(gw, "", recut(0, 4, "bafkreirecut0b"))
	a, err := c.view().LogArchiveCovering(gw.ID(), 2)
	if err != nil || a.CID != "bafkreirecut0b" || len(a.Replaced) != 2 || a.Replaced[0] != "bafkreiarchive0" || a.Replaced[1] != "bafkreirecut0" || a.Count != 4 {
		t.Fatalf("after two re-cuts, the range = %+v, %v; want CID bafkreirecut0b replacing the two before", a, err)
	}
	c.must(gw, "", arch(8, 2)) // ranges still follow each other
}

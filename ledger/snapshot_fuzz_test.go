package ledger

import (
	"bytes"
	"testing"

	"github.com/cosmos/iavl"
)

// FuzzSnapshotMeta: snapshot metadata from a peer decodes without panics;
// what decodes re-encodes to the same bytes.
func FuzzSnapshotMeta(f *testing.F) {
	f.Add(snapshotMeta{Chunks: [][32]byte{{1}, {2}}}.encode())
	f.Add([]byte(snapshotMagic + "\x01\x00"))
	f.Add([]byte(snapshotMagic + "\x01\xff\xff\xff\xff\x0f"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeSnapshotMeta(b)
		if err != nil {
			return
		}
		if !bytes.Equal(m.encode(), b) {
			t.Fatalf("metadata %x decodes but re-encodes as %x", b, m.encode())
		}
	})
}

// FuzzSnapshotChunks: a node stream cut anywhere into two chunks decodes
// without panics, to the same nodes as in one piece, and what decodes
// re-encodes to the same bytes; the nodes then go to IAVL's importer,
// whose panics on a malformed tree become errors.
func FuzzSnapshotChunks(f *testing.F) {
	var seed []byte
	for _, n := range []iavl.ExportNode{
		{Key: []byte("a"), Value: []byte("1"), Version: 1},
		{Key: []byte("b"), Value: []byte{}, Version: 2},
		{Key: []byte("b"), Version: 2, Height: 1},
	} {
		seed = appendExportNode(seed, &n)
	}
	f.Add(seed, uint16(3), int64(2))
	f.Add(seed[:5], uint16(1), int64(1))
	f.Add([]byte{0, 1, 0x80}, uint16(2), int64(5))
	f.Fuzz(func(t *testing.T, stream []byte, cut uint16, height int64) {
		if height < 1 || height > 1<<20 {
			return
		}
		decode := func(chunks ...[]byte) ([]*iavl.ExportNode, error) {
			d := nodeDecoder{maxVersion: height}
			var out []*iavl.ExportNode
			for _, c := range chunks {
				if err := d.feed(c, func(n *iavl.ExportNode) error { out = append(out, n); return nil }); err != nil {
					return out, err
				}
			}
			return out, d.finish()
		}
		whole, errWhole := decode(stream)
		c := min(int(cut), len(stream))
		split, errSplit := decode(stream[:c], stream[c:])
		if (errWhole == nil) != (errSplit == nil) || len(whole) != len(split) {
			t.Fatalf("one chunk: %d nodes, %v; cut at %d: %d nodes, %v", len(whole), errWhole, c, len(split), errSplit)
		}
		if errWhole != nil {
			return
		}
		var again []byte
		for _, n := range whole {
			again = appendExportNode(again, n)
		}
		if !bytes.Equal(again, stream) {
			t.Fatalf("stream %x decodes but re-encodes as %x", stream, again)
		}
		app, err := NewApp(Config{CacheNodes: 100})
		if err != nil {
			t.Fatal(err)
		}
		defer app.Close()
		imp, err := app.tree.Import(height)
		if err != nil {
			t.Fatal(err)
		}
		defer imp.Close()
		for _, n := range whole {
			if safely(func() error { return imp.Add(n) }) != nil {
				return
			}
		}
		_ = safely(imp.Commit)
	})
}

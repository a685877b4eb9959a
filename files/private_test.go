package files

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/thingnet/thingnet/files/firmware"
	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/ledger"
	"github.com/thingnet/thingnet/record"
)

func TestEncryptRoundTrip(t *testing.T) {
	key, _ := NewContentKey()
	for _, n := range []int{0, 1, SegmentSize - 1, SegmentSize, SegmentSize + 1, 3*SegmentSize + 77} {
		pt := randomBytes(t, n)
		var ct bytes.Buffer
		if _, err := Encrypt(&ct, bytes.NewReader(pt), key); err != nil {
			t.Fatal(err)
		}
		got, err := Decrypt(ct.Bytes(), key)
		if err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("%d bytes: %v", n, err)
		}
		c := ct.Bytes()
		// Truncated at a segment boundary or anywhere: refused.
		for _, cut := range []int{len(c) - 1, len(c) - gcmOverhead, headerSize + SegmentSize + gcmOverhead} {
			if cut < len(c) && cut >= headerSize {
				if _, err := Decrypt(c[:cut], key); !errors.Is(err, ErrCorrupt) {
					t.Fatalf("%d bytes cut to %d: %v", n, cut, err)
				}
			}
		}
		// Altered: refused.
		bad := append([]byte(nil), c...)
		bad[len(bad)-1] ^= 1
		if _, err := Decrypt(bad, key); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("altered: %v", err)
		}
		// Wrong key: refused.
		other, _ := NewContentKey()
		if _, err := Decrypt(c, other); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("wrong key: %v", err)
		}
	}
}

func mustDo(t *testing.T, n *testNet, k *identity.Key, m record.Msg) {
	t.Helper()
	if err := n.ledger.Do(k, m); err != nil {
		t.Fatal(err)
	}
}

func manifest(t *testing.T, n *testNet, org, name string) *record.FileManifest {
	t.Helper()
	st, err := n.ledger.View()
	if err != nil {
		t.Fatal(err)
	}
	f, err := st.File(org, name)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func recipients(t *testing.T, n *testNet, ids ...string) []Recipient {
	t.Helper()
	st, _ := n.ledger.View()
	var out []Recipient
	for _, id := range ids {
		d, err := st.Device(id)
		if err != nil {
			t.Fatal(err)
		}
		r, err := RecipientOf(d)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

// A private file shared through the ledger: a device with a fetch grant gets
// the key and the plaintext; one without gets the ciphertext at most;
// revoking stops new recipients; a re-key leaves the revoked one out.
func TestPrivateShareRevokeRekey(t *testing.T) {
	n := newTestNet(t)
	owner := n.peer("acme", nil, nil)    // acme's gateway publishes
	friend := n.peer("beta", owner, nil) // beta device, will get a grant
	other := n.peer("beta", owner, nil)  // beta device, never granted
	admin := n.ledger.Admins["acme"]
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	secret := randomBytes(t, 700<<10)
	key, _ := NewContentKey()
	added, err := owner.files.AddPrivate(ctx, bytes.NewReader(secret), key, nil)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := WrapKey(key, "acme", "clip", 1, recipients(t, n, owner.key.ID()))
	if err != nil {
		t.Fatal(err)
	}
	mustDo(t, n, owner.key, &record.FilePublish{Org: "acme", Name: "clip", CID: added.CID.String(), Size: added.Size, ContentType: "video/mp4", Private: true, Keys: keys})

	// Sharing with a device that holds no fetch grant is refused by the ledger.
	fkeys, _ := WrapKey(key, "acme", "clip", 1, recipients(t, n, friend.key.ID()))
	if err := n.ledger.Do(admin, &record.FileShare{Org: "acme", Name: "clip", Keys: fkeys}); err == nil || !strings.Contains(err.Error(), "no fetch grant") {
		t.Fatalf("share without a grant: %v", err)
	}
	if err := n.ledger.Grant("acme", "device:"+friend.key.ID(), record.ActionFetch, record.FileResource("acme", "clip")); err != nil {
		t.Fatal(err)
	}
	mustDo(t, n, admin, &record.FileShare{Org: "acme", Name: "clip", Keys: fkeys})

	// The friend opens its key and the file.
	m := manifest(t, n, "acme", "clip")
	k, err := UnwrapKey(m, friend.key.ID(), friend.key)
	if err != nil {
		t.Fatal(err)
	}
	root, _ := firmware.ParseCID(m.CID)
	var got bytes.Buffer
	if _, err := friend.files.GetPrivate(ctx, root, k, &got, GetOptions{Peers: []peer.AddrInfo{owner.info()}}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), secret) {
		t.Fatal("friend got wrong plaintext")
	}

	// The other device gets the ciphertext, not the key.
	if _, err := UnwrapKey(m, other.key.ID(), other.key); !errors.Is(err, ErrNoKey) {
		t.Fatalf("a device without a grant: %v", err)
	}
	var ct bytes.Buffer
	if _, err := other.files.Get(ctx, root, &ct, GetOptions{Peers: []peer.AddrInfo{owner.info()}}); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(ct.Bytes(), secret[:4096]) {
		t.Fatal("the ciphertext holds the plaintext")
	}
	// Another device's wrapped key does not open with its key.
	if _, err := UnwrapKey(&record.FileManifest{Org: "acme", Name: "clip", Private: true, Version: 1,
		Keys: []record.WrappedKey{{Recipient: other.key.ID(), Suite: fkeys[0].Suite, Sealed: fkeys[0].Sealed}}}, other.key.ID(), other.key); err == nil {
		t.Fatal("a key wrapped for another device opened")
	}

	// Revoke: the friend's key is gone and cannot be shared again while the grant is revoked.
	mustDo(t, n, admin, &record.FileRevoke{Org: "acme", Name: "clip", Recipient: friend.key.ID()})
	if _, err := UnwrapKey(manifest(t, n, "acme", "clip"), friend.key.ID(), friend.key); !errors.Is(err, ErrNoKey) {
		t.Fatalf("after revoke: %v", err)
	}
	st, _ := n.ledger.View()
	gs, _ := st.Grants(ledger.GrantFilter{Subject: "device:" + friend.key.ID(), Limit: 10})
	mustDo(t, n, admin, &record.GrantRevoke{ID: gs[0].ID})
	if err := n.ledger.Do(admin, &record.FileShare{Org: "acme", Name: "clip", Keys: fkeys}); err == nil {
		t.Fatal("shared again after the grant was revoked")
	}

	// Re-key: new content key and ciphertext for the remaining recipients.
	key2, _ := NewContentKey()
	added2, err := owner.files.AddPrivate(ctx, bytes.NewReader(secret), key2, nil)
	if err != nil {
		t.Fatal(err)
	}
	keys2, _ := WrapKey(key2, "acme", "clip", 2, recipients(t, n, owner.key.ID()))
	mustDo(t, n, owner.key, &record.FileRekey{Org: "acme", Name: "clip", CID: added2.CID.String(), Size: added2.Size, Keys: keys2})
	m2 := manifest(t, n, "acme", "clip")
	if m2.Version != 2 || m2.CID == m.CID {
		t.Fatalf("after re-key: version %d cid %s", m2.Version, m2.CID)
	}
	k2, err := UnwrapKey(m2, owner.key.ID(), owner.key)
	if err != nil || !bytes.Equal(k2, key2) {
		t.Fatalf("owner's new key: %v", err)
	}
	// The old key does not open the new version.
	root2, _ := firmware.ParseCID(m2.CID)
	if _, err := friend.files.GetPrivate(ctx, root2, k, &bytes.Buffer{}, GetOptions{Peers: []peer.AddrInfo{owner.info()}}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("the revoked key on the re-keyed file: %v", err)
	}
}

// The ledger refuses what a manifest must not hold.
func TestFileTxRules(t *testing.T) {
	n := newTestNet(t)
	acmeDev, _ := n.ledger.Device("acme", "sensor", identity.Ed25519)
	betaDev, _ := n.ledger.Device("beta", "sensor", identity.Ed25519)
	cidStr := "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"
	if err := n.ledger.Do(betaDev, &record.FilePublish{Org: "acme", Name: "x", CID: cidStr, Size: 1}); err == nil {
		t.Fatal("a beta device published as acme")
	}
	mustDo(t, n, acmeDev, &record.FilePublish{Org: "acme", Name: "x", CID: cidStr, Size: 1})
	if err := n.ledger.Do(acmeDev, &record.FilePublish{Org: "acme", Name: "x", CID: cidStr, Size: 1}); err == nil {
		t.Fatal("published twice")
	}
	if err := n.ledger.Do(n.ledger.Admins["acme"], &record.FileShare{Org: "acme", Name: "x", Keys: []record.WrappedKey{{Recipient: betaDev.ID(), Suite: 1, Sealed: []byte{1}}}}); err == nil {
		t.Fatal("shared a key of a public file")
	}
	mustDo(t, n, acmeDev, &record.FilePinMsg{CID: cidStr})
	st, _ := n.ledger.View()
	pins, err := st.FilePins(cidStr)
	if err != nil || len(pins) != 1 || pins[0].Pinner != acmeDev.ID() {
		t.Fatalf("pins %v %v", pins, err)
	}
	mustDo(t, n, acmeDev, &record.FilePinMsg{CID: cidStr, Unpin: true})
	if err := n.ledger.Do(acmeDev, &record.FilePinMsg{CID: cidStr, Unpin: true}); err == nil {
		t.Fatal("unpinned twice")
	}
	fs, err := st.Files("acme", "", 10)
	if err != nil || len(fs) != 1 || fs[0].Owner != acmeDev.ID() {
		t.Fatalf("files %v %v", fs, err)
	}
	bad := []record.Msg{
		&record.FilePublish{Org: "acme", Name: "a/b", CID: cidStr},
		&record.FilePublish{Org: "acme", Name: "y", CID: "not a cid"},
		&record.FilePublish{Org: "acme", Name: "y", CID: cidStr, Keys: []record.WrappedKey{{Recipient: acmeDev.ID(), Suite: 1, Sealed: []byte{1}}}},
		&record.FileShare{Org: "acme", Name: "y", Keys: []record.WrappedKey{{Recipient: betaDev.ID(), Suite: 1, Sealed: []byte{1}}, {Recipient: acmeDev.ID(), Suite: 1, Sealed: []byte{1}}}[:2]},
	}
	for i, m := range bad {
		if err := m.ValidateBasic(); err == nil {
			if i == 3 && betaDev.ID() < acmeDev.ID() {
				continue // happened to be sorted
			}
			t.Errorf("%d: %T passed ValidateBasic", i, m)
		}
	}
}

// FuzzDecrypt: the decrypter never panics and never returns plaintext for
// bytes that were not made by Encrypt with the key.
func FuzzDecrypt(f *testing.F) {
	key := bytes.Repeat([]byte{7}, KeySize)
	for _, n := range []int{0, 10, SegmentSize + 3} {
		var ct bytes.Buffer
		if _, err := Encrypt(&ct, bytes.NewReader(make([]byte, n)), key); err != nil {
			f.Fatal(err)
		}
		f.Add(ct.Bytes())
	}
	f.Add([]byte("TNF1\x00\x00\x00\x10"))
	f.Add([]byte("TNF1\xff\xff\xff\xff0123456789abcdef"))
	f.Fuzz(func(t *testing.T, b []byte) {
		pt, err := Decrypt(b, key)
		if err != nil {
			return
		}
		// What opened must be the plaintext of an encryption of it with some segment size.
		if len(b) < headerSize+gcmOverhead || len(pt) > len(b) {
			t.Fatalf("opened %d bytes from %d", len(pt), len(b))
		}
	})
}

package reading

import (
	"bytes"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/thingnet/thingnet/identity"
)

var update = flag.Bool("update", false, "rewrite the generated parts of docs/readings.md")

const docPath = "../docs/readings.md"

// TestDocs checks that the generated parts of docs/readings.md (the
// annotated examples and the size table) are what this package produces.
// Run with -update to rewrite them.
func TestDocs(t *testing.T) {
	sections := map[string]string{
		"single": docSingle(t),
		"batch":  docBatch(t),
		"sizes":  docSizes(t),
		"cwt":    docCWT(t),
	}
	doc, err := os.ReadFile(filepath.FromSlash(docPath))
	if err != nil {
		t.Fatal(err)
	}
	got, err := replaceSections(string(doc), sections)
	if err != nil {
		t.Fatal(err)
	}
	if got == string(doc) {
		return
	}
	if *update {
		if err := os.WriteFile(filepath.FromSlash(docPath), []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("rewrote %s", docPath)
		return
	}
	t.Errorf("%s is out of date; run go test ./reading -run TestDocs -update\n%s", docPath, firstDiff(string(doc), got))
}

// replaceSections replaces the text between "<!-- generated:NAME -->" and
// the next "<!-- end generated -->" with sections[NAME]. Every section must
// appear exactly once.
func replaceSections(doc string, sections map[string]string) (string, error) {
	const endMark = "<!-- end generated -->"
	for name, body := range sections {
		start := "<!-- generated:" + name + " -->\n"
		if strings.Count(doc, start) != 1 {
			return "", fmt.Errorf("%s: want exactly one %q", docPath, start)
		}
		i := strings.Index(doc, start) + len(start)
		j := strings.Index(doc[i:], endMark)
		if j < 0 {
			return "", fmt.Errorf("%s: section %s has no %q", docPath, name, endMark)
		}
		doc = doc[:i] + body + doc[i+j:]
	}
	return doc, nil
}

// firstDiff shows the first line that differs.
func firstDiff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := range min(len(al), len(bl)) {
		if al[i] != bl[i] {
			return fmt.Sprintf("line %d:\n  doc:  %s\n  want: %s", i+1, al[i], bl[i])
		}
	}
	return fmt.Sprintf("the doc has %d lines, want %d", len(al), len(bl))
}

// exampleKey is the device key of the examples: Ed25519 with the seed
// 0x01 repeated 32 times, so that its signatures are fixed.
func exampleKey(t testing.TB) *identity.Key { return seededKey(t, identity.Ed25519, 1) }

func exampleReading(seq uint64, at time.Duration, v float64) Reading {
	return Reading{Seq: seq, Time: testTime.Add(at), ContentType: "temperature/celsius", Value: fptr(v)}
}

// block formats an annotated listing and the message in one piece.
func block(listing string, msg []byte) string {
	var b strings.Builder
	b.WriteString("```\n" + listing + "\n```\n\nThe same ")
	fmt.Fprintf(&b, "%d bytes in one piece:\n\n```\n", len(msg))
	h := hex.EncodeToString(msg)
	for i := 0; i < len(h); i += 64 {
		b.WriteString(h[i:min(i+64, len(h))] + "\n")
	}
	b.WriteString("```\n")
	return b.String()
}

func docSingle(t *testing.T) string {
	k := exampleKey(t)
	r := exampleReading(42, 0, 21.5)
	msg := mustSign(t, k, k.ID(), r)
	e := mustDecode(t, msg)
	if err := e.Verify(k.Public()); err != nil {
		t.Fatal(err)
	}
	tbs, err := e.ToBeSigned()
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("Device `%s` (Ed25519, seed `01` × 32), seq 42, %s, `%s`, 21.5:\n\n",
		k.ID(), r.Time.Format("2006-01-02T15:04:05.000Z"), r.ContentType) +
		block(annotate(msg, "payload"), msg) +
		"\nThe signature is the Ed25519 signature of this Sig_structure:\n\n```\n" +
		annotateToBeSigned(tbs, "payload") + "\n```\n"
}

func docBatch(t *testing.T) string {
	k := exampleKey(t)
	rs := []Reading{
		exampleReading(43, 10*time.Second, 21.625),
		exampleReading(44, 20*time.Second, 21.4),
		exampleReading(45, 30*time.Second, 22),
	}
	msg := mustSign(t, k, k.ID(), rs...)
	if err := mustDecode(t, msg).Verify(k.Public()); err != nil {
		t.Fatal(err)
	}
	return "The same device, seqs 43 to 45, 10 s apart, values 21.625, 21.4 and 22 " +
		"(21.4 has no exact half or single float, so it takes a double):\n\n" +
		block(annotate(msg, "payload"), msg)
}

// docSizes tabulates the bytes on the wire per reading.
func docSizes(t *testing.T) string {
	var b strings.Builder
	b.WriteString("| key | device id | single reading | batch of 10 | per reading in a batch of 10 | CWT (bytes / as text) |\n")
	b.WriteString("| --- | --- | --- | --- | --- | --- |\n")
	for _, alg := range allAlgs() {
		k := seededKey(t, alg, 1)
		single := mustSign(t, k, k.ID(), exampleReading(1, 0, 21.5))
		rs := make([]Reading, 10)
		for i := range rs {
			rs[i] = exampleReading(uint64(i+1), time.Duration(i)*10*time.Second, 21.5)
		}
		batch := mustSign(t, k, k.ID(), rs...)
		tok, err := identity.NewCWT(k, k.ID(), "thingnet-devnet", testTime, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "| %s | %d bytes | %d | %d | %.1f | %d / %d |\n", map[identity.Algorithm]string{identity.Ed25519: "Ed25519", identity.P256: "P-256"}[alg],
			len(k.ID()), len(single), len(batch), float64(len(batch))/10, len(tok), len(identity.EncodeCWTPassword(tok)))
	}
	return b.String()
}

func docCWT(t *testing.T) string {
	k := exampleKey(t)
	cti, _ := hex.DecodeString("000102030405060708090a0b0c0d0e0f")
	claims := map[int]any{
		1: k.ID(), 2: k.ID(), 3: "thingnet-devnet",
		4: uint64(testTime.Add(time.Hour).Unix()), 6: uint64(testTime.Unix()), 7: cti,
	}
	tok, err := identity.SignCOSE(k, k.ID(), encode(t, claims), nil)
	if err != nil {
		t.Fatal(err)
	}
	// The example is a token that identity accepts, with these claims.
	c, err := identity.VerifyCWT(tok, k.Public(), "thingnet-devnet", testTime.Add(time.Minute), 0)
	if err != nil {
		t.Fatalf("the example token does not verify: %v", err)
	}
	if !bytes.Equal(c.ID, cti) || !c.Expiry.Equal(testTime.Add(time.Hour)) {
		t.Fatalf("the example token has claims %+v", c)
	}
	return fmt.Sprintf("Device as above, audience `thingnet-devnet`, issued %s, valid one hour, cti `000102…0f`:\n\n",
		testTime.Format(time.RFC3339)) +
		block(annotate(tok, "claims"), tok) +
		"\nAs an MQTT password in text form (base64url, no padding):\n\n```\n" +
		identity.EncodeCWTPassword(tok) + "\n```\n"
}

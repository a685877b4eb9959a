package reading

import (
	"encoding/binary"
	"fmt"
	"strings"
	"time"
)

// This file prints CBOR as annotated hex for docs/readings.md: one item per
// line (long strings over several), indented by nesting, with a comment
// naming the field. It knows the layouts of this package's messages.

// keyNames names the map keys of each kind of map.
var keyNames = map[string]map[uint64]string{
	"protected header": {1: "alg", 4: "kid"},
	"payload":          {1: "device", 2: "seq", 3: "time", 4: "content type", 5: "value", 6: "bytes", 7: "readings", 8: "attested device"},
	"batch item":       {2: "seq", 3: "time", 4: "content type", 5: "value", 6: "bytes"},
	"claims":           {1: "iss", 2: "sub", 3: "aud", 4: "exp", 6: "iat", 7: "cti"},
}

const (
	hexColumn   = 62 // where comments start
	bytesPerRow = 16
)

// annotator writes the lines of an annotated listing of data.
type annotator struct {
	data  []byte
	lines []string
	parts []string // names of the items of the outer array
	lead  int      // if > 0, where the next line starts (a map key before its value)
}

// cosePartNames name the items of a COSE_Sign1 array.
var cosePartNames = []string{"protected", "unprotected", "payload", "signature"}

// annotate returns the annotated listing of a COSE_Sign1 message (with
// any tags) whose payload is a map of the given kind.
func annotate(msg []byte, payloadKind string) string {
	a := &annotator{data: msg, parts: cosePartNames}
	a.item(0, 0, "", "", payloadKind)
	return strings.Join(a.lines, "\n")
}

// annotateToBeSigned returns the annotated listing of a Sig_structure.
func annotateToBeSigned(tbs []byte, payloadKind string) string {
	a := &annotator{data: tbs, parts: []string{"context", "protected", "external_aad", "payload"}}
	a.item(0, 0, "", "", payloadKind)
	return strings.Join(a.lines, "\n")
}

// emit writes one line: the hex of data[from:to], indented, and a note.
func (a *annotator) emit(indent, from, to int, note string) {
	if a.lead > 0 {
		from, a.lead = a.lead, 0
	}
	var b strings.Builder
	b.WriteString(strings.Repeat("  ", indent))
	for i, c := range a.data[from:to] {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%02x", c)
	}
	if note != "" {
		b.WriteString(strings.Repeat(" ", max(1, hexColumn-b.Len())))
		b.WriteString("# " + note)
	}
	a.lines = append(a.lines, b.String())
}

// head reads the head of the item at off: major type, argument, size.
func (a *annotator) head(off int) (major byte, arg uint64, n int) {
	ib := a.data[off]
	major, ai := ib>>5, ib&0x1f
	switch ai {
	case 24:
		return major, uint64(a.data[off+1]), 2
	case 25:
		return major, uint64(binary.BigEndian.Uint16(a.data[off+1:])), 3
	case 26:
		return major, uint64(binary.BigEndian.Uint32(a.data[off+1:])), 5
	case 27:
		return major, binary.BigEndian.Uint64(a.data[off+1:]), 9
	}
	return major, uint64(ai), 1
}

// scalar describes the item at off if it fits one line: an integer, a
// float, or a short text string. label names the field it is the value of.
func (a *annotator) scalar(off int, label string) (note string, end int, ok bool) {
	major, arg, n := a.head(off)
	end = off + n
	switch major {
	case 0:
		note = fmt.Sprint(arg)
		switch label {
		case "3 (time)":
			note += " = " + time.UnixMilli(int64(arg)).UTC().Format("2006-01-02T15:04:05.000Z")
		case "4 (exp)", "6 (iat)":
			note += " = " + time.Unix(int64(arg), 0).UTC().Format(time.RFC3339)
		}
	case 1:
		note = fmt.Sprint(-1 - int64(arg))
		if label == "1 (alg)" {
			note += map[int64]string{-8: " (EdDSA)", -7: " (ES256)"}[-1-int64(arg)]
		}
	case 3:
		end += int(arg)
		if end-off > bytesPerRow {
			return "", 0, false
		}
		note = fmt.Sprintf("%q", a.data[off+n:end])
	case 7:
		var v float64
		if err := cdc.dec.Unmarshal(a.data[off:end], &v); err != nil {
			return "", 0, false
		}
		note = fmt.Sprintf("%v (float%d)", v, map[int]int{3: 16, 5: 32, 9: 64}[n])
	default:
		return "", 0, false
	}
	if label != "" {
		note = label + ": " + note
	}
	return note, end, true
}

// item annotates the item at off and returns the offset after it. label
// names the field it is the value of; kind is the kind of map it is, if a
// map; payload is the kind of the COSE payload.
func (a *annotator) item(off, indent int, label, kind, payload string) int {
	if note, end, ok := a.scalar(off, label); ok {
		a.emit(indent, off, end, note)
		return end
	}
	prefix := label
	if prefix != "" {
		prefix += ": "
	}
	major, arg, n := a.head(off)
	p := off + n
	switch major {
	case 2, 3:
		end := p + int(arg)
		what := fmt.Sprintf("bstr(%d)", arg)
		if major == 3 {
			what = fmt.Sprintf("tstr(%d)", arg)
		}
		if inner := a.embedded(label, payload); inner != "" {
			a.emit(indent, off, p, prefix+what+", holding the "+inner)
			a.item(p, indent+1, "", inner, payload)
			return end
		}
		a.emit(indent, off, p, prefix+what)
		for ; p < end; p += bytesPerRow {
			note, row := "", a.data[p:min(p+bytesPerRow, end)]
			if major == 3 || printable(row) {
				note = fmt.Sprintf("%q", row)
			}
			a.emit(indent+1, p, min(p+bytesPerRow, end), note)
		}
		return end
	case 4:
		a.emit(indent, off, p, fmt.Sprintf("%sarray(%d)", prefix, arg))
		for i := range int(arg) {
			switch {
			case label == "7 (readings)":
				p = a.item(p, indent+1, "", "batch item", payload)
			case label == "" && kind == "":
				// The outer array: name its parts.
				p = a.item(p, indent+1, a.parts[i], "", payload)
			default:
				p = a.item(p, indent+1, fmt.Sprintf("%s[%d]", label, i), "", payload)
			}
		}
		return p
	case 5:
		note := fmt.Sprintf("%smap(%d)", prefix, arg)
		if kind != "" {
			note = fmt.Sprintf("map(%d): %s", arg, kind)
		}
		a.emit(indent, off, p, note)
		for range int(arg) {
			_, k, kn := a.head(p)
			name := fmt.Sprint(k)
			if s := keyNames[kind][k]; s != "" {
				name = fmt.Sprintf("%d (%s)", k, s)
			}
			// A key and a one-line value share the line.
			if note, end, ok := a.scalar(p+kn, name); ok && end-p <= bytesPerRow {
				a.emit(indent+1, p, end, note)
				p = end
				continue
			}
			a.lead = p
			p = a.item(p+kn, indent+1, name, "", payload)
		}
		return p
	case 6:
		a.emit(indent, off, p, fmt.Sprintf("tag %d%s", arg, map[uint64]string{18: " (COSE_Sign1)", 61: " (CWT)"}[arg]))
		return a.item(p, indent, label, kind, payload)
	}
	panic(fmt.Sprintf("annotate: unexpected item 0x%02x at %d", a.data[off], off))
}

// embedded returns the kind of map that the byte string labelled label
// holds, or "".
func (a *annotator) embedded(label, payload string) string {
	switch label {
	case "protected":
		return "protected header"
	case "payload":
		return payload
	}
	return ""
}

// printable reports whether b is all printable ASCII.
func printable(b []byte) bool {
	for _, c := range b {
		if c < 0x20 || c > 0x7e {
			return false
		}
	}
	return len(b) > 0
}

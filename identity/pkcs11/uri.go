package pkcs11

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// URI is a PKCS#11 token URI (RFC 7512) naming a key: the token that holds
// it, the object (by label and/or id), the module (the token's PKCS#11
// library) and how to get the PIN.
//
//	pkcs11:token=thingnet;object=device;id=%01?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/etc/thingnet/pin
type URI struct {
	// Path attributes.
	Token        string // token label
	Manufacturer string // token manufacturer
	Model        string // token model
	Serial       string // token serial number
	Object       string // the key's label (CKA_LABEL)
	ID           []byte // the key's id (CKA_ID)
	Type         string // "private" (what a key URI names), "public", "cert", "secret-key", "data"; "" any
	SlotID       *int   // slot-id
	// LibraryManufacturer, LibraryDescription, LibraryVersion,
	// SlotManufacturer and SlotDescription are accepted and kept, not used
	// to choose a module or slot.
	LibraryManufacturer string
	LibraryDescription  string
	LibraryVersion      string
	SlotManufacturer    string
	SlotDescription     string

	// Query attributes.
	ModulePath string // the PKCS#11 library to load
	ModuleName string // its name, looked up in the usual directories when ModulePath is empty
	PINValue   string // the user PIN itself (RFC 7512 pin-value: for tests; prefer PINSource)
	PINSource  string // where to read the PIN: "file:/path" or a path

	// Vendor holds x- attributes, path and query alike.
	Vendor map[string]string
}

// ErrBadURI is what ParseURI wraps for a URI it refuses.
var ErrBadURI = errors.New("pkcs11: bad token URI")

// maxURI bounds a URI's length: a configuration value, not a document.
const maxURI = 4096

// IsURI reports whether s is meant as a PKCS#11 URI (it starts with
// "pkcs11:"), well-formed or not.
func IsURI(s string) bool { return len(s) >= 7 && strings.EqualFold(s[:7], "pkcs11:") }

// ParseURI parses an RFC 7512 PKCS#11 URI. Attributes are
// percent-decoded; each may appear once; an attribute RFC 7512 does not
// define is refused unless it starts with "x-" (vendor attributes, kept in
// Vendor). A key URI must name its token (token, serial or slot-id) and
// its object (object or id). The error says what is wrong and where.
func ParseURI(s string) (*URI, error) {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w %s: %s", ErrBadURI, quote(s), fmt.Sprintf(format, a...))
	}
	if len(s) > maxURI {
		return nil, fmt.Errorf("%w: %d bytes, at most %d", ErrBadURI, len(s), maxURI)
	}
	if !IsURI(s) {
		return nil, bad(`it does not start with "pkcs11:"`)
	}
	rest := s[7:]
	path, query, _ := strings.Cut(rest, "?")
	if strings.Contains(query, "?") {
		return nil, bad(`a second "?"`)
	}
	if strings.Contains(rest, "#") {
		return nil, bad(`a "#": PKCS#11 URIs have no fragment (percent-encode it as %%23)`)
	}
	u := &URI{}
	seen := map[string]bool{}
	parse := func(part, sep, where string, set func(name, value string, raw []byte) error) error {
		if part == "" {
			return nil
		}
		for _, attr := range strings.Split(part, sep) {
			name, raw, ok := strings.Cut(attr, "=")
			if !ok {
				return bad("%s attribute %q has no \"=\"", where, attr)
			}
			name = strings.ToLower(name)
			if name == "" {
				return bad("a %s attribute with no name", where)
			}
			if seen[name] {
				return bad("attribute %q appears twice", name)
			}
			seen[name] = true
			v, err := unescape(raw)
			if err != nil {
				return bad("attribute %q: %v", name, err)
			}
			if err := set(name, string(v), v); err != nil {
				return bad("attribute %q: %v", name, err)
			}
		}
		return nil
	}
	err := parse(path, ";", "path", func(name, v string, raw []byte) error {
		switch name {
		case "token":
			u.Token = v
		case "manufacturer":
			u.Manufacturer = v
		case "model":
			u.Model = v
		case "serial":
			u.Serial = v
		case "object":
			u.Object = v
		case "id":
			if len(raw) == 0 {
				return errors.New("empty")
			}
			u.ID = raw
		case "type":
			switch v {
			case "private", "public", "cert", "secret-key", "data":
				u.Type = v
			default:
				return fmt.Errorf("%q: want private, public, cert, secret-key or data", v)
			}
		case "slot-id":
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 || strconv.Itoa(n) != v {
				return fmt.Errorf("%q is not a slot number", v)
			}
			u.SlotID = &n
		case "library-manufacturer":
			u.LibraryManufacturer = v
		case "library-description":
			u.LibraryDescription = v
		case "library-version":
			u.LibraryVersion = v
		case "slot-manufacturer":
			u.SlotManufacturer = v
		case "slot-description":
			u.SlotDescription = v
		case "pin-value", "pin-source", "module-path", "module-name":
			return errors.New("a query attribute (after \"?\", separated by \"&\"), not a path attribute")
		default:
			return vendor(u, name, v)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = parse(query, "&", "query", func(name, v string, _ []byte) error {
		switch name {
		case "pin-value":
			u.PINValue = v
		case "pin-source":
			u.PINSource = v
		case "module-path":
			u.ModulePath = v
		case "module-name":
			u.ModuleName = v
		default:
			if !strings.HasPrefix(name, "x-") {
				if _, isPath := pathAttrs[name]; isPath {
					return errors.New("a path attribute (before \"?\", separated by \";\"), not a query attribute")
				}
			}
			return vendor(u, name, v)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	switch {
	case u.PINValue != "" && u.PINSource != "":
		return nil, bad("both pin-value and pin-source: give one")
	case u.Token == "" && u.Serial == "" && u.SlotID == nil:
		return nil, bad("it names no token: give token=LABEL, serial= or slot-id=")
	case u.Object == "" && u.ID == nil:
		return nil, bad("it names no key: give object=LABEL or id=%%XX...")
	case u.Type != "" && u.Type != "private":
		return nil, bad("type=%s: a signing key is type=private", u.Type)
	}
	return u, nil
}

var pathAttrs = map[string]struct{}{"token": {}, "manufacturer": {}, "model": {}, "serial": {}, "object": {}, "id": {}, "type": {},
	"slot-id": {}, "library-manufacturer": {}, "library-description": {}, "library-version": {}, "slot-manufacturer": {}, "slot-description": {}}

func vendor(u *URI, name, v string) error {
	if !strings.HasPrefix(name, "x-") {
		return errors.New("not an RFC 7512 attribute (vendor attributes start with \"x-\")")
	}
	if u.Vendor == nil {
		u.Vendor = map[string]string{}
	}
	u.Vendor[name] = v
	return nil
}

// unescape percent-decodes s strictly: every "%" starts two hex digits.
func unescape(s string) ([]byte, error) {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '%' {
			out = append(out, c)
			continue
		}
		if i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
			return nil, fmt.Errorf("%q at offset %d is not followed by two hex digits", "%", i)
		}
		out = append(out, unhex(s[i+1])<<4|unhex(s[i+2]))
		i += 2
	}
	return out, nil
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c >= 'a':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}

// String writes u back as a URI (PIN value left out), percent-encoding
// what needs it.
func (u *URI) String() string {
	var path, query []string
	add := func(list *[]string, name, v string) {
		if v != "" {
			*list = append(*list, name+"="+escape(v))
		}
	}
	add(&path, "token", u.Token)
	add(&path, "manufacturer", u.Manufacturer)
	add(&path, "model", u.Model)
	add(&path, "serial", u.Serial)
	add(&path, "object", u.Object)
	if u.ID != nil {
		add(&path, "id", string(u.ID))
	}
	add(&path, "type", u.Type)
	if u.SlotID != nil {
		add(&path, "slot-id", strconv.Itoa(*u.SlotID))
	}
	add(&query, "module-path", u.ModulePath)
	add(&query, "module-name", u.ModuleName)
	add(&query, "pin-source", u.PINSource)
	s := "pkcs11:" + strings.Join(path, ";")
	if len(query) > 0 {
		s += "?" + strings.Join(query, "&")
	}
	return s
}

// escape percent-encodes every byte that is not an RFC 3986 unreserved
// character, ":", "/" (module paths stay readable) or "@".
func escape(v string) string {
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		c := v[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-._~:/@", c) >= 0 {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// quote shows a URI in an error with any pin-value hidden.
func quote(s string) string {
	if i := strings.Index(strings.ToLower(s), "pin-value="); i >= 0 {
		j := strings.IndexAny(s[i:], "&;")
		if j < 0 {
			j = len(s) - i
		}
		s = s[:i] + "pin-value=***" + s[i+j:]
	}
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return strconv.Quote(s)
}

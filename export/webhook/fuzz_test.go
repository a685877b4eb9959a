package webhook

import (
	"net/http"
	"testing"
	"time"

	"github.com/thingnet/thingnet/identity"
)

// FuzzVerify: any signature and timestamp headers are refused or
// verified, never a panic; nothing but a real signature verifies.
func FuzzVerify(f *testing.F) {
	f.Add(`keyid="did:key:z6Mk", sig="AAAA"`, "1700000000", "gw/1/1", []byte(`{}`))
	f.Add(`keyid="x"`, "-1", "", []byte(nil))
	f.Add(`sig="!!", keyid=did`, "99999999999999999999", "a/b/c", []byte(`{"a":1}`))
	f.Add(`keyid="did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK", sig="`+string(make([]byte, 3))+`"`, "1700000000", "", []byte{0})
	f.Fuzz(func(t *testing.T, sig, ts, delivery string, body []byte) {
		h := http.Header{}
		h.Set(HeaderSignature, sig)
		h.Set(HeaderTimestamp, ts)
		h.Set(HeaderDelivery, delivery)
		if _, err := Verify(h, body, identity.ParseDID, time.Unix(1_700_000_000, 0), time.Hour); err == nil {
			t.Fatalf("Verify(%q, %q) passes without a signature by the key", sig, ts)
		}
	})
}

package main

import (
	"context"
	"strings"
	"testing"
)

// Flags that cannot work are refused before anything starts, saying why.
func TestFlagErrors(t *testing.T) {
	base := []string{"-state", t.TempDir(), "-chain", "c", "-gateway", "http://127.0.0.1:1"}
	cases := map[string][]string{
		"-firmware-every needs -trust":                       {"-firmware-every", "1"},
		"want a number of wakes":                             {"-firmware-every", "-1"},
		"want a PKCS#11 token URI":                           {"-key", "/etc/key.pem"},
		"-key-alg: identity: unsupported algorithm: \"rsa\"": {"-key-alg", "rsa"},
	}
	if tokenKeys == nil {
		cases["built without PKCS#11; build it with CGO_ENABLED=1 go build -tags pkcs11"] = []string{"-key", "pkcs11:token=t;object=k"}
	} else {
		cases[`attribute "obj": not an RFC 7512 attribute`] = []string{"-key", "pkcs11:token=t;obj=k"}
	}
	for want, args := range cases {
		err := run(context.Background(), append(base[:len(base):len(base)], args...), &strings.Builder{})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%v: %v; want an error saying %q", args, err, want)
		}
	}
}

package pkcs11

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// ErrNoCgo is returned by Open and Generate in a program built with
// CGO_ENABLED=0: a PKCS#11 module is a C library.
var ErrNoCgo = errors.New("pkcs11: this program was built without cgo, and a PKCS#11 module is a C library: build it with CGO_ENABLED=1 (docs/devices.md)")

// ErrNoKey is returned when the token holds no key the URI names.
var ErrNoKey = errors.New("pkcs11: no such key in the token")

// moduleDirs are where a module-name is looked for.
var moduleDirs = []string{"/usr/lib/softhsm", "/usr/lib/pkcs11", "/usr/lib/x86_64-linux-gnu/pkcs11", "/usr/lib/aarch64-linux-gnu/pkcs11",
	"/usr/lib/arm-linux-gnueabihf/pkcs11", "/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib/arm-linux-gnueabihf",
	"/usr/local/lib", "/usr/lib"}

// Module is the path of the PKCS#11 library the URI names: module-path,
// or module-name looked up as NAME.so (or NAME) in the usual directories,
// or the environment's THINGNET_PKCS11_MODULE.
func (u *URI) Module() (string, error) {
	if u.ModulePath != "" {
		return u.ModulePath, nil
	}
	if u.ModuleName != "" {
		if strings.ContainsRune(u.ModuleName, '/') {
			return "", fmt.Errorf("pkcs11: module-name %q contains a \"/\": give a path as module-path", u.ModuleName)
		}
		for _, d := range moduleDirs {
			for _, n := range []string{u.ModuleName + ".so", u.ModuleName} {
				p := filepath.Join(d, n)
				if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
					return p, nil
				}
			}
		}
		return "", fmt.Errorf("pkcs11: module-name %q: no %s.so in %s", u.ModuleName, u.ModuleName, strings.Join(moduleDirs, ", "))
	}
	if p := os.Getenv("THINGNET_PKCS11_MODULE"); p != "" {
		return p, nil
	}
	return "", errors.New("pkcs11: the URI names no module: add ?module-path=/path/to/module.so (or set THINGNET_PKCS11_MODULE)")
}

// PIN is the user PIN the URI gives: pin-value, or the first line of the
// file pin-source names ("file:/path" or a path), or the environment's
// THINGNET_PKCS11_PIN; "" if none (a token that needs no login).
func (u *URI) PIN() (string, error) {
	if u.PINValue != "" {
		return u.PINValue, nil
	}
	if u.PINSource != "" {
		p := strings.TrimPrefix(u.PINSource, "file:")
		p = strings.TrimPrefix(p, "//") // file:///path
		if !strings.HasPrefix(p, "/") {
			return "", fmt.Errorf("pkcs11: pin-source %q: want file:/absolute/path", u.PINSource)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return "", fmt.Errorf("pkcs11: pin-source: %w", err)
		}
		line, _, _ := strings.Cut(string(b), "\n")
		return strings.TrimRight(line, "\r"), nil
	}
	return os.Getenv("THINGNET_PKCS11_PIN"), nil
}

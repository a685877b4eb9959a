package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/thingnet/thingnet/client"
	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/identity/pkcs11"
)

// globals are the flags every command shares.
type globals struct {
	node     string
	keystore string
	output   string
	// Who reads: a keystore key that signs tokens, or a ready token
	// (the read paths serve values only to whom may read them).
	identity   string
	identityAs string
	token      string
	reader     *client.Identity // loaded once from identity or token
}

func newRoot() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:           "thingnet",
		Short:         "thingnet: a decentralized, ledger-backed platform for the Internet of Things",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	pf := root.PersistentFlags()
	pf.StringVar(&g.node, "node", envOr("THINGNET_NODE", "http://127.0.0.1:26602"), "API address of the node to talk to (env THINGNET_NODE)")
	pf.StringVar(&g.keystore, "keystore", envOr("THINGNET_KEYSTORE", defaultKeystore()), "directory of key files (env THINGNET_KEYSTORE)")
	pf.StringVarP(&g.output, "output", "o", "text", "output format: text or json")
	pf.StringVar(&g.identity, "identity", envOr("THINGNET_IDENTITY", ""), "keystore name (or file) of the key you read as: a device, an organisation admin or a read grantee (env THINGNET_IDENTITY)")
	pf.StringVar(&g.identityAs, "identity-as", "", "the id --identity reads as, if not the key's did:key (a device whose key was rotated)")
	pf.StringVar(&g.token, "token", envOr("THINGNET_TOKEN", ""), "a token from `thingnet token` to read with, instead of --identity (env THINGNET_TOKEN)")
	root.AddCommand(
		keysCmd(g), nodeCmd(), genesisCmd(), devnetCmd(),
		orgCmd(g), governanceCmd(g), upgradeCmd(g), deviceCmd(g), grantCmd(g), validatorCmd(g), txCmd(g), readingsCmd(g), verifyCmd(g), msgCmd(g), benchCmd(),
		statusCmd(g), eventsCmd(g), tokenCmd(g),
		agreementCmd(g), creditsCmd(g),
		fileCmd(g), firmwareCmd(g), dataCmd(g), auditCmd(g), rulesCmd(g),
		exportCmd(g),
		fleetCmd(g),   // fleet.go
		archiveCmd(g), // archivecmd.go
		jobCmd(g),     // job.go
	)
	return root
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func defaultHome() string {
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".thingnet")
	}
	return ".thingnet"
}

func defaultKeystore() string { return filepath.Join(defaultHome(), "keys") }

func (g *globals) ks() identity.Keystore { return identity.Keystore{Dir: g.keystore} }

// client is the API client, presenting the reader's identity (--identity
// or --token) if one is given.
func (g *globals) client() *client.Client {
	c := client.New(g.node)
	if g.reader == nil {
		switch {
		case g.token != "":
			tok, err := identity.DecodeCWTPassword(strings.TrimSpace(g.token))
			if err != nil {
				fmt.Fprintf(os.Stderr, "warning: --token is not a thingnet token (%v); reading anonymously\n", err)
				return c
			}
			g.reader = client.Token(tok)
		case g.identity != "":
			k, err := g.loadKey(g.identity)
			if err != nil {
				fmt.Fprintf(os.Stderr, "warning: --identity: %v; reading anonymously\n", err)
				return c
			}
			g.reader = &client.Identity{Key: k, ID: g.identityAs}
		default:
			return c
		}
	}
	return c.WithIdentity(g.reader)
}

// passphrase returns the passphrase for a key: $THINGNET_PASSPHRASE, else a
// prompt on a terminal, else empty.
func passphrase(prompt string, confirm bool) ([]byte, error) {
	if v, ok := os.LookupEnv("THINGNET_PASSPHRASE"); ok {
		return []byte(v), nil
	}
	fd := int(os.Stdin.Fd())
	if !term.IsTerminal(fd) {
		return nil, nil
	}
	fmt.Fprintf(os.Stderr, "%s: ", prompt)
	p, err := term.ReadPassword(fd)
	fmt.Fprintln(os.Stderr)
	if err != nil {
		return nil, err
	}
	if confirm {
		fmt.Fprint(os.Stderr, "again: ")
		q, err := term.ReadPassword(fd)
		fmt.Fprintln(os.Stderr)
		if err != nil {
			return nil, err
		}
		if string(p) != string(q) {
			return nil, errors.New("the passphrases differ")
		}
	}
	return p, nil
}

// loadKey loads a key by keystore name, from a file path, or from a
// PKCS#11 token by its RFC 7512 URI (pkcs11:token=...;object=...).
func (g *globals) loadKey(name string) (*identity.Key, error) {
	if name == "" {
		return nil, errors.New("no signing key: pass --key NAME (see `thingnet keys list`)")
	}
	if pkcs11.IsURI(name) { // a key in a token: it signs there, for the life of the process
		k, _, err := pkcs11.Open(name)
		return k, err
	}
	ks := g.ks()
	load := func(pass []byte) (*identity.Key, error) {
		if strings.ContainsRune(name, os.PathSeparator) {
			return identity.LoadKeyFile(name, pass)
		}
		return ks.Load(name, pass)
	}
	k, err := load(nil)
	if errors.Is(err, identity.ErrWrongPassphrase) {
		pass, perr := passphrase("passphrase for key "+name, false)
		if perr != nil {
			return nil, perr
		}
		k, err = load(pass)
	}
	if errors.Is(err, identity.ErrKeyNotFound) {
		return nil, fmt.Errorf("no key %q in %s (create it with `thingnet keys new %s`, or set --keystore)", name, ks.Dir, name)
	}
	return k, err
}

// print writes v as JSON with --output json, else calls text.
func (g *globals) print(w io.Writer, v any, text func(io.Writer)) error {
	switch g.output {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	case "text", "":
		text(w)
		return nil
	default:
		return fmt.Errorf("--output %q: use text or json", g.output)
	}
}

func newLogger(level, format string) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(level))
	opts := &slog.HandlerOptions{Level: l}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}

// writeFile writes b to path (mode 0600), or to stdout for "-".
func writeFile(path string, b []byte) error {
	if path == "-" {
		_, err := os.Stdout.Write(b)
		return err
	}
	return os.WriteFile(path, b, 0o600)
}

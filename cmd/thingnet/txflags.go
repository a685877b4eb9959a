package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/thingnet/thingnet/client"
	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/record"
)

// txFlags are the flags of every command that sends a transaction.
type txFlags struct {
	key    string
	as     string
	noWait bool
}

func (t *txFlags) register(c *cobra.Command) {
	c.Flags().StringVar(&t.key, "key", envOr("THINGNET_KEY", ""), "keystore name (or file) of the signing key (env THINGNET_KEY)")
	c.Flags().StringVar(&t.as, "as", "", "sign as this account id (a device whose key was rotated); default: the key's did:key")
	c.Flags().BoolVar(&t.noWait, "no-wait", false, "return once the node accepts the tx, without waiting for the commit")
}

// send signs m and submits it, printing the outcome.
func (g *globals) send(cmd *cobra.Command, t *txFlags, m record.Msg) error {
	key, err := g.loadKey(t.key)
	if err != nil {
		return err
	}
	return g.sendWith(cmd, key, t, m)
}

// sendWith signs m with key, submits it and prints the outcome.
func (g *globals) sendWith(cmd *cobra.Command, key *identity.Key, t *txFlags, m record.Msg) error {
	return g.sendPrint(cmd, key, t, m, func(w io.Writer, res *client.SubmitResult) {
		fmt.Fprintf(w, "%s committed at height %d: tx %s\n", m.Kind(), res.Height, res.Hash)
	})
}

// sendPrint signs m with key and submits it; a refusal becomes an error
// that says what to do, and a committed result is printed with committed
// (as text) or as JSON.
func (g *globals) sendPrint(cmd *cobra.Command, key *identity.Key, t *txFlags, m record.Msg, committed func(io.Writer, *client.SubmitResult)) error {
	res, err := g.client().Send(cmd.Context(), key, t.as, m, !t.noWait)
	if err != nil {
		if e, ok := err.(*client.Error); ok {
			return fmt.Errorf("%s refused: %s: %s%s", m.Kind(), e.Code, e.Message, hint(e.Code))
		}
		return err
	}
	return g.print(cmd.OutOrStdout(), res, func(w io.Writer) {
		if t.noWait {
			fmt.Fprintf(w, "%s accepted: tx %s (not yet committed)\n", m.Kind(), res.Hash)
			return
		}
		committed(w, res)
	})
}

// hint says what to do about a refusal.
func hint(code string) string {
	switch code {
	case "unauthorized":
		return " (sign with a key that administers the organisation, or get a grant)"
	case "inactive_signer":
		return " (the signing device is suspended or revoked)"
	case "bad_signature":
		return " (wrong key for this account; after a rotation sign with the new key and --as DEVICE_ID)"
	case "bad_nonce":
		return " (another tx from this signer was committed meanwhile; run the command again)"
	case "unknown_signer":
		return " (the key is not a did:key nor a registered device)"
	}
	return ""
}

// resolveID accepts a did, or a keystore key name, and returns the did.
func (g *globals) resolveID(s string) (string, error) {
	if strings.HasPrefix(s, "did:") {
		return s, nil
	}
	info, err := g.ks().Info(s)
	if err != nil {
		return "", fmt.Errorf("%q is not a did:key nor a key in %s: %w", s, g.keystore, err)
	}
	return info.ID, nil
}

// resolvePrincipal accepts org:ID, device:DID, device:KEYNAME.
func (g *globals) resolvePrincipal(s string) (string, error) {
	typ, id, ok := strings.Cut(s, ":")
	if ok && typ == "device" && !strings.HasPrefix(id, "did:") {
		did, err := g.resolveID(id)
		if err != nil {
			return "", err
		}
		return "device:" + did, nil
	}
	return s, nil
}

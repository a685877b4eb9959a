package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/thingnet/thingnet/files"
	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/record"
)

func fileCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "file", Short: "Share content-addressed files over the mesh (IPFS CIDs); private files with keys on the ledger"}
	c.AddCommand(fileAddCmd(g), fileGetCmd(g), fileLsCmd(g), filePinCmd(g, true), filePinCmd(g, false), fileShareCmd(g), fileRevokeCmd(g), filePinsCmd(g))
	return c
}

// progressLine prints "label  done / total MiB  pct  rate" on one
// terminal line (stderr), at most 10 times a second.
func progressLine(w io.Writer, label string) (func(done, total int64), func()) {
	start := time.Now()
	var last time.Time
	var lastDone, lastTotal int64
	update := func(done, total int64) {
		lastDone, lastTotal = done, total
		if time.Since(last) < 100*time.Millisecond {
			return
		}
		last = time.Now()
		fmt.Fprintf(w, "\r%s  %s   ", label, files.Rate(done, total, time.Since(start)))
	}
	done := func() {
		fmt.Fprintf(w, "\r%s  %s   \n", label, files.Rate(lastDone, lastTotal, time.Since(start)))
	}
	return update, done
}

// contentClient returns a content client; with a key name, it carries the
// device's token for writes.
func (g *globals) contentClient(ctx context.Context, keyName, as string) (*files.Client, *identity.Key, error) {
	c := &files.Client{Base: g.node}
	if keyName == "" {
		return c, nil, nil
	}
	k, err := g.loadKey(keyName)
	if err != nil {
		return nil, nil, err
	}
	if as == "" {
		as = k.ID()
	}
	st, err := g.client().Status(ctx)
	if err != nil {
		return nil, nil, err
	}
	if c.Token, err = files.DeviceToken(k, as, st.ChainID); err != nil {
		return nil, nil, err
	}
	c.Device = as
	return c, k, nil
}

// splitFile parses ORG/NAME.
func splitFile(s string) (string, string, error) {
	org, name, ok := strings.Cut(s, "/")
	if !ok || org == "" || name == "" {
		return "", "", fmt.Errorf("%q is not ORG/NAME", s)
	}
	return org, name, nil
}

func (g *globals) manifest(ctx context.Context, org, name string) (*record.FileManifest, error) {
	var rec struct {
		Record record.FileManifest `json:"record"`
	}
	if err := g.client().Get(ctx, "/v1/files/"+org+"/"+name, &rec); err != nil {
		return nil, err
	}
	return &rec.Record, nil
}

// recipients looks up devices' current keys on the ledger.
func (g *globals) recipients(ctx context.Context, ids []string) ([]files.Recipient, error) {
	var out []files.Recipient
	for _, s := range ids {
		id, err := g.resolveID(s)
		if err != nil {
			return nil, err
		}
		var rec struct {
			Record record.Device `json:"record"`
		}
		if err := g.client().Get(ctx, "/v1/devices/"+id, &rec); err != nil {
			return nil, fmt.Errorf("recipient %s: %w", id, err)
		}
		r, err := files.RecipientOf(&rec.Record)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

func fileAddCmd(g *globals) *cobra.Command {
	var tf txFlags
	var publish, ctype string
	var private bool
	var to []string
	c := &cobra.Command{
		Use:   "add PATH",
		Short: "Add a file to the node (pinned, announced in the DHT); optionally publish its manifest, encrypted for recipients",
		Example: `  thingnet file add clip.mp4 --key gw-1
  thingnet file add fw.bin --key gw-1 --publish acme/fw-1.2 --type application/octet-stream
  thingnet file add secret.csv --key gw-1 --publish acme/secret --private --to sensor-2`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			f, err := os.Open(args[0])
			if err != nil {
				return err
			}
			defer f.Close()
			fi, err := f.Stat()
			if err != nil {
				return err
			}
			cl, key, err := g.contentClient(ctx, tf.key, tf.as)
			if err != nil {
				return err
			}
			if key == nil {
				return fmt.Errorf("adding needs a device key: --key NAME (the node stores files for registered devices)")
			}
			var org, name string
			if publish != "" {
				if org, name, err = splitFile(publish); err != nil {
					return err
				}
			} else if private {
				return fmt.Errorf("a private file needs --publish ORG/NAME: its wrapped keys live in the manifest")
			}
			update, finish := progressLine(cmd.ErrOrStderr(), "add")
			var body io.Reader = f
			var contentKey []byte
			if private {
				if contentKey, err = files.NewContentKey(); err != nil {
					return err
				}
				pr, pw := io.Pipe()
				go func() { _, err := files.Encrypt(pw, f, contentKey); pw.CloseWithError(err) }()
				body = pr
			}
			res, err := cl.Add(ctx, body, func(n int64) { update(n, fi.Size()) })
			finish()
			if err != nil {
				return err
			}
			if publish == "" {
				return g.print(cmd.OutOrStdout(), res, func(w io.Writer) { fmt.Fprintf(w, "%s  %d bytes\n", res.CID, res.Size) })
			}
			m := &record.FilePublish{Org: org, Name: name, CID: res.CID, Size: res.Size, ContentType: ctype, Private: private}
			if private {
				rs, err := g.recipients(ctx, append([]string{cl.Device}, to...))
				if err != nil {
					return err
				}
				if m.Keys, err = files.WrapKey(contentKey, org, name, 1, rs); err != nil {
					return err
				}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s  %d bytes\n", res.CID, res.Size)
			return g.sendWith(cmd, key, &tf, m)
		},
	}
	tf.register(c)
	c.Flags().StringVar(&publish, "publish", "", "record a manifest ORG/NAME on the ledger (file.publish)")
	c.Flags().StringVar(&ctype, "type", "", "content type for the manifest")
	c.Flags().BoolVar(&private, "private", false, "encrypt with a new content key, wrapped for you and each --to device")
	c.Flags().StringSliceVar(&to, "to", nil, "devices to wrap the key for (each needs a fetch grant on org:ORG/file/NAME)")
	return c
}

func fileGetCmd(g *globals) *cobra.Command {
	var key, as, out string
	c := &cobra.Command{
		Use:   "get CID|ORG/NAME",
		Short: "Fetch a file through the node (from every provider at once, each block checked); ORG/NAME reads the manifest and opens a private file with --key",
		Example: `  thingnet file get bafybei... -O clip.mp4
  thingnet file get acme/secret --key sensor-2 -O secret.csv`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			target, id := args[0], args[0]
			var contentKey []byte
			if strings.Contains(target, "/") {
				org, name, err := splitFile(target)
				if err != nil {
					return err
				}
				m, err := g.manifest(ctx, org, name)
				if err != nil {
					return err
				}
				id = m.CID
				if m.Private {
					k, err := g.loadKey(key)
					if err != nil {
						return fmt.Errorf("%s is private: --key of a device it was shared with: %w", target, err)
					}
					if as == "" {
						as = k.ID()
					}
					if contentKey, err = files.UnwrapKey(m, as, k); err != nil {
						return err
					}
				}
			}
			update, finish := progressLine(cmd.ErrOrStderr(), "get")
			defer finish()
			cl := &files.Client{Base: g.node}
			if contentKey != nil {
				return getPrivate(ctx, cl, id, contentKey, out, cmd.OutOrStdout(), update)
			}
			var w io.Writer = cmd.OutOrStdout()
			if out != "" {
				f, err := os.Create(out)
				if err != nil {
					return err
				}
				defer f.Close()
				w = f
			}
			_, err := cl.Get(ctx, id, w, update)
			return err
		},
	}
	c.Flags().StringVar(&key, "key", "", "device key that opens a private file")
	c.Flags().StringVar(&as, "as", "", "device id, if the key was rotated in")
	c.Flags().StringVarP(&out, "out", "O", "", "write to this file (default: stdout)")
	return c
}

// getPrivate downloads a private file and decrypts it segment by segment
// as it arrives (memory stays at one segment): into a temporary file that
// becomes out only once the whole file has opened, so a truncated,
// reordered or altered file leaves no output. Without out the verified
// plaintext is then copied to stdout.
func getPrivate(ctx context.Context, cl *files.Client, id string, key []byte, out string, stdout io.Writer, progress func(done, total int64)) error {
	pr, pw := io.Pipe()
	got := make(chan error, 1)
	go func() {
		_, err := cl.Get(ctx, id, pw, progress)
		pw.CloseWithError(err)
		got <- err
	}()
	dst := out
	if dst == "" {
		dir, err := os.MkdirTemp("", "thingnet-get-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		dst = filepath.Join(dir, "plain")
	}
	_, err := files.DecryptToFile(dst, pr, key)
	pr.CloseWithError(errors.New("decryption stopped")) // ends the download if decryption failed first
	gerr := <-got
	if err != nil {
		return err // the download's error, if it broke, is in it
	}
	if gerr != nil || out != "" {
		return gerr
	}
	f, err := os.Open(dst)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(stdout, f)
	return err
}

func filePinsCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "pins CID",
		Short: "List the nodes that recorded on the ledger that they pin CID (file.pin); downloads ask them first",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var p struct {
				Height int64            `json:"height"`
				Items  []record.FilePin `json:"items"`
			}
			if err := g.client().Get(cmd.Context(), "/v1/pins/"+args[0], &p); err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), p.Items, func(w io.Writer) {
				for _, f := range p.Items {
					fmt.Fprintf(w, "%s  since height %d\n", f.Pinner, f.Height)
				}
				fmt.Fprintf(w, "%d nodes pin %s (height %d)\n", len(p.Items), args[0], p.Height)
			})
		},
	}
}

func fileLsCmd(g *globals) *cobra.Command {
	var local bool
	c := &cobra.Command{
		Use:   "ls [ORG]",
		Short: "List an organisation's file manifests, or (--local) what the node pins and caches",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if local || len(args) == 0 {
				l, err := (&files.Client{Base: g.node}).List(ctx)
				if err != nil {
					return err
				}
				return g.print(cmd.OutOrStdout(), l, func(w io.Writer) {
					for _, p := range l.Pins {
						fmt.Fprintln(w, p, "pinned")
					}
					s := l.Store
					fmt.Fprintf(w, "%d pinned roots (%d bytes); cache %d blocks, %d of %d bytes\n", s.PinnedRoots, s.PinnedBytes, s.CacheBlocks, s.CacheBytes, s.CacheLimit)
				})
			}
			var p struct {
				Items []record.FileManifest `json:"items"`
			}
			if err := g.client().Get(ctx, "/v1/files/"+args[0]+"?limit=1000", &p); err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), p.Items, func(w io.Writer) {
				for _, f := range p.Items {
					kind := "public"
					if f.Private {
						kind = fmt.Sprintf("private v%d, %d keys", f.Version, len(f.Keys))
					}
					fmt.Fprintf(w, "%s/%s  %s  %d bytes  %s  (%s)\n", f.Org, f.Name, f.CID, f.Size, f.ContentType, kind)
				}
			})
		},
	}
	c.Flags().BoolVar(&local, "local", false, "list the node's pins and cache instead")
	return c
}

func filePinCmd(g *globals, pin bool) *cobra.Command {
	var key, as string
	use, short := "pin CID", "Fetch a file and keep it on the node (outside the LRU cache)"
	if !pin {
		use, short = "unpin CID", "Let the node evict a file when its cache is full"
	}
	c := &cobra.Command{
		Use: use, Short: short, Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, _, err := g.contentClient(cmd.Context(), key, as)
			if err != nil {
				return err
			}
			if cl.Token == nil {
				return fmt.Errorf("needs a device key: --key NAME")
			}
			if pin {
				err = cl.Pin(cmd.Context(), args[0])
			} else {
				err = cl.Unpin(cmd.Context(), args[0])
			}
			if err == nil {
				fmt.Fprintln(cmd.OutOrStdout(), strings.Fields(use)[0]+"ned", args[0])
			}
			return err
		},
	}
	c.Flags().StringVar(&key, "key", envOr("THINGNET_KEY", ""), "device key (the node pins for registered devices)")
	c.Flags().StringVar(&as, "as", "", "device id, if the key was rotated in")
	return c
}

// ownKey opens the content key the manifest holds for the signer.
func (g *globals) ownKey(ctx context.Context, tf *txFlags, m *record.FileManifest) ([]byte, error) {
	k, err := g.loadKey(tf.key)
	if err != nil {
		return nil, err
	}
	as := tf.as
	if as == "" {
		as = k.ID()
	}
	return files.UnwrapKey(m, as, k)
}

func fileShareCmd(g *globals) *cobra.Command {
	var tf txFlags
	var to []string
	c := &cobra.Command{
		Use:   "share ORG/NAME --to DEVICE...",
		Short: "Wrap a private file's key for more devices (each needs a fetch grant); your key must hold one",
		Example: `  thingnet grant add --key acme-admin --grantor org:acme --subject device:sensor-2 --action fetch --resource org:acme/file/secret
  thingnet file share acme/secret --key gw-1 --to sensor-2`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			org, name, err := splitFile(args[0])
			if err != nil {
				return err
			}
			m, err := g.manifest(ctx, org, name)
			if err != nil {
				return err
			}
			ck, err := g.ownKey(ctx, &tf, m)
			if err != nil {
				return err
			}
			rs, err := g.recipients(ctx, to)
			if err != nil {
				return err
			}
			keys, err := files.WrapKey(ck, org, name, m.Version, rs)
			if err != nil {
				return err
			}
			return g.send(cmd, &tf, &record.FileShare{Org: org, Name: name, Keys: keys})
		},
	}
	tf.register(c)
	c.Flags().StringSliceVar(&to, "to", nil, "devices (did or keystore name)")
	return c
}

func fileRevokeCmd(g *globals) *cobra.Command {
	var tf txFlags
	var recipient string
	var rekey bool
	c := &cobra.Command{
		Use:   "revoke ORG/NAME --recipient DEVICE [--rekey]",
		Short: "Remove a device's wrapped key; --rekey also re-encrypts the file with a new key for the remaining recipients",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			org, name, err := splitFile(args[0])
			if err != nil {
				return err
			}
			if recipient, err = g.resolveID(recipient); err != nil {
				return err
			}
			m, err := g.manifest(ctx, org, name)
			if err != nil {
				return err
			}
			var ck []byte
			if rekey {
				if ck, err = g.ownKey(ctx, &tf, m); err != nil {
					return err
				}
			}
			if err := g.send(cmd, &tf, &record.FileRevoke{Org: org, Name: name, Recipient: recipient}); err != nil {
				return err
			}
			if !rekey {
				return nil
			}
			return g.rekey(cmd, &tf, m, ck, recipient)
		},
	}
	tf.register(c)
	c.Flags().StringVar(&recipient, "recipient", "", "the device whose key is removed")
	c.Flags().BoolVar(&rekey, "rekey", false, "re-encrypt with a new content key for the remaining recipients (file.rekey)")
	return c
}

// rekey downloads and decrypts the file, encrypts it under a new key, adds
// it, and records the new CID with keys for everyone but the revoked one.
// It streams (download, decryption, encryption and upload run together,
// one segment in memory); a segment of the old file that does not open
// fails the upload, and nothing is recorded.
func (g *globals) rekey(cmd *cobra.Command, tf *txFlags, m *record.FileManifest, old []byte, revoked string) error {
	ctx := cmd.Context()
	nk, err := files.NewContentKey()
	if err != nil {
		return err
	}
	cl, key, err := g.contentClient(ctx, tf.key, tf.as)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ctR, ctW := io.Pipe()
	go func() {
		_, err := (&files.Client{Base: g.node}).Get(ctx, m.CID, ctW, nil)
		ctW.CloseWithError(err)
	}()
	encR, encW := io.Pipe()
	go func() {
		d, err := files.NewDecrypter(ctR, old)
		if err == nil {
			_, err = files.Encrypt(encW, d, nk)
		}
		ctR.CloseWithError(errors.New("re-encryption stopped"))
		encW.CloseWithError(err)
	}()
	res, err := cl.Add(ctx, encR, nil)
	encR.CloseWithError(errors.New("upload stopped"))
	if err != nil {
		return fmt.Errorf("re-encrypting %s/%s: %w", m.Org, m.Name, err)
	}
	var ids []string
	for _, k := range m.Keys {
		if k.Recipient != revoked {
			ids = append(ids, k.Recipient)
		}
	}
	rs, err := g.recipients(ctx, ids)
	if err != nil {
		return err
	}
	keys, err := files.WrapKey(nk, m.Org, m.Name, m.Version+1, rs)
	if err != nil {
		return err
	}
	return g.sendWith(cmd, key, tf, &record.FileRekey{Org: m.Org, Name: m.Name, CID: res.CID, Size: res.Size, Keys: keys})
}

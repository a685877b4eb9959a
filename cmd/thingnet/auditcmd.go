package main

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/thingnet/thingnet/auditbundle"
	"github.com/thingnet/thingnet/lightclient"
)

// refusedError makes `audit verify` exit with status 3: the bundle was
// checked and refused (status 1: it could not be read).
type refusedError struct{ err error }

func (e refusedError) Error() string { return e.err.Error() }
func (e refusedError) Unwrap() error { return e.err }
func (refusedError) ExitCode() int   { return 3 }

func auditCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "audit",
		Short: "Audit bundles: export an organisation's devices' history and readings with every proof, and verify a bundle offline",
	}
	c.AddCommand(auditExportCmd(g), auditVerifyCmd(g))
	return c
}

func auditExportCmd(g *globals) *cobra.Command {
	var org, from, to, file string
	var devices []string
	var trust int64
	var period time.Duration
	c := &cobra.Command{
		Use:   "export --org ORG [--device ID]... [--from T] [--to T] -o FILE",
		Short: "Write one file with devices' history, readings, their proofs and the headers to check them from a trusted one",
		Long: `Reads, as --identity (or --token), the organisation's devices (or those named
with --device): each device's record and whole history, and its readings timed
in [--from, --to) with their proofs, all ledger proofs of one state, and the
signed headers and validator sets the light client needs to reach that state's
header from the trusted header (--trust-height; default the state's header
itself). Readings the identity may not list are recorded as refused, entries it
may not read as withheld, erased entries as erased: the bundle never holds a
value the identity could not read. A bundle made with --identity is signed by
that key. Check it with ` + "`thingnet audit verify`" + `; the format is in
docs/protocol.md, "Audit bundles".`,
		Example: `  thingnet audit export --org acme --from 2026-12-01T00:00:00Z --to 2026-12-08T00:00:00Z -o acme.bundle --identity acme-admin
  thingnet audit export --org acme --device did:key:z6Mk... --trust-height 1200 -o sensor.bundle --identity acme-admin`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if org == "" || file == "" {
				return errors.New("--org and -o FILE are required")
			}
			o := auditbundle.ExportOptions{Org: org, Devices: devices, TrustHeight: trust, TrustPeriod: period,
				Progress: func(s string) { fmt.Fprintln(cmd.ErrOrStderr(), s) }}
			var err error
			if o.From, err = parseAuditTime(from); err != nil {
				return fmt.Errorf("--from: %w", err)
			}
			if o.To, err = parseAuditTime(to); err != nil {
				return fmt.Errorf("--to: %w", err)
			}
			b, err := auditbundle.Export(cmd.Context(), g.client(), o)
			if err != nil {
				return err
			}
			data, err := b.Encode()
			if err != nil {
				return err
			}
			if err := os.WriteFile(file, data, 0o644); err != nil {
				return err
			}
			sh := b.Headers[len(b.Headers)-1]
			for _, h := range b.Headers {
				if h.Height() == b.TrustHeight {
					sh = h
				}
			}
			signed := "unsigned (anonymous)"
			if b.Exporter != "" {
				signed = "signed by " + b.Exporter
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s: %d bytes, %d devices, %d log entries, %d headers, proofs of state %d; %s\n",
				file, len(data), len(b.Devices), len(b.Readings), len(b.Headers), b.StateHeight, signed)
			fmt.Fprintf(cmd.OutOrStdout(), "check it with: thingnet audit verify %s --trust %d:%X\n", file, b.TrustHeight, []byte(sh.SignedHeader.Hash()))
			fmt.Fprintln(cmd.OutOrStdout(), "(get that header's hash from a source you trust, not from this bundle: thingnet tx block HEIGHT)")
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&org, "org", "", "the organisation whose devices to export")
	f.StringSliceVar(&devices, "device", nil, "export only this device (repeatable)")
	f.StringVar(&from, "from", "", "readings timed at or after T (RFC 3339 or Unix milliseconds; default: no bound)")
	f.StringVar(&to, "to", "", "readings timed before T (RFC 3339 or Unix milliseconds; default: no bound)")
	f.StringVarP(&file, "output", "o", "", "the bundle file to write")
	f.Int64Var(&trust, "trust-height", 0, "the height of the header the auditor will trust (default: the header of the bundle's state)")
	f.DurationVar(&period, "trust-period", lightclient.DefaultTrustingPeriod, "trusting period when the trusted header is below the bundle's state")
	return c
}

func auditVerifyCmd(g *globals) *cobra.Command {
	var trust string
	var period time.Duration
	c := &cobra.Command{
		Use:   "verify FILE --trust HEIGHT:HASH",
		Short: "Check an audit bundle offline from one trusted header (exit status 3 if refused)",
		Long: `Checks everything in the bundle, with no network: every header from the trusted
one (the light client: skipping verification forward, hash links backward; and
every commit signature), every ledger proof against the verified app hash,
every device's record and complete history, every reading (signature, signer's
key and status at the authentication height, inclusion in the gateway's log,
the anchor on the ledger), erased and withheld entries' place in the log, and
the exporter's signature. The first failure is named (a reading, a header, a
proof, a device). Get the trusted header's hash from a source you trust.`,
		Example: `  thingnet audit verify acme.bundle --trust 1234:5F0E...`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			to, err := lightclient.ParseTrust(trust)
			if err != nil {
				return fmt.Errorf("--trust: %w", err)
			}
			to.Period = period
			data, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			b, err := auditbundle.Decode(data)
			if err != nil {
				return refusedError{err}
			}
			s, err := auditbundle.Verify(cmd.Context(), b, auditbundle.VerifyOptions{Trust: to})
			if err != nil {
				return refusedError{err}
			}
			return g.print(cmd.OutOrStdout(), s, func(w io.Writer) { printAuditSummary(w, s, to) })
		},
	}
	c.Flags().StringVar(&trust, "trust", "", "the header you trust, HEIGHT:HASH (the hash in hex, as `thingnet tx block HEIGHT` prints it)")
	c.Flags().DurationVar(&period, "trust-period", lightclient.DefaultTrustingPeriod, "trusting period when the trusted header is below the bundle's headers")
	return c
}

func printAuditSummary(w io.Writer, s *auditbundle.Summary, trust lightclient.TrustOptions) {
	by := "unsigned: its claims (time range, creation time) are no one's word"
	if s.Exporter != "" {
		by = fmt.Sprintf("signed by %s, made %s", s.Exporter, time.UnixMilli(s.Created).UTC().Format(time.RFC3339))
	}
	fmt.Fprintf(w, "bundle of organisation %s on chain %s, readings timed %s; %s\n", s.Org, s.ChainID, timeRange(s.From, s.To), by)
	fmt.Fprintf(w, "trusted header %d (%s); %d header(s), heights %d..%d, verified from it\n", trust.Height, strings.ToUpper(hex.EncodeToString(trust.Hash)), s.Headers, s.HeaderRange[0], s.HeaderRange[1])
	fmt.Fprintf(w, "every ledger proof is of state %d, whose app hash is in header %d\n", s.StateHeight, s.StateHeader)
	fmt.Fprintf(w, "devices: %d\n", len(s.Devices))
	for _, d := range s.Devices {
		line := fmt.Sprintf("  %s  %s, history of %d event(s)", d.ID, d.Status, d.Events)
		if d.Refused != "" {
			line += "; readings not exported (" + d.Refused + ")"
		} else {
			line += fmt.Sprintf("; %d reading(s) in %d log entries verified", d.Readings, d.Entries)
			if d.Attested > 0 {
				line += fmt.Sprintf(" (%d gateway-attested, not device-signed)", d.Attested)
			}
			if d.Erased > 0 {
				line += fmt.Sprintf(", %d entries erased", d.Erased)
			}
			if d.Withheld > 0 {
				line += fmt.Sprintf(", %d entries withheld (hash and place only)", d.Withheld)
			}
		}
		fmt.Fprintln(w, line)
		for _, e := range d.Erasures {
			why := ""
			if e.Reason != "" {
				why = " (" + e.Reason + ")"
			}
			fmt.Fprintf(w, "    erasure %d at height %d by %s: readings timed %s erased%s\n", e.Seq, e.Height, e.Signer, timeRange(e.From, e.To), why)
		}
	}
	if len(s.SignersOther) > 0 {
		fmt.Fprintf(w, "readings signed by attesting gateways: %s\n", strings.Join(s.SignersOther, ", "))
	}
	anchored := ""
	if s.Readings > 0 {
		anchored = fmt.Sprintf("; anchored at heights %d..%d", s.AnchorRange[0], s.AnchorRange[1])
	}
	fmt.Fprintf(w, "log entries: %d verified in full, %d erased, %d withheld%s\n", s.Verified, s.Erased, s.Withheld, anchored)
	fmt.Fprintln(w, "verified")
}

func timeRange(from, to int64) string {
	f, t := "the beginning", "now"
	if from != 0 {
		f = time.UnixMilli(from).UTC().Format(time.RFC3339Nano)
	}
	if to != 0 {
		t = time.UnixMilli(to).UTC().Format(time.RFC3339Nano)
	}
	return "[" + f + ", " + t + ")"
}

// parseAuditTime reads RFC 3339 or Unix milliseconds ("" is the zero time).
func parseAuditTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if ms, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.UnixMilli(ms), nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return t, fmt.Errorf("%q is neither RFC 3339 nor Unix milliseconds", s)
	}
	return t, nil
}

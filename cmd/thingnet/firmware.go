package main

import (
	"crypto/sha256"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/thingnet/thingnet/files"
	"github.com/thingnet/thingnet/ledger"
)

func firmwareCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "firmware", Short: "Firmware releases: a vendor-signed manifest on the ledger, approvals per device class (docs/files.md#firmware)"}
	var tf txFlags
	var m ledger.FirmwareManifest
	publish := &cobra.Command{
		Use:   "publish IMAGE",
		Short: "Sign a release manifest for IMAGE (digest and size computed here) and record it (firmware.release)",
		Example: `  thingnet file add fw-2.1.bin --key gw-1        # prints the CID
  thingnet firmware publish fw-2.1.bin --key acme-admin --vendor acme --class camera --version 2.1.0 --seq 7 --cid bafy...`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := os.Open(args[0])
			if err != nil {
				return err
			}
			defer f.Close()
			h := sha256.New()
			n, err := io.Copy(h, f)
			if err != nil {
				return err
			}
			m.Digest, m.Size = h.Sum(nil), uint64(n)
			key, err := g.loadKey(tf.key)
			if err != nil {
				return err
			}
			kid := tf.as
			if kid == "" {
				kid = key.ID()
			}
			raw, err := files.SignFirmware(key, kid, &m)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "release %s/%s %s (seq %d): sha256 %x, %d bytes\n", m.Vendor, m.Class, m.Version, m.Seq, m.Digest, m.Size)
			return g.sendWith(cmd, key, &tf, &ledger.FirmwareRelease{Manifest: raw})
		},
	}
	tf.register(publish)
	f := publish.Flags()
	f.StringVar(&m.Vendor, "vendor", "", "the vendor organisation (you administer it)")
	f.StringVar(&m.Class, "class", "", "device class the image is for")
	f.StringVar(&m.Version, "version", "", "version, e.g. 2.1.0")
	f.Uint64Var(&m.Seq, "seq", 0, "sequence number, above every earlier release for the class (devices refuse lower ones)")
	f.StringVar(&m.CID, "cid", "", "CID of the image (thingnet file add)")

	var tfa txFlags
	var a ledger.FirmwareApprove
	approve := &cobra.Command{
		Use:   "approve",
		Short: "Approve a release for your organisation's devices of a class (firmware.approve)",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return g.send(cmd, &tfa, &a) },
	}
	tfa.register(approve)
	af := approve.Flags()
	af.StringVar(&a.Org, "org", "", "your organisation")
	af.StringVar(&a.Vendor, "vendor", "", "the vendor organisation")
	af.StringVar(&a.Class, "class", "", "device class")
	af.Uint64Var(&a.Seq, "seq", 0, "the release's sequence number")
	var tfr txFlags
	var r ledger.FirmwareRollout
	rollout := &cobra.Command{
		Use:     "rollout",
		Short:   "Offer an approved release to your devices of a class in waves, aborting after too many failed installs (firmware.rollout)",
		Example: `  thingnet firmware rollout --key fleet-admin --org fleet --vendor acme --class camera --seq 7 --percent 10 --blocks-per-wave 100 --max-failures 5`,
		Args:    cobra.NoArgs,
		RunE:    func(cmd *cobra.Command, _ []string) error { return g.send(cmd, &tfr, &r) },
	}
	tfr.register(rollout)
	rf := rollout.Flags()
	rf.StringVar(&r.Org, "org", "", "your organisation")
	rf.StringVar(&r.Vendor, "vendor", "", "the vendor organisation")
	rf.StringVar(&r.Class, "class", "", "device class")
	rf.Uint64Var(&r.Seq, "seq", 0, "the release's sequence number")
	rf.Uint32Var(&r.Percent, "percent", 10, "percent of the devices each wave adds")
	rf.Uint32Var(&r.BlocksPerWave, "blocks-per-wave", 100, "blocks between waves")
	rf.Uint32Var(&r.MaxFailures, "max-failures", 5, "failed installs that abort the rollout")
	c.AddCommand(publish, approve, rollout)
	return c
}

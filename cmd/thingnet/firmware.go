package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/thingnet/thingnet/client"
	"github.com/thingnet/thingnet/files/firmware"
	"github.com/thingnet/thingnet/record"
)

func firmwareCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "firmware", Short: "Firmware releases: a vendor-signed manifest on the ledger, approvals per device class (docs/files.md#firmware)"}
	var tf txFlags
	var m record.FirmwareManifest
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
			raw, err := firmware.Sign(key, kid, &m)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "release %s/%s %s (seq %d): sha256 %x, %d bytes\n", m.Vendor, m.Class, m.Version, m.Seq, m.Digest, m.Size)
			return g.sendWith(cmd, key, &tf, &record.FirmwareRelease{Manifest: raw})
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
	var a record.FirmwareApprove
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
	var r record.FirmwareRollout
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
	c.AddCommand(publish, approve, rollout, firmwareReport(g), firmwareStatus(g))
	return c
}

// fwStatus is what `thingnet firmware status` reports, all read at Height.
type fwStatus struct {
	Height    int64                          `json:"height"`
	Vendor    string                         `json:"vendor"`
	Class     string                         `json:"class"`
	Org       string                         `json:"org"`
	Releases  []record.FirmwareReleaseRecord `json:"releases"`
	Approvals []record.FirmwareApproval      `json:"approvals"`
	Rollout   *client.Rollout                `json:"rollout,omitempty"`
	Devices   []fwDevice                     `json:"devices"`
	Flagged   int                            `json:"flagged"`
}

// fwDevice is a device of the class and the version it last reported.
type fwDevice struct {
	ID      string `json:"id"`
	Status  string `json:"status"`
	Version string `json:"version"`
	Flagged string `json:"flagged,omitempty"` // digest prefix of the unapproved image it reported
}

func firmwareStatus(g *globals) *cobra.Command {
	var s fwStatus
	c := &cobra.Command{
		Use:     "status",
		Short:   "Show a class's releases, your organisation's approvals and rollout progress, and the version each device reports",
		Example: `  thingnet firmware status --vendor acme --class camera --org fleet -o json`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if s.Vendor == "" || s.Class == "" {
				return errors.New("firmware status needs --vendor and --class")
			}
			if s.Org == "" {
				s.Org = s.Vendor
			}
			if err := readFwStatus(cmd.Context(), g.client(), &s); err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), s, func(w io.Writer) { printFwStatus(w, &s) })
		},
	}
	f := c.Flags()
	f.StringVar(&s.Vendor, "vendor", "", "the vendor organisation")
	f.StringVar(&s.Class, "class", "", "device class")
	f.StringVar(&s.Org, "org", "", "the organisation whose approvals, rollout and devices to show (default: the vendor)")
	return c
}

// readFwStatus fills s, reading every list at the height of the first.
func readFwStatus(ctx context.Context, c *client.Client, s *fwStatus) error {
	var rel struct {
		Height int64                          `json:"height"`
		Items  []record.FirmwareReleaseRecord `json:"items"`
		Next   string                         `json:"next"`
	}
	base := "/v1/firmware/" + url.PathEscape(s.Vendor) + "/" + url.PathEscape(s.Class) + "?limit=1000"
	if err := c.Get(ctx, base, &rel); err != nil {
		return err
	}
	s.Height, s.Releases = rel.Height, rel.Items
	for rel.Next != "" {
		next := rel.Next
		rel.Items, rel.Next = nil, ""
		if err := c.Get(ctx, base+"&height="+strconv.FormatInt(s.Height, 10)+"&after="+next, &rel); err != nil {
			return err
		}
		s.Releases = append(s.Releases, rel.Items...)
	}
	at := "height=" + strconv.FormatInt(s.Height, 10)
	oc := url.PathEscape(s.Org) + "/" + url.PathEscape(s.Class)
	var ap struct {
		Items []record.FirmwareApproval `json:"items"`
	}
	if err := c.Get(ctx, "/v1/firmware-approvals/"+oc+"?"+at, &ap); err != nil {
		return err
	}
	s.Approvals = ap.Items
	var ro struct {
		Record *client.Rollout `json:"record"`
	}
	err := c.Get(ctx, "/v1/rollouts/"+oc+"?"+at, &ro)
	var ae *client.Error
	if err != nil && !(errors.As(err, &ae) && ae.Status == http.StatusNotFound) {
		return err
	}
	s.Rollout = ro.Record
	s.Devices, s.Flagged = []fwDevice{}, 0
	after := ""
	for {
		var p struct {
			Items []record.Device `json:"items"`
			Next  string          `json:"next"`
		}
		path := "/v1/devices?limit=1000&org=" + url.QueryEscape(s.Org) + "&" + at
		if after != "" {
			path += "&after=" + url.QueryEscape(after)
		}
		if err := c.Get(ctx, path, &p); err != nil {
			return err
		}
		for _, d := range p.Items {
			if d.Class != s.Class {
				continue
			}
			fd := fwDevice{ID: d.ID, Status: string(d.Status), Version: d.Firmware, Flagged: d.Labels[record.LabelFirmwareFlag]}
			if fd.Flagged != "" {
				s.Flagged++
			}
			s.Devices = append(s.Devices, fd)
		}
		if p.Next == "" {
			return nil
		}
		after = p.Next
	}
}

func printFwStatus(w io.Writer, s *fwStatus) {
	fmt.Fprintf(w, "firmware %s/%s for %s, at height %d\n", s.Vendor, s.Class, s.Org, s.Height)
	if len(s.Releases) == 0 {
		fmt.Fprintln(w, "releases:  none")
	}
	approved := map[uint64]bool{}
	for _, a := range s.Approvals {
		if a.Vendor == s.Vendor {
			approved[a.Seq] = true
		}
	}
	for _, r := range s.Releases {
		m := r.Manifest
		mark := ""
		if approved[m.Seq] {
			mark = "  approved by " + s.Org
		}
		fmt.Fprintf(w, "release:   #%d %s  sha256 %x  %d bytes  height %d%s\n", m.Seq, m.Version, m.Digest, m.Size, r.Height, mark)
	}
	if r := s.Rollout; r != nil {
		fmt.Fprintf(w, "rollout:   #%d %s %s, wave %d (%d%% offered, %d%% a wave every %d blocks), installed %d, failed %d of %d allowed\n",
			r.Seq, r.Version, r.Status, r.Wave, r.Offered, r.Percent, r.BlocksPerWave, r.Installed, r.Failed, r.MaxFailures)
	} else {
		fmt.Fprintln(w, "rollout:   none")
	}
	fmt.Fprintf(w, "devices:   %d of class %s, %d flagged\n", len(s.Devices), s.Class, s.Flagged)
	for _, d := range s.Devices {
		v := d.Version
		if v == "" {
			v = "-"
		}
		flag := ""
		if d.Flagged != "" {
			flag = "  FLAGGED: reported unapproved image " + d.Flagged + "…"
		}
		fmt.Fprintf(w, "  %s  %-9s %s%s\n", d.ID, d.Status, v, flag)
	}
}

func firmwareReport(g *globals) *cobra.Command {
	var tf txFlags
	var m record.FirmwareReport
	var digest string
	c := &cobra.Command{
		Use:   "report",
		Short: "Report, as a device, the firmware it runs or failed to install (firmware.report; an unapproved image flags the device)",
		Example: `  thingnet firmware report --key cam-1 --version 2.1.0 --digest 9f86d0...
  thingnet firmware report --key cam-1 --version 2.1.0 --digest 9f86d0... --failed --reason "self-test failed"`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			d, err := hex.DecodeString(digest)
			if err != nil || len(d) != sha256.Size {
				return fmt.Errorf("--digest %q: want the image's SHA-256 in hex (64 digits)", digest)
			}
			m.Digest = d
			return g.send(cmd, &tf, &m)
		},
	}
	tf.register(c)
	f := c.Flags()
	f.StringVar(&m.Version, "version", "", "the version the device runs")
	f.StringVar(&digest, "digest", "", "SHA-256 of the image, hex")
	f.BoolVar(&m.Failed, "failed", false, "the install of this image failed (counts against a rollout, once per device)")
	f.StringVar(&m.Reason, "reason", "", "with --failed: why the install failed (≤ 200 characters, kept in the device's history)")
	return c
}

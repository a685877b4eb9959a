package main

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/thingnet/thingnet/client"
	"github.com/thingnet/thingnet/record"
)

// jobCmd is `thingnet job`: commands to many devices in waves
// (docs/management.md, "Commands and jobs").
func jobCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "job", Short: "Send a command to devices in waves, follow and cancel it (docs/management.md)"}
	c.AddCommand(jobCreate(g), jobShow(g), jobList(g), jobCancel(g))
	return c
}

func jobCreate(g *globals) *cobra.Command {
	var tf txFlags
	var org, class, label, command, maxFail string
	var devices, argv []string
	var waves, perWave, timeout uint32
	c := &cobra.Command{
		Use:   "create",
		Short: "Send a command to devices (a list, a class or a label) in waves (job.create)",
		Example: `  thingnet job create --key demo-admin --org demo --class sensor --command ping --waves 3 --wave-blocks 20 --max-failures 5%
  thingnet job create --key demo-admin --org demo --device did:key:z6Mk... --command report-now
  thingnet job create --key demo-admin --org demo --label site=north --command ping --arg n=3 --timeout-blocks 600`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if org == "" {
				return errors.New("--org names the organisation whose devices run the job")
			}
			m := &record.JobCreate{Org: org, Command: command, Args: map[string]any{}, Waves: waves, BlocksPerWave: perWave,
				Target: record.JobTarget{Class: class, Label: label}}
			for _, d := range devices {
				m.Target.Devices = append(m.Target.Devices, strings.Split(d, ",")...)
			}
			slices.Sort(m.Target.Devices)
			m.Target.Devices = slices.Compact(m.Target.Devices)
			for _, kv := range argv {
				k, v, err := parseSetting(kv)
				if err != nil {
					return fmt.Errorf("--arg: %w", err)
				}
				m.Args[k] = v
			}
			m.TimeoutBlocks = timeout
			if m.TimeoutBlocks == 0 {
				m.TimeoutBlocks = waves*perWave + 100
			}
			n, err := maxFailures(cmd, g, m, maxFail)
			if err != nil {
				return err
			}
			m.MaxFailures = n
			if err := m.ValidateBasic(); err != nil {
				return err
			}
			key, err := g.loadKey(tf.key)
			if err != nil {
				return err
			}
			return g.sendPrint(cmd, key, &tf, m, func(w io.Writer, res *client.SubmitResult) {
				id := "?"
				if js, err := g.client().Jobs(cmd.Context(), org); err == nil {
					for _, j := range js {
						if strings.EqualFold(hex.EncodeToString(j.Tx), res.Hash) {
							id = strconv.FormatUint(j.ID, 10)
						}
					}
				}
				fmt.Fprintf(w, "job %s of %s created at height %d (tx %s): %s to %s, %d wave(s) %d blocks apart, aborts at %d failure(s)\n",
					id, org, res.Height, res.Hash, command, m.Target.String(), waves, perWave, m.MaxFailures)
				fmt.Fprintf(w, "follow it: thingnet job show %s --org %s\n", id, org)
			})
		},
	}
	tf.register(c)
	f := c.Flags()
	f.StringVar(&org, "org", "", "the organisation whose devices run it")
	f.StringArrayVar(&devices, "device", nil, "a device's did:key (repeatable, or comma-separated); or --class, or --label")
	f.StringVar(&class, "class", "", "every device of this class")
	f.StringVar(&label, "label", "", "every device with this label, as key=value")
	f.StringVar(&command, "command", "", "the command's name (a-z 0-9 . _ -): the device runs its handler of that name")
	f.StringArrayVar(&argv, "arg", nil, "NAME=VALUE (repeatable): an integer, a number, true/false or a text")
	f.Uint32Var(&waves, "waves", 1, "number of waves (each covers 1/waves of the devices more)")
	f.Uint32Var(&perWave, "wave-blocks", 10, "blocks between waves")
	f.StringVar(&maxFail, "max-failures", "1", "abort when this many devices failed or rejected it: N, or a percent of the devices targeted now (5%)")
	f.Uint32Var(&timeout, "timeout-blocks", 0, "devices that have not reported this many blocks after the start count as timed out (default: waves × wave-blocks + 100)")
	return c
}

// maxFailures reads --max-failures: N, or P% of the devices the target
// covers now (rounded up, at least 1).
func maxFailures(cmd *cobra.Command, g *globals, m *record.JobCreate, s string) (uint32, error) {
	p, pct := strings.CutSuffix(s, "%")
	v, err := strconv.ParseFloat(p, 64)
	if err != nil || v <= 0 || !pct && v != float64(uint32(v)) {
		return 0, fmt.Errorf("--max-failures %q: want a whole number ≥ 1 or a percent such as 5%%", s)
	}
	if !pct {
		return uint32(v), nil
	}
	n, err := g.client().JobTargeted(cmd.Context(), m.Org, m.Target, 1<<20)
	if err != nil {
		return 0, fmt.Errorf("--max-failures %s: counting the devices targeted: %w", s, err)
	}
	k := uint32(max(1, (v*float64(n)+99.999999)/100))
	fmt.Fprintf(cmd.ErrOrStderr(), "--max-failures %s of the %d devices targeted now: %d\n", s, n, k)
	return k, nil
}

func jobShow(g *globals) *cobra.Command {
	var org string
	c := &cobra.Command{
		Use:   "show ID",
		Short: "A job's progress: per wave, devices succeeded, failed, rejected, pending, timed out, with the reasons of failures",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o, id, err := jobRef(org, args[0])
			if err != nil {
				return err
			}
			p, err := g.client().Job(cmd.Context(), o, id)
			if err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), p, func(w io.Writer) { printJobProgress(w, p) })
		},
	}
	c.Flags().StringVar(&org, "org", "", "the job's organisation (or give ID as ORG/ID)")
	return c
}

// jobRef reads ORG/ID, or ID with --org.
func jobRef(org, arg string) (string, uint64, error) {
	if o, s, ok := strings.Cut(arg, "/"); ok {
		org, arg = o, s
	}
	id, err := strconv.ParseUint(arg, 10, 64)
	if err != nil || id == 0 {
		return "", 0, fmt.Errorf("job %q: want a job id ≥ 1 (with --org) or ORG/ID", arg)
	}
	if org == "" {
		return "", 0, errors.New("name the job's organisation: --org ORG, or ORG/ID")
	}
	return org, id, nil
}

func printJobProgress(w io.Writer, p *record.JobProgress) {
	j := &p.Job
	by := "admin " + j.Signer
	if j.Grant != 0 {
		by = fmt.Sprintf("%s through grant %d", j.Signer, j.Grant)
	}
	fmt.Fprintf(w, "job %d of %s: %s %v to %s, by %s\n", j.ID, j.JobCreate.Org, j.JobCreate.Command, j.JobCreate.Args, j.JobCreate.Target.String(), by)
	state := p.State
	if j.Ended != 0 {
		state += fmt.Sprintf(" at height %d", j.Ended)
	}
	fmt.Fprintf(w, "state %s (height %d); started at %d, wave %d of %d open, timeout at %d, aborts at %d failure(s)\n",
		state, p.Height, j.Start, p.Open, j.JobCreate.Waves, j.Timeout, j.JobCreate.MaxFailures)
	fmt.Fprintf(w, "%-6s %-8s %8s %9s %6s %8s %7s %9s %7s\n", "wave", "opens", "targeted", "succeeded", "failed", "rejected", "pending", "timed-out", "skipped")
	row := func(name, opens string, c record.JobCounts) {
		fmt.Fprintf(w, "%-6s %-8s %8d %9d %6d %8d %7d %9d %7d\n", name, opens, c.Targeted, c.Succeeded, c.Failed, c.Rejected, c.Pending, c.TimedOut, c.Skipped)
	}
	for _, wv := range p.Waves {
		row(strconv.FormatUint(wv.Wave, 10), strconv.FormatInt(wv.Opens, 10), wv.Counts)
	}
	row("all", "", p.Counts)
	for _, o := range p.Failed {
		fmt.Fprintf(w, "  %s %s (wave %d, height %d): %s\n", o.Outcome, o.Device, o.Wave, o.Height, o.Reason)
	}
}

func jobList(g *globals) *cobra.Command {
	var org string
	c := &cobra.Command{
		Use:   "list",
		Short: "An organisation's jobs, oldest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if org == "" {
				return errors.New("--org names the organisation")
			}
			js, err := g.client().Jobs(cmd.Context(), org)
			if err != nil {
				return err
			}
			st, err := g.client().Status(cmd.Context())
			if err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), js, func(w io.Writer) {
				if len(js) == 0 {
					fmt.Fprintf(w, "no jobs in %s\n", org)
				}
				for _, j := range js {
					fmt.Fprintf(w, "%d\t%s\t%s\t%s\tsucceeded %d, failed %d, rejected %d\tstarted %d\n", j.ID, j.StateAt(st.Height+1),
						j.JobCreate.Command, j.JobCreate.Target.String(), j.Succeeded, j.Failed, j.Rejected, j.Start)
				}
			})
		},
	}
	c.Flags().StringVar(&org, "org", "", "the organisation")
	return c
}

func jobCancel(g *globals) *cobra.Command {
	var tf txFlags
	var org string
	c := &cobra.Command{
		Use:   "cancel ID",
		Short: "Cancel an active job: devices that have not run it do not (job.cancel)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o, id, err := jobRef(org, args[0])
			if err != nil {
				return err
			}
			return g.send(cmd, &tf, &record.JobCancel{Org: o, ID: id})
		},
	}
	tf.register(c)
	c.Flags().StringVar(&org, "org", "", "the job's organisation (or give ID as ORG/ID)")
	return c
}

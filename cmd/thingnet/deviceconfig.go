package main

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/thingnet/thingnet/client"
	"github.com/thingnet/thingnet/record"
)

// deviceConfigCmd is `thingnet device config`: desired configuration on
// the ledger, what devices reported applying (docs/management.md).
func deviceConfigCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "config", Short: "Desired configuration of a device, a class or a label, and what devices report applying (docs/management.md)"}
	c.AddCommand(configSet(g), configShow(g), configDiff(g), configHistory(g))
	return c
}

// configTarget is the flags naming what a configuration is for: a device
// (the argument), or --class/--label of --org.
type configTarget struct{ org, class, label string }

func (t *configTarget) register(c *cobra.Command) {
	c.Flags().StringVar(&t.org, "org", "", "the organisation (with --class or --label; a device's is read from the ledger)")
	c.Flags().StringVar(&t.class, "class", "", "every device of this class")
	c.Flags().StringVar(&t.label, "label", "", "every device with this label, as key=value")
}

// resolve returns org, scope and name.
func (t *configTarget) resolve(cmd *cobra.Command, g *globals, args []string) (string, string, string, error) {
	n := len(args)
	if t.class != "" {
		n++
	}
	if t.label != "" {
		n++
	}
	if n != 1 {
		return "", "", "", errors.New("name one target: a DEVICE argument, --class CLASS or --label KEY=VALUE")
	}
	if len(args) == 1 {
		var d record.Device
		if err := g.getRecord(cmd, "/v1/devices/"+args[0], false, &d); err != nil {
			return "", "", "", err
		}
		return d.Org, record.ConfigDevice, d.ID, nil
	}
	if t.org == "" {
		return "", "", "", errors.New("--class and --label need --org")
	}
	if t.class != "" {
		return t.org, record.ConfigClass, t.class, nil
	}
	return t.org, record.ConfigLabel, t.label, nil
}

// parseSetting reads NAME=VALUE: an integer, a number, true/false, else a
// text ("..." forces a text).
func parseSetting(kv string) (string, any, error) {
	k, v, ok := strings.Cut(kv, "=")
	if !ok {
		return "", nil, fmt.Errorf("--set %q: want NAME=VALUE", kv)
	}
	if err := record.ValidateSettingName(k); err != nil {
		return "", nil, err
	}
	if s, err := strconv.Unquote(v); err == nil && strings.HasPrefix(v, `"`) {
		return k, s, nil
	}
	if i, err := strconv.ParseInt(v, 10, 64); err == nil {
		return k, i, nil
	}
	if f, err := strconv.ParseFloat(v, 64); err == nil {
		return k, f, nil
	}
	if b, err := strconv.ParseBool(v); err == nil && (v == "true" || v == "false") {
		return k, b, nil
	}
	return k, v, nil
}

func configSet(g *globals) *cobra.Command {
	var tf txFlags
	var t configTarget
	var sets []string
	var version uint64
	c := &cobra.Command{
		Use:   "set [DEVICE]",
		Short: "Set the desired configuration of a device, a class or a label (config.set; replaces the target's settings whole)",
		Example: `  thingnet device config set --key demo-admin --org demo --class sensor --set wake_s=30 --set mode=eco
  thingnet device config set did:key:z6Mk... --key demo-admin --set wake_s=5       # this device wins over its class
  thingnet device config set --key demo-admin --org demo --label site=north --set transport=coap`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			org, scope, name, err := t.resolve(cmd, g, args)
			if err != nil {
				return err
			}
			m := &record.ConfigSet{Org: org, Scope: scope, Name: name, Version: version, Settings: map[string]any{}}
			for _, kv := range sets {
				k, v, err := parseSetting(kv)
				if err != nil {
					return err
				}
				m.Settings[k] = v
			}
			if m.Version == 0 {
				cur, err := g.client().ConfigTarget(cmd.Context(), org, scope, name)
				var ce *client.Error
				switch {
				case err == nil:
					m.Version = cur.Version + 1
				case errors.As(err, &ce) && ce.Status == 404:
					m.Version = 1
				default:
					return err
				}
			}
			return g.send(cmd, &tf, m)
		},
	}
	tf.register(c)
	t.register(c)
	c.Flags().StringArrayVar(&sets, "set", nil, "NAME=VALUE (repeatable): an integer, a number, true/false or a text; none clears the target")
	c.Flags().Uint64Var(&version, "version", 0, "the version, above the current one (default: the current one + 1)")
	return c
}

func configShow(g *globals) *cobra.Command {
	var t configTarget
	c := &cobra.Command{
		Use:   "show [DEVICE]",
		Short: "Show a target's desired configuration; for a device, its effective one (class, labels, device merged) and what it last reported (needs --identity allowed to read it)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			org, scope, name, err := t.resolve(cmd, g, args)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if scope != record.ConfigDevice {
				r, err := g.client().ConfigTarget(cmd.Context(), org, scope, name)
				if err != nil {
					return err
				}
				return g.print(w, r, func(w io.Writer) { printConfigRecord(w, r) })
			}
			des, err := g.client().Desired(cmd.Context(), name)
			if err != nil {
				return err
			}
			reps, rerr := g.client().ReportedConfigs(cmd.Context(), name, 50)
			out := map[string]any{"desired": des}
			if rerr == nil && len(reps) > 0 {
				out["reported"] = reps[len(reps)-1]
			}
			return g.print(w, out, func(w io.Writer) {
				fmt.Fprintf(w, "desired (height %d):\n", des.Height)
				for _, l := range des.Layers {
					fmt.Fprintf(w, "  layer %s %s v%d (height %d)\n", l.Scope, l.Name, l.Version, l.Height)
				}
				for _, r := range des.Refused {
					fmt.Fprintf(w, "  REFUSED layer %s %s v%d: %s\n", r.Scope, r.Name, r.Version, r.Reason)
				}
				printSettings(w, "  ", des.Settings)
				switch {
				case rerr != nil:
					fmt.Fprintf(w, "reported: not readable here: %v\n", rerr)
				case len(reps) == 0:
					fmt.Fprintln(w, "reported: nothing yet")
				default:
					printReported(w, reps[len(reps)-1])
				}
			})
		},
	}
	t.register(c)
	return c
}

func configDiff(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "diff DEVICE",
		Short: "The settings whose desired and last reported values differ (needs --identity allowed to read the device)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			des, err := g.client().Desired(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			reps, err := g.client().ReportedConfigs(cmd.Context(), args[0], 50)
			if err != nil {
				return fmt.Errorf("reading what %s reported: %w", args[0], err)
			}
			var applied map[string]any
			if len(reps) > 0 {
				applied = reps[len(reps)-1].Report.Applied
			}
			diff := record.DiffConfig(des.Settings, applied)
			return g.print(cmd.OutOrStdout(), diff, func(w io.Writer) {
				if len(diff) == 0 {
					fmt.Fprintln(w, "in sync: the device reports what is desired")
				}
				for _, d := range diff {
					fmt.Fprintf(w, "%s: desired %v, reported %v\n", d.Setting, orNone(d.Desired), orNone(d.Reported))
				}
			})
		},
	}
}

func configHistory(g *globals) *cobra.Command {
	var t configTarget
	c := &cobra.Command{
		Use:   "history [DEVICE]",
		Short: "Every version of a target's desired configuration; for a device, every configuration it reported applying",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			org, scope, name, err := t.resolve(cmd, g, args)
			if err != nil {
				return err
			}
			hist, err := g.client().ConfigHistory(cmd.Context(), org, scope, name)
			if err != nil {
				return err
			}
			out := map[string]any{"desired": hist}
			var reps []client.Reported
			if scope == record.ConfigDevice {
				if reps, err = g.client().ReportedConfigs(cmd.Context(), name, 50); err == nil {
					out["reported"] = reps
				}
			}
			return g.print(cmd.OutOrStdout(), out, func(w io.Writer) {
				for i := range hist {
					printConfigRecord(w, &hist[i])
				}
				for _, r := range reps {
					printReported(w, r)
				}
			})
		},
	}
	t.register(c)
	return c
}

func printConfigRecord(w io.Writer, r *record.ConfigRecord) {
	by := "admin " + r.Signer
	if r.Grant != 0 {
		by = fmt.Sprintf("%s through grant %d", r.Signer, r.Grant)
	}
	fmt.Fprintf(w, "%s %s of %s v%d, set at height %d by %s:\n", r.Scope, r.Name, r.Org, r.Version, r.Height, by)
	printSettings(w, "  ", r.Settings)
}

func printReported(w io.Writer, r client.Reported) {
	fmt.Fprintf(w, "reported at %s (log entry %d, proved at height %d):\n", r.Time.Format("2006-01-02T15:04:05.000Z07:00"), r.Index, r.Report.Height)
	for _, l := range r.Report.Layers {
		fmt.Fprintf(w, "  applied %s %s v%d\n", l.Scope, l.Name, l.Version)
	}
	printSettings(w, "  ", r.Report.Applied)
	for _, f := range r.Report.Refused {
		fmt.Fprintf(w, "  REFUSED %s%s %s: %s\n", f.Scope, f.Setting, f.Name, f.Reason)
	}
	for _, u := range r.Report.Unproved {
		fmt.Fprintf(w, "  gateway %s failed the proof\n", u)
	}
}

func printSettings(w io.Writer, indent string, s map[string]any) {
	if len(s) == 0 {
		fmt.Fprintf(w, "%s(no settings)\n", indent)
	}
	for _, k := range slices.Sorted(maps.Keys(s)) {
		fmt.Fprintf(w, "%s%s = %v\n", indent, k, s[k])
	}
}

func orNone(v any) any {
	if v == nil {
		return "(none)"
	}
	return v
}

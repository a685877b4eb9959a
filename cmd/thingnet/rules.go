package main

import (
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/thingnet/thingnet/client"
	"github.com/thingnet/thingnet/export/webhook"
	"github.com/thingnet/thingnet/node"
	"github.com/thingnet/thingnet/record"
	"github.com/thingnet/thingnet/rules"
)

// rulesCmd is `thingnet rules`: the [[rules]] a node runs on the readings
// its gateway stores (docs/data.md, "Rules").
func rulesCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "rules", Short: "Rules over windows of readings (and fleet rules over silent devices) that act when they become true: add, list, test, history"}
	c.AddCommand(rulesListCmd(g), rulesTestCmd(g), rulesHistoryCmd(g), rulesAddCmd(g), rulesRemoveCmd(g), rulesDeadLettersCmd(g))
	return c
}

// loadRules reads the rules of a rules file, or of a node's thingnet.toml
// and rules.d.
func loadRules(file, home string) ([]rules.Rule, error) {
	if file != "" {
		src, err := os.ReadFile(file)
		if err != nil {
			return nil, err
		}
		return rules.Parse(src, rules.DefaultLimits())
	}
	c, err := node.LoadConfig(home)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(home, node.ConfigFile), err)
	}
	added, err := rules.Store{Dir: filepath.Join(home, rules.StoreDir)}.List(rules.DefaultLimits())
	if err != nil {
		return nil, err
	}
	return append(c.Rules, added...), nil
}

func rulesListCmd(g *globals) *cobra.Command {
	var file, home string
	var running bool
	c := &cobra.Command{
		Use:   "list",
		Short: "List the rules of a node's thingnet.toml and rules.d (or of a rules file), checked; --running: those the node runs",
		Example: `  thingnet rules list --home ~/.thingnet
  thingnet rules list --running --identity demo-admin   # GET /v1/rules: for the node's operators`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var rs []rules.Rule
			var err error
			if running {
				var a struct {
					Rules []rules.Rule `json:"rules"`
				}
				err = g.client().Get(cmd.Context(), "/v1/rules", &a)
				rs = a.Rules
			} else {
				rs, err = loadRules(file, home)
			}
			if err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), rs, func(w io.Writer) {
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "NAME\tORG\tWHEN\tDEVICES\tCOOLDOWN\tCLEAR AFTER\tACTIONS")
				for _, r := range rs {
					when, devs := r.When, selector(r.Devices)
					if f := r.Fleet; f != nil {
						when, devs = fmt.Sprintf("silent > %d", f.SilentOver), "fleet class="+f.Class
						if f.Class == "" {
							devs = "fleet (every class)"
						}
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%v\t%v\t%s\n", r.Name, r.Org, when, devs, r.Cooldown.Duration, r.ClearAfter.Duration, actions(r.Action))
				}
				tw.Flush()
			})
		},
	}
	c.Flags().StringVar(&file, "rule", "", "a rules file ([[rules]] tables) instead of the node's thingnet.toml")
	c.Flags().StringVar(&home, "home", defaultHome(), "the node's home (its thingnet.toml and rules.d)")
	c.Flags().BoolVar(&running, "running", false, "ask the node (--node) for the rules it runs (GET /v1/rules; --identity an admin of its gateway's organisation)")
	return c
}

// rulesAddCmd is `thingnet rules add`: POST /v1/rules, the rules of a file
// added to a running node, kept in its rules.d across restarts.
func rulesAddCmd(g *globals) *cobra.Command {
	var file string
	c := &cobra.Command{
		Use:   "add --rule FILE",
		Short: "Add the rules of a file to a running node (at once, and across restarts); for its operators",
		Long: `Checks the rules of FILE ([[rules]] tables, as in thingnet.toml) here, then
sends them to the node (POST /v1/rules), which runs them at once and keeps
them in <home>/rules.d. --identity must be an admin of the organisation of
the node's gateway and of each rule's organisation. A rule of the same name
added before is replaced; one of thingnet.toml cannot be.`,
		Example: `  thingnet rules add --rule silent.toml --identity demo-admin`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if file == "" {
				return fmt.Errorf("--rule FILE is required")
			}
			rs, err := loadRules(file, "")
			if err != nil {
				return err
			}
			var a struct {
				Added []string `json:"added"`
				Rules int      `json:"rules"`
			}
			if err := g.client().Post(cmd.Context(), "/v1/rules", rules.File{Rules: rs}, &a); err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), a, func(w io.Writer) {
				fmt.Fprintf(w, "added %s; the node runs %d rules\n", strings.Join(a.Added, ", "), a.Rules)
			})
		},
	}
	c.Flags().StringVar(&file, "rule", "", "a rules file ([[rules]] tables)")
	return c
}

// rulesRemoveCmd is `thingnet rules remove`: DELETE /v1/rules/{name}.
func rulesRemoveCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "remove NAME",
		Short:   "Remove a rule added to a running node (not one of its thingnet.toml); for its operators",
		Example: `  thingnet rules remove sensors-silent --identity demo-admin`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := g.client().Delete(cmd.Context(), "/v1/rules/"+url.PathEscape(args[0]), nil); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "removed %s\n", args[0])
			return nil
		},
	}
}

// actions names what a rule's firing does beyond its log line.
func actions(a rules.Action) string {
	var p []string
	if a.Webhook != "" {
		p = append(p, "webhook "+a.Webhook)
	}
	if a.Alert {
		p = append(p, "alert")
	}
	if c := a.Call; c != nil {
		p = append(p, fmt.Sprintf("call %d.%s", c.Agreement, c.Transition))
	}
	if c := a.Command; c != nil {
		p = append(p, "command "+c.Name)
	}
	if len(p) == 0 {
		return "-"
	}
	return strings.Join(p, "; ")
}

func selector(s rules.Selector) string {
	var p []string
	if len(s.IDs) > 0 {
		p = append(p, "ids="+strings.Join(s.IDs, ","))
	}
	if len(s.Classes) > 0 {
		p = append(p, "classes="+strings.Join(s.Classes, ","))
	}
	keys := make([]string, 0, len(s.Labels))
	for k := range s.Labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		p = append(p, k+"="+s.Labels[k])
	}
	if len(p) == 0 {
		return "all"
	}
	return strings.Join(p, " ")
}

// rulesTestCmd is `thingnet rules test`: the device's stored readings of a
// range, page by page through GET /v1/readings/query as the caller (only
// what it may read), through the rules as the node would run them.
func rulesTestCmd(g *globals) *cobra.Command {
	var file, home, dev, from, to string
	var pageSize int
	c := &cobra.Command{
		Use:     "test",
		Short:   "Run rules over a device's stored readings of a range and show when they would have fired",
		Example: `  thingnet rules test --rule hot.toml --device sensor-1 --from 2026-12-01T00:00:00Z --to 2026-12-02T00:00:00Z --identity admin`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			rs, err := loadRules(file, home)
			if err != nil {
				return err
			}
			if dev == "" {
				return fmt.Errorf("--device is required")
			}
			id, err := g.resolveID(dev)
			if err != nil {
				return err
			}
			q, err := withRange(client.ReadingQuery{Device: id, Limit: pageSize}, from, to)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			base := g.client()
			var d struct {
				Record *record.Device `json:"record"`
			}
			if err := base.Get(ctx, "/v1/devices/"+url.PathEscape(id), &d); err != nil || d.Record == nil {
				return fmt.Errorf("device %s: %v", id, err)
			}
			rd := rules.Device{ID: d.Record.ID, Org: d.Record.Org, Class: d.Record.Class, Labels: d.Record.Labels}
			eng, err := rules.NewEngine(rules.Config{Rules: rs})
			if err != nil {
				return err
			}
			errw := cmd.ErrOrStderr()
			for _, r := range rs {
				if !r.Picks(rd) {
					fmt.Fprintf(errw, "rule %s does not apply to %s (org %s, class %q)\n", r.Name, id, rd.Org, rd.Class)
				}
			}
			var items []client.ReadingItem
			err = base.QueryAll(ctx, q, func(a *client.QueryAnswer) error {
				if a.Withheld > 0 {
					return fmt.Errorf("you may not read %s (authenticate with --identity, or ask for a read grant)", id)
				}
				items = append(items, a.Items...)
				return nil
			})
			if err != nil {
				return err
			}
			sort.SliceStable(items, func(i, j int) bool {
				if !items[i].Time.Equal(items[j].Time) {
					return items[i].Time.Before(items[j].Time)
				}
				return items[i].Seq < items[j].Seq
			})
			fired := []rules.Firing{}
			numeric := 0
			for _, it := range items {
				if it.Value == nil {
					continue
				}
				numeric++
				fired = append(fired, eng.Observe(rd, it.ContentType, it.Seq, it.Time, *it.Value)...)
			}
			fmt.Fprintf(errw, "%d readings (%d numeric), %d firings\n", len(items), numeric, len(fired))
			return g.print(cmd.OutOrStdout(), fired, func(w io.Writer) { printFirings(w, fired) })
		},
	}
	f := c.Flags()
	f.StringVar(&file, "rule", "", "a rules file ([[rules]] tables) instead of the node's thingnet.toml")
	f.StringVar(&home, "home", defaultHome(), "the node's home (its thingnet.toml), without --rule")
	f.StringVar(&dev, "device", "", "a device id or keystore name")
	f.StringVar(&from, "from", "", "from this time (RFC 3339 or Unix ms)")
	f.StringVar(&to, "to", "", "until this time (exclusive)")
	f.IntVar(&pageSize, "page-size", client.MaxQueryLimit, "readings per request")
	return c
}

// rulesHistoryCmd is `thingnet rules history`: GET /v1/rules/firings, the
// recent firings the node's rules made for a device (as the caller).
func rulesHistoryCmd(g *globals) *cobra.Command {
	var dev string
	c := &cobra.Command{
		Use:   "history",
		Short: "Show the recent firings of the node's rules for a device you may read (kept in the node's memory)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			id, err := g.resolveID(dev)
			if err != nil {
				return err
			}
			var a struct {
				Firings []rules.Firing `json:"firings"`
			}
			if err := g.client().Get(cmd.Context(), "/v1/rules/firings?device="+url.QueryEscape(id), &a); err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), a.Firings, func(w io.Writer) { printFirings(w, a.Firings) })
		},
	}
	c.Flags().StringVar(&dev, "device", "", "a device id or keystore name")
	return c
}

func printFirings(w io.Writer, fired []rules.Firing) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tRULE\tSEQ\tTYPE\tVALUE")
	for _, f := range fired {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%g\n", f.Time.UTC().Format(time.RFC3339Nano), f.Rule, f.Seq, f.Type, f.Value)
	}
	tw.Flush()
}

// rulesDeadLettersCmd is `thingnet rules dead-letters`: a rule's webhook
// deliveries that failed every attempt, kept in the node's home.
func rulesDeadLettersCmd(g *globals) *cobra.Command {
	var home, name, drop string
	c := &cobra.Command{
		Use:   "dead-letters --rule NAME [--drop ID]",
		Short: "List a rule's webhook deliveries that failed every attempt (in the node's home); --drop forgets one",
		Long: `A rule's webhook delivery that fails every attempt (or is answered a 4xx
other than 408 and 429) is kept as a dead letter in
<home>/data/rules/webhooks/<hex of the rule's name>/dead-letters, as an
export's are. Run it where the node runs.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if name == "" {
				return fmt.Errorf("--rule NAME is required")
			}
			dl, err := webhook.OpenDeadLetters(rules.WebhookDir(node.RulesWebhooksDir(home), name))
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if drop != "" {
				if err := dl.Drop(drop); err != nil {
					return err
				}
				fmt.Fprintf(out, "dropped %s\n", drop)
				return nil
			}
			letters, err := dl.List()
			if err != nil {
				return err
			}
			return g.print(out, letters, func(w io.Writer) { printLetters(w, letters) })
		},
	}
	c.Flags().StringVar(&home, "home", defaultHome(), "the node's home")
	c.Flags().StringVar(&name, "rule", "", "the rule")
	c.Flags().StringVar(&drop, "drop", "", "forget this dead letter")
	return c
}

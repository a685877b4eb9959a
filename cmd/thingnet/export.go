package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/thingnet/thingnet/client"
	"github.com/thingnet/thingnet/export"
	"github.com/thingnet/thingnet/export/exporters"
	"github.com/thingnet/thingnet/export/postgres"
	"github.com/thingnet/thingnet/export/webhook"
	"github.com/thingnet/thingnet/metrics"
)

// exportCmd is `thingnet export`: the export connectors as their own
// process, their status, a webhook's dead letters and a PostgreSQL
// backfill.
func exportCmd(g *globals) *cobra.Command {
	var config, listen, logLevel string
	c := &cobra.Command{
		Use:   "export --config FILE [--listen ADDR]",
		Short: "Run export connectors (PostgreSQL, NATS JetStream, webhooks) as their own process",
		Long: `Runs the [[export]] tables of FILE (a thingnet.toml, or a file of [[export]]
tables only; docs/export.md) until interrupted: each follows a gateway's
log from its checkpoint, through the gateway node's API, as the identity the
table names, so it exports only what that identity may read. With --listen it
serves /metrics and /v1/exports (the exports' status) on ADDR.`,
		Example: `  thingnet export --config export.toml --listen 127.0.0.1:9470`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			specs, env, err := loadExports(config)
			if err != nil {
				return err
			}
			env.Logger = newLogger(logLevel, "text")
			set, err := exporters.Start(specs, env)
			if err != nil {
				return err
			}
			defer set.Close()
			if listen != "" {
				srv, addr, err := serveExports(listen, set)
				if err != nil {
					return err
				}
				defer srv.Close()
				fmt.Fprintf(cmd.OutOrStdout(), "metrics and status on http://%s\n", addr)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "exporting %d connector(s); Ctrl-C stops\n", len(specs))
			<-cmd.Context().Done()
			return nil
		},
	}
	c.Flags().StringVar(&config, "config", "", "the file of [[export]] tables")
	c.Flags().StringVar(&listen, "listen", "", "serve /metrics and /v1/exports on this address")
	c.Flags().StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	c.AddCommand(exportStatusCmd(g), deadLettersCmd(g), backfillCmd(g))
	return c
}

// loadExports reads a config file's specs; paths in it are relative to
// its directory.
func loadExports(config string) ([]exporters.Spec, exporters.Env, error) {
	if config == "" {
		return nil, exporters.Env{}, errors.New("--config is required: the file of [[export]] tables")
	}
	specs, err := exporters.LoadFile(config)
	if err != nil {
		return nil, exporters.Env{}, err
	}
	abs, err := filepath.Abs(filepath.Dir(config))
	return specs, exporters.Env{Home: abs}, err
}

func findSpec(specs []exporters.Spec, name string) (exporters.Spec, error) {
	for _, s := range specs {
		if s.Name == name {
			return s, nil
		}
	}
	return exporters.Spec{}, fmt.Errorf("no [[export]] named %q in the file", name)
}

// serveExports serves the exports' metrics and status on addr.
func serveExports(addr string, set *exporters.Set) (*http.Server, string, error) {
	reg := metrics.New()
	reg.Exports(set.Status)
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", reg.Handler())
	mux.HandleFunc("GET /v1/exports", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"exports": set.Status()})
	})
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, "", fmt.Errorf("--listen: %w", err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(l)
	return srv, l.Addr().String(), nil
}

// exportStatusCmd is `thingnet export status`: a node's exports.
func exportStatusCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use: "status", Short: "Show the exports of the node (--node) or of a `thingnet export --listen` process", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var st struct {
				Exports []export.Status `json:"exports"`
			}
			if err := client.New(g.node).Get(cmd.Context(), "/v1/exports", &st); err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), st, func(w io.Writer) {
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "NAME\tKIND\tAFTER\tCHECKPOINT\tLAG\tLAG(s)\tDELIVERED\tRETRIED\tFAILED\tSKIPPED\tLAST ERROR")
				for _, s := range st.Exports {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%.1f\t%d\t%d\t%d\t%d\t%s\n", s.Name, s.Kind, s.After, s.Checkpoint, s.LagEntries, s.LagSeconds,
						s.Delivered, s.Retried, s.Failed, s.Skipped, s.LastError)
				}
				tw.Flush()
			})
		},
	}
}

// deadLettersCmd is `thingnet export dead-letters`.
func deadLettersCmd(g *globals) *cobra.Command {
	var config, name, retry, drop string
	var retryAll bool
	c := &cobra.Command{
		Use:   "dead-letters --config FILE --name EXPORT [--retry ID | --retry-all | --drop ID]",
		Short: "List a webhook export's dead letters; deliver them again or drop them",
		Long: `A webhook delivery that failed every attempt is kept in the export's state
directory as a dead letter. Without flags, lists them; --retry ID (or
--retry-all) delivers again now, removing what succeeds; --drop ID forgets one.
Run it where the export runs (it reads the export's state directory).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			specs, env, err := loadExports(config)
			if err != nil {
				return err
			}
			spec, err := findSpec(specs, name)
			if err != nil {
				return err
			}
			sink, err := exporters.Webhook(spec, env)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			switch {
			case drop != "":
				if err := sink.DeadLetters().Drop(drop); err != nil {
					return err
				}
				fmt.Fprintf(out, "dropped %s\n", drop)
				return nil
			case retry != "":
				if err := sink.Redeliver(cmd.Context(), retry); err != nil {
					return err
				}
				fmt.Fprintf(out, "delivered %s\n", retry)
				return nil
			}
			letters, err := sink.DeadLetters().List()
			if err != nil {
				return err
			}
			if retryAll {
				var errs []error
				for _, l := range letters {
					if err := sink.Redeliver(cmd.Context(), l.ID); err != nil {
						errs = append(errs, err)
						continue
					}
					fmt.Fprintf(out, "delivered %s\n", l.ID)
				}
				return errors.Join(errs...)
			}
			return g.print(out, letters, func(w io.Writer) { printLetters(w, letters) })
		},
	}
	f := c.Flags()
	f.StringVar(&config, "config", "", "the file of [[export]] tables")
	f.StringVar(&name, "name", "", "the webhook export")
	f.StringVar(&retry, "retry", "", "deliver this dead letter again")
	f.BoolVar(&retryAll, "retry-all", false, "deliver every dead letter again")
	f.StringVar(&drop, "drop", "", "forget this dead letter")
	c.MarkFlagsMutuallyExclusive("retry", "retry-all", "drop")
	return c
}

func printLetters(w io.Writer, letters []webhook.Letter) {
	if len(letters) == 0 {
		fmt.Fprintln(w, "no dead letters")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tATTEMPTS\tAT\tLAST ERROR")
	for _, l := range letters {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", l.ID, l.Attempts, l.At.Format(time.RFC3339), l.LastError)
	}
	tw.Flush()
}

// backfillCmd is `thingnet export backfill`: a PostgreSQL export starts
// again from an index.
func backfillCmd(g *globals) *cobra.Command {
	var config, name string
	var from uint64
	c := &cobra.Command{
		Use:   "backfill --config FILE --name EXPORT --from INDEX",
		Short: "Make a PostgreSQL export export again from a log index (its rows from there are replaced)",
		Long: `Deletes the export's rows of the gateway's log entries from INDEX on and moves
its checkpoint to INDEX, in one transaction: the running export then writes them
again, each once. Stop the export first, or it may write one more batch from
the old checkpoint before it sees the new one (that batch is refused, not
duplicated).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			specs, _, err := loadExports(config)
			if err != nil {
				return err
			}
			spec, err := findSpec(specs, name)
			if err != nil {
				return err
			}
			if spec.Kind != exporters.KindPostgres {
				return fmt.Errorf("export %q is of kind %s; backfill rewrites a postgres export (a NATS or webhook export de-duplicates: restart it with a lower from)", name, spec.Kind)
			}
			src := spec.Source
			if src == "" {
				src = g.node
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), time.Minute)
			defer cancel()
			p, err := client.New(src).LogEntries(ctx, 0, 0) // the sizes and gateway id are public
			if err != nil {
				return err
			}
			sink, err := postgres.Open(ctx, postgres.Config{DSN: spec.DSN, Table: spec.Table})
			if err != nil {
				return err
			}
			defer sink.Close()
			n, err := sink.Reset(ctx, p.Gateway, from)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "export %s of gateway %s restarts at entry %d (%d rows deleted)\n", name, p.Gateway, from, n)
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&config, "config", "", "the file of [[export]] tables")
	f.StringVar(&name, "name", "", "the postgres export")
	f.Uint64Var(&from, "from", 0, "the first log index to export again")
	return c
}

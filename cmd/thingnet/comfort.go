package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/thingnet/thingnet/client"
	"github.com/thingnet/thingnet/record"
)

// statusCmd is `thingnet status`: the node's chain, heights and validators.
func statusCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use: "status", Short: "Show the node's chain, height and validators, and where its explorer is", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c := g.client()
			var st client.Status
			if err := c.Get(cmd.Context(), "/v1/status", &st); err != nil {
				return fmt.Errorf("%w (is a node running at %s? start one with `thingnet devnet`, or pass --node)", err, g.node)
			}
			var vals struct{ Items []record.Validator }
			if err := c.Get(cmd.Context(), "/v1/validators", &vals); err != nil {
				return err
			}
			out := struct {
				client.Status
				Validators int    `json:"validators"`
				Explorer   string `json:"explorer"`
				Events     string `json:"events"`
			}{st, len(vals.Items), c.BaseURL + "/explorer/", c.BaseURL + "/v1/events"}
			return g.print(cmd.OutOrStdout(), out, func(w io.Writer) {
				fmt.Fprintf(w, "chain:      %s\nheight:     %d (%s)\nnode:       %s %s\nvalidators: %d\nexplorer:   %s\n",
					st.ChainID, st.Height, st.BlockTime.Format(time.RFC3339), st.Moniker, st.NodeID, len(vals.Items), out.Explorer)
				if st.CatchingUp {
					fmt.Fprintln(w, "catching up with the network")
				}
			})
		},
	}
}

// eventsCmd is `thingnet events`: follow the node's event stream.
func eventsCmd(g *globals) *cobra.Command {
	var types string
	var after uint64
	var count int
	c := &cobra.Command{
		Use:   "events",
		Short: "Follow the node's live events (blocks, txs, device status, anchors, ...) until interrupted",
		Long: `Print the node's events as they happen, from GET /v1/events (server-sent
events). --types filters by type or family (device matches device.status and
device.update). With -o json each event is one JSON line: {id, type, data}.`,
		Example: `  thingnet events --types device,anchor
  thingnet events -o json --types block | jq .data.txs`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if g.output != "text" && g.output != "json" && g.output != "" {
				return fmt.Errorf("--output %q: use text or json", g.output)
			}
			q := url.Values{}
			if types != "" {
				q.Set("types", types)
			}
			if after > 0 {
				q.Set("after", strconv.FormatUint(after, 10))
			}
			base := client.New(g.node).BaseURL
			req, err := http.NewRequestWithContext(cmd.Context(), "GET", base+"/v1/events?"+q.Encode(), nil)
			if err != nil {
				return err
			}
			req.Header.Set("Accept", "text/event-stream")
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				return fmt.Errorf("connecting to %s: %w (is a node running there? pass --node)", base, err)
			}
			defer res.Body.Close()
			if res.StatusCode != http.StatusOK {
				var e client.ErrorBody
				_ = json.NewDecoder(res.Body).Decode(&e)
				return fmt.Errorf("GET /v1/events: %s: %s", res.Status, e.Error.Message)
			}
			return printEvents(cmd.OutOrStdout(), res.Body, g.output == "json", count)
		},
	}
	f := c.Flags()
	f.StringVar(&types, "types", "", "comma-separated event types or families, e.g. block,device,anchor (default: all)")
	f.Uint64Var(&after, "after", 0, "first replay the events the node still keeps after this id")
	f.IntVar(&count, "count", 0, "stop after this many events (0: follow until interrupted)")
	return c
}

// printEvents copies a server-sent event stream to w, one line per event.
func printEvents(w io.Writer, r io.Reader, asJSON bool, count int) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 4<<20)
	var id, typ, data string
	n := 0
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "id: "):
			id = line[4:]
		case strings.HasPrefix(line, "event: "):
			typ = line[7:]
		case strings.HasPrefix(line, "data: "):
			data += line[6:]
		case line == "" && data != "":
			if asJSON {
				fmt.Fprintf(w, "{\"id\":%s,\"type\":%q,\"data\":%s}\n", orZero(id), typ, data)
			} else {
				fmt.Fprintf(w, "%-6s %-14s %s\n", id, typ, data)
			}
			id, typ, data = "", "", ""
			if n++; count > 0 && n >= count {
				return nil
			}
		}
	}
	if err := sc.Err(); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}

func orZero(s string) string {
	if s == "" {
		return "0"
	}
	return s
}

// checkLogFlags refuses log settings slog would silently ignore.
func checkLogFlags(level, format string) error {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return fmt.Errorf("--log-level %q: use debug, info, warn or error", level)
	}
	if format != "text" && format != "json" {
		return fmt.Errorf("--log-format %q: use text or json", format)
	}
	return nil
}

// progressBar draws "[####......] 3/6 step" on a terminal (rewriting one
// line), or prints one line per step elsewhere (logs, pipes).
func progressBar(w io.Writer, label string) func(done, total int, step string) {
	tty := false
	if f, ok := w.(*os.File); ok {
		tty = term.IsTerminal(int(f.Fd()))
	}
	return func(done, total int, step string) {
		if total <= 0 {
			return
		}
		if !tty {
			fmt.Fprintf(w, "%s: [%d/%d] %s\n", label, done, total, step)
			return
		}
		const width = 24
		fill := width * done / total
		fmt.Fprintf(w, "\r\033[K%s [%s%s] %d/%d %s", label, strings.Repeat("#", fill), strings.Repeat(".", width-fill), done, total, step)
		if done >= total {
			fmt.Fprintln(w)
		}
	}
}

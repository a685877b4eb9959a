package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/thingnet/thingnet/agreements"
	"github.com/thingnet/thingnet/agreements/lang"
	"github.com/thingnet/thingnet/api"
	"github.com/thingnet/thingnet/chain"
	"github.com/thingnet/thingnet/client"
	"github.com/thingnet/thingnet/ledger"
	"github.com/thingnet/thingnet/record"
	"github.com/thingnet/thingnet/relay"
)

func agreementCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "agreement", Short: "Deploy, inspect and call agreements the ledger executes (see docs/agreements.md)"}

	var tfd txFlags
	var parties []string
	deploy := &cobra.Command{
		Use:   "deploy FILE",
		Short: "Deploy an agreement document (YAML or JSON); the signer accepts for the parties it speaks for",
		Example: `  thingnet agreement deploy examples/agreements/thermostat.yaml --key demo-admin \
    --party sensor=device:sensor-1 --party cooler=device:DID --party buyer=org:demo --party seller=org:acme`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := g.deployMsg(args[0], parties)
			if err != nil {
				return err
			}
			key, err := g.loadKey(tfd.key)
			if err != nil {
				return err
			}
			return g.sendPrint(cmd, key, &tfd, m, func(w io.Writer, res *client.SubmitResult) {
				fmt.Fprintf(w, "agreement %s deployed at height %d (%s): tx %s\n", eventAttr(res.Events, "agreement", "id"), res.Height, eventAttr(res.Events, "agreement", "status"), res.Hash)
			})
		},
	}
	tfd.register(deploy)
	deploy.Flags().StringArrayVar(&parties, "party", nil, "bind a party: NAME=org:ID or NAME=device:DID (or device:KEYNAME); repeat")

	var tfa txFlags
	accept := &cobra.Command{
		Use: "accept ID", Short: "Accept a proposed agreement for every party the signer speaks for", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := agreementID(args[0])
			if err != nil {
				return err
			}
			return g.send(cmd, &tfa, &record.AgreementAccept{ID: id})
		},
	}
	tfa.register(accept)

	var prove bool
	show := &cobra.Command{
		Use: "show ID", Short: "Show an agreement: parties, status, state, escrow", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := agreementID(args[0])
			if err != nil {
				return err
			}
			var rec struct {
				Height int64                `json:"height"`
				Record client.AgreementView `json:"record"`
				Proof  *record.Proof        `json:"proof,omitempty"`
			}
			path := "/v1/agreements/" + args[0]
			if prove {
				path += "?prove=true"
			}
			if err := g.client().Get(cmd.Context(), path, &rec); err != nil {
				return err
			}
			if prove {
				if err := checkAgreementProof(cmd.Context(), g.client(), &rec.Record.Agreement, rec.Proof); err != nil {
					return fmt.Errorf("PROOF FAILED for agreement %d: %w", id, err)
				}
			}
			return g.print(cmd.OutOrStdout(), rec, func(w io.Writer) {
				a := rec.Record
				fmt.Fprintf(w, "agreement %d %q: %s (deployed at %d by %s; %d history entries)\n", a.ID, a.Name, a.Status, a.Deployed, a.Deployer, a.History)
				for _, p := range a.Parties {
					acc := "not yet accepted"
					if p.Accepted {
						acc = "accepted"
					}
					fmt.Fprintf(w, "  party %-10s %s (%s)\n", p.Name, p.Principal, acc)
				}
				for _, k := range sortedMapKeys(a.State) {
					fmt.Fprintf(w, "  state %-10s %v\n", k, a.State[k])
				}
				fmt.Fprintf(w, "  escrow %d credits\n", a.Escrow)
				if prove {
					fmt.Fprintf(w, "  proof checked against the header of height %d\n", rec.Height+1)
				}
			})
		},
	}
	show.Flags().BoolVar(&prove, "prove", false, "check the record's proof against a header signed by the validators")

	list := &cobra.Command{
		Use: "list", Short: "List agreements", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var p struct {
				Items []client.AgreementView `json:"items"`
			}
			if err := g.client().Get(cmd.Context(), "/v1/agreements?limit=1000", &p); err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), p.Items, func(w io.Writer) {
				for _, a := range p.Items {
					fmt.Fprintf(w, "%d\t%s\t%s\tdeployed at %d\n", a.ID, a.Name, a.Status, a.Deployed)
				}
			})
		},
	}

	var tfc txFlags
	var call callFlags
	callC := &cobra.Command{
		Use:   "call ID TRANSITION",
		Short: "Fire a transition: as a party (--arg NAME=VALUE), or with a proven reading (--reading INDEX)",
		Example: `  thingnet agreement call 2 reserve --key ev-1 --arg slot=3 --arg price=40 --arg blocks=20
  thingnet agreement call 1 hot --key demo-admin --reading 17`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			call.signer = tfc.key
			m, err := g.callMsg(cmd.Context(), args[0], args[1], &call)
			if err != nil {
				return err
			}
			key, err := g.loadKey(tfc.key)
			if err != nil {
				return err
			}
			return g.sendPrint(cmd, key, &tfc, m, func(w io.Writer, res *client.SubmitResult) {
				fmt.Fprintf(w, "%s committed at height %d: tx %s\n", m.Transition, res.Height, res.Hash)
				for _, id := range eventAttrs(res.Events, "command", "id") {
					fmt.Fprintf(w, "  command %s issued\n", id)
				}
			})
		},
	}
	tfc.register(callC)
	call.register(callC)

	var dry callFlags
	var drySigner, dryFile string
	var dryParties []string
	dryRun := &cobra.Command{
		Use:   "dry-run [ID TRANSITION]",
		Short: "Run a call (or with --file, a deployment) on the latest state without committing: effects and CEL cost",
		Example: `  thingnet agreement dry-run 1 retune --signer demo-admin --arg threshold=25
  thingnet agreement dry-run --file examples/agreements/charging.yaml --signer demo-admin --party ev=device:ev-1 ...`,
		Args: cobra.RangeArgs(0, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			signer, err := g.resolveID(drySigner)
			if err != nil {
				return fmt.Errorf("--signer: %w", err)
			}
			q := &client.DryRunRequest{Signer: signer}
			switch {
			case dryFile != "":
				m, err := g.deployMsg(dryFile, dryParties)
				if err != nil {
					return err
				}
				q.Source, q.Parties = string(m.Source), m.Parties
			case len(args) == 2:
				m, err := g.callMsg(cmd.Context(), args[0], args[1], &dry)
				if err != nil {
					return err
				}
				q.ID, q.Transition, q.Reading = m.ID, m.Transition, m.Reading
				q.Args = m.Args
			default:
				return fmt.Errorf("give ID TRANSITION (a call) or --file FILE (a deployment)")
			}
			res, err := api.DryRun(cmd.Context(), g.client(), q)
			if err != nil {
				return err
			}
			if err := g.print(cmd.OutOrStdout(), res, func(w io.Writer) { printDryRun(w, res) }); err != nil {
				return err
			}
			if !res.OK {
				return fmt.Errorf("the tx would be refused: %s", res.Error)
			}
			return nil
		},
	}
	dry.register(dryRun)
	dryRun.Flags().StringVar(&drySigner, "signer", envOr("THINGNET_KEY", ""), "who would sign: a did:key or keystore name")
	dryRun.Flags().StringVar(&dryFile, "file", "", "dry-run deploying this document instead of a call")
	dryRun.Flags().StringArrayVar(&dryParties, "party", nil, "with --file: bind a party NAME=org:ID or NAME=device:DID")

	history := &cobra.Command{
		Use: "history ID", Short: "Show what an agreement did, transition by transition", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, err := agreementID(args[0]); err != nil {
				return err
			}
			var p struct {
				Items []record.AgreementEvent `json:"items"`
			}
			if err := g.client().Get(cmd.Context(), "/v1/agreements/"+args[0]+"/history?limit=1000", &p); err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), p.Items, func(w io.Writer) {
				for _, e := range p.Items {
					fmt.Fprintf(w, "#%d height %d %s %s", e.Seq, e.Height, e.Trigger, e.Transition)
					if e.Signer != "" {
						fmt.Fprintf(w, " by %s", e.Signer)
					}
					if e.Cost > 0 {
						fmt.Fprintf(w, " (CEL cost %d)", e.Cost)
					}
					if e.Error != "" {
						fmt.Fprintf(w, " FAILED: %s", e.Error)
					}
					fmt.Fprintln(w)
					for _, a := range e.Actions {
						fmt.Fprintf(w, "    %s\n", describeAction(a))
					}
				}
			})
		},
	}

	var after uint64
	commands := &cobra.Command{
		Use: "commands DEVICE", Short: "List the commands agreements issued to a device", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dev, err := g.resolveID(args[0])
			if err != nil {
				return err
			}
			cs, err := g.client().Commands(cmd.Context(), dev, after)
			if err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), cs, func(w io.Writer) {
				for _, c := range cs {
					fmt.Fprintf(w, "%d\theight %d\tagreement %d %s\t%q\n", c.ID, c.Height, c.Agreement, c.Transition, c.Payload)
				}
			})
		},
	}
	commands.Flags().Uint64Var(&after, "after", 0, "only commands with an id above this")

	c.AddCommand(deploy, accept, show, list, callC, dryRun, history, commands, relayCmd(g))
	return c
}

func relayCmd(g *globals) *cobra.Command {
	var key string
	var poll time.Duration
	var all bool
	c := &cobra.Command{
		Use:   "relay ID...",
		Short: "Feed the readings of watched devices, once anchored, to these agreements (runs until interrupted)",
		Long: `Follows the readings the node's gateway stores for every device a reading
trigger of the agreements names; once an anchor covers a reading, sends the
agreement.call (with its proof) of the first transition a dry run says it
fires. Any key may relay: the ledger trusts the proof, not the relayer.`,
		Example: `  thingnet agreement relay 1 --key relayer`,
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var ids []uint64
			for _, a := range args {
				id, err := agreementID(a)
				if err != nil {
					return err
				}
				ids = append(ids, id)
			}
			k, err := g.loadKey(key)
			if err != nil {
				return err
			}
			since := time.Now()
			if all {
				since = time.Time{}
			}
			r, err := relay.New(relay.Config{Client: g.client(), Key: k, Agreements: ids, Poll: poll, Since: since,
				Logger: slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: slog.LevelInfo}))})
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			fmt.Fprintf(cmd.OutOrStdout(), "relaying readings to agreements %v through %s; Ctrl-C stops\n", ids, g.node)
			return r.Run(ctx)
		},
	}
	c.Flags().StringVar(&key, "key", envOr("THINGNET_KEY", ""), "keystore name (or file) of the key that signs the calls")
	c.Flags().DurationVar(&poll, "poll", 200*time.Millisecond, "how often to look for new readings")
	c.Flags().BoolVar(&all, "all", false, "also relay readings timed before now")
	return c
}

// checkAgreementProof checks the record's proof against a header signed by
// the validators, and that the proven record is the one shown.
func checkAgreementProof(ctx context.Context, cl *client.Client, a *record.Agreement, p *record.Proof) error {
	if p == nil || p.Value == nil {
		return fmt.Errorf("the node sent no proof of the record")
	}
	st, err := cl.Status(ctx)
	if err != nil {
		return err
	}
	if _, err := cl.VerifyProof(ctx, st.ChainID, p); err != nil {
		return err
	}
	var proven record.Agreement
	if err := record.Unmarshal(p.Value, &proven); err != nil {
		return err
	}
	if proven.ID != a.ID || proven.Status != a.Status || proven.History != a.History || string(proven.Hash) != string(a.Hash) {
		return fmt.Errorf("the proven record differs from the one shown")
	}
	return nil
}

// callFlags are the inputs of a call: arguments or a reading.
type callFlags struct {
	args     []string
	reading  string
	item     uint32
	signer   string // the key that signs the call: it reads --reading too, unless --identity says otherwise
	disclose bool   // with reading: disclose a sealed reading's value (datakey.go)
}

func (f *callFlags) register(c *cobra.Command) {
	c.Flags().StringArrayVar(&f.args, "arg", nil, "an argument NAME=VALUE (typed as the transition declares it); repeat")
	c.Flags().StringVar(&f.reading, "reading", "", "fire with the reading at this index of the node's gateway log, with its proof")
	c.Flags().Uint32Var(&f.item, "item", 0, "with --reading: which reading of a batch envelope")
	c.Flags().BoolVar(&f.disclose, "disclose", false, "with --reading of a sealed reading: disclose that one value to the ledger (its secret, from the organisation's data key; docs/privacy.md)")
}

func agreementID(s string) (uint64, error) {
	id, err := strconv.ParseUint(s, 10, 64)
	if err != nil || id == 0 {
		return 0, fmt.Errorf("agreement id %q must be a number from 1 (see `thingnet agreement list`)", s)
	}
	return id, nil
}

func (g *globals) deployMsg(file string, parties []string) (*record.AgreementDeploy, error) {
	src, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	doc, err := lang.Parse(src)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	m := &record.AgreementDeploy{Source: src, Parties: map[string]string{}}
	for _, p := range parties {
		name, val, ok := strings.Cut(p, "=")
		if !ok {
			return nil, fmt.Errorf("--party %q: want NAME=org:ID or NAME=device:DID", p)
		}
		if m.Parties[name], err = g.resolvePrincipal(val); err != nil {
			return nil, fmt.Errorf("--party %s: %w", name, err)
		}
	}
	// Type-check here too, so that a mistake costs no tx.
	if _, err := agreements.Compile(doc, m.Parties, lang.DefaultLimits()); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return m, nil
}

// callMsg builds an agreement.call, typing arguments as the agreement's
// document declares them.
func (g *globals) callMsg(ctx context.Context, idArg, transition string, f *callFlags) (*record.AgreementCall, error) {
	id, err := agreementID(idArg)
	if err != nil {
		return nil, err
	}
	m := &record.AgreementCall{ID: id, Transition: transition}
	if f.reading != "" {
		if g.identity == "" && g.token == "" {
			g.identity = f.signer // read the reading as the caller, a party that may read it
		}
		p, err := g.readingProof(ctx, f.reading)
		if err == nil {
			err = p.Err()
		}
		if err != nil {
			return nil, err
		}
		m.Reading = p.Evidence(f.item)
		if f.disclose {
			if m.Reading.Secret, err = g.disclosure(ctx, p.Envelope, f.item); err != nil {
				return nil, err
			}
		}
	}
	if len(f.args) == 0 {
		return m, nil
	}
	a, err := g.client().Agreement(ctx, id)
	if err != nil {
		return nil, err
	}
	d, err := lang.Parse([]byte(a.Source))
	if err != nil {
		return nil, err
	}
	var decl []lang.Var
	for _, t := range d.Transitions {
		if t.Name == transition {
			decl = t.Args
		}
	}
	m.Args = map[string]any{}
	for _, kv := range f.args {
		name, val, ok := strings.Cut(kv, "=")
		if !ok {
			return nil, fmt.Errorf("--arg %q: want NAME=VALUE", kv)
		}
		typ := lang.Type("")
		for _, v := range decl {
			if v.Name == name {
				typ = v.Type
			}
		}
		switch typ {
		case "":
			return nil, fmt.Errorf("--arg %s: transition %s declares no such argument", name, transition)
		case lang.TypeString:
			m.Args[name] = val
		case lang.TypeBool:
			b, err := strconv.ParseBool(val)
			if err != nil {
				return nil, fmt.Errorf("--arg %s: %q is not true or false", name, val)
			}
			m.Args[name] = b
		default:
			n, err := strconv.ParseInt(val, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("--arg %s: %q is not an integer", name, val)
			}
			m.Args[name] = n
		}
	}
	return m, nil
}

// eventAttrs returns the values of key in the tx's events of type typ.
func eventAttrs(events any, typ, key string) []string {
	b, _ := json.Marshal(events)
	var evs []struct {
		Type       string `json:"type"`
		Attributes []struct {
			Key   string `json:"key"`
			Value string `json:"value"`
		} `json:"attributes"`
	}
	_ = json.Unmarshal(b, &evs)
	var out []string
	for _, e := range evs {
		if e.Type != typ {
			continue
		}
		for _, a := range e.Attributes {
			if a.Key == key {
				out = append(out, a.Value)
			}
		}
	}
	return out
}

func eventAttr(events any, typ, key string) string {
	if vs := eventAttrs(events, typ, key); len(vs) > 0 {
		return vs[0]
	}
	return "?"
}

func describeAction(a lang.Action) string {
	switch a.Kind {
	case lang.EffectTransfer, lang.EffectEscrow, lang.EffectRelease:
		return fmt.Sprintf("%s %d credits %s -> %s", a.Kind, a.Amount, a.From, a.To)
	case lang.EffectCommand:
		return fmt.Sprintf("command %s %q", a.Device, a.Payload)
	case lang.EffectSuspend, lang.EffectResume:
		return fmt.Sprintf("%s %s (%s)", a.Kind, a.Device, a.Reason)
	case lang.EffectGrant:
		s := fmt.Sprintf("grant %s: %s may %s %s (by %s)", a.Grant.Name, a.Grant.Subject, a.Grant.Action, a.Grant.Resource, a.Grant.Grantor)
		if a.Grant.Expiry != 0 {
			s += fmt.Sprintf(" until height %d", a.Grant.Expiry)
		}
		return s
	case lang.EffectRevoke:
		return fmt.Sprintf("revoke grant %d", a.RevokeID)
	case lang.EffectEmit:
		return fmt.Sprintf("emit %s = %d", a.Event, a.Value)
	}
	return string(a.Kind)
}

func printDryRun(w io.Writer, res *ledger.DryRun) {
	if res.OK {
		fmt.Fprintf(w, "would succeed on the state after height %d (CEL cost %d)\n", res.Height, res.Cost)
	} else {
		fmt.Fprintf(w, "would be refused on the state after height %d: %s: %s\n", res.Height, res.Code, res.Error)
	}
	for _, t := range res.Trace {
		fmt.Fprintf(w, "agreement %d %s %s (CEL cost %d)\n", t.Agreement, t.Trigger, t.Transition, t.Cost)
		if t.Error != "" {
			fmt.Fprintf(w, "    FAILED: %s\n", t.Error)
		}
		for _, a := range t.Actions {
			fmt.Fprintf(w, "    %s\n", describeAction(a))
		}
		for _, k := range sortedMapKeys(t.State) {
			fmt.Fprintf(w, "    state %s = %v\n", k, t.State[k])
		}
	}
}

func sortedMapKeys(m map[string]any) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func creditsCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "credits", Short: "Credits for machine-to-machine payment: balances and transfers"}
	balance := &cobra.Command{
		Use: "balance ACCOUNT", Short: "Show an account's credits (org:ID, device:DID or device:KEYNAME)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			acct, err := g.resolvePrincipal(args[0])
			if err != nil {
				return err
			}
			b, err := g.client().Balance(cmd.Context(), acct)
			if err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), client.Credits{Account: acct, Balance: b}, func(w io.Writer) {
				fmt.Fprintf(w, "%s holds %d credits\n", acct, b)
			})
		},
	}
	var tf txFlags
	var m record.CreditTransfer
	transfer := &cobra.Command{
		Use:     "transfer",
		Short:   "Move credits from an account the signer speaks for",
		Example: `  thingnet credits transfer --key demo-admin --from org:demo --to device:ev-1 --amount 100`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var err error
			if m.From, err = g.resolvePrincipal(m.From); err != nil {
				return err
			}
			if m.To, err = g.resolvePrincipal(m.To); err != nil {
				return err
			}
			return g.send(cmd, &tf, &m)
		},
	}
	tf.register(transfer)
	transfer.Flags().StringVar(&m.From, "from", "", "paying account: org:ID (signed by an admin) or device:DID (signed by the device)")
	transfer.Flags().StringVar(&m.To, "to", "", "receiving account: org:ID or device:DID")
	transfer.Flags().Uint64Var(&m.Amount, "amount", 0, "credits to move")
	transfer.Flags().StringVar(&m.Memo, "memo", "", "a note kept with the transfer")

	history := &cobra.Command{
		Use: "history ACCOUNT", Short: "List an account's transfers (mints, payments, escrow, releases)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			acct, err := g.resolvePrincipal(args[0])
			if err != nil {
				return err
			}
			var p struct {
				Items []record.Transfer `json:"items"`
			}
			if err := g.client().Get(cmd.Context(), "/v1/credits/"+url.PathEscape(acct)+"/transfers?limit=1000", &p); err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), p.Items, func(w io.Writer) {
				for _, t := range p.Items {
					from := t.From
					if from == "" {
						from = "(minted)"
					}
					fmt.Fprintf(w, "#%d height %d %s %d: %s -> %s", t.Seq, t.Height, t.Kind, t.Amount, from, t.To)
					if t.Agreement != 0 {
						fmt.Fprintf(w, " (agreement %d)", t.Agreement)
					}
					if t.Memo != "" {
						fmt.Fprintf(w, " %q", t.Memo)
					}
					fmt.Fprintln(w)
				}
			})
		},
	}
	c.AddCommand(balance, transfer, history, approveMintCmd(), mintCmd(g))
	return c
}

// mintApproval is what `credits approve-mint` prints and `credits mint` reads.
type mintApproval struct {
	ChainID   string `json:"chain_id"`
	Seq       uint64 `json:"seq"`
	To        string `json:"to"`
	Amount    uint64 `json:"amount"`
	Validator string `json:"validator"` // base64 consensus key of the approving validator
	Signature string `json:"signature"` // base64
}

func approveMintCmd() *cobra.Command {
	var home, chainID, to string
	var seq, amount uint64
	c := &cobra.Command{
		Use:   "approve-mint",
		Short: "Sign an approval of a credit mint with this node's consensus key (prints JSON for `credits mint`)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if seq == 0 || amount == 0 || to == "" || chainID == "" {
				return fmt.Errorf("--chain-id, --seq (the last mint's + 1), --to and --amount are required")
			}
			pub, sig, err := chain.SignWithValidatorKey(home, record.CreditMintMessage(chainID, seq, to, amount))
			if err != nil {
				return err
			}
			return json.NewEncoder(cmd.OutOrStdout()).Encode(mintApproval{ChainID: chainID, Seq: seq, To: to, Amount: amount,
				Validator: base64.StdEncoding.EncodeToString(pub), Signature: base64.StdEncoding.EncodeToString(sig)})
		},
	}
	f := c.Flags()
	f.StringVar(&home, "home", filepath.Join(defaultHome(), "node"), "home of the approving validator node")
	f.StringVar(&chainID, "chain-id", "", "chain id")
	f.Uint64Var(&seq, "seq", 0, "mint sequence number (the last mint's + 1; the first is 1)")
	f.StringVar(&to, "to", "", "account to credit: org:ID or device:DID")
	f.Uint64Var(&amount, "amount", 0, "credits to create")
	return c
}

func mintCmd(g *globals) *cobra.Command {
	var tf txFlags
	c := &cobra.Command{
		Use:   "mint APPROVAL.json...",
		Short: "Submit a credit mint with approvals of validators holding more than 2/3 of the power",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var m *record.CreditMint
			for _, file := range args {
				b, err := os.ReadFile(file)
				if err != nil {
					return err
				}
				var a mintApproval
				if err := json.Unmarshal(b, &a); err != nil {
					return fmt.Errorf("%s: %w", file, err)
				}
				v, err1 := base64.StdEncoding.DecodeString(a.Validator)
				sg, err2 := base64.StdEncoding.DecodeString(a.Signature)
				if err1 != nil || err2 != nil {
					return fmt.Errorf("%s: bad base64 field", file)
				}
				if m == nil {
					m = &record.CreditMint{To: a.To, Amount: a.Amount, Seq: a.Seq}
				} else if m.To != a.To || m.Amount != a.Amount || m.Seq != a.Seq {
					return fmt.Errorf("%s approves a different mint than the others", file)
				}
				m.Approvals = append(m.Approvals, record.Approval{Validator: v, Signature: sg})
			}
			return g.send(cmd, &tf, m)
		},
	}
	tf.register(c)
	return c
}

package main

import (
	"fmt"
	"io"
	"net/url"
	"strconv"

	"github.com/spf13/cobra"
	"github.com/thingnet/thingnet/record"
)

func grantCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "grant", Short: "Grant and revoke permissions (message, read, command, fetch, manage, ...)"}
	var tf txFlags
	var m record.GrantAdd
	add := &cobra.Command{
		Use:   "add",
		Short: "Let a subject perform an action on a resource the grantor owns",
		Example: `  thingnet grant add --key demo-admin --grantor org:demo --subject org:partner --action read --resource device:sensor-1/readings
  thingnet grant add --key sensor-1 --grantor device:sensor-1 --subject device:display-1 --action message --resource device:sensor-1`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var err error
			if m.Grantor, err = g.resolvePrincipal(m.Grantor); err != nil {
				return err
			}
			if m.Subject, err = g.resolvePrincipal(m.Subject); err != nil {
				return err
			}
			if m.Resource, err = g.resolveResource(m.Resource); err != nil {
				return err
			}
			return g.send(cmd, &tf, &m)
		},
	}
	tf.register(add)
	f := add.Flags()
	f.StringVar(&m.Grantor, "grantor", "", "who grants: org:ID (signed by an admin) or device:ID (signed by the device)")
	f.StringVar(&m.Subject, "subject", "", "who receives: org:ID or device:ID (a did:key or keystore name)")
	f.StringVar(&m.Action, "action", "", "what they may do: message, read, command, fetch, manage, ...")
	f.StringVar(&m.Resource, "resource", "", "on what: org:ID[/path] or device:ID[/path]")
	f.Int64Var(&m.Expiry, "expiry", 0, "last block height at which the grant holds (0: none)")
	f.Uint64Var(&m.Quota, "quota", 0, "uses per day, enforced at the edge (0: unlimited)")

	var tfr txFlags
	revoke := &cobra.Command{
		Use: "revoke ID", Short: "Revoke a grant", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := strconv.ParseUint(args[0], 10, 64)
			if err != nil {
				return fmt.Errorf("grant id %q must be a number (see `thingnet grant list`)", args[0])
			}
			return g.send(cmd, &tfr, &record.GrantRevoke{ID: id})
		},
	}
	tfr.register(revoke)

	var subject, action, resource string
	list := &cobra.Command{
		Use: "list", Short: "List grants in force", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var err error
			if subject, err = g.resolvePrincipal(subject); err != nil {
				return err
			}
			q := url.Values{"subject": {subject}, "action": {action}, "resource": {resource}, "limit": {"1000"}}
			var p struct {
				Items []record.Grant `json:"items"`
			}
			if err := g.client().Get(cmd.Context(), "/v1/grants?"+q.Encode(), &p); err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), p.Items, func(w io.Writer) {
				for _, gr := range p.Items {
					exp := "no expiry"
					if gr.Expiry != 0 {
						exp = fmt.Sprintf("until height %d", gr.Expiry)
					}
					fmt.Fprintf(w, "#%d  %s may %s on %s  (granted by %s, %s)\n", gr.ID, gr.Subject, gr.Action, gr.Resource, gr.Grantor, exp)
				}
			})
		},
	}
	lf := list.Flags()
	lf.StringVar(&subject, "subject", "", "only grants to this subject")
	lf.StringVar(&action, "action", "", "only this action")
	lf.StringVar(&resource, "resource", "", "only this resource")
	c.AddCommand(add, revoke, list)
	return c
}

// resolveResource lets device resources name a keystore key: device:sensor-1/readings.
func (g *globals) resolveResource(s string) (string, error) {
	owner, path := s, ""
	if i := indexSlashAfterOwner(s); i >= 0 {
		owner, path = s[:i], s[i:]
	}
	p, err := g.resolvePrincipal(owner)
	if err != nil {
		return "", err
	}
	return p + path, nil
}

func indexSlashAfterOwner(s string) int {
	for i := 0; i < len(s); i++ {
		if s[i] == '/' {
			return i
		}
	}
	return -1
}

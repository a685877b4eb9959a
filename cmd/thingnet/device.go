package main

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/url"
	"sort"

	"github.com/spf13/cobra"

	"github.com/thingnet/thingnet/client"
	"github.com/thingnet/thingnet/record"
)

func deviceCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "device", Short: "Register devices, change their keys, status and metadata, and read their records"}
	c.AddCommand(deviceRegister(g), devicePop(g), deviceRotate(g),
		deviceStatus(g, "suspend", record.StatusSuspended), deviceStatus(g, "resume", record.StatusActive), deviceStatus(g, "revoke", record.StatusRevoked),
		deviceUpdate(g), deviceShow(g), deviceHistory(g), deviceList(g), deviceToken(g),
		deviceCode(g), deviceClaim(g), deviceRun(g), deviceConfigCmd(g))
	return c
}

func deviceRegister(g *globals) *cobra.Command {
	var tf txFlags
	var org, devKey, devID, proofHex, class, firmware, attestedBy, csvFile string
	var labels []string
	c := &cobra.Command{
		Use:   "register",
		Short: "Register a device in an organisation (signed by an admin, with the device's proof of possession)",
		Example: `  thingnet device register --key demo-admin --org demo --device-key sensor-1
  thingnet device register --key demo-admin --org demo --device did:key:z6Mk... --proof HEX  # proof from 'thingnet device pop' on the device
  thingnet device register --key demo-admin --org demo --csv devices.csv  # columns: id or key name, class, labels k=v;k2=v2, pop hex`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if csvFile != "" {
				admin, err := g.loadKey(tf.key)
				if err != nil {
					return err
				}
				return g.registerCSV(cmd, admin, org, csvFile)
			}
			m := &record.DeviceRegister{Org: org, Class: class, Firmware: firmware}
			var err error
			if attestedBy != "" {
				if m.AttestedBy, err = g.resolveID(attestedBy); err != nil {
					return err
				}
			}
			if m.Labels, err = parseLabels(labels); err != nil {
				return err
			}
			admin, err := g.loadKey(tf.key)
			if err != nil {
				return err
			}
			st, err := g.client().Status(cmd.Context())
			if err != nil {
				return err
			}
			switch {
			case devKey != "":
				dk, err := g.loadKey(devKey)
				if err != nil {
					return err
				}
				m.Device = dk.ID()
				if m.Proof, err = dk.Sign(record.PossessionMessage(st.ChainID, org, m.Device)); err != nil {
					return err
				}
			case devID != "" && proofHex != "":
				m.Device = devID
				if m.Proof, err = hex.DecodeString(proofHex); err != nil {
					return fmt.Errorf("--proof: %w", err)
				}
			default:
				return errors.New("name the device: --device-key NAME (its key is here), or --device DID with --proof HEX from `thingnet device pop`")
			}
			return g.sendWith(cmd, admin, &tf, m)
		},
	}
	tf.register(c)
	f := c.Flags()
	f.StringVar(&org, "org", "", "organisation the device joins")
	f.StringVar(&devKey, "device-key", "", "the device's key in the keystore")
	f.StringVar(&devID, "device", "", "the device's did:key (with --proof)")
	f.StringVar(&proofHex, "proof", "", "the device's proof of possession, hex (from `thingnet device pop`)")
	f.StringVar(&class, "class", "", "device class, e.g. sensor, actuator, camera; gateway for a gateway's own key")
	f.StringVar(&attestedBy, "attested-by", "", "gateway that signs readings for this device, if it cannot sign (did:key or key name)")
	f.StringVar(&firmware, "firmware", "", "firmware version")
	f.StringArrayVar(&labels, "label", nil, "label key=value (repeat)")
	f.StringVar(&csvFile, "csv", "", "register every device of this CSV file (resumable: registered devices are skipped)")
	return c
}

func devicePop(g *globals) *cobra.Command {
	var key, org, chainID string
	c := &cobra.Command{
		Use:   "pop",
		Short: "Print a device key's proof of possession for registration in an organisation",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			k, err := g.loadKey(key)
			if err != nil {
				return err
			}
			if chainID == "" {
				st, err := g.client().Status(cmd.Context())
				if err != nil {
					return fmt.Errorf("%w (or pass --chain-id)", err)
				}
				chainID = st.ChainID
			}
			sig, err := k.Sign(record.PossessionMessage(chainID, org, k.ID()))
			if err != nil {
				return err
			}
			out := map[string]string{"device": k.ID(), "org": org, "chain_id": chainID, "proof": hex.EncodeToString(sig)}
			return g.print(cmd.OutOrStdout(), out, func(w io.Writer) {
				fmt.Fprintf(w, "device: %s\nproof:  %s\n", k.ID(), out["proof"])
			})
		},
	}
	c.Flags().StringVar(&key, "key", "", "the device's key")
	c.Flags().StringVar(&org, "org", "", "organisation it will join")
	c.Flags().StringVar(&chainID, "chain-id", "", "chain id (default: asked from --node)")
	return c
}

func deviceRotate(g *globals) *cobra.Command {
	var tf txFlags
	var newKey string
	c := &cobra.Command{
		Use:   "rotate DEVICE",
		Short: "Replace a device's key (signed by the device itself or an admin); its id stays",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := g.resolveID(args[0])
			if err != nil {
				return err
			}
			nk, err := g.loadKey(newKey)
			if err != nil {
				return err
			}
			st, err := g.client().Status(cmd.Context())
			if err != nil {
				return err
			}
			proof, err := nk.Sign(record.RotationMessage(st.ChainID, id, nk.ID()))
			if err != nil {
				return err
			}
			return g.send(cmd, &tf, &record.DeviceRotate{Device: id, NewKey: nk.ID(), Proof: proof})
		},
	}
	tf.register(c)
	c.Flags().StringVar(&newKey, "new-key", "", "keystore name of the new key")
	return c
}

func deviceStatus(g *globals, verb string, to record.Status) *cobra.Command {
	var tf txFlags
	var reason string
	short := map[string]string{
		"suspend": "Suspend a device: its signatures are refused from the next block until resumed",
		"resume":  "Resume a suspended device",
		"revoke":  "Revoke a device for good",
	}[verb]
	c := &cobra.Command{
		Use: verb + " DEVICE", Short: short, Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := g.resolveID(args[0])
			if err != nil {
				return err
			}
			return g.send(cmd, &tf, record.NewDeviceStatus(id, to, reason))
		},
	}
	tf.register(c)
	c.Flags().StringVar(&reason, "reason", "", "why (kept in the device's history)")
	return c
}

func deviceUpdate(g *globals) *cobra.Command {
	var tf txFlags
	var m record.DeviceUpdate
	var labels []string
	c := &cobra.Command{
		Use: "update DEVICE", Short: "Change a device's class, firmware version or labels", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var err error
			if m.Device, err = g.resolveID(args[0]); err != nil {
				return err
			}
			if m.Labels, err = parseLabels(labels); err != nil {
				return err
			}
			return g.send(cmd, &tf, &m)
		},
	}
	tf.register(c)
	f := c.Flags()
	f.StringVar(&m.Class, "class", "", "new class")
	f.StringVar(&m.Firmware, "firmware", "", "new firmware version")
	f.StringArrayVar(&labels, "label", nil, "set label key=value (repeat)")
	f.StringArrayVar(&m.RemoveLabels, "remove-label", nil, "remove label key (repeat)")
	return c
}

func deviceShow(g *globals) *cobra.Command {
	var prove bool
	c := &cobra.Command{
		Use: "show DEVICE", Short: "Show a device's record (DEVICE: did:key or keystore name)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := g.resolveID(args[0])
			if err != nil {
				return err
			}
			var d record.Device
			if err := g.getRecord(cmd, "/v1/devices/"+url.PathEscape(id), prove, &d); err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), d, func(w io.Writer) {
				fmt.Fprintf(w, "id:         %s\norg:        %s\nstatus:     %s\nkey:        %s\nclass:      %s\nfirmware:   %s\n", d.ID, d.Org, d.Status, d.Key, d.Class, d.Firmware)
				keys := make([]string, 0, len(d.Labels))
				for k := range d.Labels {
					keys = append(keys, k)
				}
				sort.Strings(keys)
				for _, k := range keys {
					fmt.Fprintf(w, "label:      %s=%s\n", k, d.Labels[k])
				}
				if d.AttestedBy != "" {
					fmt.Fprintf(w, "attested:   by gateway %s\n", d.AttestedBy)
				}
				fmt.Fprintf(w, "registered: height %d\nupdated:    height %d\nhistory:    %d events\n", d.Registered, d.Updated, d.History)
			})
		},
	}
	c.Flags().BoolVar(&prove, "prove", false, "fetch a proof and check it against the signed header")
	return c
}

func deviceHistory(g *globals) *cobra.Command {
	return &cobra.Command{
		Use: "history DEVICE", Short: "Show every change to a device", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := g.resolveID(args[0])
			if err != nil {
				return err
			}
			var all []record.Event
			after := ""
			for {
				var p struct {
					Items []record.Event `json:"items"`
					Next  string         `json:"next"`
				}
				path := "/v1/devices/" + url.PathEscape(id) + "/history?limit=1000"
				if after != "" {
					path += "&after=" + after
				}
				if err := g.client().Get(cmd.Context(), path, &p); err != nil {
					return err
				}
				all = append(all, p.Items...)
				if p.Next == "" {
					break
				}
				after = p.Next
			}
			return g.print(cmd.OutOrStdout(), all, func(w io.Writer) {
				for _, e := range all {
					fmt.Fprintf(w, "#%-3d height %-6d %-16s %-9s %s  (tx %X by %s)\n", e.Seq, e.Height, e.Kind, e.Status, e.Note, e.Tx, e.Signer)
				}
			})
		},
	}
}

func deviceList(g *globals) *cobra.Command {
	var org string
	c := &cobra.Command{
		Use: "list", Short: "List devices", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var p struct {
				Items []record.Device `json:"items"`
			}
			if err := g.client().Get(cmd.Context(), "/v1/devices?limit=1000&org="+url.QueryEscape(org), &p); err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), p.Items, func(w io.Writer) {
				for _, d := range p.Items {
					fmt.Fprintf(w, "%s  %-10s %-9s %-10s %s\n", d.ID, d.Org, d.Status, d.Class, d.Firmware)
				}
			})
		},
	}
	c.Flags().StringVar(&org, "org", "", "only this organisation's devices")
	return c
}

func parseLabels(kvs []string) (map[string]string, error) {
	if len(kvs) == 0 {
		return nil, nil
	}
	m, err := client.ParseLabels(kvs)
	if err != nil {
		return nil, fmt.Errorf("--%w", err)
	}
	return m, nil
}

package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/thingnet/thingnet/gateway"
	"github.com/thingnet/thingnet/record"
)

// TestTenancy tries every cross-organisation write an admin of acme (and
// a device of acme) can attempt on globex through the CLI, and a
// cross-organisation read over MQTT; all must be refused and globex's
// records unchanged on every node, while the same writes on acme's own
// resources succeed.
func TestTenancy(t *testing.T) {
	long(t)
	start := time.Now()
	n := StartNet(t, Manifest{Name: "tenancy", Validators: 4, Gateways: []int{0}, Orgs: []string{"acme", "globex"},
		Devices: []Device{{"acme-s1", "acme", "sensor"}, {"globex-s1", "globex", "sensor"}}})
	r := result{Scenario: "tenancy", Invariant: "0 cross-organisation writes/reads accepted"}
	a := &attempts{t: t}
	defer func() { report(t, start, r) }()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	n.MustCLI("keys", "new", "new-dev")
	n.MustCLI("keys", "new", "new-key")
	acmeS1, globexS1 := n.Key("acme-s1").ID(), n.Key("globex-s1").ID()

	// Controls: acme's admin manages acme's own device.
	n.MustCLI("device", "update", "acme-s1", "--key", "acme-admin", "--label", "room=1")
	n.MustCLI("device", "suspend", "acme-s1", "--key", "acme-admin", "--reason", "control")
	n.MustCLI("device", "resume", "acme-s1", "--key", "acme-admin")

	try := func(what string, node int, args ...string) {
		out, err := n.CLIAt(node, args...)
		a.refused(what, err != nil, strings.Join(strings.Fields(out), " "))
	}
	try("register a device into globex", 1, "device", "register", "--key", "acme-admin", "--org", "globex", "--device-key", "new-dev", "--class", "sensor")
	try("suspend globex's device", 2, "device", "suspend", "globex-s1", "--key", "acme-admin", "--reason", "x")
	try("revoke globex's device", 3, "device", "revoke", "globex-s1", "--key", "acme-admin", "--reason", "x")
	try("update globex's device", 1, "device", "update", "globex-s1", "--key", "acme-admin", "--label", "owner=acme")
	try("rotate globex's device key", 2, "device", "rotate", "globex-s1", "--key", "acme-admin", "--new-key", "new-key")
	try("add an admin to globex", 3, "org", "admin", "add", "globex", "acme-admin", "--key", "acme-admin")
	try("remove globex's admin", 1, "org", "admin", "remove", "globex", n.Key("globex-admin").ID(), "--key", "acme-admin")
	try("grant as globex", 2, "grant", "add", "--key", "acme-admin", "--grantor", "org:globex", "--subject", "org:acme", "--action", "read", "--resource", "device:"+globexS1+"/readings")
	try("grant on globex's device as acme", 3, "grant", "add", "--key", "acme-admin", "--grantor", "org:acme", "--subject", "org:acme", "--action", "manage", "--resource", "device:"+globexS1)
	try("grant on globex's org as acme", 1, "grant", "add", "--key", "acme-admin", "--grantor", "org:acme", "--subject", "org:acme", "--action", "manage", "--resource", "org:globex")
	try("acme's device granting as globex's device", 2, "grant", "add", "--key", "acme-s1", "--grantor", "device:"+globexS1, "--subject", "device:"+acmeS1, "--action", "message", "--resource", "device:"+globexS1)
	try("acme's device updating globex's device", 3, "device", "update", "globex-s1", "--key", "acme-s1", "--label", "owner=acme")
	try("a job on globex's class", 1, "job", "create", "--key", "acme-admin", "--org", "globex", "--class", "sensor", "--command", "ping")
	try("a job of acme on globex's device", 2, "job", "create", "--key", "acme-admin", "--org", "acme", "--device", globexS1, "--command", "ping")

	// Cross-organisation read: acme's device follows globex's readings.
	c, err := mqttConnect(n.Nodes[0].MQTT, acmeS1, n.deviceToken(n.Key("acme-s1"), acmeS1))
	if err != nil {
		t.Fatalf("control: acme-s1 cannot connect: %v", err)
	}
	tok := c.Subscribe(gateway.ReadingsTopic(globexS1), 1, nil)
	tok.WaitTimeout(10 * time.Second)
	granted := byte(0)
	if st, ok := tok.(interface{ Result() map[string]byte }); ok {
		granted = st.Result()[gateway.ReadingsTopic(globexS1)]
	}
	a.refused("subscribe to globex's readings (MQTT)", tok.Error() != nil || granted == 0x80 || !c.IsConnectionOpen(), fmt.Sprintf("SUBACK 0x%02x, err %v", granted, tok.Error()))
	c.Disconnect(0)

	// globex's records are unchanged on every node.
	for i, nd := range n.Nodes {
		var dev struct {
			Record record.Device `json:"record"`
		}
		if err := nd.Client.Get(ctx, "/v1/devices/"+globexS1, &dev); err != nil {
			t.Fatal(err)
		}
		d := dev.Record
		if d.Status != record.StatusActive || len(d.Labels) > 0 || d.Key != globexS1 || d.History != 1 {
			t.Errorf("node %d: globex's device changed: %+v", i, d)
		}
		var org struct {
			Record record.Org `json:"record"`
		}
		if err := nd.Client.Get(ctx, "/v1/orgs/globex", &org); err != nil {
			t.Fatal(err)
		}
		if len(org.Record.Admins) != 1 || org.Record.Admins[0] != n.Key("globex-admin").ID() {
			t.Errorf("node %d: globex's admins changed: %v", i, org.Record.Admins)
		}
		var none map[string]any
		if err := nd.Client.Get(ctx, "/v1/devices/"+n.Key("new-dev").ID(), &none); err == nil {
			t.Errorf("node %d: the device registered into globex by acme exists", i)
		}
		var grants struct {
			Items []record.Grant `json:"items"`
		}
		if err := nd.Client.Get(ctx, "/v1/grants", &grants); err != nil {
			t.Fatal(err)
		}
		if len(grants.Items) > 0 {
			t.Errorf("node %d: grants exist, though every attempt was refused: %+v", i, grants.Items)
		}
		for _, org := range []string{"globex", "acme"} {
			if js, err := nd.Client.Jobs(ctx, org); err != nil || len(js) > 0 {
				t.Errorf("node %d: jobs of %s: %+v, %v; want none, every attempt was refused", i, org, js, err)
			}
		}
	}
	n.CheckNoFork(ctx)
	r.Load = "controls: 3 writes on own org"
	r.Faults = "admin and device of another org"
	r.Inputs = fmt.Sprintf("%d cross-org attempts (CLI, MQTT)", a.tried)
	t.Logf("tenancy: %d cross-organisation attempts, %d accepted", a.tried, len(a.accepted))
}

package ledger

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strconv"

	cmtproto "github.com/cometbft/cometbft/proto/tendermint/types"

	"github.com/thingnet/thingnet/record"
)

// Software upgrades (docs/operations.md "Upgrades"). Validators plan one
// on the ledger (upgrade.plan, approved like a validator change); at the
// start of the planned block every node runs the named migration if its
// binary carries it, and refuses to go on if it does not. Rules that a
// release changes are gated on the state's application version
// (State.AppVersion), so that a new binary executes the blocks before the
// upgrade exactly as the old one did.

// Upgrade is a state migration a binary carries.
type Upgrade struct {
	Name       string
	AppVersion uint64 // the version from the upgrade's block on
	// Migrate rewrites the state at the start of the upgrade's block. It
	// must be deterministic: no clock, randomness, map order or goroutines.
	Migrate func(m *Migration) error
}

// Migration is the state as a migration sees it.
type Migration struct {
	st     *State
	buf    *buffer
	height int64
}

// Height is the block the migration runs at the start of.
func (m *Migration) Height() int64 { return m.height }

// Scan calls fn for each key with prefix, in key order, with the values as
// they were before the migration wrote anything in this scan.
func (m *Migration) Scan(prefix string, fn func(key, value []byte) error) error {
	type kv struct{ k, v []byte }
	var all []kv
	p := []byte(prefix)
	if err := m.st.scan(p, prefixEnd(p), func(k, v []byte) (bool, error) {
		all = append(all, kv{slices.Clone(k), slices.Clone(v)})
		return true, nil
	}); err != nil {
		return err
	}
	for _, e := range all {
		if err := fn(e.k, e.v); err != nil {
			return err
		}
	}
	return nil
}

// Set writes value (raw bytes, or a value encoded as CBOR) under key.
func (m *Migration) Set(key []byte, value any) { m.buf.set(key, value) }

// Delete removes key.
func (m *Migration) Delete(key []byte) { m.buf.del(key) }

// ErrUpgradeNeeded is the ledger refusing to execute a block at or past a
// planned upgrade this binary does not carry.
var ErrUpgradeNeeded = errors.New("software upgrade needed")

// AppVersion returns the state's application version (1 before any upgrade).
func (s *State) AppVersion() (uint64, error) {
	v, err := s.u64([]byte(record.KeyAppVersion))
	if err != nil || v == 0 {
		return 1, err
	}
	return v, nil
}

// UpgradePlan returns the pending upgrade, or nil.
func (s *State) UpgradePlan() (*record.UpgradePlan, error) {
	var p record.UpgradePlan
	ok, err := s.get([]byte(record.KeyUpgradePlan), &p)
	if err != nil || !ok {
		return nil, err
	}
	return &p, nil
}

// UpgradeDone returns the record of the done upgrade name.
func (s *State) UpgradeDone(name string) (*record.UpgradeDone, error) {
	var d record.UpgradeDone
	ok, err := s.get(record.UpgradeDoneKey(name), &d)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("upgrade %q: %w", name, ErrNotFound)
	}
	return &d, nil
}

// upgradeSet indexes a binary's upgrades by name.
type upgradeSet map[string]Upgrade

func newUpgradeSet(us []Upgrade) (upgradeSet, error) {
	set := upgradeSet{}
	for _, u := range us {
		if u.Name == "" || u.AppVersion < 2 || u.Migrate == nil {
			return nil, fmt.Errorf("ledger: upgrade %q needs a name, an app version of 2 or more and a migration", u.Name)
		}
		if _, dup := set[u.Name]; dup {
			return nil, fmt.Errorf("ledger: upgrade %q is listed twice", u.Name)
		}
		set[u.Name] = u
	}
	return set, nil
}

// supported is the highest application version this binary runs.
func (s upgradeSet) supported() uint64 {
	v := uint64(AppVersion)
	for _, u := range s {
		v = max(v, u.AppVersion)
	}
	return v
}

// checkVersion refuses a state newer than this binary.
func (s upgradeSet) checkVersion(st *State) error {
	v, err := st.AppVersion()
	if err != nil {
		return err
	}
	if v > s.supported() {
		return fmt.Errorf("%w: the ledger state is at application version %d and this binary runs up to %d; install the release the network upgraded to (thingnet upgrade show) and start it again", ErrUpgradeNeeded, v, s.supported())
	}
	return nil
}

// upgradePlan executes an upgrade.plan tx: a new plan, or (height 0) the
// cancellation of the pending one of that name.
func (x *txExec) upgradePlan(m *record.UpgradePlan) error {
	last, err := x.st.u64([]byte(record.KeyUpgradeSeq))
	if err != nil {
		return err
	}
	if m.Seq != last+1 {
		return record.Errf(record.CodeBadNonce, "upgrade sequence %d; the next is %d", m.Seq, last+1)
	}
	if err := x.checkApprovals(record.UpgradePlanMessage(x.chainID, m.Seq, m.Name, m.Height, m.AppVersion, m.Info), m.Approvals); err != nil {
		return err
	}
	pending, err := x.st.UpgradePlan()
	if err != nil {
		return err
	}
	if m.Height == 0 {
		if pending == nil || pending.Name != m.Name {
			return record.Errf(record.CodeNotFound, "no pending upgrade %q to cancel", m.Name)
		}
		x.buf.del([]byte(record.KeyUpgradePlan))
		x.buf.set([]byte(record.KeyUpgradeSeq), u64bytes(m.Seq))
		x.emit("upgrade", "name", m.Name, "action", "cancel")
		return nil
	}
	if pending != nil {
		return record.Errf(record.CodeConflict, "upgrade %q is already planned at height %d; cancel it first", pending.Name, pending.Height)
	}
	if _, err := x.st.UpgradeDone(m.Name); err == nil {
		return record.Errf(record.CodeConflict, "upgrade %q was done already; name a new one", m.Name)
	}
	if m.Height <= x.height {
		return record.Errf(record.CodeInvalid, "upgrade height %d is not after this block (%d)", m.Height, x.height)
	}
	cur, err := x.st.AppVersion()
	if err != nil {
		return err
	}
	if m.AppVersion <= cur {
		return record.Errf(record.CodeInvalid, "app version %d is not above the ledger's %d", m.AppVersion, cur)
	}
	x.buf.set([]byte(record.KeyUpgradeSeq), u64bytes(m.Seq))
	x.buf.set([]byte(record.KeyUpgradePlan), &record.UpgradePlan{Name: m.Name, Height: m.Height, AppVersion: m.AppVersion, Info: m.Info, Seq: m.Seq, Planned: x.height})
	x.emit("upgrade", "name", m.Name, "action", "plan", "height", strconv.FormatInt(m.Height, 10), "app_version", strconv.FormatUint(m.AppVersion, 10))
	return nil
}

// runUpgrade runs, at the start of block height, the pending upgrade due
// there: its migration, the new application version, its record. Without
// the migration it refuses the block (ErrUpgradeNeeded) and signals the
// node to stop. It returns the consensus parameter change announcing the
// version.
func (a *App) runUpgrade(height int64) (*cmtproto.ConsensusParams, []eventSink, error) {
	buf := newBuffer(a.tree)
	st := &State{r: buf, Height: height - 1}
	p, err := st.UpgradePlan()
	if err != nil || p == nil || height < p.Height {
		return nil, nil, err
	}
	u, ok := a.upgrades[p.Name]
	if !ok || u.AppVersion != p.AppVersion {
		err := fmt.Errorf("%w: UPGRADE %q (application version %d%s) was planned for height %d and this binary (application versions up to %d) does not carry it; stop this node, install the release that does and start it again (docs/operations.md \"Upgrades\")",
			ErrUpgradeNeeded, p.Name, p.AppVersion, infoSuffix(p.Info), p.Height, a.upgrades.supported())
		a.signalHalt(err)
		return nil, nil, err
	}
	if err := u.Migrate(&Migration{st: st, buf: buf, height: height}); err != nil {
		return nil, nil, fmt.Errorf("upgrade %q migration at height %d: %w", p.Name, height, err)
	}
	buf.set([]byte(record.KeyAppVersion), binary.BigEndian.AppendUint64(nil, p.AppVersion))
	buf.set(record.UpgradeDoneKey(p.Name), &record.UpgradeDone{Name: p.Name, Height: height, AppVersion: p.AppVersion})
	buf.del([]byte(record.KeyUpgradePlan))
	if err := buf.flush(); err != nil {
		return nil, nil, err
	}
	a.log.Info("software upgrade done", "name", p.Name, "height", height, "app_version", p.AppVersion)
	ev := []eventSink{{typ: "upgrade", kv: []string{"name", p.Name, "action", "done", "app_version", strconv.FormatUint(p.AppVersion, 10)}}}
	return &cmtproto.ConsensusParams{Version: &cmtproto.VersionParams{App: p.AppVersion}}, ev, nil
}

func infoSuffix(info string) string {
	if info == "" {
		return ""
	}
	return ": " + info
}

// signalHalt tells whoever runs the node (Halted) why the ledger stopped.
func (a *App) signalHalt(err error) {
	select {
	case a.halt <- err:
	default:
	}
}

// Halted delivers the reason when the ledger refuses to go on (a planned
// upgrade this binary does not carry); the node should stop and say it.
func (a *App) Halted() <-chan error { return a.halt }

// UpgradesDone lists the done upgrades, by name.
func (s *State) UpgradesDone() ([]record.UpgradeDone, error) {
	var out []record.UpgradeDone
	p := []byte(record.PrefixUpgradeDone)
	err := s.scan(p, prefixEnd(p), func(_, v []byte) (bool, error) {
		var d record.UpgradeDone
		if err := record.Unmarshal(v, &d); err != nil {
			return false, err
		}
		out = append(out, d)
		return true, nil
	})
	return out, err
}

// UpgradeSeq returns the last upgrade-plan sequence number (0: none yet).
func (s *State) UpgradeSeq() (uint64, error) { return s.u64([]byte(record.KeyUpgradeSeq)) }

// labelEveryDevice is a migration that sets label key=value on every
// device: what the upgrade tests migrate (upgrade_test.go, and the
// upgradetest build the e2e scenario upgrades to).
func labelEveryDevice(key, value string) func(*Migration) error {
	return func(m *Migration) error {
		return m.Scan(record.PrefixDevice, func(k, v []byte) error {
			var d record.Device
			if err := record.Unmarshal(v, &d); err != nil {
				return err
			}
			if d.Labels == nil {
				d.Labels = map[string]string{}
			}
			d.Labels[key] = value
			m.Set(k, &d)
			return nil
		})
	}
}

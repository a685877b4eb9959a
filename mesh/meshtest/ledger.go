// Package meshtest drives a real ledger App block by block, as CometBFT
// would, with no network: mesh tests and benchmarks register devices and
// grants on it and read it through a mesh.LedgerAuthority.
package meshtest

import (
	"context"
	"encoding/json"
	"fmt"

	abci "github.com/cometbft/cometbft/abci/types"
	cmtcrypto "github.com/cometbft/cometbft/proto/tendermint/crypto"

	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/ledger"
	"github.com/thingnet/thingnet/record"
)

// ChainID is the test ledger's chain id.
const ChainID = "mesh-test"

// Ledger is a ledger App with organisations whose admins it holds.
type Ledger struct {
	App    *ledger.App
	height int64
	nonces map[string]uint64
	Admins map[string]*identity.Key // org -> admin
}

// New opens a ledger in dir with the given organisations.
func New(dir string, orgs ...string) (*Ledger, error) {
	app, err := ledger.NewApp(ledger.Config{Dir: dir})
	if err != nil {
		return nil, err
	}
	l := &Ledger{App: app, nonces: map[string]uint64{}, Admins: map[string]*identity.Key{}}
	var g ledger.GenesisState
	for _, o := range orgs {
		k, err := identity.GenerateKey(identity.Ed25519)
		if err != nil {
			return nil, err
		}
		l.Admins[o] = k
		g.Orgs = append(g.Orgs, ledger.GenesisOrg{ID: o, Admins: []string{k.ID()}})
	}
	raw, _ := json.Marshal(g)
	val, err := identity.GenerateKey(identity.Ed25519)
	if err != nil {
		return nil, err
	}
	if _, err := app.InitChain(context.Background(), &abci.RequestInitChain{ChainId: ChainID, AppStateBytes: raw, InitialHeight: 1,
		Validators: []abci.ValidatorUpdate{{PubKey: cmtcrypto.PublicKey{Sum: &cmtcrypto.PublicKey_Ed25519{Ed25519: val.Public().Bytes}}, Power: 10}}}); err != nil {
		app.Close()
		return nil, err
	}
	if err := l.Block(); err != nil {
		app.Close()
		return nil, err
	}
	return l, nil
}

// Close closes the App.
func (l *Ledger) Close() error { return l.App.Close() }

// View is the latest committed state.
func (l *Ledger) View() (*ledger.State, error) { return l.App.View(0) }

// Block runs one block of txs; a tx that fails is an error.
func (l *Ledger) Block(txs ...[]byte) error {
	l.height++
	res, err := l.App.FinalizeBlock(context.Background(), &abci.RequestFinalizeBlock{Height: l.height, Txs: txs})
	if err != nil {
		return err
	}
	for i, r := range res.TxResults {
		if r.Code != 0 {
			return fmt.Errorf("tx %d in block %d: code %d: %s", i, l.height, r.Code, r.Log)
		}
	}
	_, err = l.App.Commit(context.Background(), &abci.RequestCommit{})
	return err
}

// Do signs m with key and runs it in its own block.
func (l *Ledger) Do(key *identity.Key, m record.Msg) error {
	l.nonces[key.ID()]++
	raw, err := record.NewTx(key, key.ID(), ChainID, l.nonces[key.ID()], l.height+100, m)
	if err != nil {
		return err
	}
	return l.Block(raw)
}

// Device registers a new device of org with a new key of alg.
func (l *Ledger) Device(org, class string, alg identity.Algorithm) (*identity.Key, error) {
	k, err := identity.GenerateKey(alg)
	if err != nil {
		return nil, err
	}
	proof, err := k.Sign(record.PossessionMessage(ChainID, org, k.ID()))
	if err != nil {
		return nil, err
	}
	return k, l.Do(l.Admins[org], &record.DeviceRegister{Org: org, Device: k.ID(), Class: class, Proof: proof})
}

// Grant: org grants subject action on resource.
func (l *Ledger) Grant(org, subject, action, resource string) error {
	return l.Do(l.Admins[org], &record.GrantAdd{Grantor: "org:" + org, Subject: subject, Action: action, Resource: resource})
}

// SetStatus changes a device's status.
func (l *Ledger) SetStatus(org, device string, to record.Status) error {
	return l.Do(l.Admins[org], record.NewDeviceStatus(device, to, "test"))
}

// Labels sets device labels.
func (l *Ledger) Labels(org, device string, labels map[string]string) error {
	return l.Do(l.Admins[org], &record.DeviceUpdate{Device: device, Labels: labels})
}

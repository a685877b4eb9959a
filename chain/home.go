package chain

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	cmtcfg "github.com/cometbft/cometbft/config"
	"github.com/cometbft/cometbft/crypto/ed25519"
	cmtjson "github.com/cometbft/cometbft/libs/json"
	"github.com/cometbft/cometbft/p2p"
	"github.com/cometbft/cometbft/privval"
)

// NodeIdentity is who a node is on the network and in the validator set.
type NodeIdentity struct {
	NodeID           string // p2p id: hex of the first 20 bytes of SHA-256 of the node key
	ValidatorPubKey  []byte // Ed25519, 32 bytes
	ValidatorAddress []byte // CometBFT validator address (20 bytes)
}

// InitHome creates config/, data/, node_key.json, priv_validator_key.json and
// priv_validator_state.json if missing (idempotent; never overwrites keys), writes
// CometBFT's config.toml from c, and returns the node's identity.
//
// A missing priv_validator_state.json next to an existing key is recreated empty, which
// forgets the last height signed: only do that to a validator that has never signed, or
// whose state file is known lost, since it removes CometBFT's double-sign protection.
func InitHome(c Config) (NodeIdentity, error) {
	c = c.withDefaults()
	if err := c.Validate(); err != nil {
		return NodeIdentity{}, err
	}
	cc := c.cometConfig()
	for _, dir := range []string{c.Home, configDir(c.Home), dataDir(c.Home)} {
		if err := os.MkdirAll(dir, cmtcfg.DefaultDirPerm); err != nil {
			return NodeIdentity{}, fmt.Errorf("chain: create node home: %w", err)
		}
	}
	nodeKey, err := p2p.LoadOrGenNodeKey(cc.NodeKeyFile())
	if err != nil {
		return NodeIdentity{}, fmt.Errorf("chain: node key %s: %w", cc.NodeKeyFile(), err)
	}
	pv, err := loadOrGenFilePV(cc.PrivValidatorKeyFile(), cc.PrivValidatorStateFile())
	if err != nil {
		return NodeIdentity{}, err
	}
	if err := writeCometConfig(cc); err != nil {
		return NodeIdentity{}, err
	}
	return NodeIdentity{
		NodeID:           string(nodeKey.ID()),
		ValidatorPubKey:  pv.Key.PubKey.Bytes(),
		ValidatorAddress: pv.Key.Address,
	}, nil
}

// loadOrGenFilePV returns the validator key of a home, creating what is missing.
//
// privval's own loaders call os.Exit on a missing or corrupt file and its Save panics on
// I/O errors; this checks the files first and turns those failures into errors.
func loadOrGenFilePV(keyFile, stateFile string) (*privval.FilePV, error) {
	key, err := readPVKey(keyFile)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		pv := privval.GenFilePV(keyFile, stateFile)
		if err := catchPanic(pv.Save); err != nil {
			return nil, fmt.Errorf("chain: save new validator key %s: %w", keyFile, err)
		}
		return pv, nil
	case err != nil:
		return nil, err
	}
	if _, err := os.Stat(stateFile); errors.Is(err, fs.ErrNotExist) {
		fresh := privval.NewFilePV(key.PrivKey, keyFile, stateFile)
		if err := catchPanic(fresh.LastSignState.Save); err != nil {
			return nil, fmt.Errorf("chain: save validator state %s: %w", stateFile, err)
		}
	}
	return loadFilePV(keyFile, stateFile)
}

// loadFilePV loads an existing validator key and its last-sign state, failing with an
// error (rather than exiting the process, as privval.LoadFilePV does) if either is
// missing or unreadable.
func loadFilePV(keyFile, stateFile string) (*privval.FilePV, error) {
	if _, err := readPVKey(keyFile); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(stateFile)
	if err != nil {
		return nil, fmt.Errorf("chain: validator state: %w", err)
	}
	var st privval.FilePVLastSignState
	if err := cmtjson.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("chain: validator state %s is corrupt: %w", stateFile, err)
	}
	return privval.LoadFilePV(keyFile, stateFile), nil
}

func readPVKey(keyFile string) (privval.FilePVKey, error) {
	var key privval.FilePVKey
	b, err := os.ReadFile(keyFile)
	if err != nil {
		return key, fmt.Errorf("chain: validator key: %w", err)
	}
	if err := cmtjson.Unmarshal(b, &key); err != nil {
		return key, fmt.Errorf("chain: validator key %s is corrupt: %w", keyFile, err)
	}
	if _, ok := key.PrivKey.(ed25519.PrivKey); !ok {
		return key, fmt.Errorf("chain: validator key %s: want an Ed25519 key, found %T", keyFile, key.PrivKey)
	}
	// Derive the public half rather than trust the file's copy, as privval does.
	key.PubKey = key.PrivKey.PubKey()
	key.Address = key.PubKey.Address()
	return key, nil
}

// writeCometConfig writes config/config.toml atomically.
//
// cmtcfg.WriteConfigFile exits the process if its write fails, so it writes to a
// temporary file that this function has just created (and so can write) in the same
// directory, which is then renamed over config.toml.
func writeCometConfig(cc *cmtcfg.Config) error {
	dir := filepath.Join(cc.RootDir, cmtcfg.DefaultConfigDir)
	f, err := os.CreateTemp(dir, ".config.toml-*")
	if err != nil {
		return fmt.Errorf("chain: write config.toml: %w", err)
	}
	tmp := f.Name()
	if err := f.Close(); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("chain: write config.toml: %w", err)
	}
	cmtcfg.WriteConfigFile(tmp, cc)
	if err := os.Rename(tmp, filepath.Join(dir, "config.toml")); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("chain: write config.toml: %w", err)
	}
	return nil
}

// catchPanic runs f and returns its panic, if any, as an error.
func catchPanic(f func()) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%v", r)
		}
	}()
	f()
	return nil
}

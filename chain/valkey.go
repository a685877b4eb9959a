package chain

import (
	"path/filepath"

	cmtcfg "github.com/cometbft/cometbft/config"
)

// SignWithValidatorKey signs msg with the consensus key of the node living
// in home, for governance approvals (validator-set changes). It returns the
// Ed25519 public key and the signature.
func SignWithValidatorKey(home string, msg []byte) (pub, sig []byte, err error) {
	key, err := readPVKey(filepath.Join(home, cmtcfg.DefaultConfigDir, "priv_validator_key.json"))
	if err != nil {
		return nil, nil, err
	}
	sig, err = key.PrivKey.Sign(msg)
	if err != nil {
		return nil, nil, err
	}
	return key.PubKey.Bytes(), sig, nil
}

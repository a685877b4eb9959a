package chain

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	cmtcfg "github.com/cometbft/cometbft/config"
	"github.com/cometbft/cometbft/crypto/ed25519"
	cmtjson "github.com/cometbft/cometbft/libs/json"
	"github.com/cometbft/cometbft/libs/tempfile"
	"github.com/cometbft/cometbft/types"
	cmttime "github.com/cometbft/cometbft/types/time"
)

// DefaultBlockMaxBytes is the default consensus limit on a block's size.
const DefaultBlockMaxBytes = 4 << 20

// GenesisValidator is one validator of the initial validator set.
type GenesisValidator struct {
	Name   string
	PubKey []byte // Ed25519, 32 bytes (NodeIdentity.ValidatorPubKey)
	Power  int64  // > 0
}

// Genesis is what thingnet decides about a chain's genesis.
type Genesis struct {
	ChainID    string
	Validators []GenesisValidator // may be empty if the application's InitChain returns them
	AppState   json.RawMessage    // written verbatim as app_state; empty for none
	// GenesisTime is the chain's start; zero means now. Nodes wait until it has passed.
	GenesisTime time.Time
	// MaxTxBytes is the consensus limit on a block's size (block.max_bytes), and so on
	// the bytes of transactions one block can carry, including a single transaction;
	// 0 means DefaultBlockMaxBytes. (CometBFT has no per-transaction consensus limit:
	// the application enforces one in CheckTx and ProcessProposal if it wants one.)
	MaxTxBytes int64
	// EvidenceMaxAgeBlocks and EvidenceMaxAge bound how old evidence of
	// misbehaviour may be (consensus_params.evidence; 0: CometBFT's
	// defaults, 100000 blocks and 48h). Nodes keep at least these blocks
	// when they prune (docs/operations.md).
	EvidenceMaxAgeBlocks int64
	EvidenceMaxAge       time.Duration
}

// genesisDoc turns g into a complete, validated CometBFT genesis document.
func (g Genesis) genesisDoc() (*types.GenesisDoc, error) {
	params := types.DefaultConsensusParams()
	params.Block.MaxBytes = DefaultBlockMaxBytes
	if g.MaxTxBytes != 0 {
		params.Block.MaxBytes = g.MaxTxBytes
	}
	if g.EvidenceMaxAgeBlocks > 0 {
		params.Evidence.MaxAgeNumBlocks = g.EvidenceMaxAgeBlocks
	}
	if g.EvidenceMaxAge > 0 {
		params.Evidence.MaxAgeDuration = g.EvidenceMaxAge
	}
	doc := &types.GenesisDoc{
		ChainID:         g.ChainID,
		GenesisTime:     g.GenesisTime,
		ConsensusParams: params,
	}
	if doc.GenesisTime.IsZero() {
		doc.GenesisTime = cmttime.Now()
	}
	if len(g.AppState) > 0 {
		if !json.Valid(g.AppState) {
			return nil, errors.New("chain: Genesis.AppState is not valid JSON")
		}
		doc.AppState = g.AppState
	}
	for i, v := range g.Validators {
		if len(v.PubKey) != ed25519.PubKeySize {
			return nil, fmt.Errorf("chain: Genesis.Validators[%d] (%q): public key has %d bytes, want %d (Ed25519)",
				i, v.Name, len(v.PubKey), ed25519.PubKeySize)
		}
		if v.Power <= 0 {
			return nil, fmt.Errorf("chain: Genesis.Validators[%d] (%q): power %d, want > 0", i, v.Name, v.Power)
		}
		pk := ed25519.PubKey(v.PubKey)
		doc.Validators = append(doc.Validators, types.GenesisValidator{
			Address: pk.Address(),
			PubKey:  pk,
			Power:   v.Power,
			Name:    v.Name,
		})
	}
	if err := doc.ValidateAndComplete(); err != nil {
		return nil, fmt.Errorf("chain: invalid genesis: %w", err)
	}
	return doc, nil
}

// WriteGenesis writes config/genesis.json (consensus params: CometBFT's defaults with
// block.max_bytes from g.MaxTxBytes; app_state verbatim), replacing any existing one
// atomically. A node that has started once keeps the genesis stored in its state
// database and ignores later changes to the file.
func WriteGenesis(home string, g Genesis) error {
	doc, err := g.genesisDoc()
	if err != nil {
		return err
	}
	b, err := cmtjson.MarshalIndent(doc, "", "  ")
	if err != nil {
		return fmt.Errorf("chain: encode genesis: %w", err)
	}
	return writeGenesisFile(home, b)
}

func writeGenesisFile(home string, b []byte) error {
	if err := os.MkdirAll(configDir(home), cmtcfg.DefaultDirPerm); err != nil {
		return fmt.Errorf("chain: write genesis: %w", err)
	}
	if err := tempfile.WriteFileAtomic(genesisPath(home), b, 0o644); err != nil {
		return fmt.Errorf("chain: write genesis: %w", err)
	}
	return nil
}

// ReadGenesis reads and validates config/genesis.json.
func ReadGenesis(home string) (*types.GenesisDoc, error) {
	doc, err := types.GenesisDocFromFile(genesisPath(home))
	if err != nil {
		return nil, fmt.Errorf("chain: %w", err)
	}
	return doc, nil
}

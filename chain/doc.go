// Package chain embeds CometBFT: node home directories, genesis, configuration and the node lifecycle.
//
// A node's home holds CometBFT's usual layout (config/ with config.toml, genesis.json,
// node_key.json and priv_validator_key.json; data/ with the block store, state, WAL and
// priv_validator_state.json). thingnet treats config.toml as an output, never an input:
// [Start] regenerates it from [Config] every time, so what the code says is what runs.
//
// The ABCI application runs in the same process. By default it sits behind
// proxy.NewLocalClientCreator, which serialises all ABCI calls on one mutex, as
// CometBFT's kvstore example expects. An application that implements
// [ConcurrentApp] gets one mutex per ABCI connection instead
// (proxy.NewConnSyncLocalClientCreator), so CheckTx and queries run beside block
// execution, and a pre-check of each new tx outside the mempool connection's lock.
//
// [LocalNet] runs several validators on 127.0.0.1 for tests, benchmarks and devnets.
package chain

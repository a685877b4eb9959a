// Package bench measures thingnet against baselines on the same machine in the same run.
//
// [Flood] drives any set of [chain.Node]s, whatever their application, the same way:
// transactions go in through each node's in-process RPC client (BroadcastTxSync), and
// their commits are learned from the nodes' event buses. [RunKVStoreBaseline] runs it
// against CometBFT's kvstore example, the figure that thingnet's ledger is compared with.
package bench

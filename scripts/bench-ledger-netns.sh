#!/usr/bin/env bash
# The ledger as deployed, next to bare CometBFT deployed the same way
# (issue 19, docs/benchmarks.md "Ledger ... third pass"): 4 validators, each
# its own process in its own network namespace (veth pairs to a bridge,
# 10.219.0.1-4), pinned with taskset; then the same for CometBFT's kvstore
# (`cometbft node --proxy_app=kvstore`, configs from `cometbft testnet`,
# the FastBlocks profile of chain.LocalNet). Both are flooded from the root
# namespace by the same harness (`thingnet bench remote`); CPU per tx and
# node is the validators' own, from /proc/PID/stat over each flood.
#
#   scripts/bench-ledger-netns.sh                 # saturation, 20,000 txs, 1 round
#   TXS=5000 RATE=500 scripts/bench-ledger-netns.sh   # latency below saturation
#   ROUNDS=3 scripts/bench-ledger-netns.sh        # rounds alternate kvstore and ledger
#
# CPUS="0 0 1 1" (the default) pins validators 1-4 to those CPUs: this
# machine has 2, so two validators share each; the flood client is not
# pinned. Needs root (ip netns), iproute2 and util-linux (taskset). Each
# network runs at most a few minutes; everything is removed on exit.
# THINGNET and COMETBFT name prebuilt binaries of the validators (default:
# built here, cometbft from the module cache's version in go.mod); BENCH the
# flood client's thingnet (default THINGNET), so an older validator binary
# can be measured with this harness.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "needs root (network namespaces)" >&2; exit 1; }

TXS=${TXS:-20000}
RATE=${RATE:-0}
ROUNDS=${ROUNDS:-1}
read -r -a CPU <<<"${CPUS:-0 0 1 1}"
N=4
NET=10.219.0
NS=l19n
BR=l19br0
WORK=$(mktemp -d /tmp/bench-netns.XXXXXX)
PIDS=()

cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  for i in $(seq 1 $N); do ip netns del "$NS$i" 2>/dev/null || true; done
  ip link del "$BR" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

THINGNET=${THINGNET:-$WORK/thingnet}
COMETBFT=${COMETBFT:-$WORK/cometbft}
[ -x "$THINGNET" ] || go build -o "$THINGNET" ./cmd/thingnet
BENCH=${BENCH:-$THINGNET}
if [ ! -x "$COMETBFT" ]; then
  v=$(go list -m -f '{{.Version}}' github.com/cometbft/cometbft)
  (cd "$(go env GOMODCACHE)/github.com/cometbft/cometbft@$v" && go build -o "$COMETBFT" ./cmd/cometbft)
fi

# The network: a bridge in the root namespace (the flood client's side,
# $NET.254) and one namespace per validator.
ip link add "$BR" type bridge
ip addr add "$NET.254/24" dev "$BR"
ip link set "$BR" up
for i in $(seq 1 $N); do
  ip netns add "$NS$i"
  ip link add "${NS}h$i" type veth peer name eth0 netns "$NS$i"
  ip link set "${NS}h$i" master "$BR" up
  ip -n "$NS$i" addr add "$NET.$i/24" dev eth0
  ip -n "$NS$i" link set eth0 up
  ip -n "$NS$i" link set lo up
done

NODES=$(for i in $(seq 1 $N); do printf 'http://%s.%d:26657,' "$NET" "$i"; done)
NODES=${NODES%,}

# start I CMD...: validator I in its namespace on its CPU; its pid is the
# validator's own (ip netns exec and taskset exec the command).
start() {
  local i=$1; shift
  ip netns exec "$NS$i" taskset -c "${CPU[$((i - 1))]}" "$@" >"$WORK/log$i" 2>&1 &
  PIDS+=($!)
}

stop_all() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  PIDS=()
}

pids() { local IFS=,; echo "${PIDS[*]}"; }

kvstore_round() {
  local d=$WORK/kv
  rm -rf "$d"
  "$COMETBFT" testnet --v $N --o "$d" --starting-ip-address "$NET.1" --populate-persistent-peers >/dev/null
  for i in $(seq 1 $N); do
    local c=$d/node$((i - 1))/config/config.toml
    # chain.LocalNet's FastBlocks profile and mempool (chain/config.go).
    sed -i \
      -e 's|^proxy_app = .*|proxy_app = "kvstore"|' \
      -e "s|^laddr = \"tcp://127.0.0.1:26657\"|laddr = \"tcp://$NET.$i:26657\"|" \
      -e 's|^log_level = .*|log_level = "error"|' \
      -e 's|^addr_book_strict = .*|addr_book_strict = false|' \
      -e 's|^flush_throttle_timeout = .*|flush_throttle_timeout = "10ms"|' \
      -e 's|^send_rate = .*|send_rate = 20971520|' \
      -e 's|^recv_rate = .*|recv_rate = 20971520|' \
      -e 's|^size = 5000$|size = 20000|' \
      -e 's|^cache_size = 10000$|cache_size = 20000|' \
      -e 's|^timeout_propose = .*|timeout_propose = "400ms"|' \
      -e 's|^timeout_propose_delta = .*|timeout_propose_delta = "100ms"|' \
      -e 's|^timeout_prevote = .*|timeout_prevote = "100ms"|' \
      -e 's|^timeout_prevote_delta = .*|timeout_prevote_delta = "50ms"|' \
      -e 's|^timeout_precommit = .*|timeout_precommit = "100ms"|' \
      -e 's|^timeout_precommit_delta = .*|timeout_precommit_delta = "50ms"|' \
      -e 's|^timeout_commit = .*|timeout_commit = "0s"|' \
      -e 's|^create_empty_blocks_interval = .*|create_empty_blocks_interval = "1s"|' \
      -e 's|^peer_gossip_sleep_duration = .*|peer_gossip_sleep_duration = "10ms"|' \
      -e 's|^peer_query_maj23_sleep_duration = .*|peer_query_maj23_sleep_duration = "250ms"|' \
      "$c"
    start "$i" "$COMETBFT" node --home "$d/node$((i - 1))"
  done
  echo "kvstore   $("$BENCH" bench remote --nodes "$NODES" --pids "$(pids)" --kvstore --txs "$TXS" --rate "$RATE")"
  stop_all
}

ledger_round() {
  local d=$WORK/tn
  rm -rf "$d"
  mkdir -p "$d"
  local admin ids=() keys=()
  admin=$("$BENCH" bench ledger-workload --chain-id ledger-netns --txs "$TXS" --out "$d/workload.json" 2>/dev/null)
  for i in $(seq 1 $N); do
    local out
    out=$("$THINGNET" node init --home "$d/v$i" --moniker "v$i" --fast-blocks \
      --p2p-listen "tcp://$NET.$i:26656" --external-address "$NET.$i:26656" \
      --rpc-listen "tcp://$NET.$i:26657" --api-listen "$NET.$i:8080")
    ids+=("$(sed -n 's/^node id: *//p' <<<"$out")")
    keys+=("$(sed -n 's/^validator pub key: *//p' <<<"$out")")
  done
  local vals=()
  for i in $(seq 1 $N); do vals+=(--validator "${keys[$((i - 1))]}:10:v$i"); done
  # No per-organisation budgets, as the in-process bench's genesis.
  "$THINGNET" genesis create --home "$d/v1" --chain-id ledger-netns "${vals[@]}" --org "bench:$admin" \
    --org-creation open --mempool-txs-per-org 0 --block-txs-per-org 0 >/dev/null
  for i in $(seq 1 $N); do
    local peers=()
    for j in $(seq 1 $N); do [ "$j" = "$i" ] || peers+=("\"${ids[$((j - 1))]}@$NET.$j:26656\""); done
    local pl
    pl=$(IFS=,; echo "${peers[*]}")
    # As chain.LocalNet's bench nodes: timeout_commit 0, no snapshots, no mesh.
    sed -i \
      -e "s|^\[p2p\]|[p2p]\n  persistent_peers = [$pl]|" \
      -e 's|^log_level = .*|log_level = "error"|' \
      -e 's|^  timeout_commit = .*|  timeout_commit = "0s"|' \
      -e 's|^  snapshot_interval = .*|  snapshot_interval = 0|' \
      -e 's|^  mdns = .*|  mdns = false|' \
      -e 's|^  dht = .*|  dht = false|' \
      -e 's|^  listen = \["/ip4.*|  listen = []|' \
      "$d/v$i/thingnet.toml"
    [ "$i" = 1 ] || cp "$d/v1/config/genesis.json" "$d/v$i/config/genesis.json"
    start "$i" "$THINGNET" node start --home "$d/v$i" --log-level error
  done
  echo "ledger    $("$BENCH" bench remote --nodes "$NODES" --pids "$(pids)" --workload "$d/workload.json" --rate "$RATE")"
  stop_all
}

echo "# $(date -u +%FT%TZ) load: $(cut -d' ' -f1-3 /proc/loadavg); $N validators pinned to CPUs ${CPU[*]}; txs $TXS, rate $RATE"
for r in $(seq 1 "$ROUNDS"); do
  if [ $((r % 2)) = 1 ]; then kvstore_round; ledger_round; else ledger_round; kvstore_round; fi
done

#!/usr/bin/env bash
# Runs a local ringcast cluster: two pure gateways (WebSocket clients and the
# API) and two topic servers (admin API), all on loopback and joined to the
# first topic server. Ctrl-C stops them all gracefully.
#
# Every process runs with --failure-detection fast: on loopback a process that
# dies (kill -9) is declared dead in well under a second, and its topics are
# taken over by the other topic server. The default, lan, takes a few seconds
# and sends less gossip; use it on real networks.
#
# Topics are durable: both topic servers keep them in ONE SQLite file,
# DIR/ringcast.db, which SQLite lets the processes of one host share. A topic
# goes on where it was after its owner is killed, and after the whole cluster
# is stopped and started again with the same --dir. The gateways own no
# topics; they open the same file for the notification system (accounts,
# subscriptions, read state and the email outbox).
#
# Usage: run.sh [--base-port N] [--dir DIR] [--bin DIR] [--store STORE] [--clean]
#
#   --base-port N  listen on fixed ports: HTTP on N..N+3 (gateway-1,
#                  gateway-2, topic-1, topic-2), gossip on N+10..N+13, peer
#                  links on N+20..N+23 (env RINGCAST_BASE_PORT). Without it
#                  every process picks free ports, printed once it is ready.
#   --dir DIR      keep the binaries and the logs (DIR/NAME.log) in DIR,
#                  created if needed (env RINGCAST_RUN_DIR; default a new
#                  directory under ${TMPDIR:-/tmp}). Nothing in it is deleted
#                  on exit.
#   --bin DIR      use the ringcast-ws and ringcast-topic binaries in DIR
#                  instead of building them.
#   --store STORE  every process's --store (env RINGCAST_STORE): default
#                  DIR/ringcast.db; postgres://... for a PostgreSQL database;
#                  memory for memory-only topics.
#   --clean        delete DIR (and so the store in it) on exit.
set -euo pipefail

usage() { sed -n '17,32s/^# \{0,1\}//p' "$0"; }

root="$(cd "$(dirname "$0")/../.." && pwd)"
base="${RINGCAST_BASE_PORT:-}"
dir="${RINGCAST_RUN_DIR:-}"
bin=""
store="${RINGCAST_STORE:-}"
clean=0
while [ $# -gt 0 ]; do
  case "$1" in
    --base-port) base="${2:?--base-port needs a port}"; shift 2 ;;
    --base-port=*) base="${1#*=}"; shift ;;
    --dir) dir="${2:?--dir needs a directory}"; shift 2 ;;
    --dir=*) dir="${1#*=}"; shift ;;
    --bin) bin="${2:?--bin needs a directory}"; shift 2 ;;
    --bin=*) bin="${1#*=}"; shift ;;
    --store) store="${2:?--store needs a store}"; shift 2 ;;
    --store=*) store="${1#*=}"; shift ;;
    --clean) clean=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "run.sh: unknown argument $1" >&2; usage >&2; exit 2 ;;
  esac
done
if [ -n "$base" ] && ! [[ "$base" =~ ^[0-9]+$ && "$base" -ge 1 && "$base" -le 65500 ]]; then
  echo "run.sh: --base-port must be a port number from 1 to 65500, not $base" >&2
  exit 2
fi
if [ -n "$dir" ]; then
  mkdir -p "$dir"
  dir="$(cd "$dir" && pwd)"
else
  dir="$(mktemp -d "${TMPDIR:-/tmp}/ringcast-cluster.XXXXXX")"
fi
# Every process this script starts gets its --store from here, not from
# the environment.
unset RINGCAST_STORE
store="${store:-$dir/ringcast.db}"
case "$store" in
  postgres://*:*@*|postgresql://*:*@*) shown="$(sed -E 's#(://[^:/@]*:)[^@]*@#\1xxxxx@#' <<<"$store")" ;;
  *) shown="$store" ;;
esac

pids=()
names=()
https=()
gossips=()
peers=()

# stop ends every process by its PID: the gateways first (they close their
# clients), then the topic servers one at a time, last started first, so
# that each hands its topics to one still running.
stop() {
  trap - EXIT INT TERM
  if [ "${#pids[@]}" -gt 0 ]; then
    echo
    echo "stopping the cluster"
    local i gateways=()
    for i in "${!pids[@]}"; do
      case "${names[$i]}" in gateway-*) gateways+=("${pids[$i]}") ;; esac
    done
    if [ "${#gateways[@]}" -gt 0 ]; then
      kill -TERM "${gateways[@]}" 2>/dev/null || true
      wait "${gateways[@]}" 2>/dev/null || true
    fi
    for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
      case "${names[$i]}" in topic-*)
        kill -TERM "${pids[$i]}" 2>/dev/null || true
        wait "${pids[$i]}" 2>/dev/null || true
        ;;
      esac
    done
  fi
  if [ "$clean" -eq 1 ]; then
    rm -rf "$dir"
  else
    echo "logs kept in $dir"
  fi
}
trap stop EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

command -v curl >/dev/null || { echo "run.sh needs curl" >&2; exit 1; }

if [ -z "$bin" ]; then
  bin="$dir/bin"
  echo "building into $bin"
  mkdir -p "$bin"
  (cd "$root" && go build -o "$bin/" ./cmd/ringcast-ws ./cmd/ringcast-topic)
fi

# Background jobs get their own process group, so Ctrl-C reaches only this
# script, which then stops each process by its PID.
set -m

# port I OFFSET prints the address of process I's port at OFFSET from the
# base port, or a loopback address with port 0 without a base port.
port() {
  if [ -n "$base" ]; then
    echo "127.0.0.1:$((base + $2 + $1))"
  else
    echo "127.0.0.1:0"
  fi
}

# ready_attr NAME KEY prints attribute KEY of NAME's ready line, once it has
# logged one; it fails if the process exits first or takes over 15 s.
ready_attr() {
  local name="$1" key="$2" i line deadline=$((SECONDS + 15))
  for i in "${!names[@]}"; do [ "${names[$i]}" = "$name" ] && break; done
  until line="$(grep -m1 -E 'msg="ringcast-(ws|topic) ready"' "$dir/$name.log" 2>/dev/null)"; do
    if ! kill -0 "${pids[$i]}" 2>/dev/null || [ "$SECONDS" -ge "$deadline" ]; then
      echo "$name did not start; its log ($dir/$name.log):" >&2
      cat "$dir/$name.log" >&2
      exit 1
    fi
    sleep 0.1
  done
  sed -E "s/.* $key=([^ ]+).*/\1/" <<<"$line"
}

# start NAME I BINARY ARGS...: starts process I logging to $dir/NAME.log and
# records the addresses of its ready line.
start() {
  local name="$1" i="$2" kind
  shift 2
  "$@" >"$dir/$name.log" 2>&1 &
  pids+=("$!")
  names+=("$name")
  case "$name" in gateway-*) kind=listen ;; *) kind=http ;; esac
  https+=("$(ready_attr "$name" "$kind")")
  gossips+=("$(ready_attr "$name" gossip)")
  peers+=("$(ready_attr "$name" peer)")
}

fast=(--failure-detection fast)
# Every process shares the store; the variable keeps a password out of ps.
export RINGCAST_STORE="$store"
start topic-1 2 "$bin/ringcast-topic" "${fast[@]}" --name topic-1 --gossip "$(port 2 10)" --peer "$(port 2 20)" --http "$(port 2 0)"
seed="${gossips[0]}"
start topic-2 3 "$bin/ringcast-topic" "${fast[@]}" --name topic-2 --gossip "$(port 3 10)" --peer "$(port 3 20)" --http "$(port 3 0)" --join "$seed"
start gateway-1 0 "$bin/ringcast-ws" "${fast[@]}" --name gateway-1 --gossip "$(port 0 10)" --peer "$(port 0 20)" --listen "$(port 0 0)" --roles gateway --join "$seed"
start gateway-2 1 "$bin/ringcast-ws" "${fast[@]}" --name gateway-2 --gossip "$(port 1 10)" --peer "$(port 1 20)" --listen "$(port 1 0)" --roles gateway --join "$seed"

# Wait (at most 15 s) until each of the four sees all four.
echo "waiting for the cluster to form"
deadline=$((SECONDS + 15))
for i in "${!names[@]}"; do
  until [ "$(curl -fs "http://${https[$i]}/api/cluster" 2>/dev/null | grep -o '"name"' | wc -l)" -eq 4 ]; do
    if ! kill -0 "${pids[$i]}" 2>/dev/null || [ "$SECONDS" -ge "$deadline" ]; then
      echo "${names[$i]} did not see the whole cluster; its log:" >&2
      cat "$dir/${names[$i]}.log" >&2
      exit 1
    fi
    sleep 0.2
  done
done

gw1="${https[2]}" gw2="${https[3]}"
echo
echo "ringcast cluster running (--failure-detection fast: a process that dies is"
echo "declared dead in under a second; topics kept in $shown):"
for i in "${!names[@]}"; do
  case "${names[$i]}" in
    gateway-*) url="ws://${https[$i]}/socket/websocket" ;;
    *) url="http://${https[$i]}/api/cluster" ;;
  esac
  printf '  %-10s %-45s gossip %-21s peer %-21s PID %s\n' "${names[$i]}" "$url" "${gossips[$i]}" "${peers[$i]}" "${pids[$i]}"
done
cat <<TEXT

Talk to it with websocat (https://github.com/vi/websocat):

  # terminal 1
  websocat "ws://$gw1/socket/websocket?vsn=2.0.0"
  ["1","1","topics:matrix","phx_join",{}]
  # terminal 2
  websocat "ws://$gw2/socket/websocket?vsn=2.0.0"
  ["1","1","topics:matrix","phx_join",{}]
  ["1","1","topics:matrix","publish",["event",{"message":"red pill or blue pill?"}]]
  # both terminals then show
  ["1",null,"topics:matrix","event",{"message":"red pill or blue pill?"}]

Or publish over HTTP:

  curl -d '{"message":"hello"}' "http://$gw1/api/publish?topic=topics:matrix&event=event&ack=replicated"
  curl http://$gw1/api/topics/topics:matrix

Kill the topic's owner (kill -9 its PID, above) and publish again: the other
topic server takes the topic over from the store and the sequence goes on
with the next number. Stop the cluster and run this script again with
--dir $dir: the topics go on where they were.

TEXT
echo "logs in $dir (NAME.log); Ctrl-C stops the cluster"
echo "cluster ready"
wait

#!/usr/bin/env bash
# Runs a local ringcast cluster: two pure gateways (WebSocket on
# 127.0.0.1:4000 and :4001) and two topic servers (admin API on :4100 and
# :4101), all on loopback and joined to the first topic server. Ctrl-C stops
# them all gracefully.
#
# Every process runs with --failure-detection fast: on loopback a process that
# dies (kill -9) is declared dead in well under a second, and its topics are
# taken over by the other topic server. The default, lan, takes a few seconds
# and sends less gossip; use it on real networks.
set -euo pipefail

root="$(cd "$(dirname "$0")/../.." && pwd)"
tmp="$(mktemp -d "${TMPDIR:-/tmp}/ringcast-cluster.XXXXXX")"
pids=()
names=()
https=()

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
  rm -rf "$tmp"
}
trap stop EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

command -v curl >/dev/null || { echo "run.sh needs curl" >&2; exit 1; }

echo "building into $tmp"
(cd "$root" && go build -o "$tmp/" ./cmd/ringcast-ws ./cmd/ringcast-topic)

# Background jobs get their own process group, so Ctrl-C reaches only this
# script, which then stops each process by its PID.
set -m

# start NAME HTTP-ADDR BINARY ARGS...: starts a process logging to $tmp/NAME.log.
start() {
  local name="$1" http="$2"
  shift 2
  "$@" >"$tmp/$name.log" 2>&1 &
  pids+=("$!")
  names+=("$name")
  https+=("$http")
}
seed=127.0.0.1:7946
fast=(--failure-detection fast)
start topic-1 127.0.0.1:4100 "$tmp/ringcast-topic" "${fast[@]}" --name topic-1 --gossip 127.0.0.1:7946 --peer 127.0.0.1:7956 --http 127.0.0.1:4100
# The others join the first: give it a moment to listen.
for _ in $(seq 50); do curl -fs http://127.0.0.1:4100/healthz >/dev/null && break; sleep 0.1; done
start topic-2 127.0.0.1:4101 "$tmp/ringcast-topic" "${fast[@]}" --name topic-2 --gossip 127.0.0.1:7947 --peer 127.0.0.1:7957 --http 127.0.0.1:4101 --join "$seed"
start gateway-1 127.0.0.1:4000 "$tmp/ringcast-ws" "${fast[@]}" --name gateway-1 --gossip 127.0.0.1:7948 --peer 127.0.0.1:7958 --listen 127.0.0.1:4000 --roles gateway --join "$seed"
start gateway-2 127.0.0.1:4001 "$tmp/ringcast-ws" "${fast[@]}" --name gateway-2 --gossip 127.0.0.1:7949 --peer 127.0.0.1:7959 --listen 127.0.0.1:4001 --roles gateway --join "$seed"

# Wait (at most 15 s) until each of the four sees all four.
echo "waiting for the cluster to form"
deadline=$((SECONDS + 15))
for i in "${!names[@]}"; do
  until [ "$(curl -fs "http://${https[$i]}/api/cluster" 2>/dev/null | grep -o '"name"' | wc -l)" -eq 4 ]; do
    if ! kill -0 "${pids[$i]}" 2>/dev/null || [ "$SECONDS" -ge "$deadline" ]; then
      echo "${names[$i]} did not see the whole cluster; its log:" >&2
      cat "$tmp/${names[$i]}.log" >&2
      exit 1
    fi
    sleep 0.2
  done
done

cat <<'TEXT'

ringcast cluster running (--failure-detection fast: a process that dies is
declared dead in under a second):
  gateway-1  ws://127.0.0.1:4000/socket/websocket   (gossip 7948, peer 7958)
  gateway-2  ws://127.0.0.1:4001/socket/websocket   (gossip 7949, peer 7959)
  topic-1    http://127.0.0.1:4100/api/cluster       (gossip 7946, peer 7956)
  topic-2    http://127.0.0.1:4101/api/cluster       (gossip 7947, peer 7957)

Talk to it with websocat (https://github.com/vi/websocat):

  # terminal 1
  websocat "ws://127.0.0.1:4000/socket/websocket?vsn=2.0.0"
  ["1","1","topics:matrix","phx_join",{}]
  # terminal 2
  websocat "ws://127.0.0.1:4001/socket/websocket?vsn=2.0.0"
  ["1","1","topics:matrix","phx_join",{}]
  ["1","1","topics:matrix","publish",["event",{"message":"red pill or blue pill?"}]]
  # both terminals then show
  ["1",null,"topics:matrix","event",{"message":"red pill or blue pill?"}]

Or publish over HTTP:

  curl -d '{"message":"hello"}' "http://127.0.0.1:4000/api/publish?topic=topics:matrix&event=event&ack=replicated"
  curl http://127.0.0.1:4000/api/topics/topics:matrix

Kill the topic's owner (kill -9 its PID, below) and publish again: the other
topic server takes the topic over and the sequence goes on.

TEXT
for i in "${!names[@]}"; do
  echo "  ${names[$i]}  PID ${pids[$i]}"
done
echo
echo "logs in $tmp; Ctrl-C stops the cluster"
wait

#!/usr/bin/env bash
# Runs custom-sd end to end on this machine: a Consul dev agent loaded with
# deploy/consul.json, custom-sd writing .demo/custom_sd.json, then a change
# to show the file following Consul. Everything listens on 127.0.0.1 only.
#
#   CONSUL=path/to/consul CUSTOM_SD=bin/custom-sd scripts/demo.sh
#   DEMO_KEEP=1 ...   keep both running until Ctrl-C
#   DEMO_PORT=18500   the agent's HTTP port (the next few ports are used too)
set -euo pipefail

CONSUL=${CONSUL:-consul}
CUSTOM_SD=${CUSTOM_SD:-bin/custom-sd}
PORT=${DEMO_PORT:-18500}
DIR=.demo
OUT=$DIR/custom_sd.json
ADDR=127.0.0.1:$PORT

in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for p in "$PORT" $((PORT + 1)) $((PORT + 2)) $((PORT + 3)); do
  if in_use "$p"; then
    echo "demo: port $p on 127.0.0.1 is in use; pick others with DEMO_PORT=..." >&2
    exit 1
  fi
done

rm -rf "$DIR" && mkdir -p "$DIR"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

echo ">> starting a Consul dev agent on $ADDR with deploy/consul.json"
"$CONSUL" agent -dev -bind 127.0.0.1 -client 127.0.0.1 \
  -http-port "$PORT" -serf-lan-port $((PORT + 1)) -serf-wan-port $((PORT + 2)) -server-port $((PORT + 3)) \
  -dns-port -1 -grpc-port -1 -grpc-tls-port -1 \
  -config-file deploy/consul.json >"$DIR/consul.log" 2>&1 &
pids+=($!)

# consul_api <command> <subcommand> [args...]: the consul CLI against the demo agent.
consul_api() { "$CONSUL" "$1" "$2" -http-addr="http://$ADDR" "${@:3}" >/dev/null; }
for i in $(seq 200); do
  if ! kill -0 "${pids[0]}" 2>/dev/null; then
    echo "demo: the Consul agent exited:" >&2
    tail -20 "$DIR/consul.log" >&2
    exit 1
  fi
  "$CONSUL" catalog services -http-addr="http://$ADDR" 2>/dev/null | grep -qx web && break
  [ "$i" = 200 ] && { echo "demo: Consul did not come up; see $DIR/consul.log" >&2; exit 1; }
  sleep 0.1
done

echo ">> starting custom-sd: $CUSTOM_SD --consul.server=$ADDR --output.file=$OUT"
"$CUSTOM_SD" --consul.server="$ADDR" --output.file="$OUT" 2>"$DIR/custom-sd.log" &
pids+=($!)

wait_for() { # wait_for <what> <command...>
  local what=$1; shift
  for _ in $(seq 200); do "$@" && return 0; sleep 0.05; done
  echo "demo: timed out waiting for $what; see $DIR/*.log" >&2
  exit 1
}
wait_for "the first file" test -s "$OUT"
echo ">> $OUT ($(stat -c '%a %s bytes' "$OUT")):"
cat "$OUT"

echo ">> registering web-3 in Consul"
cat >"$DIR/web-3.json" <<'JSON'
{"service": {"id": "web-3", "name": "web", "address": "127.0.0.1", "port": 8082, "tags": ["canary"]}}
JSON
consul_api services register "$DIR/web-3.json"
wait_for "web-3 in the file" grep -q '"127.0.0.1:8082"' "$OUT"
echo ">> web-3 is in the file:"
grep '"127.0.0.1:8082"' "$OUT"

echo ">> deregistering web-3"
consul_api services deregister -id web-3
wait_for "web-3 to leave the file" bash -c "! grep -q '127.0.0.1:8082' '$OUT'"
echo ">> web-3 is gone; the file has $(grep -c '"targets"' "$OUT") targets again"

if [ -n "${DEMO_KEEP:-}" ]; then
  echo ">> running; Consul UI/API at http://$ADDR, file at $OUT. Ctrl-C to stop."
  wait
fi
echo ">> demo done (logs in $DIR/)"

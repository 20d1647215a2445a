#!/usr/bin/env bash
# Runs the deploy/ topology as local processes on 127.0.0.1: a Consul dev
# agent loaded with deploy/consul.json, custom-sd writing .demo/sd/custom_sd.json,
# and Prometheus reading it with deploy/prometheus.yml (the same layout as
# deploy/docker-compose.yml). Then it shows what Prometheus discovered and
# scraped, registers and deregisters an instance, and shows both following.
#
#   make demo                 (builds what it needs, then runs this)
#   DEMO_KEEP=1 make demo     keep everything running until Ctrl-C
#   DEMO_PORT=18500           the Consul agent's HTTP port (the next three are used too)
#
# custom-sd listens on 127.0.0.1:9099 and Prometheus on 127.0.0.1:9090: the
# addresses deploy/consul.json registers them under, so Prometheus scrapes both.
set -euo pipefail

CONSUL=${CONSUL:-consul}
CUSTOM_SD=${CUSTOM_SD:-bin/custom-sd}
PROMETHEUS=${PROMETHEUS:-prometheus}
PROMTOOL=${PROMTOOL:-promtool}
PORT=${DEMO_PORT:-18500}
DIR=.demo
OUT=$DIR/sd/custom_sd.json
ADDR=127.0.0.1:$PORT
SD_ADDR=127.0.0.1:9099
PROM_ADDR=127.0.0.1:9090

in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for p in "$PORT" $((PORT + 1)) $((PORT + 2)) $((PORT + 3)) 9099 9090; do
  if in_use "$p"; then
    echo "demo: port $p on 127.0.0.1 is in use (Consul's ports move with DEMO_PORT=...; 9099 and 9090 are fixed by deploy/consul.json)" >&2
    exit 1
  fi
done

rm -rf "$DIR" && mkdir -p "$DIR/sd" "$DIR/data"
cp deploy/prometheus.yml "$DIR/prometheus.yml"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

alive() { # alive <pid> <name> <log>
  if ! kill -0 "$1" 2>/dev/null; then
    echo "demo: $2 exited:" >&2
    tail -20 "$3" >&2
    exit 1
  fi
}
wait_for() { # wait_for <what> <command...>
  local what=$1; shift
  for _ in $(seq 600); do "$@" && return 0; sleep 0.05; done
  echo "demo: timed out waiting for $what; see $DIR/*.log" >&2
  exit 1
}
http_ok() { curl -fsS -o /dev/null "$1" 2>/dev/null; }

echo ">> starting a Consul dev agent on $ADDR with deploy/consul.json"
"$CONSUL" agent -dev -bind 127.0.0.1 -client 127.0.0.1 \
  -http-port "$PORT" -serf-lan-port $((PORT + 1)) -serf-wan-port $((PORT + 2)) -server-port $((PORT + 3)) \
  -dns-port -1 -grpc-port -1 -grpc-tls-port -1 \
  -config-file deploy/consul.json >"$DIR/consul.log" 2>&1 &
pids+=($!)
consul_up() { alive "${pids[0]}" Consul "$DIR/consul.log"; "$CONSUL" catalog services -http-addr="http://$ADDR" 2>/dev/null | grep -qx web; }
wait_for "Consul" consul_up

echo ">> starting custom-sd on $SD_ADDR, writing $OUT"
"$CUSTOM_SD" --consul.server="$ADDR" --output.file="$OUT" --web.listen-address="$SD_ADDR" 2>"$DIR/custom-sd.log" &
pids+=($!)
wait_for "custom-sd to be ready" http_ok "http://$SD_ADDR/-/ready"
echo ">> $OUT ($(stat -c '%a %s bytes' "$OUT")):"
cat "$OUT"

echo ">> starting Prometheus on $PROM_ADDR with deploy/prometheus.yml"
"$PROMETHEUS" --config.file="$DIR/prometheus.yml" --storage.tsdb.path="$DIR/data" \
  --web.listen-address="$PROM_ADDR" >"$DIR/prometheus.log" 2>&1 &
pids+=($!)
wait_for "Prometheus to be ready" http_ok "http://$PROM_ADDR/-/ready"

# up{...} for every target Prometheus scrapes; waits for the first scrape of
# custom-sd (within one 15s scrape interval).
show_up() { "$PROMTOOL" query instant "http://$PROM_ADDR" 'up{job="consul-services"}' | sort; }
targets() { curl -fsS "http://$PROM_ADDR/api/v1/targets?state=active"; }
scraped() { show_up 2>/dev/null | grep -q 'service="custom-sd".* => 1' && ! targets | grep -q '"health":"unknown"'; }
echo ">> waiting for Prometheus to scrape every target custom-sd found (first scrapes within 15s)"
wait_for "Prometheus to scrape custom-sd" scraped
echo ">> Prometheus's targets (1 = up, 0 = down: web, api have no real server behind them):"
show_up

echo ">> registering web-3 in Consul"
cat >"$DIR/web-3.json" <<'JSON'
{"service": {"id": "web-3", "name": "web", "address": "127.0.0.1", "port": 8082, "tags": ["canary"]}}
JSON
"$CONSUL" services register -http-addr="http://$ADDR" "$DIR/web-3.json" >/dev/null
in_prometheus() { targets | grep -q '"instance":"127.0.0.1:8082"'; }
wait_for "web-3 in the file" grep -q '"127.0.0.1:8082"' "$OUT"
wait_for "web-3 in Prometheus" in_prometheus
echo ">> web-3 is in the file and among Prometheus's targets"

echo ">> deregistering web-3"
"$CONSUL" services deregister -http-addr="http://$ADDR" -id web-3 >/dev/null
wait_for "web-3 to leave Prometheus" eval '! in_prometheus'
wait_for "web-3 to leave the file" eval "! grep -q '127.0.0.1:8082' '$OUT'"
echo ">> web-3 is gone from the file and from Prometheus"

if [ -n "${DEMO_KEEP:-}" ]; then
  echo ">> running. Consul http://$ADDR/ui  custom-sd http://$SD_ADDR/targets  Prometheus http://$PROM_ADDR/targets  (Ctrl-C stops)"
  wait
fi
echo ">> demo done (logs in $DIR/)"

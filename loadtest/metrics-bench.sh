#!/usr/bin/env bash
# TRACK throughput without and with `--admin-listen` (and with a scraper fetching /metrics every
# second), interleaved rounds on the same log:
#
#   cargo run --release -p mtqp-load -- gen --messages 100000 --format postfix \
#       --out /tmp/load.log --secrets /tmp/load.secrets
#   cargo build --release -p mtqpd -p mtqp-load
#   loadtest/metrics-bench.sh /tmp/load.log /tmp/load.secrets [ROUNDS]
#
# Each round runs every mode once (starting one mode later than the round before): the server (`--threads 1`, CPU 0) caught up, `mtqp-load run`
# (CPU 1) closed loop, 50 connections × 8 pipelined, TRACK hits for 10 s; one line per run:
# MODE, answers per second, and the server's CPU time per answer (utime + stime from
# /proc/PID/stat over the run, admin thread included: steadier than the rate on a shared
# machine). Modes: off, admin (`--admin-listen`, not scraped), scrape (scraped every second),
# and base when BASE=PATH names another build's mtqpd (e.g. one without the admin endpoint);
# MODES chooses among the first three.
set -euo pipefail
log=${1:?usage: metrics-bench.sh LOG SECRETS [ROUNDS]}
secrets=${2:?usage: metrics-bench.sh LOG SECRETS [ROUNDS]}
rounds=${3:-3}
bin=$(dirname "$0")/../target/release
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# utime + stime of PID, in clock ticks.
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

run() {
  local mode=$1 server=$bin/mtqpd err=$work/err scraper="" pid port t0 t1
  local args=(serve --threads 1 --listen 127.0.0.1:0 --log "postfix:$log" --log-timezone UTC)
  [ "$mode" = base ] && server=$BASE
  [ "$mode" = admin ] || [ "$mode" = scrape ] && args+=(--admin-listen 127.0.0.1:0)
  taskset -c 0 "$server" "${args[@]}" 2>"$err" &
  pid=$!
  until grep -q "ingest caught up" "$err"; do
    kill -0 "$pid" 2>/dev/null || { cat "$err" >&2; exit 1; }
    sleep 0.1
  done
  port=$(grep -o 'listening on .*' "$err" | sed 's/.*://')
  if [ "$mode" = scrape ]; then
    local admin
    admin=$(grep -o 'admin on .*' "$err" | sed 's/admin on //')
    (while curl -sf "http://$admin/metrics" >/dev/null; do sleep 1; done) &
    scraper=$!
  fi
  t0=$(ticks "$pid")
  taskset -c 1 "$bin/mtqp-load" run --addr "127.0.0.1:$port" --secrets "$secrets" \
    --connections 50 --pipeline 8 --rate 0 --duration 10s --warmup 0s \
    --json "$work/run.json" >/dev/null 2>&1
  t1=$(ticks "$pid")
  if [ -n "$scraper" ]; then kill "$scraper"; fi
  kill -TERM "$pid"
  wait "$pid" 2>/dev/null || true
  python3 -c "import json, os; d = json.load(open('$work/run.json')); \
ns = ($t1 - $t0) * 1e9 / os.sysconf('SC_CLK_TCK') / d['answered']; \
print(f\"$mode {d['rate_achieved']:.0f}/s {ns:.0f} ns/answer errors {d['errors']}\")"
}

# MODES="off" (a space-separated list) runs only those, e.g. `BASE=… MODES=off` for an A/B of
# two builds.
read -r -a modes <<<"${MODES:-off admin scrape}"
if [ -n "${BASE:-}" ]; then modes=(base "${modes[@]}"); fi
# Each round starts one mode later, so that none always runs first (or last).
for round in $(seq 0 $((rounds - 1))); do
  for i in $(seq 0 $((${#modes[@]} - 1))); do
    run "${modes[$(((round + i) % ${#modes[@]}))]}"
  done
done

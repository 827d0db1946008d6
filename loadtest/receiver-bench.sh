#!/usr/bin/env bash
# Ingest through the syslog receiver against ingest from a file, same log, interleaved rounds:
#
#   cargo run --release -p mtqp-load -- gen --messages 1000000 --format postfix \
#       --out /tmp/big.log --secrets /tmp/big.secrets
#   cargo build --release -p mtqpd -p mtqp-load
#   loadtest/receiver-bench.sh /tmp/big.log [ROUNDS]
#
# tcp: `mtqpd serve --syslog-listen tcp:127.0.0.1:PORT` (native lines under mtqp-milter, the
# generator's tag), `mtqp-load send` writing the log as octet-counted messages as fast as the
# receiver takes them, then SIGTERM: the time from the first line sent to the server's exit,
# every line applied. file: `mtqpd serve --log postfix:LOG` until "ingest caught up".
# BIN=DIR takes the binaries from DIR (e.g. a copy of another build's, for A/B rounds).
set -euo pipefail
log=${1:?usage: receiver-bench.sh LOG [ROUNDS]}
rounds=${2:-2}
bin=${BIN:-$(dirname "$0")/../target/release}
port=10600
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

now() { date +%s.%N; }

# Waits for NEEDLE in FILE (the server's stderr).
wait_for() {
  until grep -q "$1" "$2"; do sleep 0.05; done
}

round() {
  local mode=$1 err=$work/$1.err start end pid lines
  if [ "$mode" = tcp ]; then
    "$bin/mtqpd" serve --listen 127.0.0.1:0 --threads 1 --hostname hub.example \
      --syslog-listen "tcp:127.0.0.1:$port" --native-tag mtqp-milter 2>"$err" &
    pid=$!
    wait_for "syslog on" "$err"
    start=$(now)
    "$bin/mtqp-load" send --to "127.0.0.1:$port" --log "$log" >/dev/null
  else
    start=$(now)
    "$bin/mtqpd" serve --listen 127.0.0.1:0 --threads 1 --hostname hub.example \
      --log "postfix:$log" 2>"$err" &
    pid=$!
    wait_for "ingest caught up" "$err"
  fi
  kill -TERM "$pid"
  wait "$pid"
  end=$(now)
  lines=$(grep -o "ingest: lines [0-9]*" "$err" | grep -o "[0-9]*$")
  echo "$mode: $lines lines in $(echo "$end - $start" | bc) s: $(echo "$lines / ($end - $start)" | bc) lines/s"
}

for _ in $(seq "$rounds"); do
  round file
  round tcp
done

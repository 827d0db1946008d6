#!/usr/bin/env bash
# Benchmarks `mtqpd gate` beside Postfix's own load tools, on one machine (README, "Load testing
# and benchmarks"). Needs the Postfix that .ci/postfix-setup.sh configures (run that first, as
# root): smtpd on 127.0.0.1:10026 (plain) and 127.0.0.1:10025 (PROXY protocol), mail to
# bench.example discarded once queued. Run as root (smtp-sink drops to nobody).
#
# 1. Throughput: smtp-source sends the same load to Postfix directly (127.0.0.1:10026) and
#    through the gate, with PROXY v2, over each hop --hops names: `tcp` (gate ->
#    127.0.0.1:10025) and `unix` (gate -> smtpd on the UNIX-domain socket
#    /var/spool/postfix/public/mtqpd-smtpd), interleaved A B C B C A C A B …, waiting for Postfix's
#    queue to drain between runs; prints messages/s of each run and each gate run's ratio to the
#    direct run of its round, the medians, and the ratio of the medians (target >= 0.9). Adjacent
#    runs share the machine's background load, so the median of the pairs' ratios is the steadier
#    figure on a busy machine; the load average is printed before and after. smtp-source sends
#    no MTRK: the gate relays every message untracked, so the accept log's write is not part of
#    this measurement.
# 2. Idle sessions: N sessions (default 10,000) opened through a second gate in front of
#    smtp-sink (Postfix's smtpd process limit is far below 10,000), each greeted, then held
#    idle; prints the gate's RSS growth per session (target <= 64 KiB) and one active session's
#    EHLO round trip meanwhile. Each session holds two descriptors in the gate (client and
#    MTA), so the open-files limit must allow 2N + a few; where the hard limit is lower (and
#    cannot be raised), N is lowered to fit and the output says so.
#
# Takes about 2-3 minutes with the defaults on a 2-core machine (throughput 70-140 s, idle
# sessions ~15 s), plus a release build of mtqpd if there is none yet. Not run by CI, and not
# to be run while tests use the same Postfix: its log (which tests/real_postfix.rs and
# tests/gate_postfix.rs read from the start) grows by ~14 lines a message, so at the end the
# script rotates it (`postfix logrotate`; --keep-log to keep the lines).
#
# Usage: loadtest/gate-bench.sh [--rounds N] [--messages N] [--sessions N] [--size BYTES]
#                               [--reuse] [--idle N] [--no-throughput] [--no-idle]
#                               [--gate-threads N] [--hops tcp,unix] [--keep-log]
#                               [--mtqpd PATH]
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=5         # A B pairs
MESSAGES=5000    # messages per run
SESSIONS=10      # smtp-source -s: parallel sessions
SIZE=4096        # smtp-source -l: payload octets per message
REUSE=""         # --reuse: smtp-source -d, several messages per connection
IDLE=10000       # idle sessions to hold
THROUGHPUT=1
IDLE_TEST=1
MTQPD=""
HOPS=tcp,unix    # --hops: the gate's hops to Postfix to measure (tcp: 127.0.0.1:10025, unix)
KEEP_LOG=""
GATE_THREADS=()  # --gate-threads N: the gates' --threads (default: theirs, one per core)

DIRECT=127.0.0.1:10026
GATE_MTA=127.0.0.1:10025
GATE_MTA_SOCKET=/var/spool/postfix/public/mtqpd-smtpd
GATE_PORT=10032  # the gates listen on 10032, 10033 … (one per hop)
SINK=127.0.0.1:10027
IDLE_GATE=127.0.0.1:10031
SENDER=bench@bench.example
RECIPIENT=sink@bench.example

fail() {
  echo "gate-bench: FAILED: $*" >&2
  exit 1
}
usage() {
  sed -n '/^# Usage:/,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
  exit 2
}

while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) ROUNDS=$2; shift 2 ;;
    --messages) MESSAGES=$2; shift 2 ;;
    --sessions) SESSIONS=$2; shift 2 ;;
    --size) SIZE=$2; shift 2 ;;
    --reuse) REUSE=-d; shift ;;
    --idle) IDLE=$2; shift 2 ;;
    --no-throughput) THROUGHPUT=""; shift ;;
    --no-idle) IDLE_TEST=""; shift ;;
    --mtqpd) MTQPD=$2; shift 2 ;;
    --keep-log) KEEP_LOG=1; shift ;;
    --gate-threads) GATE_THREADS=(--threads "$2"); shift 2 ;;
    --hops) HOPS=$2; shift 2 ;;
    -h | --help) usage ;;
    *) echo "gate-bench: unknown argument $1" >&2; usage ;;
  esac
done

[ "$(id -u)" = 0 ] || fail "run as root (smtp-sink, Postfix's queue)"
for tool in smtp-source smtp-sink postconf postqueue python3; do
  command -v "$tool" >/dev/null 2>&1 || fail "$tool is missing"
done
[ "$(postconf -P "$GATE_MTA/inet/smtpd_upstream_proxy_protocol" 2>/dev/null)" = \
  "$GATE_MTA/inet/smtpd_upstream_proxy_protocol = haproxy" ] &&
  [ -n "$(postconf -M "$DIRECT/inet" 2>/dev/null)" ] &&
  { [[ ",$HOPS," != *,unix,* ]] || [ -S "$GATE_MTA_SOCKET" ]; } &&
  grep -q '^bench\.example discard:' "$(postconf -h transport_maps | sed 's/^[a-z]*://')" ||
  fail "Postfix is not configured for the benchmark: run .ci/postfix-setup.sh as root"
postfix status >/dev/null 2>&1 || fail "Postfix is not running: run .ci/postfix-setup.sh"

if [ -z "$MTQPD" ]; then
  echo "== cargo build --release --bin mtqpd"
  cargo build --release --bin mtqpd 2>&1 | tail -n 1
  MTQPD=target/release/mtqpd
fi
[ -x "$MTQPD" ] || fail "no mtqpd binary at $MTQPD"

TMP=$(mktemp -d /tmp/gate-bench.XXXXXX)
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT

started=$SECONDS
log_lines_before=$(wc -l <"$(postconf -h maillog_file)" 2>/dev/null || echo 0)

# Starts `mtqpd gate ARGS…` in the background with its stderr in $TMP/NAME.err; waits (10 s at
# most) for `mtqpd: gate listening on`; sets GATE_PID.
start_gate() {
  local name=$1
  shift
  "$MTQPD" gate ${GATE_THREADS[@]+"${GATE_THREADS[@]}"} "$@" 2>"$TMP/$name.err" &
  GATE_PID=$!
  PIDS+=("$GATE_PID")
  for _ in $(seq 1 100); do
    grep -q 'gate listening on \|gate: listening on ' "$TMP/$name.err" && return 0
    kill -0 "$GATE_PID" 2>/dev/null || break
    sleep 0.1
  done
  cat "$TMP/$name.err" >&2
  fail "mtqpd gate ($name) did not start"
}

# Stops a gate with SIGTERM and prints the last lines of its stderr (its counters).
stop_gate() {
  local name=$1 pid=$2
  kill -TERM "$pid"
  wait "$pid" || echo "gate-bench: mtqpd gate ($name) exited with status $?"
  echo "-- mtqpd gate ($name) at exit:"
  sed 's/^/   /' "$TMP/$name.err"
}

# Messages in Postfix's queue that are not deferred (incoming, active, maildrop).
queued() {
  postqueue -j 2>/dev/null | grep -c '"queue_name": *"\(incoming\|active\|maildrop\)"' || true
}
wait_queue_drained() {
  for _ in $(seq 1 600); do
    [ "$(queued)" = 0 ] && return 0
    sleep 0.2
  done
  fail "Postfix's queue did not drain within 120 s ($(queued) messages left)"
}

# One smtp-source run against ADDR; prints messages/s.
run_source() {
  local addr=$1 t0 t1
  wait_queue_drained
  t0=$(date +%s.%N)
  smtp-source $REUSE -s "$SESSIONS" -m "$MESSAGES" -l "$SIZE" -f "$SENDER" -t "$RECIPIENT" \
    "$addr" >"$TMP/source.out" 2>&1 || {
    cat "$TMP/source.out" >&2
    fail "smtp-source against $addr"
  }
  t1=$(date +%s.%N)
  awk -v m="$MESSAGES" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f\n", m / (b - a) }'
}

# The median of the numbers on standard input, printed with printf format $1.
median() {
  sort -n | awk -v f="$1\n" '{ v[NR] = $1 } END { printf f, (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

throughput() {
  local hops=() hop addr mta i
  IFS=, read -r -a hops <<<"$HOPS"
  echo "== throughput: smtp-source ${REUSE:+$REUSE }-s $SESSIONS -m $MESSAGES -l $SIZE, to $RECIPIENT (discarded)"
  echo "   direct: Postfix smtpd on $DIRECT; gate: mtqpd gate -> Postfix smtpd with PROXY v2 over each hop:"
  local gate_pids=() gate_addrs=()
  for i in "${!hops[@]}"; do
    hop=${hops[$i]}
    case "$hop" in
      tcp) mta=$GATE_MTA ;;
      unix) mta=unix:$GATE_MTA_SOCKET ;;
      *) fail "--hops: unknown hop $hop (tcp, unix)" ;;
    esac
    addr=127.0.0.1:$((GATE_PORT + i))
    echo "     $hop: mtqpd gate on $addr -> $mta"
    start_gate "throughput-$hop" --listen "$addr" --mta "$mta" --accept-log "$TMP/accept-$hop.log" \
      --hostname gate.bench.example --max-sessions-per-ip 10000
    gate_pids+=("$GATE_PID")
    gate_addrs+=("$addr")
  done
  echo "   load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
  # Warm-up, not counted: Postfix's smtpd processes, the gates' first connections.
  MESSAGES=$((SESSIONS * 20)) run_source "$DIRECT" >/dev/null
  for addr in "${gate_addrs[@]}"; do
    MESSAGES=$((SESSIONS * 20)) run_source "$addr" >/dev/null
  done
  local header round d g r c0 direct=() gates=() ratios=() ticks=()
  header=$(printf '   %-6s %14s' round "direct msg/s")
  for hop in "${hops[@]}"; do
    header+=$(printf ' %14s %12s' "gate-$hop msg/s" "/direct")
    ticks+=(0)
  done
  echo "$header"
  # Each round runs direct and each hop once, the order rotated from round to round (direct
  # first, then second, …) so that no path always runs first after the previous round; each gate
  # run's ratio is to its round's direct run.
  local legs=$((${#hops[@]} + 1)) leg k got=()
  for round in $(seq 1 "$ROUNDS"); do
    for k in $(seq 0 $((legs - 1))); do
      leg=$(((k + round - 1) % legs))
      if [ "$leg" = 0 ]; then
        got[0]=$(run_source "$DIRECT")
      else
        i=$((leg - 1))
        c0=$(cpu_ticks "${gate_pids[$i]}")
        got[leg]=$(run_source "${gate_addrs[$i]}")
        ticks[i]=$((ticks[i] + $(cpu_ticks "${gate_pids[$i]}") - c0))
      fi
    done
    d=${got[0]}
    direct+=("$d")
    local row
    row=$(printf '   %-6s %14s' "$round" "$d")
    for i in "${!hops[@]}"; do
      g=${got[i + 1]}
      r=$(awk -v d="$d" -v g="$g" 'BEGIN { printf "%.3f\n", g / d }')
      gates[i]+="$g "
      ratios[i]+="$r "
      row+=$(printf ' %14s %12s' "$g" "$r")
    done
    echo "$row"
  done
  wait_queue_drained
  d=$(printf '%s\n' "${direct[@]}" | median %.1f)
  local row
  row=$(printf '   %-6s %14s' median "$d")
  local medians=() pair_medians=()
  for i in "${!hops[@]}"; do
    medians[i]=$(printf '%s\n' ${gates[i]} | median %.1f)
    pair_medians[i]=$(printf '%s\n' ${ratios[i]} | median %.3f)
    row+=$(printf ' %14s %12s' "${medians[i]}" "${pair_medians[i]}")
  done
  echo "$row"
  echo "   load average after: $(cut -d' ' -f1-3 /proc/loadavg) (the benchmark's own processes count)"
  for i in "${!hops[@]}"; do
    awk -v t="${ticks[i]}" -v hz="$(getconf CLK_TCK)" -v m=$((ROUNDS * MESSAGES)) -v hop="${hops[i]}" \
      -v per="${REUSE:+several messages a connection (-d)}" 'BEGIN {
      printf "   the gate (%s hop) used %.2f s of CPU for the %d messages it relayed: %.0f us a message (%s)\n",
        hop, t / hz, m, t / hz / m * 1e6, (per == "" ? "a connection each" : per)
    }'
  done
  for i in "${!hops[@]}"; do
    awk -v d="$d" -v g="${medians[i]}" -v p="${pair_medians[i]}" -v hop="${hops[i]}" 'BEGIN {
      r = g / d
      printf "RESULT throughput (%s hop): direct %.1f msg/s, through the gate %.1f msg/s (medians): ratio %.3f, median of the pairs %.3f (target >= 0.9: %s)\n",
        hop, d, g, r, p, (r >= 0.9 && p >= 0.9 ? "met" : "NOT met")
    }'
  done
  for i in "${!hops[@]}"; do
    stop_gate "throughput-${hops[i]}" "${gate_pids[i]}"
  done
}

# CPU time (user + system) process $1 has used, in clock ticks.
cpu_ticks() {
  sed 's/.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'
}

rss_kib() {
  awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"
}
fds() {
  ls "/proc/$1/fd" | wc -l
}

idle_sessions() {
  local n=$IDLE want hard
  want=$((2 * n + 64))
  if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt "$want" ] && ! ulimit -n "$want" 2>/dev/null; then
    hard=$(ulimit -Hn)
    ulimit -n "$hard"
    n=$(((hard - 64) / 2))
    echo "   note: the open-files hard limit is $hard and cannot be raised here (CAP_SYS_RESOURCE);"
    echo "   the gate needs 2 descriptors a session, so $n sessions are held instead of $IDLE"
  fi
  echo "== idle sessions: $n through mtqpd gate on $IDLE_GATE -> smtp-sink on $SINK (open files: $(ulimit -n))"
  smtp-sink -u nobody -m $((n + 100)) "$SINK" 4096 >"$TMP/sink.out" 2>&1 &
  local sink_pid=$!
  PIDS+=("$sink_pid")
  # smtp-sink speaks no PROXY protocol; --proxy-protocol none makes the gate warn, as it should.
  start_gate idle --listen "$IDLE_GATE" --mta "$SINK" --proxy-protocol none \
    --accept-log "$TMP/idle-accept.log" --hostname gate.bench.example \
    --max-sessions $((n + 100)) --max-sessions-per-ip $((n + 100))
  local gate_pid=$GATE_PID base_fds base_rss rss hwm held probe line
  # Warm-up: 200 sessions opened, greeted and closed, so that the baseline includes what the
  # first sessions allocate once (buffers pools, thread-local state); then wait until the gate
  # holds no session's descriptor.
  python3 loadtest/idle-sessions.py --addr "$IDLE_GATE" --count 200 </dev/null >/dev/null ||
    fail "warm-up sessions"
  base_fds=""
  for _ in $(seq 1 100); do
    local f
    f=$(fds "$gate_pid")
    [ "$f" = "$base_fds" ] && break
    base_fds=$f
    sleep 0.2
  done
  base_rss=$(rss_kib "$gate_pid")
  local t0=$SECONDS
  coproc HOLDER { python3 loadtest/idle-sessions.py --addr "$IDLE_GATE" --count "$n"; }
  local holder_pid=$HOLDER_PID
  read -r line <&"${HOLDER[0]}" || fail "idle-sessions said nothing"
  held=${line#ready }
  [ "$held" = "$n" ] || fail "only $held of $n sessions were greeted through the gate"
  read -r line <&"${HOLDER[0]}" || fail "idle-sessions gave no probe"
  probe=${line#probe_ms }
  rss=$(rss_kib "$gate_pid")
  hwm=$(awk '/^VmHWM:/ { print $2 }' "/proc/$gate_pid/status")
  echo "   $n sessions greeted and held after $((SECONDS - t0)) s; gate descriptors $base_fds -> $(fds "$gate_pid")"
  echo "   gate VmRSS $base_rss KiB -> $rss KiB (VmHWM $hwm KiB); smtp-sink VmRSS $(rss_kib "$sink_pid") KiB"
  awk -v a="$base_rss" -v b="$rss" -v n="$n" -v p="$probe" 'BEGIN {
    per = (b - a) / n
    printf "RESULT idle sessions: %d held, gate RSS +%.0f KiB: %.1f KiB a session (target <= 64: %s); an active EHLO meanwhile: %.2f ms\n",
      n, b - a, per, (per <= 64 ? "met" : "NOT met"), p
  }'
  eval "exec ${HOLDER[1]}>&-"
  wait "$holder_pid" || true
  stop_gate idle "$gate_pid"
  kill "$sink_pid" 2>/dev/null || true
}

[ -n "$THROUGHPUT" ] && throughput
[ -n "$IDLE_TEST" ] && idle_sessions
log_lines_after=$(wc -l <"$(postconf -h maillog_file)" 2>/dev/null || echo 0)
echo "== done in $((SECONDS - started)) s; Postfix's log ($(postconf -h maillog_file)) grew by" \
  "$((log_lines_after - log_lines_before)) lines"
if [ -z "$KEEP_LOG" ]; then
  # The tests read that log from its start: hand them a fresh one.
  postfix logrotate >/dev/null 2>&1 && echo "   rotated it (postfix logrotate; --keep-log keeps it)" ||
    echo "   postfix logrotate failed: rotate the log before running the tests"
fi

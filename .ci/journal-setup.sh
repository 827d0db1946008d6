#!/usr/bin/env bash
# Starts a real systemd-journald for tests/journal.rs (MTQPD_REAL_JOURNAL=1). CI machines (a
# container or a bare VM, root, no systemd as init) have no journal: journald runs fine started
# by hand, volatile (/run/log/journal), with its sockets in /run/systemd/journal — dev-log is the
# one syslog(3) clients such as Postfix write to on a journal host (/dev/log is left alone: the
# sendmail setup's rsyslogd owns it). It keeps running after this script.
#
# Idempotent and fast: when a journald already answers (a systemd host, or an earlier run), it
# only checks that; otherwise it installs Debian's systemd package if journald or journalctl is
# missing (without making it init), starts journald and checks that an entry written to dev-log
# can be read back with journalctl. Exits non-zero with a message when that fails.
set -euo pipefail

fail() {
  echo "journal-setup: $*" >&2
  exit 1
}
[ "$(id -u)" -eq 0 ] || fail "must run as root (starts systemd-journald)"

SOCK=/run/systemd/journal/dev-log
PIDFILE=/run/mtqpd-journald.pid

journald() {
  local p
  for p in /lib/systemd/systemd-journald /usr/lib/systemd/systemd-journald; do
    [ -x "$p" ] && { echo "$p"; return 0; }
  done
  return 1
}

# Writes a probe through dev-log and waits (5 s at most) until journalctl reads it back.
probe() {
  local tag=mtqpd-journal-setup text="probe $$ $RANDOM"
  logger --socket="$SOCK" --socket-errors=on -t "$tag" -- "$text" 2>/dev/null || return 1
  for _ in $(seq 50); do
    journalctl --no-pager --quiet --lines=20 --output=cat SYSLOG_IDENTIFIER="$tag" 2>/dev/null |
      grep -qxF "$text" && return 0
    sleep 0.1
  done
  return 1
}

if [ -S "$SOCK" ] && command -v journalctl >/dev/null && probe; then
  echo "journal-setup: journald already running"
  exit 0
fi

if ! command -v journalctl >/dev/null || ! journald >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null || fail "apt-get update"
  apt-get install -y -qq --no-install-recommends systemd >/dev/null || fail "apt-get install systemd"
fi
# journald names its files after the machine id; a container may have none.
[ -s /etc/machine-id ] || systemd-machine-id-setup >/dev/null || fail "no /etc/machine-id"

# A journald of an earlier run that stopped answering.
if [ -s "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
  kill "$(cat "$PIDFILE")" || true
  sleep 0.5
fi
mkdir -p /run/systemd/journal
setsid "$(journald)" </dev/null >/run/mtqpd-journald.log 2>&1 &
echo $! >"$PIDFILE"
# Until it answers (a socket left by an earlier journald may be there before the new one's).
for _ in $(seq 100); do
  [ -S "$SOCK" ] && logger --socket="$SOCK" --socket-errors=on -t mtqpd-journal-setup -- start \
    2>/dev/null && break
  kill -0 "$(cat "$PIDFILE")" 2>/dev/null || fail "journald exited: $(cat /run/mtqpd-journald.log)"
  sleep 0.1
done
probe || fail "an entry written to $SOCK was not read back by journalctl (see /run/mtqpd-journald.log)"
echo "journal-setup: journald started (pid $(cat "$PIDFILE"))"

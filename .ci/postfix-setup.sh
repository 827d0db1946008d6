#!/usr/bin/env bash
# Installs and starts a real Postfix for tests/real_postfix.rs and tests/gate_postfix.rs (and
# for loadtest/gate-bench.sh, by hand). Idempotent: a second
# run re-applies the settings and reloads the running Postfix. Works without systemd (a container
# or a bare VM): Postfix is started with `postfix start`, which needs no init system.
#
# What the test relies on:
#   - Postfix listens on 127.0.0.1:25 only (inet_interfaces = loopback-only);
#   - it logs to /var/log/postfix-mtqpd.log itself (maillog_file, via postlogd; no syslogd);
#   - mtqpdtest@localhost is a local user (delivered by local(8));
#   - nosuchuser@localhost is unknown: with smtpd_reject_unlisted_recipient = no, smtpd accepts
#     it and local(8) bounces it after acceptance (dsn=5.1.1, "unknown user");
#   - mail to deferred.example goes to smtp:[127.0.0.1]:9, where nothing listens, so it is
#     deferred (dsn=4.4.1, connection refused) and stays in the queue;
#   - RCPT TO:<rejected@localhost> is refused (554 5.7.1), so a session whose first recipient
#     it is ends in a `NOQUEUE: reject:` line that logs the sender verbatim;
#   - a second smtpd listens on 127.0.0.1:10025 for `mtqpd gate` and reads the real client's
#     address from the PROXY protocol header the gate sends (smtpd_upstream_proxy_protocol =
#     haproxy: v1 and v2); a third, plain one on 127.0.0.1:10026 is the benchmark's direct path;
#   - a fourth smtpd, also reading PROXY headers, serves the UNIX-domain socket
#     /var/spool/postfix/public/mtqpd-smtpd (`mtqpd gate --mta unix:PATH`, the cheaper hop);
#   - mynetworks is 127.0.0.0/8, so a client on 127.0.0.2 (the gate test's, announced by PROXY v2)
#     may relay to deferred.example and bench.example as one on 127.0.0.1 may;
#   - mail to retry.example goes to the pipe transport mtqpdretry, which fails temporarily
#     (EX_TEMPFAIL: deferred, 4.3.0) until the file /var/tmp/mtqpd-retry/RECIPIENT exists, then
#     delivers: a test creates the file and asks for a retry with `postqueue -i QUEUEID`;
#   - mail to sink.example is relayed to 127.0.0.1:10028, where a test runs smtp-sink;
#   - mail to bench.example is discarded by discard(8) once queued (the benchmark's recipient:
#     no mailbox or remote delivery competes with smtpd for the CPU);
#   - smtp-source and smtp-sink (Postfix's load tools, shipped in Debian's postfix package) are
#     installed.
#
# With `--faketime OFFSET` (a libfaketime FAKETIME value such as +400d) Postfix is restarted, with
# a fresh log, so that all its processes see the clock moved by OFFSET (.ci/shifted-clock runs
# the tests so); `--faketime real` restarts it on the real clock.
# Exits non-zero with a message when Postfix cannot be installed or started.
set -euo pipefail

LOG=/var/log/postfix-mtqpd.log
TRANSPORT=/etc/postfix/mtqpd-transport
REJECTED=/etc/postfix/mtqpd-rejected-recipients
HOSTNAME_FQDN=mtqpd-ci.example
TEST_USER=mtqpdtest
DEFERRED_DOMAIN=deferred.example
BENCH_DOMAIN=bench.example
RETRY_DOMAIN=retry.example
RETRY_FLAGS=/var/tmp/mtqpd-retry
RETRY_SCRIPT=/usr/local/lib/mtqpd-ci/deliver-once-flagged
SINK_DOMAIN=sink.example
SINK_NEXT_HOP=127.0.0.1:10028
# The gate's MTA listener (PROXY protocol) and the benchmark's direct listener (none).
GATE_MTA_LISTENER=127.0.0.1:10025
DIRECT_LISTENER=127.0.0.1:10026
# The gate's MTA listener on a UNIX-domain socket: master.cf service mtqpd-smtpd, type unix,
# not private (public/, which the postdrop group may enter).
GATE_MTA_SOCKET_SERVICE=mtqpd-smtpd

SETUP=postfix-setup
ROOT_FOR="apt-get, postconf, postfix start"
# shellcheck source=.ci/mta-setup-args.sh
source "$(dirname "$0")/mta-setup-args.sh"
setup_args "$@"

export DEBIAN_FRONTEND=noninteractive
if ! command -v postfix >/dev/null 2>&1 || ! command -v postconf >/dev/null 2>&1; then
  echo "postfix-setup: installing postfix (Debian package, Local only)"
  echo "postfix postfix/main_mailer_type select Local only" | debconf-set-selections
  echo "postfix postfix/mailname string $HOSTNAME_FQDN" | debconf-set-selections
  apt-get update -qq >/dev/null || fail "apt-get update"
  # The package's postinst may try to start Postfix through the init system and fail without
  # one; that is not fatal here, the start below is ours.
  apt-get install -y -qq postfix >/dev/null || fail "apt-get install postfix"
else
  echo "postfix-setup: postfix already installed ($(postconf -h mail_version))"
fi

echo "postfix-setup: configuring"
printf '%s smtp:[127.0.0.1]:9\n%s discard:\n%s mtqpdretry:\n%s smtp:[%s]:%s\n' \
  "$DEFERRED_DOMAIN" "$BENCH_DOMAIN" "$RETRY_DOMAIN" "$SINK_DOMAIN" \
  "${SINK_NEXT_HOP%:*}" "${SINK_NEXT_HOP##*:}" >"$TRANSPORT"
# The retry transport's program: a temporary failure until the recipient's flag file exists.
mkdir -p "$(dirname "$RETRY_SCRIPT")" "$RETRY_FLAGS"
chmod 0755 "$RETRY_FLAGS"
cat >"$RETRY_SCRIPT" <<'SCRIPT'
#!/bin/sh
# mtqpd CI (.ci/postfix-setup.sh): EX_TEMPFAIL until /var/tmp/mtqpd-retry/RECIPIENT exists.
[ -e "/var/tmp/mtqpd-retry/$1" ] || { echo "not yet: no flag for $1"; exit 75; }
cat >/dev/null
SCRIPT
chmod 0755 "$RETRY_SCRIPT"
printf 'rejected@localhost REJECT no such mailbox here\n' >"$REJECTED"
postconf -e \
  "maillog_file = $LOG" \
  "inet_interfaces = loopback-only" \
  "inet_protocols = ipv4" \
  "myhostname = $HOSTNAME_FQDN" \
  "mydestination = localhost, $HOSTNAME_FQDN" \
  "mynetworks = 127.0.0.0/8" \
  "relayhost =" \
  "transport_maps = texthash:$TRANSPORT" \
  "smtpd_relay_restrictions = permit_mynetworks permit_sasl_authenticated defer_unauth_destination" \
  "smtpd_recipient_restrictions = check_recipient_access texthash:$REJECTED" \
  "smtpd_reject_unlisted_recipient = no" \
  "smtp_connect_timeout = 5s" \
  "alias_maps = hash:/etc/aliases" \
  "alias_database = hash:/etc/aliases"
# local(8) looks up aliases before the user; the map must exist.
[ -f /etc/aliases ] || echo "postmaster: root" >/etc/aliases
newaliases || fail "newaliases"
# Postfix (since 3.4) needs postlogd in master.cf for maillog_file; Debian's master.cf has it,
# but add it if an old configuration lacks it.
if ! postconf -M postlog/unix-dgram >/dev/null 2>&1 || [ -z "$(postconf -M postlog/unix-dgram)" ]; then
  postconf -M "postlog/unix-dgram=postlog unix-dgram n - n - 1 postlogd"
fi

# The listeners besides Debian's smtp/inet on 127.0.0.1:25. `postconf -M name/type=entry`
# replaces an entry of that name and type, so a second run rewrites the same lines. No
# syslog_name: their lines are `postfix/smtpd[…]` like port 25's, which mtqpd reads.
postconf -M "$GATE_MTA_LISTENER/inet=$GATE_MTA_LISTENER inet n - n - - smtpd -o smtpd_upstream_proxy_protocol=haproxy"
postconf -M "$DIRECT_LISTENER/inet=$DIRECT_LISTENER inet n - n - - smtpd"
postconf -M "$GATE_MTA_SOCKET_SERVICE/unix=$GATE_MTA_SOCKET_SERVICE unix n - n - - smtpd -o smtpd_upstream_proxy_protocol=haproxy"
postconf -M "mtqpdretry/unix=mtqpdretry unix - n n - - pipe flags=R user=$TEST_USER argv=$RETRY_SCRIPT \${recipient}"
[ "$(postconf -P "$GATE_MTA_LISTENER/inet/smtpd_upstream_proxy_protocol")" = \
  "$GATE_MTA_LISTENER/inet/smtpd_upstream_proxy_protocol = haproxy" ] ||
  fail "master.cf: $GATE_MTA_LISTENER has no smtpd_upstream_proxy_protocol = haproxy"
GATE_MTA_SOCKET="$(postconf -h queue_directory)/public/$GATE_MTA_SOCKET_SERVICE"

for tool in smtp-source smtp-sink; do
  command -v "$tool" >/dev/null 2>&1 || fail "$tool is missing (Debian ships it in postfix)"
done

if ! id "$TEST_USER" >/dev/null 2>&1; then
  echo "postfix-setup: creating local user $TEST_USER"
  useradd -m "$TEST_USER" || fail "useradd $TEST_USER"
fi

postfix check || fail "postfix check reported problems"

if [ -n "$CLOCK" ]; then
  # Postfix hands its processes only the variables import_environment names.
  environment=$(postconf -dh import_environment)
  # CLOCK_ENV (setup_args; NO_FAKE_STAT in it): Postfix dates a deferred queue file by its
  # mtime (the next retry, set from the moved clock); libfaketime would move it again when qmgr
  # reads it, and the retry would never come due.
  [ ${#CLOCK_ENV[@]} -eq 0 ] || environment="$environment ${CLOCK_ENV[*]}"
  postconf -e "import_environment = $environment"
  if postfix status >/dev/null 2>&1; then
    echo "postfix-setup: stopping postfix to move its clock to $CLOCK"
    postfix stop >/dev/null 2>&1 || true
    for _ in $(seq 1 50); do
      postfix status >/dev/null 2>&1 || break
      sleep 0.2
    done
  fi
  # A fresh log: lines of another clock would give mtqpd's year inference a wrong start.
  [ -f "$LOG" ] && mv "$LOG" "$LOG.before-clock-change"
fi

if postfix status >/dev/null 2>&1; then
  echo "postfix-setup: reloading the running postfix"
  postfix reload || fail "postfix reload"
else
  echo "postfix-setup: starting postfix"
  postfix start || fail "postfix start"
fi

# Wait (bounded) for smtpd on each listener and for the log file. A reload opens new listeners
# asynchronously, so this is needed after a reload too. The PROXY listener is looked up in
# /proc/net/tcp (127.0.0.1:PORT in state 0A, LISTEN) rather than connected to: a connection that
# sends no PROXY header makes smtpd log a warning into the log the tests read.
listening() {
  local port hex
  for port in 25 "${DIRECT_LISTENER##*:}"; do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || return 1
  done
  hex=$(printf '0100007F:%04X' "${GATE_MTA_LISTENER##*:}")
  awk -v a="$hex" '$2 == a && $4 == "0A" { found = 1 } END { exit !found }' /proc/net/tcp &&
    [ -S "$GATE_MTA_SOCKET" ]
}
for _ in $(seq 1 50); do
  if listening && [ -f "$LOG" ]; then
    echo "postfix-setup: postfix $(postconf -h mail_version) listening on 127.0.0.1:25," \
      "$GATE_MTA_LISTENER and unix:$GATE_MTA_SOCKET (PROXY protocol) and $DIRECT_LISTENER," \
      "logging to $LOG"
    exit 0
  fi
  sleep 0.2
done
postfix status || true
tail -n 20 "$LOG" 2>/dev/null || true
fail "postfix started but 127.0.0.1:25, $GATE_MTA_LISTENER, $GATE_MTA_SOCKET, $DIRECT_LISTENER or $LOG did not appear within 10 s"

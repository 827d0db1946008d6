#!/usr/bin/env bash
# Installs and starts a real Postfix for tests/real_postfix.rs. Idempotent: a second
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
#     it is ends in a `NOQUEUE: reject:` line that logs the sender verbatim.
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

fail() {
  echo "postfix-setup: FAILED: $*" >&2
  exit 1
}

[ "$(id -u)" = 0 ] || fail "must run as root (apt-get, postconf, postfix start)"

CLOCK=""
case "${1:-}" in
  "") ;;
  --faketime) CLOCK=${2:-} && [ -n "$CLOCK" ] || fail "--faketime needs an offset or 'real'" ;;
  *) fail "usage: postfix-setup.sh [--faketime OFFSET|real]" ;;
esac

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
printf '%s smtp:[127.0.0.1]:9\n' "$DEFERRED_DOMAIN" >"$TRANSPORT"
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

if ! id "$TEST_USER" >/dev/null 2>&1; then
  echo "postfix-setup: creating local user $TEST_USER"
  useradd -m "$TEST_USER" || fail "useradd $TEST_USER"
fi

postfix check || fail "postfix check reported problems"

if [ -n "$CLOCK" ]; then
  # Postfix hands its processes only the variables import_environment names.
  environment=$(postconf -dh import_environment)
  if [ "$CLOCK" != real ]; then
    preload=$(ls /usr/lib/*/faketime/libfaketime.so.1 2>/dev/null | head -n 1)
    [ -n "$preload" ] || fail "libfaketime is not installed"
    environment="$environment LD_PRELOAD=$preload FAKETIME=$CLOCK FAKETIME_DONT_FAKE_MONOTONIC=1"
  fi
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

# Wait (bounded) for smtpd on 127.0.0.1:25 and for the log file.
for _ in $(seq 1 50); do
  if (exec 3<>/dev/tcp/127.0.0.1/25) 2>/dev/null && [ -f "$LOG" ]; then
    echo "postfix-setup: postfix $(postconf -h mail_version) listening on 127.0.0.1:25, logging to $LOG"
    exit 0
  fi
  sleep 0.2
done
postfix status || true
tail -n 20 "$LOG" 2>/dev/null || true
fail "postfix started but 127.0.0.1:25 or $LOG did not appear within 10 s"

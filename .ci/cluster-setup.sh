#!/usr/bin/env bash
# Starts a two-host mail cluster on this one machine for tests/real_cluster.rs: two more
# instances of Debian's Postfix (the package .ci/postfix-setup.sh installs), hub1 relaying to
# hub2 on loopback, both logging through a real rsyslogd that forwards every line over TCP to two
# mtqpd replicas. Beside the Postfix of .ci/postfix-setup.sh and the Exim and sendmail of the other
# setups, none of which it touches. Idempotent: a second run rewrites the configuration, reloads
# the running hubs and restarts this rsyslogd (never anything else). Works without systemd (each
# instance is started with `postfix -c DIR start`). Runs as root.
#
# The instances are two configuration directories of their own (/etc/postfix-hub1,
# /etc/postfix-hub2), each with its own queue, data directory, master.cf, syslog_name and log;
# not postmulti's: postmulti would put a multi_instance_wrapper into the default instance's
# main.cf, after which .ci/postfix-setup.sh's `postfix start|stop|reload` would act on the hubs
# too. Their syslog_names are postmulti's (postfix-hub1, postfix-hub2).
#
# What the test relies on:
#   - hub1 (myhostname hub1.mtqpd-ci.example, syslog_name postfix-hub1) listens on HUB1_GATE
#     below for `mtqpd gate` only: smtpd_upstream_proxy_protocol = haproxy, so it logs the
#     client the gate's PROXY v2 header names. It relays the domain cluster.example to hub2 at
#     smtp:[127.0.0.1]:HUB2's port (`relay=127.0.0.1[127.0.0.1]:10036 … status=sent (250 2.0.0
#     Ok: queued as QID)`), delivers mtqpdtest@hub1.mtqpd-ci.example itself (local(8), the local
#     user .ci/postfix-setup.sh creates; created here when missing) and defers deferred.example
#     itself (routed to 127.0.0.1:9, where nothing listens: 4.4.1, connection refused);
#   - hub2 (myhostname hub2.mtqpd-ci.example, syslog_name postfix-hub2) listens on HUB2 below,
#     without PROXY, and hosts cluster.example as virtual mailboxes (virtual(8), maildirs under
#     MAILBOXES owned by mtqpdtest): ok@ and sender@ are delivered (`relay=virtual … status=sent
#     (delivered to maildir)`); bounce@ is not a mailbox, smtpd takes it all the same
#     (smtpd_reject_unlisted_recipient = no) and it fails after acceptance (`dsn=5.1.1,
#     status=bounced (User unknown in virtual mailbox table)`), its bounce going to the sender,
#     sender@cluster.example, on hub2 itself; later@ is a mailbox routed to 127.0.0.1:9, so it
#     stays deferred (4.4.1);
#   - each instance writes its own log (maillog_file, through its postlogd): HUB1_LOG, HUB2_LOG.
#     postlogd writes the host name as the first label of myhostname: `hub1`, `hub2` (so the
#     two hosts' lines differ on one machine, as on two);
#   - a second rsyslogd (Debian's package; config, pid file, work directory and queues of its
#     own under ROOT; it opens no /dev/log, which stays the one of .ci/sendmail-setup.sh) reads
#     both logs with imfile and hands each line, as written, to its own TCP input on
#     COLLECTOR — as each host's rsyslog would forward its lines to a central collector — which
#     parses it as any received syslog message (RFC 3164: host hub1/hub2, tag
#     postfix-hub1/smtpd[PID]:) and forwards every line to REPLICA_A and REPLICA_B (the two
#     mtqpd replicas) with omfwd over TCP, the traditional forward template
#     (`<22>Mmm dd HH:MM:SS hub1 postfix-hub1/smtp[PID]: …`, LF-framed) and a disk-assisted
#     queue per target: lines logged while no replica listens wait (in memory, on disk across
#     restarts) and are delivered when one starts; a broken connection is retried every
#     second, forever.
#
# Ports: 10035 (hub1, PROXY), 10036 (hub2), 10513 (the collector's input), 10514 and 10515 (the
# replicas; the tests' mtqpd serve --syslog-listen). Outside its own directories it changes: the
# local user mtqpdtest if missing, and the packages postfix and rsyslog if missing.
#
# With `--faketime OFFSET` (a libfaketime FAKETIME value such as +400d) the hubs and this
# rsyslogd are restarted so that they see the clock moved by OFFSET, with fresh logs, empty
# forwarding queues (lines of another clock would give mtqpd's year inference a wrong start) and
# empty mail queues (mail of another clock would expire and bounce);
# `--faketime real` restarts them on the real clock (.ci/shifted-clock runs the tests so).
# Exits non-zero with a message when anything cannot be installed or started.
set -euo pipefail

ROOT=/opt/mtqpd-cluster
RUN=$ROOT/run
WORK=$ROOT/rsyslog
RSYSLOG_CONF=$ROOT/rsyslog.conf
RSYSLOG_PID=$RUN/rsyslogd.pid
HUB1_GATE=127.0.0.1:10035
HUB2=127.0.0.1:10036
COLLECTOR=127.0.0.1:10513
REPLICA_A=127.0.0.1:10514
REPLICA_B=127.0.0.1:10515
HUB1_LOG=/var/log/mtqpd-hub1.log
HUB2_LOG=/var/log/mtqpd-hub2.log
DOMAIN=cluster.example
MAILBOXES=/var/mail/mtqpd-hub2
TEST_USER=mtqpdtest
DEAD_HOP="smtp:[127.0.0.1]:9"

SETUP=cluster-setup
ROOT_FOR="apt-get, postfix start, rsyslogd"
# shellcheck source=.ci/mta-setup-args.sh
source "$(dirname "$0")/mta-setup-args.sh"
setup_args "$@"

# Postfix hands its processes only the variables import_environment names (CLOCK_ENV, from
# setup_args); rsyslogd gets them directly.

export DEBIAN_FRONTEND=noninteractive

# --- 1. packages -------------------------------------------------------------------------------
missing=()
command -v postfix >/dev/null 2>&1 || missing+=(postfix)
command -v rsyslogd >/dev/null 2>&1 || missing+=(rsyslog)
if [ ${#missing[@]} -gt 0 ]; then
  echo "cluster-setup: installing ${missing[*]}"
  echo "postfix postfix/main_mailer_type select Local only" | debconf-set-selections
  install_packages "${missing[@]}"
fi
if ! id "$TEST_USER" >/dev/null 2>&1; then
  echo "cluster-setup: creating local user $TEST_USER"
  useradd -m "$TEST_USER" || fail "useradd $TEST_USER"
fi

# Whether process PID runs (an exited daemon is a zombie until init reaps it: not running).
running() {
  local state
  state=$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null) || return 1
  [ -n "$state" ] && [ "$state" != Z ]
}
# The pid in a pid file when that process runs.
alive() {
  local pid
  pid=$(head -n 1 "$1" 2>/dev/null | tr -d ' ') || return 1
  [ -n "$pid" ] && running "$pid" && echo "$pid"
}
# Whether something listens on 127.0.0.1:PORT, from /proc/net/tcp (state 0A): connecting would
# make an smtpd log a connection (and the PROXY one a warning) into the logs the tests read.
listens() {
  awk -v a="$(printf '0100007F:%04X' "$1")" '$2 == a && $4 == "0A" { f = 1 } END { exit !f }' \
    /proc/net/tcp
}

# --- 2. the two Postfix instances --------------------------------------------------------------
# A master.cf of the services these instances use, Debian's entries without chroot (a chrooted
# daemon would need copies of /etc files in its queue directory, which only Debian's init script
# makes) and without the smtp/inet service on port 25, which the default instance owns. LISTENER
# is the one smtpd, with its -o options.
write_master_cf() {
  local dir=$1 listener=$2
  cat >"$dir/master.cf" <<EOF
# .ci/cluster-setup.sh (rewritten at each run). Debian's master.cf services, chroot n.
# service type  private unpriv  chroot  wakeup  maxproc command + args
$listener
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
EOF
}

# main.cf settings both instances share. NAME is hub1 or hub2.
common_main_cf() {
  local name=$1 log=$2
  cat <<EOF
# .ci/cluster-setup.sh (rewritten at each run): instance $name of the test cluster.
compatibility_level = 3.6
config_directory = /etc/postfix-$name
queue_directory = /var/spool/postfix-$name
data_directory = /var/lib/postfix-$name
# postfix-files and dynamicmaps.cf are the package's.
meta_directory = /etc/postfix
multi_instance_name = postfix-$name
syslog_name = postfix-$name
maillog_file = $log
myhostname = $name.mtqpd-ci.example
mydestination = $name.mtqpd-ci.example, localhost
inet_interfaces = loopback-only
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relayhost =
alias_maps = texthash:/etc/postfix-$name/aliases
alias_database =
smtpd_relay_restrictions = permit_mynetworks defer_unauth_destination
smtpd_reject_unlisted_recipient = no
smtp_connect_timeout = 5s
biff = no
EOF
}

configure_hub() {
  local name=$1 dir=/etc/postfix-$1
  mkdir -p "$dir" "/var/spool/postfix-$name" "/var/lib/postfix-$name"
  chmod 0755 "$dir"
  # master's lock and the instance's caches: Postfix writes them as mail_owner.
  chown postfix: "/var/lib/postfix-$name"
  # texthash: "key value", as postmap reads it (not aliases(5)' "key: value").
  printf 'postmaster root\nMAILER-DAEMON postmaster\n' >"$dir/aliases"
}

configure_hub hub1
{
  common_main_cf hub1 "$HUB1_LOG"
  cat <<EOF
# cluster.example is hub2's: relayed there. deferred.example stays here, deferred.
relay_domains = $DOMAIN
transport_maps = texthash:/etc/postfix-hub1/transport
EOF
} >/etc/postfix-hub1/main.cf
printf '%s smtp:[%s]:%s\ndeferred.example %s\n' "$DOMAIN" "${HUB2%:*}" "${HUB2##*:}" "$DEAD_HOP" \
  >/etc/postfix-hub1/transport
write_master_cf /etc/postfix-hub1 \
  "$HUB1_GATE inet n - n - - smtpd -o smtpd_upstream_proxy_protocol=haproxy"

configure_hub hub2
mkdir -p "$MAILBOXES"
chown "$TEST_USER:" "$MAILBOXES"
chmod 0750 "$MAILBOXES"
{
  common_main_cf hub2 "$HUB2_LOG"
  cat <<EOF
# cluster.example: virtual mailboxes of the local user $TEST_USER; bounce@ is none.
virtual_mailbox_domains = $DOMAIN
virtual_mailbox_maps = texthash:/etc/postfix-hub2/mailboxes
virtual_mailbox_base = $MAILBOXES
virtual_uid_maps = static:$(id -u "$TEST_USER")
virtual_gid_maps = static:$(id -g "$TEST_USER")
transport_maps = texthash:/etc/postfix-hub2/transport
EOF
} >/etc/postfix-hub2/main.cf
# A trailing slash: a maildir.
printf 'ok@%s %s/ok/\nsender@%s %s/sender/\nlater@%s %s/later/\n' \
  "$DOMAIN" "$DOMAIN" "$DOMAIN" "$DOMAIN" "$DOMAIN" "$DOMAIN" >/etc/postfix-hub2/mailboxes
printf 'later@%s %s\n' "$DOMAIN" "$DEAD_HOP" >/etc/postfix-hub2/transport
write_master_cf /etc/postfix-hub2 "$HUB2 inet n - n - - smtpd"

for hub in hub1 hub2; do
  environment=$(postconf -dh import_environment)
  [ ${#CLOCK_ENV[@]} -eq 0 ] || environment="$environment ${CLOCK_ENV[*]}"
  postconf -c "/etc/postfix-$hub" -e "import_environment = $environment"
  # Creates the queue directories with their owners and modes, and checks the rest: once (it
  # takes seconds; `postfix start` checks again, more lightly).
  if [ ! -d "/var/spool/postfix-$hub/maildrop" ]; then
    postfix -c "/etc/postfix-$hub" check || fail "postfix -c /etc/postfix-$hub check"
  fi
done
[ "$(postconf -c /etc/postfix-hub1 -P "$HUB1_GATE/inet/smtpd_upstream_proxy_protocol")" = \
  "$HUB1_GATE/inet/smtpd_upstream_proxy_protocol = haproxy" ] ||
  fail "hub1's master.cf: $HUB1_GATE has no smtpd_upstream_proxy_protocol = haproxy"

# --- 3. rsyslogd: the hubs' logs to the collector, the collector to the replicas --------------
mkdir -p "$RUN" "$WORK"
chmod 0700 "$WORK"
# The traditional forward template is rsyslog's built-in RSYSLOG_TraditionalForwardFormat:
# "<%PRI%>%TIMESTAMP% %HOSTNAME% %syslogtag:1:32%%msg:::sp-if-no-1st-sp%%msg%" (the whole tag,
# up to 32 characters: postfix-hub1/smtpd[1234567]: is 28).
forward() {
  local target=$1
  cat <<EOF
  action(type="omfwd" name="replica-${target##*:}" target="${target%:*}" port="${target##*:}"
         protocol="tcp" template="RSYSLOG_TraditionalForwardFormat"
         queue.type="LinkedList" queue.filename="replica-${target##*:}"
         queue.saveOnShutdown="on" queue.maxDiskSpace="256m"
         action.resumeRetryCount="-1" action.resumeInterval="1" action.resumeIntervalMax="1")
EOF
}
cat >"$RSYSLOG_CONF.new" <<EOF
# .ci/cluster-setup.sh (rewritten at each run): the cluster's syslog. Not the rsyslogd of
# /dev/log (.ci/sendmail-setup.sh): this one loads no imuxsock.
global(workDirectory="$WORK" maxMessageSize="64k")
module(load="imfile" mode="inotify")
module(load="imtcp")

# Each host's log as its postlogd wrote it ("Mmm dd HH:MM:SS hub1 postfix-hub1/smtpd[PID]: …"),
# line by line, to the collector's input: as each host's own rsyslog would send it (imfile does
# not parse a line's host, so the collector does, as it parses any received message).
template(name="asWritten" type="string" string="<%PRI%>%msg%\\n")
ruleset(name="hosts") {
  action(type="omfwd" name="to-collector" target="${COLLECTOR%:*}" port="${COLLECTOR##*:}"
         protocol="tcp" template="asWritten"
         queue.type="LinkedList" queue.filename="to-collector" queue.saveOnShutdown="on"
         action.resumeRetryCount="-1" action.resumeInterval="1" action.resumeIntervalMax="1")
}
input(type="imfile" file="$HUB1_LOG" tag="hub1" facility="mail" severity="info" ruleset="hosts")
input(type="imfile" file="$HUB2_LOG" tag="hub2" facility="mail" severity="info" ruleset="hosts")

# rsyslogd's own messages (a target that refuses connections, say), for whoever debugs this.
syslog.* action(type="omfile" file="$ROOT/rsyslogd.log")

# The collector: every mail line to both replicas.
ruleset(name="collector") {
  if \$syslogfacility-text == "mail" then {
$(forward "$REPLICA_A")
$(forward "$REPLICA_B")
  }
}
input(type="imtcp" address="${COLLECTOR%:*}" port="${COLLECTOR##*:}" ruleset="collector")
EOF
rsyslogd -N1 -f "$RSYSLOG_CONF.new" >/dev/null 2>&1 || {
  rsyslogd -N1 -f "$RSYSLOG_CONF.new" || true
  fail "rsyslogd rejects $RSYSLOG_CONF.new"
}

# --- 4. (re)start ------------------------------------------------------------------------------
# Stops the process of a pid file (ours) and waits for it to go.
stop() {
  local pid
  pid=$(alive "$1") || return 0
  kill "$pid"
  for _ in $(seq 1 100); do
    running "$pid" || break
    sleep 0.05
  done
  running "$pid" && fail "process $pid of $1 did not stop"
  rm -f "$1"
}

if [ -n "$CLOCK" ]; then
  for hub in hub1 hub2; do
    if postfix -c "/etc/postfix-$hub" status >/dev/null 2>&1; then
      echo "cluster-setup: stopping $hub to move its clock to $CLOCK"
      postfix -c "/etc/postfix-$hub" stop >/dev/null 2>&1 || true
      for _ in $(seq 1 50); do
        postfix -c "/etc/postfix-$hub" status >/dev/null 2>&1 || break
        sleep 0.2
      done
    fi
    # Nor mail of the old clock: a message a test left deferred would expire under the new one
    # and bounce into the fresh log. These instances hold only the tests' mail.
    postsuper -c "/etc/postfix-$hub" -d ALL >/dev/null 2>&1 || true
  done
fi
# rsyslogd is restarted only when its configuration or clock changes: stopping it takes seconds
# (it writes its queues to disk), and a second run of this script should be fast.
if [ -n "$CLOCK" ] || ! alive "$RSYSLOG_PID" >/dev/null || ! cmp -s "$RSYSLOG_CONF.new" "$RSYSLOG_CONF"; then
  stop "$RSYSLOG_PID"
fi
mv "$RSYSLOG_CONF.new" "$RSYSLOG_CONF"
if [ -n "$CLOCK" ]; then
  # Fresh logs and no line of the old clock waiting to be forwarded. imfile's positions in the
  # old logs go with them.
  for log in "$HUB1_LOG" "$HUB2_LOG"; do
    [ -f "$log" ] && mv "$log" "$log.before-clock-change"
  done
  find "$WORK" -mindepth 1 -delete
fi
# The logs exist before rsyslogd watches them (postlogd appends to them).
for log in "$HUB1_LOG" "$HUB2_LOG"; do
  [ -f "$log" ] || install -m 0644 /dev/null "$log"
done
if ! alive "$RSYSLOG_PID" >/dev/null; then
  echo "cluster-setup: starting rsyslogd ($RSYSLOG_CONF)"
  # What it says before it detaches (no replica listening yet: "cannot connect") is expected.
  env "${CLOCK_ENV[@]}" rsyslogd -f "$RSYSLOG_CONF" -i "$RSYSLOG_PID" 2>>"$ROOT/rsyslogd.log" ||
    fail "rsyslogd (see $ROOT/rsyslogd.log)"
fi

# hub2 first: hub1 relays to it.
for hub in hub2 hub1; do
  if postfix -c "/etc/postfix-$hub" status >/dev/null 2>&1; then
    echo "cluster-setup: reloading $hub"
    postfix -c "/etc/postfix-$hub" reload >/dev/null 2>&1 || fail "postfix -c /etc/postfix-$hub reload"
  else
    echo "cluster-setup: starting $hub"
    postfix -c "/etc/postfix-$hub" start >/dev/null 2>&1 || fail "postfix -c /etc/postfix-$hub start"
  fi
done

# Bounded wait for the listeners (a reload opens them asynchronously) and rsyslogd's input.
for _ in $(seq 1 100); do
  if listens "${HUB1_GATE##*:}" && listens "${HUB2##*:}" && listens "${COLLECTOR##*:}" &&
    alive "$RSYSLOG_PID" >/dev/null; then
    echo "cluster-setup: hub1 on $HUB1_GATE (PROXY), hub2 on $HUB2, logging to $HUB1_LOG and" \
      "$HUB2_LOG; rsyslogd forwarding both to $REPLICA_A and $REPLICA_B${CLOCK:+ (clock: $CLOCK)}"
    exit 0
  fi
  sleep 0.1
done
tail -n 20 "$HUB1_LOG" "$HUB2_LOG" 2>/dev/null || true
fail "hub1 on $HUB1_GATE, hub2 on $HUB2 or rsyslogd's input on $COLLECTOR did not appear within 10 s"

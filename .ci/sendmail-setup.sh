#!/usr/bin/env bash
# Installs and starts a real sendmail for tests/real_sendmail.rs, beside the Postfix of
# .ci/postfix-setup.sh. Debian's sendmail packages conflict with postfix (and with exim4), so
# they are not installed: `apt-get download` fetches sendmail-bin, sendmail-base and sendmail-cf
# and `dpkg -x` unpacks them into a private root, ROOT below, with its own configuration, queue,
# aliases and pid file. sendmail.cf is built with m4 from Debian's sendmail-cf macros and a .mc
# of Debian's default shape (cf/debian/sendmail.mc: OSTYPE(debian), DOMAIN(debian-mta), the same
# FEATUREs and privacy flags). What differs from it, and why, is said at each line of the .mc.
# Idempotent: a second run rewrites the configuration and restarts this sendmail, this rsyslogd
# and the two smtp-sinks (never anything else). Works without systemd. Runs as root.
#
# What the test relies on:
#   - sendmail (8.17, Debian's build) listens on 127.0.0.1:10225 only, as the MTA (-Am), its
#     $j (confDOMAIN_NAME) mtqpd-sm.example, and resolves nothing through DNS (its own
#     service.switch says `hosts files`; every next hop is an [address]);
#   - it logs through syslog(3) to /dev/log, under the tag sm-mta as Debian's init script starts
#     it; a real rsyslogd (Debian's package; the only one: it owns /dev/log) writes the mail
#     facility in rsyslog's traditional file format to LOG below. Postfix is not affected: it
#     logs through its own postlogd (maillog_file);
#   - mtqpdtest@mtqpd-sm.example is a local user (.ci/postfix-setup.sh creates it), delivered by
#     the local mailer (mail.local, which Debian's sensible-mda would run: no procmail here);
#   - team@mtqpd-sm.example is an alias with two targets: the local user and a program that
#     takes the message and exits 0;
#   - ghost@mtqpd-sm.example is an alias to a local user that does not exist (mtqpdgone): sendmail
#     takes the recipient at RCPT (the alias exists) and fails it in delivery, "User unknown",
#     and bounces it to the sender;
#   - deferrer@mtqpd-sm.example is an alias to a program, DEFERRER below, that exits 75
#     (EX_TEMPFAIL: sendmail logs `stat=Deferred`) until the file RELEASE_DIR/<Message-ID> exists
#     (the Message-ID without its angle brackets), and then takes the message and exits 0; a
#     queue run (`sendmail -Am -C CF -qI<queue id>`) delivers it then;
#   - mail to any address at sink.example goes to an smtp-sink (Postfix's) on 127.0.2.25:25 that
#     accepts everything: relayed (mailer=esmtp);
#   - mail to any address at unknown.example goes to an smtp-sink on 127.0.2.55:25 that answers
#     every RCPT with 5xx: sendmail takes the recipient, fails it in delivery and bounces it to
#     the sender (a local user, so the bounce is delivered);
#   - mail to any address at dead.example goes to 127.0.2.9:25, where nothing listens: deferred
#     (Connection refused), and left in the queue;
#   - mail to any address at later.example goes to 127.0.2.77:25, where nothing listens until the
#     test starts an smtp-sink there: deferred, then relayed by a queue run;
#   - sendmail rejects an unknown local user at RCPT (550 5.1.1 User unknown): no queued message
#     has such a recipient, so the failures the test tracks are ghost@ and unknown.example.
#
# Outside ROOT it changes: /etc/hosts (a dotted alias on this host name's line, see below), the
# system user smmta (Debian's TrustedUser) and the local user mtqpdtest if missing, /dev/log
# (our rsyslogd's), LOG, and the packages m4, rsyslog, libwrap0 and liblockfile1.
#
# With `--faketime OFFSET` (a libfaketime FAKETIME value such as +400d) sendmail and rsyslogd are
# restarted, with a fresh log, so that both see the clock moved by OFFSET (rsyslogd stamps the
# lines; .ci/shifted-clock runs the tests so); `--faketime real` restarts them on the real clock.
# Exits non-zero with a message when sendmail or rsyslogd cannot be installed or started.
set -euo pipefail

ROOT=/opt/mtqpd-sendmail
PKG=$ROOT/pkg
ETC=$ROOT/etc
QUEUE=$ROOT/spool/mqueue
RUN=$ROOT/run
LIB=$ROOT/lib
CF=$ETC/sendmail.cf
PIDFILE=$RUN/sendmail.pid
DEFERRER=$ROOT/bin/deferrer
ARCHIVER=$ROOT/bin/archiver
RELEASE_DIR=$ROOT/release
LOG=/var/log/mtqpd-sendmail.log
RSYSLOG_CONF=$ROOT/rsyslog.conf
RSYSLOG_PID=$RUN/rsyslogd.pid
SINK_PID=$RUN/smtp-sink.pid
REJECT_SINK_PID=$RUN/smtp-sink-reject.pid
LISTENER=127.0.0.1:10225
DOMAIN_NAME=mtqpd-sm.example
TEST_USER=mtqpdtest
# No such user: the target of the ghost alias.
GONE_USER=mtqpdgone
SINK=127.0.2.25
REJECT_SINK=127.0.2.55
DEAD=127.0.2.9
LATER=127.0.2.77
PACKAGES=(sendmail-bin sendmail-base sendmail-cf)

SETUP=sendmail-setup
ROOT_FOR="apt-get, /dev/log, the queue"
# shellcheck source=.ci/mta-setup-args.sh
source "$(dirname "$0")/mta-setup-args.sh"
setup_args "$@"

# Every process started here runs with CLOCK_ENV (setup_args): the moved clock, or none.

export DEBIAN_FRONTEND=noninteractive

# --- 1. packages -------------------------------------------------------------------------------
# m4 builds the .cf; rsyslog owns /dev/log; sendmail needs libwrap0, mail.local liblockfile1
# (ldd). None of them conflicts with postfix.
missing=()
for p in m4 rsyslog libwrap0 liblockfile1; do
  dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "sendmail-setup: installing ${missing[*]}"
  install_packages "${missing[@]}"
fi

# Unpacked once; `rm -rf $PKG` to unpack the current candidates again.
if [ ! -x "$PKG/usr/libexec/sendmail/sendmail" ] || [ ! -f "$PKG/.versions" ]; then
  echo "sendmail-setup: downloading ${PACKAGES[*]} (apt-get download; not installed)"
  download=$(mktemp -d)
  trap 'rm -rf "$download"' EXIT
  if ! (cd "$download" && apt-get download "${PACKAGES[@]}" >/dev/null 2>&1); then
    apt-get update -qq >/dev/null || fail "apt-get update"
    (cd "$download" && apt-get download "${PACKAGES[@]}" >/dev/null 2>&1) ||
      fail "apt-get download ${PACKAGES[*]}"
  fi
  rm -rf "$PKG"
  mkdir -p "$PKG"
  for deb in "$download"/*.deb; do
    dpkg -x "$deb" "$PKG" || fail "dpkg -x $deb"
    dpkg-deb -W --showformat '${Package} ${Version}\n' "$deb" >>"$PKG/.versions"
  done
  rm -rf "$download"
  trap - EXIT
fi
SENDMAIL=$PKG/usr/libexec/sendmail/sendmail
MAKEMAP=$PKG/usr/libexec/sendmail/makemap
MAIL_LOCAL=$PKG/usr/libexec/sendmail/mail.local
# mail.local changes to the recipient's uid before it locks the mailbox with a dot-lock in
# /var/mail (root:mail 2775): it can only with the group mail, which Debian's package gives it
# through sensible-mda; here it is set-group-id mail itself.
chgrp mail "$MAIL_LOCAL"
chmod 2755 "$MAIL_LOCAL"
# The binary is set-group-id mail, in which mode the dynamic loader ignores LD_PRELOAD
# (libfaketime). Everything here runs it as root, so the bit only gets in the way.
chmod g-s "$SENDMAIL"
if ldd "$SENDMAIL" "$MAIL_LOCAL" | grep -q 'not found'; then
  ldd "$SENDMAIL" "$MAIL_LOCAL" | grep 'not found' >&2
  fail "a library sendmail needs is missing"
fi
for tool in smtp-sink rsyslogd m4; do
  command -v "$tool" >/dev/null 2>&1 || fail "$tool is missing"
done
# Debian's sendmail.cf names smmta its TrustedUser; sendmail-base's postinst creates it.
if ! id smmta >/dev/null 2>&1; then
  useradd --system --user-group --home-dir /var/lib/sendmail --no-create-home \
    --shell /usr/sbin/nologin --comment "Mail Transfer Agent" smmta || fail "useradd smmta"
fi
if ! id "$TEST_USER" >/dev/null 2>&1; then
  echo "sendmail-setup: creating local user $TEST_USER"
  useradd -m "$TEST_USER" || fail "useradd $TEST_USER"
fi

# sendmail qualifies this host's name when it starts, before it reads its configuration (so
# confDOMAIN_NAME cannot help): when the name resolves to an entry with no dotted name or alias,
# it logs "My unqualified host name (…) unknown; sleeping for retry" and sleeps 60 s, in every
# process (the daemon and each queue run). Give the name's /etc/hosts line a dotted alias; its
# canonical name stays as it was, for every other program.
host=$(hostname)
if [[ $host != *.* ]]; then
  names=$(getent hosts "$host" | awk '{ $1 = ""; print }')
  if [ -n "$names" ] && [[ $names != *.* ]]; then
    echo "sendmail-setup: /etc/hosts: adding the alias $host.$DOMAIN_NAME to $host's line"
    # A name that DNS gave gets a line of its own, its canonical name still first.
    awk -v h="$host" -v fq="$host.$DOMAIN_NAME" '
      !done && $1 !~ /^#/ { for (i = 2; i <= NF; i++) if ($i == h) { $0 = $0 " " fq; done = 1; break } }
      { print }
      END { if (!done) print "127.0.0.1 " h " " fq }' /etc/hosts >/etc/hosts.mtqpd-new
    cat /etc/hosts.mtqpd-new >/etc/hosts
    rm -f /etc/hosts.mtqpd-new
  fi
fi

# --- 2. configuration --------------------------------------------------------------------------
echo "sendmail-setup: configuring $(paste -sd' ' "$PKG/.versions")"
mkdir -p "$ETC" "$QUEUE" "$RUN" "$LIB/host_status" "$ROOT/bin" "$RELEASE_DIR" "$ROOT/rsyslog"
# sendmail refuses a queue or configuration that others may write.
chmod 0755 "$ROOT" "$ETC" "$RUN" "$ROOT/bin" "$ROOT/spool"
chmod 0700 "$QUEUE"
# The program mailer runs as DefaultUser (mail, Debian's confDEF_USER_ID): it reads this.
chmod 0755 "$RELEASE_DIR"

# The program the `deferrer` alias runs: EX_TEMPFAIL until the test releases the message.
cat >"$DEFERRER" <<EOF
#!/bin/sh
# The deferrer alias of .ci/sendmail-setup.sh: exits 75 (EX_TEMPFAIL) until
# $RELEASE_DIR/<the message's Message-ID, without <>> exists.
msgid=\$(sed -n '/^\$/q; s/^[Mm]essage-[Ii][Dd]: *<\\(.*\\)>.*/\\1/p')
cat >/dev/null
case "\$msgid" in
  ""|*/*) exit 75 ;;
esac
[ -e "$RELEASE_DIR/\$msgid" ] || exit 75
exit 0
EOF
printf '#!/bin/sh\n# A program target of the team alias of .ci/sendmail-setup.sh: takes the message.\ncat >/dev/null\n' >"$ARCHIVER"
chmod 0755 "$DEFERRER" "$ARCHIVER"

cat >"$ETC/aliases" <<EOF
# .ci/sendmail-setup.sh
postmaster: root
MAILER-DAEMON: postmaster
deferrer: "|$DEFERRER"
team: $TEST_USER, "|$ARCHIVER"
ghost: $GONE_USER
EOF
printf 'localhost\n%s\n' "$DOMAIN_NAME" >"$ETC/local-host-names"
: >"$ETC/trusted-users"
: >"$ETC/relay-domains"
# No DNS: names come from files, aliases from the aliases file.
printf 'hosts\tfiles\naliases\tfiles\n' >"$ETC/service.switch"
# Debian's access database gives the local host RELAY and no greeting pause.
cat >"$ETC/access" <<EOF
Connect:127.0.0.1	RELAY
Connect:localhost	RELAY
GreetPause:127.0.0.1	0
GreetPause:localhost	0
EOF
cat >"$ETC/mailertable" <<EOF
sink.example	esmtp:[$SINK]
unknown.example	esmtp:[$REJECT_SINK]
dead.example	esmtp:[$DEAD]
later.example	esmtp:[$LATER]
EOF

# Debian's sendmail.mc (sendmail-cf: cf/debian/sendmail.mc), with the private root's paths.
cat >"$ETC/sendmail.mc" <<EOF
divert(-1)dnl
# .ci/sendmail-setup.sh: Debian's default sendmail.mc (8.17, cf/debian/sendmail.mc), for a
# private root ($ROOT). Lines marked "mtqpd:" differ from Debian's.
divert(0)dnl
define(\`_USE_ETC_MAIL_')dnl
include(\`$PKG/usr/share/sendmail/cf/m4/cf.m4')dnl
dnl mtqpd: Debian's OSTYPE and DOMAIN include this by its installed path unless it was
include(\`$PKG/usr/share/sendmail/cf/debian/autoconf.m4')dnl
VERSIONID(\`mtqpd CI: Debian sendmail.mc in $ROOT')
OSTYPE(\`debian')dnl
DOMAIN(\`debian-mta')dnl
dnl mtqpd: the private root's files instead of /etc/mail, /var/lib/sendmail, /var/run/sendmail
define(\`confCF_VERSION', \`Debian-mtqpd')dnl
define(\`STATUS_FILE', \`$LIB/sendmail.st')dnl
define(\`confHOST_STATUS_DIRECTORY', \`$LIB/host_status')dnl
define(\`confDEAD_LETTER_DROP', \`$LIB/dead.letter')dnl
define(\`confPID_FILE', \`$PIDFILE')dnl
define(\`confCONTROL_SOCKET_NAME', \`$RUN/smcontrol')dnl
define(\`confCR_FILE', \`-o $ETC/relay-domains %[^\\#]')dnl
define(\`confCT_FILE', \`$ETC/trusted-users %[^\\#]')dnl
define(\`confCW_FILE', \`$ETC/local-host-names %[^\\#]')dnl
define(\`confEBINDIR', \`$PKG/usr/libexec/sendmail')dnl
define(\`QUEUE_DIR', \`$QUEUE')dnl
define(\`ALIAS_FILE', \`$ETC/aliases')dnl
define(\`confSERVICE_SWITCH_FILE', \`$ETC/service.switch')dnl
define(\`confHELP_FILE', \`$PKG/etc/mail/helpfile')dnl
dnl mtqpd: a fixed host name: sendmail never waits to qualify this host's name
define(\`confDOMAIN_NAME', \`$DOMAIN_NAME')dnl
dnl mtqpd: mail.local, which Debian's sensible-mda runs when there is no procmail
define(\`LOCAL_MAILER_PATH', \`$MAIL_LOCAL')dnl
define(\`LOCAL_MAILER_ARGS', \`mail.local -f \$g \$u')dnl
FEATURE(\`no_default_msa')dnl
dnl mtqpd: one listener, on its own port (Debian: MTA-v4 on 127.0.0.1:smtp, MSP-v4 on :submission)
DAEMON_OPTIONS(\`Family=inet,  Name=MTA-v4, Port=${LISTENER##*:}, Addr=${LISTENER%:*}')dnl
define(\`confPRIVACY_FLAGS',dnl
\`needmailhelo,needexpnhelo,needvrfyhelo,restrictqrun,restrictexpand,nobodyreturn,authwarnings')dnl
define(\`confCONNECTION_RATE_THROTTLE', \`15')dnl
define(\`confCONNECTION_RATE_WINDOW_SIZE',\`10m')dnl
FEATURE(\`use_cw_file')dnl
FEATURE(\`access_db', \`hash -o -T<TMPF> $ETC/access', \`skip')dnl
FEATURE(\`greet_pause', \`1000')dnl 1 seconds
FEATURE(\`delay_checks', \`friend', \`n')dnl
define(\`confBAD_RCPT_THROTTLE',\`3')dnl
FEATURE(\`conncontrol', \`nodelay', \`terminate')dnl
FEATURE(\`ratecontrol', \`nodelay', \`terminate')dnl
dnl mtqpd: routes to the loopback next hops (Debian includes dialup.m4 and provider.m4 here)
FEATURE(\`mailertable', \`hash -o $ETC/mailertable')dnl
MAILER_DEFINITIONS
MAILER(\`local')dnl
MAILER(\`smtp')dnl
EOF
m4 "$ETC/sendmail.mc" >"$CF.new" || fail "m4 $ETC/sendmail.mc"
mv "$CF.new" "$CF"
for map in access mailertable; do
  "$MAKEMAP" -C "$CF" hash "$ETC/$map" <"$ETC/$map" || fail "makemap $map"
done
"$SENDMAIL" -Am -C "$CF" -bi >/dev/null || fail "newaliases (sendmail -bi)"

# --- 3. rsyslogd on /dev/log -------------------------------------------------------------------
cat >"$RSYSLOG_CONF" <<EOF
# .ci/sendmail-setup.sh: the mail facility to $LOG, in rsyslog's traditional file format
# (Mmm dd HH:MM:SS host tag[pid]: text), as Debian's rsyslog.conf writes /var/log/mail.log.
global(workDirectory="$ROOT/rsyslog")
# The time of a line is rsyslogd's clock when the line arrives (not the kernel's socket time,
# which libfaketime cannot move); no rate limit, so that no line of a test run is dropped.
module(load="imuxsock" SysSock.Name="/dev/log" SysSock.UseSysTimeStamp="off"
       SysSock.IgnoreTimestamp="on" SysSock.RateLimit.Interval="0")
module(load="builtin:omfile" Template="RSYSLOG_TraditionalFileFormat")
mail.* action(type="omfile" file="$LOG")
EOF
rsyslogd -N1 -f "$RSYSLOG_CONF" >/dev/null 2>&1 || {
  rsyslogd -N1 -f "$RSYSLOG_CONF" || true
  fail "rsyslogd rejects $RSYSLOG_CONF"
}

# Whether process PID runs. An exited daemon is a zombie until init reaps it, which may take
# seconds in a container: that is not running.
running() {
  local state
  state=$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null) || return 1
  [ -n "$state" ] && [ "$state" != Z ]
}
# The pid in a pid file when that process runs.
alive() {
  local pid
  pid=$(head -n 1 "$1" 2>/dev/null) || return 1
  [ -n "$pid" ] && running "$pid" && echo "$pid"
}
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

stop "$PIDFILE"
stop "$RSYSLOG_PID"
# /dev/log must be free for our rsyslogd: a socket some other process holds is not ours to take.
if [ -S /dev/log ]; then
  owner=$(ss -xapn 2>/dev/null | awk '$5 == "/dev/log" { print $NF }')
  [ -z "$owner" ] || fail "/dev/log is held by $owner (another syslog daemon): stop it first"
  rm -f /dev/log
fi
if [ -n "$CLOCK" ] && [ -f "$LOG" ]; then
  # A fresh log: lines of another clock would give mtqpd's year inference a wrong start.
  mv "$LOG" "$LOG.before-clock-change"
fi
env "${CLOCK_ENV[@]}" rsyslogd -f "$RSYSLOG_CONF" -i "$RSYSLOG_PID" || fail "rsyslogd"
for _ in $(seq 1 50); do
  [ -S /dev/log ] && alive "$RSYSLOG_PID" >/dev/null && break
  sleep 0.1
done
[ -S /dev/log ] || fail "rsyslogd did not create /dev/log"

# --- 4. the next hops: two smtp-sinks ---------------------------------------------------------
start_sink() {
  local pidfile=$1
  shift
  stop "$pidfile"
  setsid smtp-sink "$@" </dev/null >/dev/null 2>&1 &
  echo $! >"$pidfile"
}
start_sink "$SINK_PID" -u nobody -h sink.example "$SINK:25" 100
start_sink "$REJECT_SINK_PID" -u nobody -h unknown.example -f rcpt "$REJECT_SINK:25" 100

# --- 5. sendmail -------------------------------------------------------------------------------
# No host status of an earlier run (another clock, other sinks): a next hop is judged afresh.
find "$LIB/host_status" -mindepth 1 -delete
# As Debian's init script starts the MTA: -Am -L sm-mta -bd, with a queue run every 10 minutes.
env "${CLOCK_ENV[@]}" "$SENDMAIL" -Am -C "$CF" -L sm-mta -bd -q10m || fail "sendmail -bd"

# Whether an SMTP server greets with 220 at HOST PORT.
smtp_answers() (
  exec 3<>"/dev/tcp/$1/$2" || exit 1
  read -r -t 5 greeting <&3 || exit 1
  printf 'QUIT\r\n' >&3
  [[ $greeting == 220* ]]
)
for _ in $(seq 1 100); do
  if alive "$PIDFILE" >/dev/null && smtp_answers 127.0.0.1 "${LISTENER##*:}" 2>/dev/null &&
    smtp_answers "$SINK" 25 2>/dev/null && smtp_answers "$REJECT_SINK" 25 2>/dev/null &&
    [ -f "$LOG" ]; then
    echo "sendmail-setup: sendmail listening on $LISTENER, logging through rsyslogd" \
      "to $LOG${CLOCK:+ (clock: $CLOCK)}; sinks on $SINK:25 and $REJECT_SINK:25"
    exit 0
  fi
  sleep 0.1
done
tail -n 20 "$LOG" 2>/dev/null || true
fail "sendmail on $LISTENER, the sinks or $LOG did not appear within 10 s"

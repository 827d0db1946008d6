#!/usr/bin/env bash
# Records postfix-debian-ci.export: the lines of ../real-logs/postfix-debian-ci.log written into
# a real systemd-journald the way Postfix writes them (syslog(3): a datagram to /dev/log, which
# on a journal host is journald's /run/systemd/journal/dev-log, facility mail, with the real
# program tag and pid), plus entries that journald makes of other input, then everything logged
# meanwhile as `journalctl --output=export` prints it (all fields).
#
# Needs a running journald (.ci/journal-setup.sh) and root. Run from anywhere:
#   bash tests/data/journal/record.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
log=$here/../real-logs/postfix-debian-ci.log
out=$here/postfix-debian-ci.export
sock=/run/systemd/journal/dev-log

start=$(journalctl --lines=1 --output=export --no-pager | sed -n 's/^__CURSOR=//p')

# "Dec 03 06:30:11 mtqpd-ci postfix/smtpd[16815]: text": the tag, the pid and the text, at the
# severity Postfix gives it (msg_warn and msg_error prefix their text with it).
while IFS= read -r line; do
  rest=${line#* * * * }
  tag=${rest%%\[*}
  pid=${rest#*\[}
  pid=${pid%%\]*}
  text=${rest#*\]: }
  case $text in
    warning:*) prio=mail.warning ;;
    error:* | fatal:*) prio=mail.err ;;
    panic:*) prio=mail.crit ;;
    *) prio=mail.info ;;
  esac
  logger --socket="$sock" --socket-errors=on -p "$prio" -t "$tag" --id="$pid" -- "$text"
done <"$log"

# A message of two lines (journalctl exports it as a binary field), one with a control
# character (likewise), one from a program's stdout (no SYSLOG_PID, only _PID), and an entry
# without MESSAGE (journald's native protocol).
logger --socket="$sock" -p mail.info -t postfix/pickup --id=4242 -- "$(printf 'first line\nsecond line')"
logger --socket="$sock" -p mail.info -t postfix/pickup --id=4242 -- "$(printf 'bell \a in it')"
echo "starting the Postfix mail system" | systemd-cat -t postfix/postfix-script -p info
printf 'SYSLOG_IDENTIFIER=postfix/master\nCODE_FUNC=no_message\n' | logger --journald

# journald writes asynchronously: wait until the last entry is readable.
for _ in $(seq 50); do
  journalctl --after-cursor="$start" --no-pager --output=export CODE_FUNC=no_message | grep -q . && break
  sleep 0.1
done
journalctl --after-cursor="$start" --no-pager --output=export >"$out"
echo "$(grep -c '^__CURSOR=' "$out") entries in $out"

#!/usr/bin/env bash
# A stand-in for journalctl in tests/journal.rs: prints a recorded `journalctl --output=export`
# file as `journalctl --follow --output=export` would, honouring --after-cursor (an unknown
# cursor fails as journalctl fails on an unparsable one).
#
#   fake-journalctl.sh MODE EXPORT ARGS_FILE JOURNALCTL_ARGS...
#
# MODE: follow (print, then wait for more that never comes), exit (print, then exit as a
# journalctl that died would), slow (one entry every 50 ms, then wait). Each run appends its
# journalctl arguments, one line, to ARGS_FILE. It waits by exec'ing sleep, so that killing the
# process it was started as ends its output.
set -euo pipefail
mode=$1 export=$2 args_file=$3
shift 3
printf '%s\n' "$*" >>"$args_file"

after=
for a in "$@"; do
  case $a in --after-cursor=*) after=${a#--after-cursor=} ;; esac
done

# Where each entry starts (its __CURSOR line) and its cursor.
starts=() cursors=()
while IFS=: read -r offset field; do
  starts+=("$offset")
  cursors+=("${field#__CURSOR=}")
done < <(grep -a -b -o '^__CURSOR=.*' "$export")
starts+=("$(stat -c %s "$export")")
entries=$((${#starts[@]} - 1))

first=0
if [ -n "$after" ]; then
  first=-1
  for ((i = 0; i < entries; i++)); do
    if [ "${cursors[i]}" = "$after" ]; then
      first=$((i + 1))
      break
    fi
  done
  if [ "$first" -lt 0 ]; then
    echo "Failed to seek to cursor: Invalid argument" >&2
    exit 1
  fi
fi

# Octets FROM to TO (exclusive) of the export file (head then tail: nothing in the pipe is
# cut off, which would end the script with SIGPIPE).
print() {
  [ "$2" -gt "$1" ] && head -c "$2" "$export" | tail -c $(($2 - $1))
  return 0
}

case $mode in
  slow)
    for ((i = first; i < entries; i++)); do
      print "${starts[i]}" "${starts[i + 1]}"
      sleep 0.05
    done
    ;;
  *) print "${starts[first]}" "${starts[entries]}" ;;
esac
[ "$mode" = exit ] && exit 0
exec sleep 600

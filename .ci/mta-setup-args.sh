# Sourced by .ci/postfix-setup.sh, .ci/exim-setup.sh, .ci/sendmail-setup.sh and
# .ci/cluster-setup.sh: what every real MTA's setup starts with. Before sourcing, set SETUP (the
# script's name) and ROOT_FOR (why it must run as root); then call `setup_args "$@"`. Defines
# fail(), sets CLOCK from `--faketime OFFSET|real` (empty without it) and CLOCK_ENV, the
# environment that moves a daemon's clock there (empty for the real clock); install_packages
# installs what a setup is missing.

fail() {
  echo "$SETUP: FAILED: $*" >&2
  exit 1
}

setup_args() {
  [ "$(id -u)" = 0 ] || fail "must run as root ($ROOT_FOR)"
  CLOCK=""
  case "${1:-}" in
    "") ;;
    --faketime) CLOCK=${2:-} && [ -n "$CLOCK" ] || fail "--faketime needs an offset or 'real'" ;;
    *) fail "usage: $SETUP.sh [--faketime OFFSET|real]" ;;
  esac
  clock_env
}

# CLOCK_ENV: libfaketime preloaded with FAKETIME=$CLOCK. A cache that never expires: daemons
# that empty their environment (sendmail) or are handed only the variables they import
# (Postfix) would fall back to the real clock when libfaketime reads FAKETIME again (every 10 s
# by default). NO_FAKE_STAT: file times read back as written (MTAs age queue files and host
# status by them; libfaketime would move them a second time).
clock_env() {
  CLOCK_ENV=()
  if [ -n "$CLOCK" ] && [ "$CLOCK" != real ]; then
    local preload
    preload=$(ls /usr/lib/*/faketime/libfaketime.so.1 2>/dev/null | head -n 1)
    [ -n "$preload" ] || fail "libfaketime is not installed"
    CLOCK_ENV=(LD_PRELOAD="$preload" FAKETIME="$CLOCK" FAKETIME_DONT_FAKE_MONOTONIC=1
      FAKETIME_CACHE_DURATION=1000000000 NO_FAKE_STAT=1)
  fi
}

# Installs Debian packages without letting their postinst start Debian's own daemons (rsyslogd on
# /dev/log, Postfix on port 25) where an init system runs: a policy-rc.d that says no (101), for
# this install only, when there is none.
install_packages() {
  apt-get update -qq >/dev/null || fail "apt-get update"
  local policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    policy=/usr/sbin/policy-rc.d
    printf '#!/bin/sh\n# .ci/%s.sh, for one apt-get install\nexit 101\n' "$SETUP" >"$policy"
    chmod 0755 "$policy"
  fi
  apt-get install -y -qq "$@" >/dev/null || {
    [ -z "$policy" ] || rm -f "$policy"
    fail "apt-get install $*"
  }
  [ -z "$policy" ] || rm -f "$policy"
}

# Sourced by .ci/postfix-setup.sh, .ci/exim-setup.sh and .ci/sendmail-setup.sh: what every real
# MTA's setup starts with. Before sourcing, set SETUP (the script's name) and ROOT_FOR (why it
# must run as root); then call `setup_args "$@"`. Defines fail() and sets CLOCK from
# `--faketime OFFSET|real` (empty without it).

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
}

#!/usr/bin/env bash
# Builds the Debian package target/debian/mtqpd_VERSION-1_ARCH.deb: the release binary, then
# the manual page and shell completions it generates (`mtqpd generate`) into target/dist/, then
# `cargo deb --no-build --strip`, which packages them with the units and the configuration in dist/
# ([package.metadata.deb] in Cargo.toml). Needs cargo-deb:
#   cargo install cargo-deb --version 3.8.0 --locked
# Arguments are passed to cargo deb (e.g. --output DIR).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! cargo deb --version >/dev/null 2>&1; then
  echo "build-deb.sh: cargo-deb is missing: cargo install cargo-deb --version 3.8.0 --locked" >&2
  exit 1
fi

cargo build --release --locked --bin mtqpd
# cargo-deb packages target/release/ from wherever CARGO_TARGET_DIR puts it; the generated
# files stay in this checkout's target/dist/, where the assets name them.
bin="${CARGO_TARGET_DIR:-target}/release/mtqpd"
mkdir -p target/dist
"$bin" generate man >target/dist/mtqpd.1
"$bin" generate complete-bash >target/dist/mtqpd.bash
"$bin" generate complete-zsh >target/dist/_mtqpd
"$bin" generate complete-fish >target/dist/mtqpd.fish

# --strip: the release profile keeps line tables for profiling (debug = 1), which would make the
# packaged binary 28 MB instead of about 5.
cargo deb --no-build --strip "$@"

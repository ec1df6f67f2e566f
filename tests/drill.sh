#!/usr/bin/env bash
# The README's main command: installs what is missing, builds k10, and runs the drill
# (tests/support/drill/main.rs; `tests/drill.sh --help` lists its options). Without --bucket it
# starts the local object-locked store and runs against it and the Kubernetes API stand-in;
# with --bucket it runs against a real cluster and bucket (see README.md). K10_DRILL_MIB sets the
# application's data size (default 64).
set -euo pipefail
cd "$(dirname "$0")/.."
real=0
for arg in "$@"; do
  case "$arg" in --bucket|--bucket=*|-h|--help) real=1 ;; esac
done
tests/setup.sh
started=0
if [ $real = 0 ] && ! { [ -f target/s3env/pid ] && kill -0 "$(cat target/s3env/pid)" 2>/dev/null; }; then
  tests/s3env.sh start
  started=1
fi
[ $started = 0 ] || trap 'tests/s3env.sh stop' EXIT
# Where cargo builds (CARGO_TARGET_DIR, a config file, or ./target): cargo says.
target_dir=$(cargo metadata --locked --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
echo "k10: building kubectl-k10 and the drill (debug) into $target_dir; the first build takes a few minutes" >&2
cargo build --locked --quiet --bin kubectl-k10 --example drill
"$target_dir/debug/examples/drill" "$@"

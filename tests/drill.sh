#!/usr/bin/env bash
# The README's main command: installs what is missing, starts the local object-locked store,
# builds k10, and runs the drill (tests/support/drill/main.rs) against the store and the
# Kubernetes API stand-in. K10_DRILL_MIB sets the application's data size (default 64).
set -euo pipefail
cd "$(dirname "$0")/.."
tests/setup.sh
if [ -f target/s3env/pid ] && kill -0 "$(cat target/s3env/pid)" 2>/dev/null; then
  started=0
else
  tests/s3env.sh start
  started=1
fi
[ $started = 0 ] || trap 'tests/s3env.sh stop' EXIT
cargo build --locked --quiet --bin kubectl-k10 --example drill
target/debug/examples/drill

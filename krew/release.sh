#!/usr/bin/env bash
# Builds the linux/amd64 release archive of kubectl-k10 and updates the krew manifest to match.
#
#   krew/release.sh
#
# 1. `cargo build --release --locked --bin kubectl-k10`, for x86_64-unknown-linux-musl (a static binary)
#    when that Rust target is installed (`rustup target add x86_64-unknown-linux-musl`), otherwise for the
#    host's glibc target (said on stderr: that binary needs glibc on the machine it runs on);
# 2. packs kubectl-k10, LICENSE and README.md into target/release-archives/kubectl-k10-linux-amd64.tar.gz
#    (reproducibly: sorted names, root-owned, fixed times);
# 3. writes its sha256 into the linux/amd64 platform of krew/k10.yaml, and sets spec.version and the
#    release URLs to Cargo.toml's version.
#
# Then try it locally:
#   kubectl krew install --manifest=krew/k10.yaml --archive=target/release-archives/kubectl-k10-linux-amd64.tar.gz
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
manifest="krew/k10.yaml"
out="target/release-archives"
archive="$out/kubectl-k10-linux-amd64.tar.gz"
musl="x86_64-unknown-linux-musl"

die() { echo "release.sh: $*" >&2; exit 1; }

[[ "$(uname -s)" == Linux ]] || die "builds the linux/amd64 archive, so it runs on Linux (this is $(uname -s))"
for tool in cargo tar gzip sha256sum awk; do
  command -v "$tool" >/dev/null || die "needs $tool"
done

# The crate's version, from the [package] table of Cargo.toml.
version="$(awk '
  /^\[/ { in_package = ($0 == "[package]") }
  in_package && $1 == "version" { gsub(/[" ]/, "", $3); print $3; exit }
' Cargo.toml)"
[[ "$version" =~ ^[0-9]+\.[0-9]+\.[0-9]+([-+][0-9A-Za-z.+-]+)?$ ]] || die "no semantic version in Cargo.toml (found ${version:-nothing})"

if command -v rustup >/dev/null && rustup target list --installed 2>/dev/null | grep -qx "$musl"; then
  echo "release.sh: building a static kubectl-k10 v$version ($musl)" >&2
  cargo build --release --locked --bin kubectl-k10 --target "$musl"
  binary="target/$musl/release/kubectl-k10"
else
  [[ "$(uname -m)" == x86_64 ]] || die "without the $musl target this host ($(uname -m)) cannot build a linux/amd64 binary"
  echo "release.sh: the $musl target is not installed (rustup target add $musl): building for the host's glibc instead;" >&2
  echo "release.sh: the binary is dynamically linked and needs a glibc at least as new as this machine's" >&2
  cargo build --release --locked --bin kubectl-k10
  binary="target/release/kubectl-k10"
fi
[[ -x "$binary" ]] || die "the build left no $binary"

# Stage the archive's contents at its top level, where the manifest's `files` expect them.
stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
cp "$binary" "$stage/kubectl-k10"
if command -v strip >/dev/null; then
  strip "$stage/kubectl-k10"
fi
cp LICENSE README.md "$stage/"

mkdir -p "$out"
# Reproducible: the same build gives the same archive (and sha256).
epoch="${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}"
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$epoch" \
  -C "$stage" -cf - kubectl-k10 LICENSE README.md | gzip -n -9 >"$archive.tmp"
mv "$archive.tmp" "$archive"
sha="$(sha256sum "$archive" | awk '{print $1}')"

# Update the manifest in place: spec.version, every release URL's version, and the sha256 that follows
# the linux/amd64 archive's uri (the only platform it lists: the release workflow adds the others).
awk -v version="v$version" -v sha="$sha" '
  /^  version: / { sub(/version: .*/, "version: " version) }
  /^ *uri: / {
    gsub(/\/releases\/v[^\/]+\//, "/releases/" version "/")
    linux_amd64 = ($0 ~ /kubectl-k10-linux-amd64\.tar\.gz$/)
  }
  /^ *sha256: / {
    if (linux_amd64) { sub(/sha256: .*/, "sha256: " sha); updated = 1 }
    linux_amd64 = 0
  }
  { print }
  END { if (!updated) exit 3 }
' "$manifest" >"$manifest.tmp" || { rm -f "$manifest.tmp"; die "$manifest has no linux/amd64 uri followed by a sha256"; }
mv "$manifest.tmp" "$manifest"

echo "$archive"
echo "  sha256 $sha (written to $manifest, version v$version)"
echo "install it locally:"
echo "  kubectl krew install --manifest=$manifest --archive=$archive"

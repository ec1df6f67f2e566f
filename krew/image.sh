#!/usr/bin/env bash
# Builds the container image k10/kubectl-k10:<version> from the Dockerfile with buildah (no daemon,
# no registry, no base image) and writes it as an OCI archive: <target dir>/image/kubectl-k10.oci.tar.
#
#   krew/image.sh
#
# 1. a static kubectl-k10 for the host's target (`cargo build --release` with
#    `-C target-feature=+crt-static`; refused if the result still asks for a program interpreter);
# 2. the build context <target dir>/image/context/rootfs/: that binary, the machine's CA certificates,
#    /etc/passwd and /etc/group entries for the unprivileged user 65532, a world-writable /tmp;
# 3. `buildah bud` of the Dockerfile (vfs storage: works in a container and without a daemon), then
#    `buildah push` into the OCI archive. tests/image.rs inspects it (entrypoint, user, contents, size).
#
# Load it where it runs: `podman load -i …/kubectl-k10.oci.tar`, `ctr images import`, or
# `skopeo copy oci-archive:…/kubectl-k10.oci.tar docker://<registry>/kubectl-k10:<version>`.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
die() { echo "image.sh: $*" >&2; exit 1; }
for tool in cargo rustc buildah readelf python3; do
  command -v "$tool" >/dev/null || die "needs $tool (tests/setup.sh installs buildah and readelf)"
done

version="$(awk '
  /^\[/ { in_package = ($0 == "[package]") }
  in_package && $1 == "version" { gsub(/[" ]/, "", $3); print $3; exit }
' Cargo.toml)"
# Where cargo builds (CARGO_TARGET_DIR, a config file, or ./target): cargo says.
target_dir="$(cargo metadata --locked --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
[ -n "$target_dir" ] || die "cargo did not say where it builds"
triple="$(rustc -vV | awk '/^host:/ { print $2 }')"
tag="k10/kubectl-k10:$version"
out="$target_dir/image"
archive="$out/kubectl-k10.oci.tar"

echo "image.sh: building a static kubectl-k10 v$version for $triple (release; the first build takes several minutes)" >&2
# An explicit --target keeps build scripts and proc macros dynamic: only the binary is static.
RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static" CARGO_PROFILE_RELEASE_STRIP=symbols \
  cargo build --release --locked --bin kubectl-k10 --target "$triple"
bin="$target_dir/$triple/release/kubectl-k10"
if readelf -l "$bin" | grep -q 'program interpreter'; then
  die "$bin is not statically linked"
fi
"$bin" --version >/dev/null

context="$out/context"
rm -rf "$context"
mkdir -p "$context/rootfs/usr/local/bin" "$context/rootfs/etc/ssl/certs" "$context/rootfs/tmp"
chmod 1777 "$context/rootfs/tmp"
install -m 0755 "$bin" "$context/rootfs/usr/local/bin/kubectl-k10"
certs=/etc/ssl/certs/ca-certificates.crt
[ -s "$certs" ] || die "no CA certificates at $certs (Debian's ca-certificates)"
install -m 0644 "$certs" "$context/rootfs/etc/ssl/certs/ca-certificates.crt"
echo 'nonroot:x:65532:65532:nonroot:/tmp:/sbin/nologin' >"$context/rootfs/etc/passwd"
echo 'nonroot:x:65532:' >"$context/rootfs/etc/group"
chmod 0644 "$context/rootfs/etc/passwd" "$context/rootfs/etc/group"

echo "image.sh: buildah bud -t $tag (Dockerfile)" >&2
storage=(--storage-driver vfs)
buildah "${storage[@]}" bud --quiet --isolation chroot --layers=false -f Dockerfile -t "$tag" "$context" >/dev/null
rm -f "$archive"
buildah "${storage[@]}" push --quiet "$tag" "oci-archive:$archive:$tag"
buildah "${storage[@]}" rmi "$tag" >/dev/null 2>&1 || true
echo "image.sh: $tag written to $archive ($(du -h "$archive" | cut -f1))" >&2

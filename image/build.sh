#!/usr/bin/env bash
# `make image`: builds skein-broker and skeinctl statically on this machine and
# packages them FROM scratch with podman (no image is pulled).
#
#   image/build.sh IMAGE_NAME
#
# Podman on Debian needs runc as its runtime here (crun refuses this kernel's
# hybrid cgroups) and no default ulimits; the config below says so when absent.
set -euo pipefail
cd "$(dirname "$0")/.."
name=${1:-localhost/skein:dev}
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"

if ! command -v podman >/dev/null 2>&1 || ! command -v runc >/dev/null 2>&1 || ! command -v iptables >/dev/null 2>&1 \
  || [ ! -x /usr/lib/podman/aardvark-dns ]; then
  echo "image: installing podman"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    podman runc netavark aardvark-dns iptables uidmap slirp4netns fuse-overlayfs >/dev/null
fi
if [ ! -f /etc/containers/containers.conf ]; then
  echo "image: writing /etc/containers/containers.conf (runc, no default ulimits)"
  $SUDO mkdir -p /etc/containers
  printf '[containers]\ndefault_ulimits = []\n\n[engine]\nruntime = "runc"\n' | $SUDO tee /etc/containers/containers.conf >/dev/null
fi

target_dir=${CARGO_TARGET_DIR:-$PWD/target}
triple=$(rustc -vV | sed -n 's/^host: //p')
# --target keeps RUSTFLAGS off build scripts and proc macros, which cannot be
# static. The flags and packages are `make build`'s (tests included: one
# feature resolution for all), so after it this build has nothing to do; a
# narrower package set would resolve features differently and recompile the
# workspace. Symbols are stripped from the copies in the image (image/rootfs.sh).
RUSTFLAGS="${RELEASE_RUSTFLAGS:--C target-feature=+crt-static}" \
  cargo build --release --locked --target "$triple" \
  -p skein-model -p skein-client -p skeinctl -p skein-broker -p skein-operator --bins --tests
context="$target_dir/image-context"
image/rootfs.sh "$context/rootfs" "$target_dir/$triple/release"
cp image/Containerfile "$context/Containerfile"
podman build --quiet --tag "$name" --file "$context/Containerfile" "$context" >/dev/null
echo "image: $name ($(podman image inspect --format '{{.Size}}' "$name" | awk '{printf "%.1f MB", $1/1e6}'))"

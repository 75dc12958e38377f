#!/usr/bin/env bash
# Lays out the container image's root filesystem in OUT from the static
# binaries in BIN_DIR. Used by `make image` on the host and by the Dockerfile's
# build stage, so both paths produce the same files.
#
#   image/rootfs.sh OUT BIN_DIR
set -euo pipefail
out=$1 bin=$2
rm -rf "$out"
mkdir -p "$out/usr/local/bin" "$out/etc" "$out/tmp" "$out/var/lib/skein/data"
for b in skein-broker skeinctl skein-operator; do
  install -m 0755 "$bin/$b" "$out/usr/local/bin/$b"
  # The release build keeps line tables for backtraces; the image does without.
  if command -v strip >/dev/null 2>&1; then strip "$out/usr/local/bin/$b"; fi
done
# No shell or libc files in the image: the binaries are static. These two files
# give uid 1000 a name for tools that look it up.
printf 'root:x:0:0:root:/:/nonexistent\nskein:x:1000:1000:Skein:/var/lib/skein:/nonexistent\n' >"$out/etc/passwd"
printf 'root:x:0:\nskein:x:1000:\n' >"$out/etc/group"
chmod 1777 "$out/tmp"

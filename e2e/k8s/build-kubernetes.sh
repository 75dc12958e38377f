#!/usr/bin/env bash
# Installs etcd and builds kube-apiserver and kube-controller-manager for the
# operator's API-server test tier, caching the binaries outside the clone.
#
#   e2e/k8s/build-kubernetes.sh        # prints the directory holding the binaries
#
# No registry ships these binaries. Debian bookworm's `kubernetes` source package
# is the full upstream v1.20.2 tree with vendor/; it builds with Go 1.15 from
# Debian bullseye (bookworm's Go 1.19 crashes this tree through its vendored
# modern-go/reflect2). A private apt configuration fetches both without touching
# the machine's own sources.
set -euo pipefail
cache=${SKEIN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/skein}/kubernetes
bin=$cache/bin
want="kube-apiserver kube-controller-manager"
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"

if ! command -v etcd >/dev/null 2>&1; then
  echo "kubernetes: installing etcd-server" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends etcd-server >/dev/null
fi
if ! command -v dpkg-source >/dev/null 2>&1; then
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends dpkg-dev >/dev/null
fi

# Bump when the build changes, so cached binaries are rebuilt.
stamp="v1.20.2 build 2"
done_all=1
for b in $want; do [ -x "$bin/$b" ] || done_all=0; done
if [ $done_all = 1 ] && [ "$(cat "$bin/.stamp" 2>/dev/null)" = "$stamp" ]; then echo "$bin"; exit 0; fi

mkdir -p "$cache/apt/lists/partial" "$cache/apt/archives/partial" "$cache/dl"
cat > "$cache/apt/sources.list" <<LIST
deb http://deb.debian.org/debian bullseye main
deb-src http://deb.debian.org/debian bookworm main
deb-src http://deb.debian.org/debian-security bookworm-security main
LIST
apt_opts=(-o "Dir::Etc::SourceList=$cache/apt/sources.list" -o "Dir::Etc::SourceParts=/dev/null"
  -o "Dir::State::Lists=$cache/apt/lists" -o "Dir::Cache::Archives=$cache/apt/archives"
  -o "Dir::State::Status=/var/lib/dpkg/status" -o "APT::Sandbox::User=root")

if [ ! -x "$cache/go/usr/lib/go-1.15/bin/go" ]; then
  echo "kubernetes: fetching Go 1.15 from bullseye" >&2
  apt-get "${apt_opts[@]}" update -qq >&2
  (cd "$cache/dl" && apt-get "${apt_opts[@]}" download golang-1.15-go golang-1.15-src >&2)
  rm -rf "$cache/go"; mkdir -p "$cache/go"
  for deb in "$cache"/dl/golang-1.15-*.deb; do dpkg-deb -x "$deb" "$cache/go"; done
fi
export GOROOT=$cache/go/usr/lib/go-1.15
export PATH=$GOROOT/bin:$PATH
export GOCACHE=$cache/gocache GOPATH=$cache/gopath GOFLAGS=-mod=vendor CGO_ENABLED=0

src=$cache/src
if [ ! -f "$src/.unpacked" ]; then
  echo "kubernetes: fetching the kubernetes source package (bookworm)" >&2
  apt-get "${apt_opts[@]}" update -qq >&2
  rm -rf "$cache/srcdl" "$src"; mkdir -p "$cache/srcdl"
  (cd "$cache/srcdl" && apt-get "${apt_opts[@]}" source --download-only kubernetes >&2)
  dsc=$(ls "$cache"/srcdl/kubernetes_*.dsc | head -1)
  dpkg-source --no-check -x "$dsc" "$src" >&2
  touch "$src/.unpacked"
fi

cd "$src"
if [ ! -f pkg/generated/openapi/zz_generated.openapi.go ]; then
  echo "kubernetes: generating pkg/generated/openapi" >&2
  go build -o "$cache/openapi-gen" ./vendor/k8s.io/kube-openapi/cmd/openapi-gen
  # Every package with an openapi-gen tag, as build/root/Makefile.generated_files
  # lists them for pkg/generated/openapi.
  pkgs=$(find -L pkg vendor/k8s.io -type f -name '*.go' -not -path '*/testdata/*' -print0 \
    | xargs -0 grep -l '+k8s:openapi-gen=' \
    | grep -v -e '^vendor/k8s.io/code-generator/' -e '^vendor/k8s.io/sample-apiserver/' \
    | xargs -n1 dirname | sed -e 's|^vendor/||' -e 's|^pkg/|k8s.io/kubernetes/pkg/|' | LC_ALL=C sort -u | paste -sd, -)
  mkdir -p pkg/generated/openapi
  "$cache/openapi-gen" --input-dirs "$pkgs" -O zz_generated.openapi \
    --output-base "$cache/gen" --output-package k8s.io/kubernetes/pkg/generated/openapi \
    --go-header-file hack/boilerplate/boilerplate.generatego.txt \
    --report-filename "$cache/violations.report" >&2
  # A report that differs from upstream's list means types went missing.
  diff <(LC_ALL=C sort "$cache/violations.report") <(LC_ALL=C sort api/api-rules/violation_exceptions.list) >&2
  cp "$cache/gen/k8s.io/kubernetes/pkg/generated/openapi/zz_generated.openapi.go" pkg/generated/openapi/
fi
mkdir -p "$bin"
# The version the binaries report (/version; helm checks a chart's kubeVersion against it).
pkg=k8s.io/component-base/version
ldflags="-s -w -X $pkg.gitVersion=v1.20.2 -X $pkg.gitMajor=1 -X $pkg.gitMinor=20 -X $pkg.gitTreeState=clean"
ldflags="$ldflags -X k8s.io/client-go/pkg/version.gitVersion=v1.20.2"
for b in $want; do
  echo "kubernetes: building $b" >&2
  go build -tags providerless -ldflags "$ldflags" -o "$bin/$b.tmp" "./cmd/$b"
  mv "$bin/$b.tmp" "$bin/$b"
done
echo "$stamp" > "$bin/.stamp"
echo "$bin"

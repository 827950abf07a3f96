#!/usr/bin/env bash
# Builds kube-apiserver, kube-controller-manager, kubectl and etcd from the
# public Go modules pinned in go.mod, once, into a cache outside the repo
# keyed by the pinned versions. Prints the cache's bin directory.
# A warm cache builds nothing.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
k8s_version=$(cat "$here/K8S_VERSION")
etcd_version=$(sed -n 's#^[[:space:]]*go.etcd.io/etcd/server/v3 \(v[^ ]*\).*#\1#p' "$here/go.mod" | head -n1)
key="k8s-${k8s_version}-etcd-${etcd_version}-$(sha256sum "$here/go.sum" | cut -c1-12)"
cache="${CLAUDE_MIDDLEWARE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/claude-middleware}/controlplane/$key"
bins=(kube-apiserver kube-controller-manager kubectl etcd)

complete() { for b in "${bins[@]}"; do [ -x "$cache/bin/$b" ] || return 1; done; }
if complete; then echo "$cache/bin"; exit 0; fi

command -v go >/dev/null || { echo "build.sh: Go is needed to build the test control plane" >&2; exit 1; }
mkdir -p "$cache"
# One builder at a time: parallel test runs wait for the first build.
exec 9>"$cache/.lock"
flock 9
if complete; then echo "$cache/bin"; exit 0; fi

echo "build.sh: building the control plane ($key) into $cache; a cold build takes 10-20 minutes" >&2
tmp="$cache/bin.partial"
rm -rf "$tmp"; mkdir -p "$tmp"
cd "$here"
export CGO_ENABLED=0 GOFLAGS=-mod=mod
# Stamp the version as Kubernetes' own build does, so `kubectl version` and
# the API server's /version report the pinned release, not v0.0.0-master.
minor=${k8s_version#v1.}; minor=${minor%%.*}
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=$k8s_version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done
start=$(date +%s)
go build -trimpath -ldflags "$ldflags" -o "$tmp/etcd" ./etcd
for cmd in kube-apiserver kube-controller-manager kubectl; do
  go build -trimpath -ldflags "$ldflags" -o "$tmp/$cmd" "k8s.io/kubernetes/cmd/$cmd"
done
rm -rf "$cache/bin"; mv "$tmp" "$cache/bin"
echo "build.sh: built in $(( $(date +%s) - start ))s" >&2
echo "$cache/bin"

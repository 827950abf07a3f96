#!/usr/bin/env bash
# Builds the node binaries of the test cluster once, into a cache outside the
# repo keyed by the pinned versions, and prints the cache's bin directory:
#   kubelet, kube-proxy, kube-scheduler  from node/ (the control plane's
#                                        Kubernetes release, ../controlplane/K8S_VERSION)
#   cri-clean                            node/cri-clean (down.sh's sandbox teardown)
#   pause                                Kubernetes' own build/pause/linux/pause.c,
#                                        static, for the pod sandbox image
#   coredns                              coredns/ (CoreDNS with the plugins the
#                                        cluster DNS needs, no forward)
# A warm cache builds nothing. The control plane (../controlplane/build.sh)
# keeps its own cache and key.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
k8s_version=$(cat "$here/../controlplane/K8S_VERSION")
sources=$(cat "$here/node/go.mod" "$here/node/go.sum" "$here/node/cri-clean/main.go" \
  "$here/coredns/go.mod" "$here/coredns/go.sum" "$here/coredns/main.go" | sha256sum | cut -c1-12)
key="k8s-${k8s_version}-node-${sources}"
cache="${CLAUDE_MIDDLEWARE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/claude-middleware}/cluster/$key"
bins=(kubelet kube-proxy kube-scheduler cri-clean pause coredns)

complete() { for b in "${bins[@]}"; do [ -x "$cache/bin/$b" ] || return 1; done; }
if complete; then echo "$cache/bin"; exit 0; fi

for tool in go gcc; do
  command -v "$tool" >/dev/null || { echo "build.sh: $tool is needed to build the test cluster's node" >&2; exit 1; }
done
mkdir -p "$cache"
# One builder at a time: parallel runs wait for the first build.
exec 9>"$cache/.lock"
flock 9
if complete; then echo "$cache/bin"; exit 0; fi

echo "build.sh: building the node binaries ($key) into $cache" >&2
tmp="$cache/bin.partial"
rm -rf "$tmp"; mkdir -p "$tmp"
cd "$here/node"
export CGO_ENABLED=0 GOFLAGS=-mod=readonly
# Version stamps as Kubernetes' own build does (the kubelet reports it in the
# node status, and the API server's version skew checks read it).
minor=${k8s_version#v1.}; minor=${minor%%.*}
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=$k8s_version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done
start=$(date +%s)
for cmd in kubelet kube-proxy kube-scheduler; do
  go build -trimpath -ldflags "$ldflags" -o "$tmp/$cmd" "k8s.io/kubernetes/cmd/$cmd"
done
go build -trimpath -ldflags "-s -w" -o "$tmp/cri-clean" ./cri-clean
k8s_src=$(go list -m -f '{{.Dir}}' k8s.io/kubernetes)
pause_version=$(sed -n 's/^[[:space:]]*PauseVersion = "\(.*\)"/\1/p' "$k8s_src/cmd/kubeadm/app/constants/constants.go")
gcc -Os -static -DVERSION="v${pause_version}" -o "$tmp/pause" "$k8s_src/build/pause/linux/pause.c"
strip "$tmp/pause" 2>/dev/null || true
echo "$pause_version" >"$tmp/pause.version"
(cd "$here/coredns" && go build -trimpath -ldflags "-s -w" -o "$tmp/coredns" . &&
  go list -m -f '{{.Version}}' github.com/coredns/coredns >"$tmp/coredns.version")
rm -rf "$cache/bin"; mv "$tmp" "$cache/bin"
echo "build.sh: built in $(( $(date +%s) - start ))s" >&2
echo "$cache/bin"

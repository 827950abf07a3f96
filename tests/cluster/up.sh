#!/usr/bin/env bash
# Starts a one-node Kubernetes cluster for the end-to-end tests: the control
# plane of ../controlplane (on the node's bridge address), containerd and runc
# from Debian, the CNI bridge, kube-scheduler, a real kubelet and kube-proxy,
# with the project's two images imported under the names deploy/ and the
# operator's default PROXY_IMAGE use.
#
#   tests/cluster/up.sh [DIR]    (default ${TMPDIR:-/tmp}/claude-middleware-cluster)
#
# Needs root, containerd, runc, the CNI plugins, nft, ip, conntrack (scripts/
# test.sh installs them) and the debug binaries of `cargo build --workspace
# --bins` (CARGO_TARGET_DIR honoured). Afterwards:
#   DIR/kubeconfig   admin kubeconfig (written last: present means ready)
#   DIR/bin/kubectl  a matching kubectl
#   DIR/env          NODE_IP, POD_CIDR, SERVICE_CIDR, PROXY_IMAGE, OPERATOR_IMAGE, ...
#   DIR/logs/*.log   every daemon's log
# Everything stays on this machine: pods live on a bridge this script creates
# (no masquerade, no default route, no DNS server inherited from the host);
# nothing is forwarded off the bridge. Idempotent; a lock serialises callers;
# one cluster per machine (node ports, the bridge and the kube-proxy rules are
# machine-wide). down.sh [DIR] stops it all and restores what it changed.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
dir=${1:-${TMPDIR:-/tmp}/claude-middleware-cluster}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
ready_timeout=${CLAUDE_MIDDLEWARE_CLUSTER_TIMEOUT:-180}
source "$here/lib.sh"

log() { echo "cluster/up.sh: $*" >&2; }
[ "$(id -u)" -eq 0 ] || { log "needs root (containerd, the kubelet, a bridge)"; exit 2; }
missing=$(cluster_missing_tools)
[ -z "$missing" ] || { log "missing: $missing (Debian: apt-get install $CLUSTER_PACKAGES)"; exit 2; }

exec 9>"$dir/.lock"
flock 9

# One cluster per machine: its bridge, ports and kube-proxy table are global.
exec 8>"$CLUSTER_MACHINE_LOCK"
if ! flock -n 8; then
  log "another cluster is starting or stopping on this machine; waiting"
  flock 8
fi
if [ -s "$CLUSTER_OWNER" ] && [ "$(cat "$CLUSTER_OWNER")" != "$dir" ] && [ -d "$(cat "$CLUSTER_OWNER")/pids" ]; then
  log "a cluster from $(cat "$CLUSTER_OWNER") runs on this machine; stop it with tests/cluster/down.sh $(cat "$CLUSTER_OWNER")"
  exit 1
fi

kubectl_() { "$dir/bin/kubectl" --kubeconfig "$dir/controlplane/kubeconfig" --request-timeout=10s "$@"; }
node_ready() {
  [ "$(kubectl_ get node "$CLUSTER_NODE_NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" = True ]
}
healthy() {
  [ -s "$dir/kubeconfig" ] || return 1
  for p in containerd kubelet kube-proxy kube-scheduler; do ours_alive "$dir" "$p" || return 1; done
  node_ready
}
if healthy; then
  log "already running in $dir"
  exit 0
fi
if [ -d "$dir/pids" ] || [ -d "$dir/state" ]; then
  log "found a stopped or unhealthy cluster in $dir; restarting it"
  CLAUDE_MIDDLEWARE_CLUSTER_LOCKED=1 "$here/down.sh" "$dir" 9>&- 8>&-
fi

cp_bin=$("$root/tests/controlplane/build.sh")
node_bin=$("$here/build.sh")
target_dir=${CARGO_TARGET_DIR:-$root/target}
for b in claude-middleware claude-middleware-operator; do
  [ -x "$target_dir/debug/$b" ] || { log "$target_dir/debug/$b is missing: run cargo build --workspace --bins --locked first"; exit 1; }
done

start=$(date +%s)
mkdir -p "$dir/bin" "$dir/logs" "$dir/pids" "$dir/state" "$dir/images" "$dir/cni/net.d" "$dir/cni/ipam" \
  "$dir/containerd" "$dir/kubelet" "$dir/pod-logs"
echo "$dir" >"$CLUSTER_OWNER"
for b in kubectl; do ln -sfn "$cp_bin/$b" "$dir/bin/$b"; done
for b in kubelet kube-proxy kube-scheduler cri-clean; do ln -sfn "$node_bin/$b" "$dir/bin/$b"; done

fail() {
  log "$*"
  for f in "$dir"/logs/*.log "$dir"/controlplane/logs/*.log; do
    [ -f "$f" ] || continue
    echo "---- last lines of $f" >&2
    tail -n 25 "$f" >&2 || true
  done
  CLAUDE_MIDDLEWARE_CLUSTER_LOCKED=1 "$here/down.sh" "$dir" 9>&- 8>&- >/dev/null 2>&1 || true
  exit 1
}
trap 'fail "interrupted"' INT TERM

# What this run changes on the machine, recorded before it changes it, so that
# down.sh puts back exactly that and removes only what did not exist.
record_machine_state "$dir/state"

# The node's network: a bridge this run creates, holding the node's address
# (the kernel here has no dummy links). The CNI bridge plugin attaches the pods
# to it. Pods get a route to the pod subnet and the Service range only (no
# default route), and a table of our own drops anything they send that would
# be forwarded off the bridge.
ip link add "$CLUSTER_BRIDGE" type bridge || fail "cannot create the bridge $CLUSTER_BRIDGE"
echo created >"$dir/state/bridge"
ip addr add "$CLUSTER_NODE_IP/$CLUSTER_POD_PREFIX" dev "$CLUSTER_BRIDGE"
ip link set "$CLUSTER_BRIDGE" up
nft -f - <<EOF || fail "cannot add the nft table $CLUSTER_NFT_TABLE"
table ip $CLUSTER_NFT_TABLE {
  chain forward {
    type filter hook forward priority 0; policy accept;
    ip saddr $CLUSTER_POD_CIDR oifname != "$CLUSTER_BRIDGE" counter drop comment "pods stay on this machine"
  }
}
EOF
cat >"$dir/cni/net.d/10-claude-middleware.conflist" <<EOF
{
  "cniVersion": "0.4.0",
  "name": "claude-middleware",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$CLUSTER_BRIDGE",
      "isGateway": true,
      "isDefaultGateway": false,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$dir/cni/ipam",
        "ranges": [[{"subnet": "$CLUSTER_POD_CIDR", "rangeStart": "$CLUSTER_POD_RANGE_START", "gateway": "$CLUSTER_NODE_IP"}]],
        "routes": [{"dst": "$CLUSTER_POD_CIDR"}, {"dst": "$CLUSTER_SERVICE_CIDR"}]
      }
    }
  ]
}
EOF
# No DNS query leaves the machine: pods do not inherit the host's resolver;
# they ask the cluster DNS (CoreDNS, below), which has no forwarder.
: >"$dir/resolv.conf"

# The control plane, on the node's address so pods reach it.
CLAUDE_MIDDLEWARE_CONTROLPLANE_NODE_ADDRESS=$CLUSTER_NODE_IP \
  CLAUDE_MIDDLEWARE_SERVICE_CIDR=$CLUSTER_SERVICE_CIDR \
  "$root/tests/controlplane/up.sh" "$dir/controlplane" 9>&- 8>&- || fail "the control plane did not start"
kubeconfig="$dir/controlplane/kubeconfig"
ca="$dir/controlplane/pki/ca.crt"

spawn() {  # spawn NAME COMMAND...: own session, pid recorded from inside
  local name=$1; shift
  setsid bash -c 'echo $$ >"$0"; exec "$@"' "$dir/pids/$name" "$@" \
    </dev/null >"$dir/logs/$name.log" 2>&1 9>&- 8>&- &
}
wait_for() {  # wait_for WHAT COMMAND...
  local what=$1; shift
  local deadline=$(($(date +%s) + ready_timeout))
  until "$@"; do
    for p in "$dir"/pids/*; do ours_alive "$dir" "$(basename "$p")" || fail "$(basename "$p") exited while waiting for $what"; done
    [ "$(date +%s)" -lt "$deadline" ] || fail "timed out after ${ready_timeout}s waiting for $what"
    sleep 0.5
  done
}

# containerd: private root, state and socket; the CRI with
# restrict_oom_score_adj (root here lacks CAP_SYS_RESOURCE: without it every
# sandbox fails in runc), cgroupfs, our CNI config, our pause image, and
# registry mirrors that point nowhere so no pull ever leaves the machine.
pause_version=$(cat "$node_bin/pause.version")
pause_image="registry.k8s.io/pause:$pause_version"
sock="$dir/containerd/containerd.sock"
cat >"$dir/containerd/config.toml" <<EOF
version = 2
root = "$dir/containerd/root"
state = "$dir/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.internal.v1.tracing"]
[grpc]
  address = "$sock"
[ttrpc]
  address = "$sock.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "$dir/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$pause_image"
  restrict_oom_score_adj = true
  disable_apparmor = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$CLUSTER_CNI_BIN"
    conf_dir = "$dir/cni/net.d"
    max_conf_num = 1
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "$dir/containerd/runc"
  [plugins."io.containerd.grpc.v1.cri".registry.mirrors."ghcr.io"]
    endpoint = ["http://127.0.0.1:9"]
  [plugins."io.containerd.grpc.v1.cri".registry.mirrors."registry.k8s.io"]
    endpoint = ["http://127.0.0.1:9"]
  [plugins."io.containerd.grpc.v1.cri".registry.mirrors."docker.io"]
    endpoint = ["http://127.0.0.1:9"]
EOF
spawn containerd containerd --config "$dir/containerd/config.toml" --log-level warn
ctr_() { ctr --address "$sock" -n k8s.io "$@"; }
ctr_ready() { ctr_ version >/dev/null 2>&1; }
wait_for "containerd" ctr_ready

# The images, from the binaries this machine built (see image.py), under the
# names deploy/ (kustomize newTag) and the operator's PROXY_IMAGE default use.
version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/Cargo.toml" | head -n1)
operator_image="$(sed -n 's/^  - name: \(.*claude-middleware-operator\)$/\1/p' "$root/deploy/kustomization.yaml"):$(sed -n 's/^    newTag: //p' "$root/deploy/kustomization.yaml")"
proxy_image="ghcr.io/claude-middleware/claude-middleware:$version"
python3 "$here/image.py" "$root/Dockerfile.proxy" "$target_dir/debug/claude-middleware" "$proxy_image" "$dir/images/proxy.tar"
python3 "$here/image.py" "$root/Dockerfile.operator" "$target_dir/debug/claude-middleware-operator" "$operator_image" "$dir/images/operator.tar"
python3 "$here/image.py" --scratch "$node_bin/pause" "$pause_image" "$dir/images/pause.tar" /pause
coredns_image="claude-middleware.test/coredns:$(cat "$node_bin/coredns.version")"
python3 "$here/image.py" --scratch "$node_bin/coredns" "$coredns_image" "$dir/images/coredns.tar" /coredns
for tar in "$dir"/images/*.tar; do
  ctr_ images import "$tar" >/dev/null || fail "cannot import $tar"
done
rm -f "$dir"/images/*.tar
ctr_ images label "$pause_image" io.cri-containerd.pinned=pinned >/dev/null

# The kubelet (cgroup v1 with cgroupfs, no swap check, low eviction
# thresholds for a shared disk, no image GC, Secrets refreshed every few
# seconds, everything it writes under DIR).
kubelet_port=$(free_port); kubelet_healthz=$(free_port)
cat >"$dir/kubelet/config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
cgroupDriver: cgroupfs
failSwapOn: false
address: $CLUSTER_NODE_IP
port: $kubelet_port
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $kubelet_healthz
containerRuntimeEndpoint: unix://$sock
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  x509: {clientCAFile: $ca}
authorization: {mode: AlwaysAllow}
clusterDomain: cluster.local
clusterDNS: [$CLUSTER_DNS_IP]
resolvConf: $dir/resolv.conf
podLogsDir: $dir/pod-logs
volumePluginDir: $dir/kubelet/volume-plugins
evictionHard: {memory.available: 100Mi, nodefs.available: 1%, imagefs.available: 1%, nodefs.inodesFree: 1%}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
syncFrequency: 5s
nodeStatusUpdateFrequency: 5s
maxPods: 40
serializeImagePulls: false
EOF
spawn kubelet "$dir/bin/kubelet" \
  --config "$dir/kubelet/config.yaml" \
  --kubeconfig "$kubeconfig" \
  --root-dir "$dir/kubelet/root" \
  --cert-dir "$dir/kubelet/pki" \
  --hostname-override "$CLUSTER_NODE_NAME" \
  --node-ip "$CLUSTER_NODE_IP" \
  --v 1

# kube-proxy: nftables mode (its own table, removed by --cleanup), NodePorts on
# the node's address only, conntrack sysctls left alone.
proxy_healthz=$(free_port); proxy_metrics=$(free_port)
cat >"$dir/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: nftables
clientConnection: {kubeconfig: $kubeconfig}
hostnameOverride: $CLUSTER_NODE_NAME
bindAddress: $CLUSTER_NODE_IP
healthzBindAddress: 127.0.0.1:$proxy_healthz
metricsBindAddress: 127.0.0.1:$proxy_metrics
clusterCIDR: $CLUSTER_POD_CIDR
nodePortAddresses: [$CLUSTER_NODE_IP/32]
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s, udpTimeout: 0s, udpStreamTimeout: 0s}
EOF
spawn kube-proxy "$dir/bin/kube-proxy" --config "$dir/kube-proxy.yaml" --v 1
spawn kube-scheduler "$dir/bin/kube-scheduler" --kubeconfig "$kubeconfig" --leader-elect=false \
  --bind-address 127.0.0.1 --secure-port "$(free_port)"

wait_for "node $CLUSTER_NODE_NAME to be Ready" node_ready
proxy_synced() { nft list table ip kube-proxy >/dev/null 2>&1; }
wait_for "kube-proxy's rules" proxy_synced

# Cluster DNS: CoreDNS as a pod behind kube-dns at $CLUSTER_DNS_IP.
sed -e "s#@IMAGE@#$coredns_image#" -e "s#@DNS_IP@#$CLUSTER_DNS_IP#" "$here/coredns.yaml" |
  kubectl_ apply --server-side -f - >/dev/null || fail "cannot apply coredns.yaml"
dns_ready() { kubectl_ -n kube-system rollout status deployment/coredns --timeout=5s >/dev/null 2>&1; }
wait_for "CoreDNS" dns_ready

cat >"$dir/env" <<EOF
NODE_NAME=$CLUSTER_NODE_NAME
NODE_IP=$CLUSTER_NODE_IP
POD_CIDR=$CLUSTER_POD_CIDR
SERVICE_CIDR=$CLUSTER_SERVICE_CIDR
PROXY_IMAGE=$proxy_image
OPERATOR_IMAGE=$operator_image
PAUSE_IMAGE=$pause_image
COREDNS_IMAGE=$coredns_image
DNS_IP=$CLUSTER_DNS_IP
CONTAINERD_SOCK=$sock
KUBELET_LOG=$dir/logs/kubelet.log
EOF
cp "$kubeconfig" "$dir/kubeconfig.partial"
mv "$dir/kubeconfig.partial" "$dir/kubeconfig"
trap - INT TERM
log "cluster ready in $(( $(date +%s) - start ))s: export KUBECONFIG=$dir/kubeconfig (node $CLUSTER_NODE_NAME at $CLUSTER_NODE_IP)"

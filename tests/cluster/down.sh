#!/usr/bin/env bash
# Stops the cluster that up.sh started in DIR and puts the machine back as up.sh
# found it: kube-proxy's rules (kube-proxy --cleanup), every pod sandbox through
# the CRI (so the CNI plugin releases each veth, address and network
# namespace), the daemons by their recorded pids, containerd's shims and
# mounts under DIR, the control plane, our nft table, the bridge, the
# kubelet's iptables canaries, its cgroups, the sysctls, and the paths outside
# DIR that did not exist before. Then removes DIR.
#
#   tests/cluster/down.sh [DIR]   (default ${TMPDIR:-/tmp}/claude-middleware-cluster)
#
# With nothing running, or no DIR at all, it does nothing and succeeds.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
dir=${1:-${TMPDIR:-/tmp}/claude-middleware-cluster}
[ -d "$dir" ] || exit 0
dir=$(cd "$dir" && pwd)
source "$here/lib.sh"
log() { echo "cluster/down.sh: $*" >&2; }

# up.sh calls this while already holding both locks.
if [ -z "${CLAUDE_MIDDLEWARE_CLUSTER_LOCKED:-}" ]; then
  exec 9>"$dir/.lock"
  flock 9
  exec 8>"$CLUSTER_MACHINE_LOCK"
  flock 8
fi

stop() {  # stop NAME: TERM, then KILL after 15 s, only while it is ours
  local name=$1 pidfile="$dir/pids/$1" pid
  [ -s "$pidfile" ] || return 0
  pid=$(cat "$pidfile")
  if ours_alive "$dir" "$name"; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 150); do ours_alive "$dir" "$name" || break; sleep 0.1; done
    if ours_alive "$dir" "$name"; then
      log "$name ($pid) ignored SIGTERM for 15s; killing it"
      kill -KILL "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do ours_alive "$dir" "$name" || break; sleep 0.1; done
    fi
    log "stopped $name ($pid)"
  fi
  rm -f "$pidfile"
}

stop kube-scheduler
stop kube-proxy
# Its nft tables (and any iptables chains an older mode left).
if [ -x "$dir/bin/kube-proxy" ]; then
  "$dir/bin/kube-proxy" --cleanup >>"$dir/logs/kube-proxy-cleanup.log" 2>&1 || true
fi
stop kubelet
# Every sandbox, through the CRI: containerd stops its containers and runs the
# CNI DEL (veth, address, network namespace).
sock="$dir/containerd/containerd.sock"
if ours_alive "$dir" containerd && [ -x "$dir/bin/cri-clean" ]; then
  "$dir/bin/cri-clean" "unix://$sock" >>"$dir/logs/cri-clean.log" 2>&1 ||
    log "cri-clean failed (see $dir/logs/cri-clean.log); stopping the rest anyway"
fi
stop containerd
# Shims outlive containerd; ours name our socket on their command line.
for pid in $(pgrep -f "containerd-shim-runc-v2 .*-address $sock" 2>/dev/null); do
  kill -KILL "$pid" 2>/dev/null || true
done
# Mounts under DIR (rootfs overlays, Secret tmpfs, sandbox shm), deepest first.
awk -v d="$dir/" 'index($2, d) == 1 { print $2 }' /proc/self/mounts | sort -r | while read -r m; do
  umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || log "cannot unmount $m"
done

[ -d "$dir/controlplane" ] && "$root/tests/controlplane/down.sh" "$dir/controlplane" 9>&- 8>&- 2>/dev/null

state="$dir/state"
nft delete table ip "$CLUSTER_NFT_TABLE" 2>/dev/null || true
for family in ip ip6; do
  if [ -f "$state/nft" ] && ! grep -qx "table $family kube-proxy" "$state/nft"; then
    nft delete table "$family" kube-proxy 2>/dev/null || true
  fi
done
if [ -f "$state/bridge" ]; then
  ip link del "$CLUSTER_BRIDGE" 2>/dev/null || true
  rm -f "$state/bridge"
fi
if [ -f "$state/chains" ]; then
  for s in "${CLUSTER_CHAINS[@]}"; do
    table=${s%%:*}; chain=${s#*:}
    grep -qx "ip:$s" "$state/chains" || remove_chain iptables "$table" "$chain"
    grep -qx "ip6:$s" "$state/chains" || remove_chain ip6tables "$table" "$chain"
  done
fi
[ -f "$state/nft" ] && remove_new_empty_tables "$state"
if [ -f "$state/cgroups" ]; then
  for cg in $(cgroup_roots); do
    [ -d "$cg/kubepods" ] || continue
    grep -qx "$cg/kubepods" "$state/cgroups" && continue
    find "$cg/kubepods" -depth -type d -exec rmdir {} \; 2>/dev/null
    [ -d "$cg/kubepods" ] && log "cannot remove $cg/kubepods (a process still in it?)"
  done
fi
if [ -f "$state/sysctl" ]; then
  while IFS= read -r line; do
    sysctl -q -w "$line" >/dev/null 2>&1 || log "cannot restore $line"
  done <"$state/sysctl"
fi
if [ -f "$state/paths" ]; then
  for p in "${CLUSTER_PATHS[@]}"; do
    grep -qx "$p" "$state/paths" && continue
    [ -e "$p" ] || continue
    # Network namespaces are mount points; only ours could be in a new dir.
    if [ "$p" = /var/run/netns ]; then
      for ns in "$p"/*; do [ -e "$ns" ] && { umount "$ns" 2>/dev/null; rm -f "$ns"; }; done
    fi
    rm -rf "$p"
  done
fi
[ -s "$CLUSTER_OWNER" ] && [ "$(cat "$CLUSTER_OWNER")" = "$dir" ] && rm -f "$CLUSTER_OWNER"

rm -rf "$dir/pids" "$dir/state" "$dir/logs" "$dir/bin" "$dir/containerd" "$dir/kubelet" "$dir/cni" \
  "$dir/images" "$dir/pod-logs" "$dir/controlplane" "$dir/env" "$dir/resolv.conf" "$dir/kube-proxy.yaml" \
  "$dir/kubeconfig" "$dir/kubeconfig.partial"
if [ -z "${CLAUDE_MIDDLEWARE_CLUSTER_LOCKED:-}" ]; then
  rm -f "$dir/.lock"
  rmdir "$dir" 2>/dev/null || true
fi
exit 0

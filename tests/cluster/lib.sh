# Shared by up.sh and down.sh (sourced): the cluster's fixed names and
# addresses, and what it changes on the machine.

# Names and addresses. One cluster per machine, so these can be fixed; the
# ranges are overridable should they clash with a network here.
CLUSTER_NODE_NAME=claude-middleware-node
CLUSTER_BRIDGE=cmw-br0
CLUSTER_POD_CIDR=${CLAUDE_MIDDLEWARE_POD_CIDR:-10.244.0.0/24}
CLUSTER_POD_PREFIX=${CLUSTER_POD_CIDR#*/}
CLUSTER_NODE_IP=${CLUSTER_POD_CIDR%.*/*}.1
CLUSTER_POD_RANGE_START=${CLUSTER_POD_CIDR%.*/*}.10
CLUSTER_SERVICE_CIDR=${CLAUDE_MIDDLEWARE_CLUSTER_SERVICE_CIDR:-10.0.0.0/24}
CLUSTER_DNS_IP=${CLUSTER_SERVICE_CIDR%.*/*}.10
CLUSTER_NFT_TABLE=claude_middleware_cluster
CLUSTER_CNI_BIN=/usr/lib/cni
CLUSTER_MACHINE_LOCK=/run/lock/claude-middleware-cluster.lock
CLUSTER_OWNER=/run/claude-middleware-cluster.owner
CLUSTER_PACKAGES="containerd runc containernetworking-plugins nftables iptables conntrack iproute2 gcc"

# Sysctls the kubelet, the CNI plugins or kube-proxy may set; down.sh puts
# back the values up.sh found.
CLUSTER_SYSCTLS=(
  kernel.panic kernel.panic_on_oops vm.overcommit_memory vm.panic_on_oom
  kernel.keys.root_maxkeys kernel.keys.root_maxbytes
  net.ipv4.ip_forward net.ipv6.conf.all.forwarding net.ipv4.conf.all.route_localnet
  net.bridge.bridge-nf-call-iptables net.bridge.bridge-nf-call-ip6tables
  net.netfilter.nf_conntrack_max net.netfilter.nf_conntrack_tcp_timeout_established
  net.netfilter.nf_conntrack_tcp_timeout_close_wait
)
# Paths outside DIR that containerd, the CNI plugins and the kubelet write to
# whatever their configuration says; removed by down.sh when absent before.
CLUSTER_PATHS=(/run/containerd /var/run/netns /var/lib/cni /var/log/containers /var/log/pods /var/lib/kubelet /etc/cni)
# iptables chains the kubelet makes (its canaries for kube-proxy, and its
# firewall against martian localnet traffic); removed by down.sh, with the
# rules that jump to them, when absent before. The nft tables iptables-nft
# makes for them are removed too when new and left empty. kube-proxy's own rules live in nft tables
# that `kube-proxy --cleanup` removes.
CLUSTER_CHAINS=(mangle:KUBE-IPTABLES-HINT mangle:KUBE-KUBELET-CANARY nat:KUBE-KUBELET-CANARY filter:KUBE-KUBELET-CANARY
  filter:KUBE-FIREWALL)

cluster_missing_tools() {
  local missing=()
  for tool in containerd containerd-shim-runc-v2 runc ctr nft iptables ip6tables conntrack ip gcc python3 setsid flock; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
  done
  [ -x "$CLUSTER_CNI_BIN/bridge" ] && [ -x "$CLUSTER_CNI_BIN/host-local" ] && [ -x "$CLUSTER_CNI_BIN/loopback" ] ||
    missing+=("$CLUSTER_CNI_BIN/{bridge,host-local,loopback}")
  echo "${missing[*]}"
}

# The recorded pid still runs one of DIR's daemons (its command line names
# DIR), so a recycled pid of another process never counts.
ours_alive() {
  local dir=$1 pidfile="$1/pids/$2" pid
  [ -s "$pidfile" ] || return 1
  pid=$(cat "$pidfile")
  [ -r "/proc/$pid/cmdline" ] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$dir/"
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

cgroup_roots() { find /sys/fs/cgroup -mindepth 1 -maxdepth 1 -type d; }

# Writes STATE/{sysctl,paths,chains,cgroups,nft}: what exists before up.sh.
record_machine_state() {
  local state=$1 s table chain
  : >"$state/sysctl"
  for s in "${CLUSTER_SYSCTLS[@]}"; do
    [ -e "/proc/sys/${s//.//}" ] && echo "$s=$(sysctl -n "$s")" >>"$state/sysctl"
  done
  : >"$state/paths"
  for s in "${CLUSTER_PATHS[@]}"; do [ -e "$s" ] && echo "$s" >>"$state/paths"; done
  : >"$state/chains"
  for s in "${CLUSTER_CHAINS[@]}"; do
    table=${s%%:*}; chain=${s#*:}
    iptables -t "$table" -S "$chain" >/dev/null 2>&1 && echo "ip:$s" >>"$state/chains"
    ip6tables -t "$table" -S "$chain" >/dev/null 2>&1 && echo "ip6:$s" >>"$state/chains"
  done
  : >"$state/cgroups"
  for s in $(cgroup_roots); do [ -d "$s/kubepods" ] && echo "$s/kubepods" >>"$state/cgroups"; done
  nft list tables >"$state/nft"
}

# Removes CHAIN from TABLE with IPTABLES (iptables or ip6tables): the rules that
# jump to it first, then its rules, then the chain.
remove_chain() {
  local cmd=$1 table=$2 chain=$3 rule
  "$cmd" -t "$table" -S "$chain" >/dev/null 2>&1 || return 0
  "$cmd" -t "$table" -S | grep -- "-j $chain\( \|$\)" | grep '^-A ' | while read -r rule; do
    eval "$cmd -t $table ${rule/#-A/-D}" 2>/dev/null || true
  done
  "$cmd" -t "$table" -F "$chain" 2>/dev/null
  "$cmd" -t "$table" -X "$chain" 2>/dev/null
}

# Deletes the nft tables that did not exist before up.sh (STATE/nft) and hold no rule.
remove_new_empty_tables() {
  local state=$1 family name rules
  nft list tables 2>/dev/null | while read -r _ family name; do
    grep -qx "table $family $name" "$state/nft" && continue
    rules=$(nft -j list table "$family" "$name" 2>/dev/null |
      python3 -c 'import json,sys; print(sum(1 for o in json.load(sys.stdin)["nftables"] if "rule" in o))' 2>/dev/null || echo 1)
    [ "$rules" = 0 ] && nft delete table "$family" "$name"
  done
}

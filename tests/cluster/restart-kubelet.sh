#!/usr/bin/env bash
# Restarts only the kubelet of a cluster that up.sh started in DIR: SIGTERM,
# then the same binary with the very same command line (read from /proc
# before the stop). Its pods keep running meanwhile (containerd owns them).
# Waits until the node is Ready again.
#
#   tests/cluster/restart-kubelet.sh DIR
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
dir=$(cd "${1:?usage: restart-kubelet.sh DIR}" && pwd)
source "$here/lib.sh"
log() { echo "restart-kubelet.sh: $*" >&2; }

ours_alive "$dir" kubelet || { log "no kubelet of $dir runs"; exit 1; }
pid=$(cat "$dir/pids/kubelet")
mapfile -d '' cmdline <"/proc/$pid/cmdline"
kill -TERM "$pid"
for _ in $(seq 1 150); do ours_alive "$dir" kubelet || break; sleep 0.1; done
ours_alive "$dir" kubelet && { log "the kubelet ($pid) ignored SIGTERM for 15s"; exit 1; }
log "stopped the kubelet ($pid)"

setsid bash -c 'echo $$ >"$0"; exec "$@"' "$dir/pids/kubelet" "${cmdline[@]}" \
  </dev/null >>"$dir/logs/kubelet.log" 2>&1 &

kubectl_() { "$dir/bin/kubectl" --kubeconfig "$dir/kubeconfig" --request-timeout=10s "$@"; }
deadline=$(($(date +%s) + 120))
# Ready again, with a heartbeat from the new kubelet.
started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
until [ "$(kubectl_ get node "$CLUSTER_NODE_NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" = True ] &&
  [[ "$(kubectl_ get node "$CLUSTER_NODE_NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].lastHeartbeatTime}' 2>/dev/null)" > "$started" ]]; do
  [ "$(date +%s)" -lt "$deadline" ] || { log "the node is not Ready 120s after the restart"; tail -n 25 "$dir/logs/kubelet.log" >&2; exit 1; }
  ours_alive "$dir" kubelet || { log "the restarted kubelet exited"; tail -n 25 "$dir/logs/kubelet.log" >&2; exit 1; }
  sleep 0.5
done
log "kubelet restarted ($(cat "$dir/pids/kubelet")) and the node is Ready"

#!/usr/bin/env bash
# Stops the control plane that up.sh started in DIR, by the pids it recorded,
# and removes its state (etcd data, certificates, kubeconfig, logs).
#
#   tests/controlplane/down.sh [DIR]   (default ${TMPDIR:-/tmp}/claude-middleware-controlplane)
#
# With nothing running, or no DIR at all, it does nothing and succeeds.
set -euo pipefail
dir=${1:-${TMPDIR:-/tmp}/claude-middleware-controlplane}
[ -d "$dir" ] || exit 0
dir=$(cd "$dir" && pwd)

# up.sh calls this while already holding the lock.
if [ -z "${CLAUDE_MIDDLEWARE_CONTROLPLANE_LOCKED:-}" ]; then
  exec 9>"$dir/.lock"
  flock 9
fi

# A recorded pid counts only while its command line still names DIR, so a pid
# recycled by an unrelated process is never signalled.
ours() {
  local pid=$1
  [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$dir/"
}

# Dependents first: the controller-manager, then the API server, then etcd.
for name in kube-controller-manager kube-apiserver etcd; do
  pidfile="$dir/pids/$name"
  [ -s "$pidfile" ] || continue
  pid=$(cat "$pidfile")
  if ours "$pid"; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do ours "$pid" || break; sleep 0.1; done
    if ours "$pid"; then
      echo "down.sh: $name ($pid) ignored SIGTERM for 10s; killing it" >&2
      kill -KILL "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do ours "$pid" || break; sleep 0.1; done
    fi
    echo "down.sh: stopped $name ($pid)" >&2
  fi
  rm -f "$pidfile"
done

rm -rf "$dir/pids" "$dir/etcd" "$dir/pki" "$dir/logs" "$dir/bin" "$dir/kubeconfig" "$dir/kubeconfig.partial"
if [ -z "${CLAUDE_MIDDLEWARE_CONTROLPLANE_LOCKED:-}" ]; then
  rm -f "$dir/.lock"
  rmdir "$dir" 2>/dev/null || true
fi

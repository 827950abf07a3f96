#!/usr/bin/env bash
# Restarts only the kube-apiserver of a control plane that up.sh started in
# DIR: SIGKILL (no graceful shutdown, clients see connections drop), DOWN
# seconds with no API server at all, then the same binary with the very same
# command line (read from /proc before the kill), so etcd keeps every object,
# certificates and port stay the same, and clients reconnect to the same URL.
# Waits for /readyz before returning.
#
#   tests/controlplane/restart-apiserver.sh DIR [DOWN_SECONDS]   (default 3)
#
# For fault-injection tests. Use it only on a private control plane (up.sh into
# a temp DIR): on the shared one it would disturb every other test.
set -euo pipefail
dir=${1:?usage: restart-apiserver.sh DIR [DOWN_SECONDS]}
down=${2:-3}
dir=$(cd "$dir" && pwd)
log() { echo "restart-apiserver.sh: $*" >&2; }

pidfile="$dir/pids/kube-apiserver"
pid=$(cat "$pidfile")
# Only our own daemon (its command line names DIR), as in up.sh/down.sh.
[ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$dir/" ||
  { log "no kube-apiserver of $dir runs (pid $pid)"; exit 1; }
mapfile -d '' cmdline <"/proc/$pid/cmdline"

kill -KILL "$pid"
for _ in $(seq 1 100); do [ -e "/proc/$pid" ] || break; sleep 0.1; done
[ ! -e "/proc/$pid" ] || { log "kube-apiserver ($pid) survived SIGKILL"; exit 1; }
log "killed kube-apiserver ($pid); down for ${down}s"
sleep "$down"

# As up.sh's spawn: own session, pid recorded from inside, log appended.
setsid bash -c 'echo $$ >"$0"; exec "$@"' "$pidfile" "${cmdline[@]}" \
  </dev/null >>"$dir/logs/kube-apiserver.log" 2>&1 9>&- &

deadline=$(($(date +%s) + 120))
until [ "$("$dir/bin/kubectl" --kubeconfig "$dir/kubeconfig" --request-timeout=5s get --raw /readyz 2>/dev/null)" = ok ]; do
  if [ "$(date +%s)" -ge "$deadline" ]; then
    log "the restarted kube-apiserver is not ready after 120s"
    tail -n 25 "$dir/logs/kube-apiserver.log" >&2
    exit 1
  fi
  sleep 0.5
done
log "kube-apiserver restarted ($(cat "$pidfile")) and ready"

#!/usr/bin/env bash
# Starts a local Kubernetes control plane for tests: etcd, kube-apiserver and
# kube-controller-manager, built from the public Go modules (build.sh), on free
# 127.0.0.1 ports, running in the background.
#
#   tests/controlplane/up.sh [DIR]     (default ${TMPDIR:-/tmp}/claude-middleware-controlplane)
#
# Afterwards DIR/kubeconfig is an admin kubeconfig (client certificate in
# system:masters), DIR/bin/kubectl a matching kubectl, DIR/logs the logs.
# Running it again while the control plane is healthy does nothing; a dead or
# half-started one is stopped (down.sh) and started afresh. Concurrent callers
# with the same DIR are serialised by a lock, so parallel test processes share
# one control plane. Stop it with down.sh [DIR].
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
dir=${1:-${TMPDIR:-/tmp}/claude-middleware-controlplane}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
ready_timeout=${CLAUDE_MIDDLEWARE_CONTROLPLANE_TIMEOUT:-180}
# Room for ~250 Services by default; the operator benchmark (500 CRs) asks for more.
service_cidr=${CLAUDE_MIDDLEWARE_SERVICE_CIDR:-10.0.0.0/24}
# Set by tests/cluster/up.sh: the control plane then serves a real node. The API
# server listens on this address (the node's bridge, reachable from pods) instead
# of 127.0.0.1, keeps the `kubernetes` Service's endpoint (pods reach it through
# its ClusterIP), mounts ServiceAccount tokens into pods, and reaches kubelets by
# their InternalIP with the admin client certificate (kubectl logs/exec).
node_address=${CLAUDE_MIDDLEWARE_CONTROLPLANE_NODE_ADDRESS:-}
address=${node_address:-127.0.0.1}

log() { echo "up.sh: $*" >&2; }
for tool in openssl setsid flock base64; do
  command -v "$tool" >/dev/null || { log "$tool is needed (Debian: apt-get install openssl util-linux coreutils)"; exit 1; }
done

# One starter at a time per DIR. The daemons are started with fd 9 closed so
# they do not keep holding the lock.
exec 9>"$dir/.lock"
flock 9

kubectl_() { "$dir/bin/kubectl" --kubeconfig "$dir/kubeconfig" --request-timeout=5s "$@"; }

# The recorded pid still runs one of our daemons (its command line names DIR,
# so a recycled pid of another process does not count).
ours_alive() {
  local pidfile="$dir/pids/$1" pid
  [ -s "$pidfile" ] || return 1
  pid=$(cat "$pidfile")
  [ -r "/proc/$pid/cmdline" ] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$dir/"
}

healthy() {
  [ -s "$dir/kubeconfig" ] && [ -x "$dir/bin/kubectl" ] || return 1
  for p in etcd kube-apiserver kube-controller-manager; do ours_alive "$p" || return 1; done
  [ "$(kubectl_ get --raw /readyz 2>/dev/null)" = ok ]
}

if healthy; then
  log "already running in $dir"
  exit 0
fi
if [ -d "$dir/pids" ]; then
  log "found a stopped or unhealthy control plane in $dir; restarting it"
  CLAUDE_MIDDLEWARE_CONTROLPLANE_LOCKED=1 "$here/down.sh" "$dir" 9>&-
fi

bin=$("$here/build.sh")
start=$(date +%s)
mkdir -p "$dir/bin" "$dir/logs" "$dir/pids" "$dir/pki"
for b in kubectl kube-apiserver kube-controller-manager etcd; do ln -sfn "$bin/$b" "$dir/bin/$b"; done

# Free loopback ports, chosen by the kernel. A port could in theory be taken
# between choosing and binding; the readiness wait below then fails loudly.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null && return
  # Fallback without Python: a random high port nobody listens on.
  local p
  while :; do
    p=$((20000 + RANDOM % 40000))
    ss -ltnH "sport = :$p" | grep -q . || { echo "$p"; return; }
  done
}
etcd_port=$(free_port)
peer_port=$(free_port)
while [ "$peer_port" = "$etcd_port" ]; do peer_port=$(free_port); done
api_port=$(free_port)
while [ "$api_port" = "$etcd_port" ] || [ "$api_port" = "$peer_port" ]; do api_port=$(free_port); done

# PKI: a CA, the API server's serving certificate for 127.0.0.1/localhost, an
# admin client certificate in system:masters, and the service-account key pair
# that signs TokenRequest tokens.
pki="$dir/pki"
ossl() { openssl "$@" >/dev/null 2>&1; }
ossl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=claude-middleware-test-ca" \
  -keyout "$pki/ca.key" -out "$pki/ca.crt"
ossl req -newkey rsa:2048 -nodes -subj "/CN=kube-apiserver" -keyout "$pki/apiserver.key" -out "$pki/apiserver.csr"
printf 'subjectAltName=IP:127.0.0.1,IP:'"$address"',DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,IP:10.0.0.1\nextendedKeyUsage=serverAuth\n' >"$pki/apiserver.ext"
ossl x509 -req -in "$pki/apiserver.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial \
  -days 3650 -extfile "$pki/apiserver.ext" -out "$pki/apiserver.crt"
ossl req -newkey rsa:2048 -nodes -subj "/O=system:masters/CN=admin" -keyout "$pki/admin.key" -out "$pki/admin.csr"
printf 'extendedKeyUsage=clientAuth\n' >"$pki/admin.ext"
ossl x509 -req -in "$pki/admin.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial \
  -days 3650 -extfile "$pki/admin.ext" -out "$pki/admin.crt"
ossl genrsa -out "$pki/sa.key" 2048
ossl rsa -in "$pki/sa.key" -pubout -out "$pki/sa.pub"
[ -s "$pki/admin.crt" ] && [ -s "$pki/apiserver.crt" ] && [ -s "$pki/sa.pub" ] || { log "openssl failed to make the certificates"; exit 1; }

b64() { base64 -w0 <"$1"; }
cat >"$pki/admin.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: claude-middleware-test
  cluster:
    server: https://$address:$api_port
    certificate-authority-data: $(b64 "$pki/ca.crt")
users:
- name: admin
  user:
    client-certificate-data: $(b64 "$pki/admin.crt")
    client-key-data: $(b64 "$pki/admin.key")
contexts:
- name: claude-middleware-test
  context:
    cluster: claude-middleware-test
    user: admin
    namespace: default
current-context: claude-middleware-test
EOF

# Starts a daemon in its own session, detached from this shell, recording its
# pid from inside so the pid is the daemon's own.
spawn() {
  local name=$1; shift
  setsid bash -c 'echo $$ >"$0"; exec "$@"' "$dir/pids/$name" "$@" \
    </dev/null >"$dir/logs/$name.log" 2>&1 9>&- &
}

spawn etcd "$dir/bin/etcd" \
  --name test \
  --data-dir "$dir/etcd" \
  --listen-client-urls "http://127.0.0.1:$etcd_port" \
  --advertise-client-urls "http://127.0.0.1:$etcd_port" \
  --listen-peer-urls "http://127.0.0.1:$peer_port" \
  --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
  --initial-cluster "test=http://127.0.0.1:$peer_port" \
  --unsafe-no-fsync \
  --log-level warn

if [ -n "$node_address" ]; then
  node_flags=(
    --endpoint-reconciler-type lease
    --kubelet-preferred-address-types InternalIP
    --kubelet-client-certificate "$pki/admin.crt"
    --kubelet-client-key "$pki/admin.key"
  )
else
  node_flags=(
    --disable-admission-plugins ServiceAccount
    --endpoint-reconciler-type none
  )
fi
spawn kube-apiserver "$dir/bin/kube-apiserver" \
  --etcd-servers "http://127.0.0.1:$etcd_port" \
  --bind-address "$address" \
  --advertise-address "$address" \
  --secure-port "$api_port" \
  --cert-dir "$pki" \
  --tls-cert-file "$pki/apiserver.crt" \
  --tls-private-key-file "$pki/apiserver.key" \
  --client-ca-file "$pki/ca.crt" \
  --authorization-mode RBAC \
  --service-account-issuer https://kubernetes.default.svc.cluster.local \
  --service-account-key-file "$pki/sa.pub" \
  --service-account-signing-key-file "$pki/sa.key" \
  --service-cluster-ip-range "$service_cidr" \
  --allow-privileged=true \
  "${node_flags[@]}"

fail() {
  log "$*"
  for f in "$dir"/logs/*.log; do
    echo "---- last lines of $f" >&2
    tail -n 25 "$f" >&2 || true
  done
  CLAUDE_MIDDLEWARE_CONTROLPLANE_LOCKED=1 "$here/down.sh" "$dir" 9>&- >/dev/null 2>&1 || true
  exit 1
}

wait_for() {  # wait_for WHAT COMMAND...: polls until COMMAND succeeds
  local what=$1; shift
  local deadline=$(($(date +%s) + ready_timeout))
  until "$@"; do
    for p in "$dir"/pids/*; do ours_alive "$(basename "$p")" || fail "$(basename "$p") exited while waiting for $what"; done
    [ "$(date +%s)" -lt "$deadline" ] || fail "timed out after ${ready_timeout}s waiting for $what"
    sleep 0.5
  done
}
readyz() { [ "$("$dir/bin/kubectl" --kubeconfig "$pki/admin.kubeconfig" --request-timeout=5s get --raw /readyz 2>/dev/null)" = ok ]; }
wait_for "the API server's /readyz" readyz

spawn kube-controller-manager "$dir/bin/kube-controller-manager" \
  --kubeconfig "$pki/admin.kubeconfig" \
  --controllers '*' \
  --use-service-account-credentials=false \
  --service-account-private-key-file "$pki/sa.key" \
  --root-ca-file "$pki/ca.crt" \
  --service-cluster-ip-range "$service_cidr" \
  --leader-elect=false \
  --bind-address 127.0.0.1 \
  --secure-port 0

# The controller-manager is working once its service-account controller has
# made the default namespace's ServiceAccount.
default_sa() { "$dir/bin/kubectl" --kubeconfig "$pki/admin.kubeconfig" --request-timeout=5s \
  -n default get serviceaccount default >/dev/null 2>&1; }
wait_for "the controller-manager (ServiceAccount default/default)" default_sa

# Published last: a present DIR/kubeconfig means a ready control plane.
cp "$pki/admin.kubeconfig" "$dir/kubeconfig.partial"
mv "$dir/kubeconfig.partial" "$dir/kubeconfig"
log "control plane ready in $(( $(date +%s) - start ))s: export KUBECONFIG=$dir/kubeconfig (API server https://$address:$api_port)"

#!/usr/bin/env bash
# The demo (README: `make demo`): the whole product on one machine, with no
# cluster and no Docker.
#
#   scripts/demo.sh          run it (stops what a previous run left first)
#   scripts/demo.sh clean    stop everything it started and remove its state
#
# 1. a local Kubernetes control plane (tests/controlplane/up.sh)
# 2. a private redis-server loaded with the fixture accounts, and the stand-in
#    claude-relay-service backend
# 3. deploy/ installed with `kubectl apply -k`, the operator run against it
# 4. deploy/examples/ applied, `kubectl get cmw` and the children shown
# 5. the proxy started with the environment the operator rendered into the
#    Deployment, read back from the API server (no kubelet here, so the local
#    process stands in for the pods)
# 6. a streamed Messages API request, and which account served it
# 7. that account made to fail (429), and the failover to another one
# 8. how to clean up
#
# State, logs and pid files live in $CLAUDE_MIDDLEWARE_DEMO_DIR
# (default ${TMPDIR:-/tmp}/claude-middleware-demo).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
. scripts/lib/common.sh

demo_dir=${CLAUDE_MIDDLEWARE_DEMO_DIR:-${TMPDIR:-/tmp}/claude-middleware-demo}
mkdir -p "$demo_dir"
demo_dir=$(cd "$demo_dir" && pwd)
cp_dir=$demo_dir/controlplane
pids=$demo_dir/pids
logs=$demo_dir/logs
bin=${CARGO_TARGET_DIR:-$root/target}/debug
# The relay's accounts as claude-relay-service writes them (a copy of the
# shared fixtures, carried in the repository).
fixture=${CLAUDE_MIDDLEWARE_FIXTURES:-$root/tests/fixtures}/relay-accounts.redis
# The CR whose rendered Deployment the local proxy impersonates.
cr_namespace=claude-relay
cr_name=relay-production

k() { "$cp_dir/bin/kubectl" --kubeconfig "$cp_dir/kubeconfig" "$@"; }
indent() { sed 's/^/    /'; }

stop_all() {
  stop_pidfile "$pids/proxy" claude-middleware
  stop_pidfile "$pids/operator" claude-middleware-operator
  stop_pidfile "$pids/stand-in" stand-in-relay
  stop_pidfile "$pids/redis" redis-server
  tests/controlplane/down.sh "$cp_dir" >/dev/null 2>&1 || true
}

if [ "${1:-}" = clean ]; then
  step "stopping the demo in $demo_dir"
  stop_all
  rm -rf "$demo_dir"
  say "stopped the proxy, operator, stand-in relay, redis-server and control plane; removed $demo_dir"
  exit 0
fi
[ $# -eq 0 ] || die "usage: $0 [clean]"

# Starts a program in the background, detached from this script (it keeps
# running after the demo returns), with its pid in $pids/NAME.
start_bg() {
  local name=$1
  shift
  setsid "$@" >"$logs/$name.log" 2>&1 </dev/null &
  echo $! >"$pids/$name"
}

started=$SECONDS
step "0/8 stopping what a previous demo run left in $demo_dir"
stop_all
rm -rf "$pids" "$logs" "$demo_dir/run"
mkdir -p "$pids" "$logs" "$demo_dir/run"
say done

step "building the binaries (cargo build --workspace --bins)"
ensure_tool redis-server redis-server
ensure_tool redis-cli redis-tools
ensure_tool curl curl
[ -r "$fixture" ] || die "fixture accounts not found at $fixture (set CLAUDE_MIDDLEWARE_FIXTURES to a directory holding relay-accounts.redis)"
say "(the first build takes a few minutes; later runs reuse it)"
cargo build --workspace --bins --locked

step "1/8 starting the local Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager)"
tests/controlplane/up.sh "$cp_dir" 2>&1 | tail -n 1 | indent
say "kubectl: $cp_dir/bin/kubectl --kubeconfig $cp_dir/kubeconfig"

step "2/8 starting a private redis-server with the fixture accounts, and the stand-in relay backend"
redis_port=$(free_port)
mkdir -p "$demo_dir/redis"
start_bg redis redis-server --bind 127.0.0.1 --port "$redis_port" --save '' --appendonly no --dir "$demo_dir/redis"
redis() { redis-cli -p "$redis_port" ${REDISCLI_AUTH:+--no-auth-warning} "$@"; }
wait_for 30 "redis-server on port $redis_port" redis ping
redis <"$fixture" >/dev/null
say "redis-server on 127.0.0.1:$redis_port with $(redis scard claude:account:index) accounts from $(basename "$fixture"):"
for id in $(redis smembers claude:account:index | sort); do
  say "  $(redis hget "claude:account:$id" name | awk '{print $1}')  $id  ($(redis hget "claude:account:$id" name))"
done | sort
relay_port=$(free_port)
start_bg stand-in "$bin/stand-in-relay" --port "$relay_port"
wait_for 30 "the stand-in relay on port $relay_port" grep -q listening "$logs/stand-in.log"
say "stand-in relay (answers as claude-relay-service would) on 127.0.0.1:$relay_port"

step "3/8 installing the operator: kubectl apply --server-side -k deploy/"
k apply --server-side -k deploy/ | indent
wait_for 60 "the CRD to be Established" crd_established claudemiddlewares.middleware.claude-relay.io
say "customresourcedefinition claudemiddlewares.middleware.claude-relay.io: Established"
operator_port=$(free_port)
KUBECONFIG=$cp_dir/kubeconfig POD_NAMESPACE=claude-middleware-system POD_NAME=demo-operator \
  LEADER_ELECTION=true METRICS_ADDR=127.0.0.1:$operator_port RUST_LOG=info \
  start_bg operator "$bin/claude-middleware-operator" run
wait_for 30 "the operator's /readyz" curl -fsS "http://127.0.0.1:$operator_port/readyz"
say "no kubelet here, so the operator's pod stays Pending; the same binary runs locally instead"
say "operator: /healthz /readyz /metrics on 127.0.0.1:$operator_port, log $logs/operator.log"

step "4/8 applying deploy/examples/ (minimal.yaml, production.yaml)"
for example in deploy/examples/minimal.yaml deploy/examples/production.yaml; do
  k apply --server-side -f "$example" | indent
done
children_of() {
  local ns=$1 name=$2 kind
  shift 2
  for kind in "$@"; do k -n "$ns" get "$kind" "$name" >/dev/null 2>&1 || return 1; done
}
wait_for 90 "the children of relay" children_of "$cr_namespace" relay deployment service networkpolicy
wait_for 90 "the children of $cr_name" children_of "$cr_namespace" "$cr_name" \
  deployment service networkpolicy ingress horizontalpodautoscaler poddisruptionbudget
status_written() { [ -n "$(k -n "$cr_namespace" get cmw "$cr_name" -o jsonpath='{.status.observedGeneration}')" ]; }
wait_for 60 "the status of $cr_name" status_written
say "\$ kubectl get cmw -A"
k get cmw -A | indent
say "\$ kubectl get deploy,svc,netpol,ingress,hpa,pdb -A -l app.kubernetes.io/managed-by=claude-middleware-operator"
k get deploy,svc,netpol,ingress,hpa,pdb -A -l app.kubernetes.io/managed-by=claude-middleware-operator | indent

step "5/8 starting the proxy with the environment the operator rendered into deployment/$cr_name"
deployment_json=$demo_dir/run/deployment.json
k -n "$cr_namespace" get deployment "$cr_name" -o json >"$deployment_json"
container='(index .spec.template.spec.containers 0)'
# name<TAB>value|secret<TAB>value or secret name<TAB>secret key
k -n "$cr_namespace" get deployment "$cr_name" -o go-template="{{range $container.env}}{{.name}}{{\"\t\"}}{{if .valueFrom}}secret{{\"\t\"}}{{.valueFrom.secretKeyRef.name}}{{\"\t\"}}{{.valueFrom.secretKeyRef.key}}{{else}}value{{\"\t\"}}{{.value}}{{end}}{{\"\n\"}}{{end}}" >"$demo_dir/run/env.tsv"
# Secret volumes mounted into the container: volume<TAB>secret<TAB>key=path,...
k -n "$cr_namespace" get deployment "$cr_name" -o go-template='{{range .spec.template.spec.volumes}}{{if .secret}}{{.name}}{{"\t"}}{{.secret.secretName}}{{"\t"}}{{range .secret.items}}{{.key}}={{.path}},{{end}}{{"\n"}}{{end}}{{end}}' >"$demo_dir/run/secret-volumes.tsv"
k -n "$cr_namespace" get deployment "$cr_name" -o go-template="{{range $container.volumeMounts}}{{.name}}{{\"\t\"}}{{.mountPath}}{{\"\n\"}}{{end}}" >"$demo_dir/run/mounts.tsv"
secret_value() { k -n "$cr_namespace" get secret "$1" -o go-template="{{index .data \"$2\" | base64decode}}"; }

# Secret volumes become local directories; env values under a mount path are
# pointed at the local copy.
declare -A mount_map=()
while IFS=$'\t' read -r volume secret items; do
  mount_path=$(awk -F'\t' -v v="$volume" '$1 == v {print $2}' "$demo_dir/run/mounts.tsv")
  [ -n "$mount_path" ] || continue
  local_dir=$demo_dir/run/mounts/$volume
  mkdir -p "$local_dir"
  IFS=, read -ra pairs <<<"$items"
  for pair in "${pairs[@]}"; do
    [ -n "$pair" ] || continue
    secret_value "$secret" "${pair%%=*}" >"$local_dir/${pair#*=}"
  done
  mount_map[$mount_path]=$local_dir
  say "volume $volume (Secret $secret) mounted at $mount_path → written to $local_dir"
done <"$demo_dir/run/secret-volumes.tsv"

proxy_port=8080
port_busy "$proxy_port" && proxy_port=$(free_port)
declare -a proxy_env=()
redis_password=
say "environment (secrets masked):"
while IFS=$'\t' read -r name kind a b; do
  case $kind in
    secret)
      value=$(secret_value "$a" "$b")
      shown="<secret $a/$b: ${#value} bytes>"
      [ "$name" = REDIS_PASSWORD ] && redis_password=$value
      ;;
    *)
      value=$a
      shown=$a
      ;;
  esac
  note=
  case $name in
    TARGET_URL) new="http://127.0.0.1:$relay_port"; note="cluster DNS name → the local stand-in relay" ;;
    REDIS_HOST) new=127.0.0.1; note="cluster DNS name → the local redis-server" ;;
    REDIS_PORT) new=$redis_port; note="the local redis-server's port" ;;
    PORT) new=$proxy_port; [ "$new" = "$value" ] || note="8080 is taken here" ;;
    *) new=$value
      for mount_path in "${!mount_map[@]}"; do
        case $value in "$mount_path"/*) new=${mount_map[$mount_path]}${value#"$mount_path"}; note="mounted Secret → its local copy" ;; esac
      done
      ;;
  esac
  if [ "$new" != "$value" ]; then
    say "  $name=$shown   (overridden locally: $new — $note)"
  else
    say "  $name=$shown"
  fi
  proxy_env+=("$name=$new")
done <"$demo_dir/run/env.tsv"
if [ -n "$redis_password" ]; then
  # The Secret's password becomes the local Redis's, so the proxy authenticates
  # with exactly the value the cluster would give it.
  redis config set requirepass "$redis_password" >/dev/null
  export REDISCLI_AUTH=$redis_password
  say "the local redis-server now requires the password from the Secret (REDIS_PASSWORD)"
fi
# Exactly that environment: nothing of this shell leaks in (a REDIS_URL here
# would override REDIS_HOST/PORT).
start_bg proxy env -i PATH=/usr/bin:/bin "${proxy_env[@]}" "$bin/claude-middleware"
proxy=http://127.0.0.1:$proxy_port
ready() { curl -fsS "$proxy/ready"; }
wait_for 30 "the proxy's /ready" ready || { tail -n 20 "$logs/proxy.log"; exit 1; }
say "proxy ready on $proxy: $(curl -sS "$proxy/ready")"

# Play the kubelet's part for the Deployment's pods (they cannot run here):
# mark them Ready, so the status below shows what a healthy rollout looks like.
mark_pods_ready() {
  local now pod
  now=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  for pod in $(k -n "$cr_namespace" get pods -l "app.kubernetes.io/instance=$cr_name" -o name); do
    k -n "$cr_namespace" patch "$pod" --subresource=status --type=merge -p "{\"status\":{\"phase\":\"Running\",\"conditions\":[{\"type\":\"PodScheduled\",\"status\":\"True\",\"lastTransitionTime\":\"$now\"},{\"type\":\"Initialized\",\"status\":\"True\",\"lastTransitionTime\":\"$now\"},{\"type\":\"ContainersReady\",\"status\":\"True\",\"lastTransitionTime\":\"$now\"},{\"type\":\"Ready\",\"status\":\"True\",\"lastTransitionTime\":\"$now\"}]}}" >/dev/null
  done
}
cr_ready() {
  mark_pods_ready
  [ "$(k -n "$cr_namespace" get cmw "$cr_name" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" = True ]
}
if wait_for 60 "$cr_name to report Ready" cr_ready; then
  say "the local proxy stands in for the pods: marked them Ready (as a kubelet would); now:"
  k -n "$cr_namespace" get cmw "$cr_name" | indent
fi

client_key=
keys_file=$(printf '%s\n' "${proxy_env[@]}" | sed -n 's/^MIDDLEWARE_API_KEYS_FILE=//p')
[ -n "$keys_file" ] && client_key=$(grep -m1 . "$keys_file" | tr -d '[:space:]')

# ask LABEL: one streamed Messages API request; prints the events and who served it.
served=
ask() {
  local out=$demo_dir/run/$1.sse
  say "\$ curl -N $proxy/v1/messages -H 'x-api-key: ${client_key:0:8}…' -d '{\"model\":\"claude-sonnet-4-5\",\"stream\":true,…}'"
  curl -sS -N "$proxy/v1/messages" \
    -H 'content-type: application/json' -H 'anthropic-version: 2023-06-01' \
    ${client_key:+-H "x-api-key: $client_key"} \
    -d '{"model":"claude-sonnet-4-5","max_tokens":64,"stream":true,"messages":[{"role":"user","content":"Hello"}]}' |
    tee "$out" | grep '^event:' | tr '\n' ' ' | sed 's/event: //g; s/^/    events: /'
  echo
  local id
  id=$(grep -o 'served by account [0-9a-f-]*' "$out" | head -n1 | awk '{print $4}')
  [ -n "$id" ] || { say "no answer text in the stream:"; indent <"$out"; return 1; }
  served=$id
  local name
  name=$(redis hget "claude:account:$id" name)
  say "answer text: \"served by account $id\""
  say "→ served by ${name%% *} (fixture account \"$name\")"
}

step "6/8 streaming a Messages API request through the proxy"
ask first
first=$served
tail -n 1 "$logs/proxy.log" | indent

step "7/8 making that account fail: the stand-in answers 429 for it from now on"
first_name=$(redis hget "claude:account:$first" name)
curl -fsS "http://127.0.0.1:$relay_port/__stand-in/script" -H 'content-type: application/json' \
  -d "{\"account\":\"$first\",\"behaviour\":\"rate_limited\",\"reset_in_secs\":3600,\"times\":\"always\"}" >/dev/null
say "scripted: account ${first_name%% *} → 429 rate_limit_error (reset in 1 h)"
curl -fsS -X DELETE "http://127.0.0.1:$relay_port/__stand-in/requests" >/dev/null
ask second
second=$served
second_name=$(redis hget "claude:account:$second" name)
say "the backend saw (from the stand-in's record):"
curl -fsS "http://127.0.0.1:$relay_port/__stand-in/requests" | grep -o '"api_key":"[^"]*"\|"status":[0-9]*' |
  paste -d' ' - - | sed 's/"api_key":"//; s/"//; s/"status":/→ /' | while read -r key _ status; do
  say "  $(redis hget "claude:account:$key" name | awk '{print $1}') ($key) → $status"
done
tail -n 1 "$logs/proxy.log" | indent
[ "$second" != "$first" ] || die "the failover did not happen: ${first_name%% *} served again"
say "failover: ${first_name%% *} was rate limited (429), the same request was retried on ${second_name%% *} and streamed; the client saw no error"
say "${first_name%% *} now cools down; its cooldown is shared with every replica through Redis:"
redis --scan --pattern 'claude-middleware:*' | head -n 5 | indent

say "\$ curl $proxy/metrics   (a few of its series)"
curl -fsS "$proxy/metrics" | grep -E '^claude_middleware_(retries_total|pool_accounts|cooling_accounts|account_healthy)' | head -n 8 | indent

step "8/8 done in $((SECONDS - started)) s; everything keeps running for you to try"
cat <<EOF
    proxy:     $proxy   (logs: $logs/proxy.log)
               curl -N $proxy/v1/messages -H 'x-api-key: $client_key' \\
                 -H 'content-type: application/json' \\
                 -d '{"model":"claude-sonnet-4-5","max_tokens":64,"stream":true,"messages":[{"role":"user","content":"Hi"}]}'
               curl $proxy/metrics
    kubectl:   export KUBECONFIG=$cp_dir/kubeconfig; $cp_dir/bin/kubectl get cmw -A
    operator:  http://127.0.0.1:$operator_port/metrics   (logs: $logs/operator.log)

    Clean up (stops the proxy, operator, stand-in relay, redis-server and the control plane):
        make demo-clean        (or: scripts/demo.sh clean)
EOF

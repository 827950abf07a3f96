#!/usr/bin/env bash
# Operator at scale: for N in $BENCH_OPERATOR_COUNTS (default "50 200 500") ClaudeMiddleware
# CRs on the local control plane (tests/controlplane/up.sh), the time until every CR has
# its children (Deployment, Service, NetworkPolicy) and a status for its generation, the
# operator's peak RSS (VmHWM), and the writes in a steady-state window afterwards.
#
# Each N runs in its own namespace with a fresh operator watching only that namespace, so
# the peak RSS is that of an operator holding N CRs. Writes one JSON file per N under $RAW.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/bench/lib.sh"
BIN=${BIN:-$ROOT/target/release}
RAW=${RAW:-$ROOT/target/bench/raw}
COUNTS=${BENCH_OPERATOR_COUNTS:-50 200 500}
# The 60 s window is taken for the largest N only, shorter ones for the others (time budget).
STEADY_LARGEST=${BENCH_STEADY_SECONDS:-60}
STEADY_OTHERS=${BENCH_STEADY_SECONDS_SMALL:-10}
CONVERGE_TIMEOUT=${BENCH_CONVERGE_TIMEOUT:-300}
CP_DIR=${BENCH_CP_DIR:-$ROOT/target/bench/controlplane}
WORK=$(mktemp -d /tmp/cmw-bench-operator.XXXXXX)
mkdir -p "$RAW"

cleanup() {
  bench_cleanup
  "$ROOT/tests/controlplane/down.sh" "$CP_DIR" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

log "starting the local control plane in $CP_DIR"
# A /16 for Services: the default /24 of the test control plane holds ~250, we create 750.
CLAUDE_MIDDLEWARE_SERVICE_CIDR=${CLAUDE_MIDDLEWARE_SERVICE_CIDR:-10.96.0.0/16} \
  "$ROOT/tests/controlplane/up.sh" "$CP_DIR" >&2
export KUBECONFIG=$CP_DIR/kubeconfig
k() { "$CP_DIR/bin/kubectl" --request-timeout=60s "$@"; }
k apply -f "$ROOT/crds/claudemiddleware.yaml" >/dev/null
k wait --for condition=established --timeout=60s crd/claudemiddlewares.middleware.claude-relay.io >/dev/null

children_kinds=deployments.apps,services,networkpolicies.networking.k8s.io
# Writes that count against "zero in steady state": to CRs and every kind of child, by any
# client (the API server's counters have no client label). Leases, Events and the API
# server's own IP-allocator repairs are reported but not counted.
operator_resources='^(claudemiddlewares|deployments|services|networkpolicies|ingresses|horizontalpodautoscalers|poddisruptionbudgets)/'

selector=app.kubernetes.io/managed-by=claude-middleware-operator

# cr_yaml NS N: N minimal CRs as one multi-document YAML.
cr_yaml() {
  local ns=$1 n=$2 i
  for i in $(seq -w 1 "$n"); do
    cat <<YAML
---
apiVersion: middleware.claude-relay.io/v1alpha1
kind: ClaudeMiddleware
metadata: {name: relay-$i, namespace: $ns}
spec:
  target: {url: "http://claude-relay:3001"}
  redis: {host: redis}
YAML
  done
}

# converged NS N: prints "crs_with_status children" and succeeds when both are complete
# (N CRs with status.observedGeneration == metadata.generation, 3 children each).
progress() {
  local ns=$1 crs children
  crs=$(k get claudemiddlewares -n "$ns" -o json |
    jq '[.items[] | select(.status.observedGeneration != null and .status.observedGeneration == .metadata.generation)] | length')
  children=$(k get "$children_kinds" -n "$ns" -l "$selector" -o name | wc -l)
  echo "$crs $children"
}

# Every write request the API server counted, by resource and verb (a snapshot of the
# apiserver_request_total counters).
write_counters() { k get --raw /metrics | python3 "$ROOT/bench/apiserver_writes.py"; }

# Name and resourceVersion of every CR and child in NS.
versions() {
  k get "claudemiddlewares,$children_kinds" -n "$1" \
    -o jsonpath='{range .items[*]}{.kind}/{.metadata.name} {.metadata.resourceVersion}{"\n"}{end}' | sort
}

# delta BEFORE AFTER: the counters that grew, and by how much.
delta() {
  python3 - "$1" "$2" <<'PY'
import json, sys
before, after = (json.load(open(p)) for p in sys.argv[1:3])
print(json.dumps({k: v - before.get(k, 0) for k, v in after.items() if v - before.get(k, 0) > 0}))
PY
}

largest=$(echo $COUNTS | tr ' ' '\n' | sort -n | tail -1)
for n in $COUNTS; do
  ns=bench-$n-$(date +%s)
  k create namespace "$ns" >/dev/null
  metrics_port=$(free_port)
  # Leader election off: one replica, and its Lease renewals would blur the write count.
  "$BIN/claude-middleware-operator" run --namespace "$ns" --leader-election=false \
    --metrics-addr "127.0.0.1:$metrics_port" --log-format json >"$WORK/operator-$n.log" 2>&1 &
  op=$!
  BENCH_PIDS+=("$op")
  wait_http "http://127.0.0.1:$metrics_port/readyz" 30 || die "operator did not start (see $WORK/operator-$n.log)"
  cr_yaml "$ns" "$n" >"$WORK/crs-$n.yaml"

  log "operator: creating $n CRs in $ns"
  write_counters >"$WORK/writes-start.json"
  t0=$(date +%s.%N)
  k create -f "$WORK/crs-$n.yaml" >/dev/null
  t_created=$(date +%s.%N)
  deadline=$((SECONDS + CONVERGE_TIMEOUT))
  while :; do
    read -r crs children < <(progress "$ns")
    if [ "$crs" -ge "$n" ] && [ "$children" -ge $((3 * n)) ]; then break; fi
    [ $SECONDS -lt $deadline ] || die "not converged after ${CONVERGE_TIMEOUT}s: $crs/$n statuses, $children/$((3 * n)) children"
    sleep 0.5
  done
  t_converged=$(date +%s.%N)
  write_counters >"$WORK/writes-converged.json"
  log "operator: $n CRs converged in $(echo "$t_converged - $t0" | bc) s"

  # Let the controller manager finish its own work (ReplicaSets, Deployment status) and
  # the operator react to it, then count writes in a quiet window.
  window=$([ "$n" = "$largest" ] && echo "$STEADY_LARGEST" || echo "$STEADY_OTHERS")
  # Quiet = no write by anyone to CRs, children, ReplicaSets or Pods for 10 s (the controller
  # manager creates a ReplicaSet and a Pod per Deployment and updates their status for a
  # while after the operator has converged; the operator reacts to those changes).
  settle_deadline=$((SECONDS + ${BENCH_SETTLE_MAX_SECONDS:-240}))
  previous=""
  quiet_since=$SECONDS
  while [ $((SECONDS - quiet_since)) -lt "${BENCH_QUIET_SECONDS:-10}" ] && [ $SECONDS -lt $settle_deadline ]; do
    sleep 2
    current=$(write_counters | jq '[to_entries[] | select(.key | test("^(claudemiddlewares|deployments|services|networkpolicies|replicasets|pods)/")) | .value] | add')
    if [ "$current" != "$previous" ]; then quiet_since=$SECONDS; previous=$current; fi
  done
  settled_s=$(echo "$(date +%s.%N) - $t_converged" | bc)
  log "operator: quiet ${settled_s} s after converging"
  versions "$ns" >"$WORK/versions-before"
  write_counters >"$WORK/writes-before.json"
  reconciles_before=$(curl -fsS "http://127.0.0.1:$metrics_port/metrics" | awk '/^claude_middleware_operator_reconciles_total / {print $2}')
  log "operator: steady-state window of ${window}s for N=$n"
  sleep "$window"
  versions "$ns" >"$WORK/versions-after"
  write_counters >"$WORK/writes-after.json"
  reconciles_after=$(curl -fsS "http://127.0.0.1:$metrics_port/metrics" | awk '/^claude_middleware_operator_reconciles_total / {print $2}')
  changed=$(comm -13 "$WORK/versions-before" "$WORK/versions-after" | wc -l)

  delta "$WORK/writes-before.json" "$WORK/writes-after.json" >"$WORK/writes-delta.json"
  delta "$WORK/writes-start.json" "$WORK/writes-converged.json" >"$WORK/writes-converge.json"
  jq -n --argjson n "$n" --arg t0 "$t0" --arg created "$t_created" --arg converged "$t_converged" \
    --argjson hwm "$(hwm_kib "$op")" --argjson rss "$(rss_kib "$op")" --argjson window "$window" \
    --argjson changed "$changed" --argjson writes "$(cat "$WORK/writes-delta.json")" \
    --argjson converge_writes "$(cat "$WORK/writes-converge.json")" \
    --arg mine "$operator_resources" --arg settled "$settled_s" --arg rb "${reconciles_before:-0}" --arg ra "${reconciles_after:-0}" \
    '{n: $n,
      create_s: (($created | tonumber) - ($t0 | tonumber)),
      converge_s: (($converged | tonumber) - ($t0 | tonumber)),
      peak_rss_kib: $hwm, rss_kib_after: $rss,
      steady_window_s: $window, quiet_after_converged_s: ($settled | tonumber),
      steady_changed_objects: $changed,
      steady_writes_by_resource: $writes,
      steady_writes: ([$writes | to_entries[] | select(.key | test($mine)) | .value] | add // 0),
      converge_writes_by_resource: $converge_writes,
      steady_reconciles: (($ra | tonumber) - ($rb | tonumber))}' >"$RAW/operator-$n.json"
  cat "$RAW/operator-$n.json" >&2
  stop_pid "$op"
  # Leave the namespace for the control plane's teardown: deleting 4 × N objects now
  # would load the machine during the next N.
done

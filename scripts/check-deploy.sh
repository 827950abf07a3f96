#!/usr/bin/env bash
# Checks deploy/ against the real API server of a running local control plane:
#  1. deploy/crd/ is an exact copy of crds/ (kustomize cannot reach ../crds);
#  2. `kubectl apply --server-side --dry-run=server -k deploy/` and every
#     example pass (CRD installed first, as a user would);
#  3. deploy/ applied for real, the operator binary runs with a kubeconfig that
#     authenticates as the deploy/ ServiceAccount (TokenRequest token) and
#     reconciles both examples: children created, `kubectl scale cmw` followed,
#     a switched-off Ingress pruned, a missing Secret reported as an Event, its
#     Lease taken.
#     So the RBAC is enough; and verbs outside it are refused, so it is not
#     cluster-admin.
#
#   scripts/check-deploy.sh [CONTROLPLANE_DIR]
# (default: $CLAUDE_MIDDLEWARE_CONTROLPLANE, as set by scripts/test.sh).
# Binaries come from ${CMW_BIN_DIR:-target/debug} (built by the test command).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
. scripts/lib/common.sh

cp_dir=${1:-${CLAUDE_MIDDLEWARE_CONTROLPLANE:-}}
[ -n "$cp_dir" ] && [ -s "$cp_dir/kubeconfig" ] || die "usage: $0 CONTROLPLANE_DIR (a running tests/controlplane/up.sh DIR)"
bin_dir=${CMW_BIN_DIR:-$root/target/debug}
operator_bin=$bin_dir/claude-middleware-operator
[ -x "$operator_bin" ] || die "$operator_bin missing: cargo build --workspace --bins"
k() { "$cp_dir/bin/kubectl" --kubeconfig "$cp_dir/kubeconfig" "$@"; }

work=$(mktemp -d "${TMPDIR:-/tmp}/cmw-check-deploy.XXXXXX")
operator_pid=
cleanup() {
  local rc=$?
  [ -n "$operator_pid" ] && kill -TERM "$operator_pid" 2>/dev/null && wait "$operator_pid" 2>/dev/null
  if [ "$rc" -ne 0 ] && [ -s "$work/operator.log" ]; then
    echo "--- operator log (last 40 lines)"; tail -n 40 "$work/operator.log"
  fi
  k delete namespace claude-relay --wait=false --ignore-not-found >/dev/null 2>&1 || true
  k -n claude-middleware-system delete lease "check-deploy-$$" --ignore-not-found >/dev/null 2>&1 || true
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT

step "deploy/crd/claudemiddleware.yaml is a copy of crds/claudemiddleware.yaml, which is current"
# The README's regeneration command (the operator's own test checks crds/ too).
if [ -z "${CMW_BIN_DIR:-}" ]; then
  target/debug/claude-middleware-operator crd >"$work/crd.yaml"
else
  "$operator_bin" crd >"$work/crd.yaml"
fi
cmp -s "$work/crd.yaml" crds/claudemiddleware.yaml ||
  die "crds/claudemiddleware.yaml is stale: target/debug/claude-middleware-operator crd > crds/claudemiddleware.yaml"
cmp -s crds/claudemiddleware.yaml deploy/crd/claudemiddleware.yaml ||
  die "deploy/crd/claudemiddleware.yaml is stale: cp crds/claudemiddleware.yaml deploy/crd/claudemiddleware.yaml"
say ok

step "server-side dry run of deploy/ and deploy/examples/"
# A previous run's claude-relay namespace may still be terminating.
k wait --for=delete namespace/claude-relay --timeout=90s >/dev/null 2>&1 || true
# A dry run cannot create the namespace its namespaced objects go in, and the
# examples need the CRD: install those two first, as `kubectl apply -k` would.
k apply --server-side --force-conflicts -f deploy/namespace.yaml -f deploy/crd/claudemiddleware.yaml >/dev/null
wait_for 60 "the CRD to be Established" crd_established claudemiddlewares.middleware.claude-relay.io
k apply --server-side --force-conflicts --dry-run=server -k deploy/ >"$work/dry-run.out"
sed 's/^/    /' "$work/dry-run.out"
grep -q 'deployment.apps/claude-middleware-operator serverside-applied (server dry run)' "$work/dry-run.out"
k create namespace claude-relay --dry-run=client -o yaml | k apply --server-side -f - >/dev/null
for example in deploy/examples/*.yaml; do
  k apply --server-side --dry-run=server -f "$example" | sed 's/^/    /'
done

step "kubectl apply --server-side -k deploy/ (for real)"
k apply --server-side --force-conflicts -k deploy/ >/dev/null
# The README's install command, as a user runs it (a no-op now).
k apply --server-side -k deploy/ | sed 's/^/    /'
k wait --for=condition=Established crd/claudemiddlewares.middleware.claude-relay.io | sed 's/^/    /'

# The namespace enforces the "restricted" Pod Security Standard, so the pod the
# ReplicaSet controller makes exists only if the operator's pod is hardened
# (non-root, no privilege escalation, no capabilities, seccomp RuntimeDefault).
operator_pod() { k -n claude-middleware-system get pods -l app.kubernetes.io/name=claude-middleware-operator -o name | grep -q .; }
wait_for 60 "the operator's pod (admitted under Pod Security restricted)" operator_pod ||
  { k -n claude-middleware-system get events | tail -n 5; die "the operator's pod was not admitted"; }
say "the operator's pod is admitted in a namespace enforcing Pod Security \"restricted\" (it stays Pending: no kubelet)"

step "Argo CD: the README's argocd-cm patch applies with kubectl"
k create namespace argocd --dry-run=client -o yaml | k apply --server-side -f - >/dev/null
k -n argocd create configmap argocd-cm --dry-run=client -o yaml | k apply --server-side -f - >/dev/null
kubectl() { k "$@"; }
kubectl -n argocd patch configmap argocd-cm --type merge --patch-file deploy/gitops/argocd/argocd-cm-patch.yaml | sed 's/^/    /'
k -n argocd get configmap argocd-cm -o go-template='{{index .data "resource.customizations.health.middleware.claude-relay.io_ClaudeMiddleware"}}' | cmp -s - deploy/gitops/argocd/health.lua ||
  die "argocd-cm does not carry health.lua after the patch"
k delete namespace argocd --wait=false >/dev/null
say "argocd-cm carries health.lua"

step "a kubeconfig of the ServiceAccount claude-middleware-operator (TokenRequest)"
token=$(k -n claude-middleware-system create token claude-middleware-operator --duration=1h)
server=$(k config view --raw --minify -o jsonpath='{.clusters[0].cluster.server}')
k config view --raw --minify -o jsonpath='{.clusters[0].cluster.certificate-authority-data}' | base64 -d >"$work/ca.crt"
sa_kubeconfig=$work/sa.kubeconfig
kk() { "$cp_dir/bin/kubectl" --kubeconfig "$sa_kubeconfig" "$@"; }
kk config set-cluster local --server="$server" --certificate-authority="$work/ca.crt" --embed-certs >/dev/null
kk config set-credentials operator --token="$token" >/dev/null
kk config set-context operator --cluster=local --user=operator >/dev/null
kk config use-context operator >/dev/null
[ "$(kk auth whoami -o jsonpath='{.status.userInfo.username}')" = "system:serviceaccount:claude-middleware-system:claude-middleware-operator" ] ||
  die "the token does not authenticate as the ServiceAccount"
say "authenticates as system:serviceaccount:claude-middleware-system:claude-middleware-operator"

step "the role is least privilege: requests outside it are refused"
refused() {
  local out
  if out=$(kk "$@" 2>&1); then die "allowed, but must be refused: kubectl $*"; fi
  grep -qi forbidden <<<"$out" || die "kubectl $* failed, but not with Forbidden: $out"
  say "refused: kubectl $*"
}
refused get configmaps -A
refused -n kube-system create secret generic stolen --from-literal=a=b
refused -n kube-system delete deployment anything
refused get nodes
refused create clusterrolebinding escalate --clusterrole=cluster-admin --user=me
cannot() { if kk auth can-i "$@" >/dev/null 2>&1; then die "can-i $*: yes, must be no"; fi; }
can() { kk auth can-i "$@" >/dev/null 2>&1 || die "can-i $*: no, must be yes"; }
cannot '*' '*' -A
cannot delete deployments -A
cannot delete services -A
cannot update claudemiddlewares -A
cannot delete claudemiddlewares -A
cannot create secrets -A
cannot create leases.coordination.k8s.io -n default
cannot delete leases.coordination.k8s.io -n claude-middleware-system
can patch claudemiddlewares --subresource=status -A
can create leases.coordination.k8s.io -n claude-middleware-system
say "can-i: no to '*' '*', delete deployments/services/claudemiddlewares, update claudemiddlewares, create secrets, leases outside its namespace"

step "the operator, as that ServiceAccount, reconciles the examples (README commands)"
# As deployed: watching every namespace. The examples go to their own
# namespace, claude-relay, which this check deletes afterwards.
metrics_port=$(free_port)
KUBECONFIG=$sa_kubeconfig POD_NAMESPACE=claude-middleware-system \
  LEASE_NAME=check-deploy-$$ POD_NAME=check-deploy-$$ LEADER_ELECTION=true \
  METRICS_ADDR=127.0.0.1:$metrics_port RUST_LOG=info \
  "$operator_bin" run >"$work/operator.log" 2>&1 &
operator_pid=$!
kubectl() { k "$@"; }
kubectl apply --server-side -f deploy/examples/minimal.yaml | sed 's/^/    /'
kubectl apply --server-side -f deploy/examples/production.yaml | sed 's/^/    /'
children() {
  local ns=$1 name=$2 kind
  shift 2
  for kind in "$@"; do k -n "$ns" get "$kind" "$name" >/dev/null 2>&1 || return 1; done
}
wait_for 90 "the children of relay-production" children claude-relay relay-production \
  deployment service networkpolicy ingress horizontalpodautoscaler poddisruptionbudget
wait_for 90 "the children of relay" children claude-relay relay deployment service networkpolicy
say "relay-production: Deployment, Service, NetworkPolicy, Ingress, HPA and PDB; relay: Deployment, Service, NetworkPolicy"
status_seen() { [ -n "$(k -n claude-relay get cmw relay-production -o jsonpath='{.status.observedGeneration}')" ]; }
wait_for 60 "the status of relay-production" status_seen
say "status written: $(k -n claude-relay get cmw relay-production -o jsonpath='{range .status.conditions[*]}{.type}={.status} {end}')"
kubectl get cmw -A | sed 's/^/    /'
kubectl get deploy,svc,netpol,ingress,hpa,pdb -A -l app.kubernetes.io/managed-by=claude-middleware-operator >/dev/null
kubectl -n claude-relay describe cmw relay-production >/dev/null
kubectl -n claude-relay get events --field-selector involvedObject.name=relay-production >/dev/null
kubectl -n claude-relay get networkpolicy relay-production -o yaml >/dev/null
holder=$(k -n claude-middleware-system get lease "check-deploy-$$" -o jsonpath='{.spec.holderIdentity}')
[ "$holder" = "check-deploy-$$" ] || die "Lease check-deploy-$$ held by '$holder'"
say "leader Lease taken in claude-middleware-system"

kubectl -n claude-relay scale cmw relay --replicas=3 | sed 's/^/    /'
scaled() { [ "$(k -n claude-relay get deployment relay -o jsonpath='{.spec.replicas}')" = 3 ]; }
wait_for 60 "deployment/relay to follow kubectl scale cmw" scaled
say "kubectl scale cmw relay --replicas=3 → deployment/relay has 3 replicas (and a PDB: $(k -n claude-relay get pdb relay -o jsonpath='{.spec.maxUnavailable}') max unavailable)"

k -n claude-relay patch cmw relay-production --type=merge -p '{"spec":{"ingress":{"enabled":false}}}' >/dev/null
ingress_gone() { ! k -n claude-relay get ingress relay-production >/dev/null 2>&1; }
wait_for 60 "the Ingress to be pruned" ingress_gone
say "Ingress switched off → pruned (delete)"

cat <<YAML | k apply --server-side -f - >/dev/null
apiVersion: middleware.claude-relay.io/v1alpha1
kind: ClaudeMiddleware
metadata: {name: missing-secret, namespace: claude-relay}
spec:
  target: {url: "http://claude-relay:3001"}
  redis: {host: redis, passwordSecretRef: {name: does-not-exist, key: password}}
YAML
event_seen() { k -n claude-relay get events.events.k8s.io --field-selector regarding.name=missing-secret -o name | grep -q .; }
wait_for 60 "a Warning Event about missing-secret" event_seen
say "missing Secret → Event recorded ($(k -n claude-relay get events.events.k8s.io --field-selector regarding.name=missing-secret -o jsonpath='{.items[0].reason}'))"
# An RBAC refusal reads 'User "system:serviceaccount:…" cannot VERB resource …'
# (other "forbidden" errors, e.g. writing into a terminating namespace left by
# earlier tests, are not about the role).
rbac_denied='cannot [a-z]+ resource'
if grep -Eq "$rbac_denied" "$work/operator.log"; then
  grep -E "$rbac_denied" "$work/operator.log" | head -5
  die "the operator was refused something it needs (see above)"
fi
say "no RBAC refusal in the operator's log"
echo
echo "check-deploy: ok"

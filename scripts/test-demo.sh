#!/usr/bin/env bash
# The demo end to end, as a user runs it (`make demo`), twice in a row (the
# second run must clear up after the first), in a directory of its own (its
# own control plane, separate from the test run's). Asserts the key lines of
# its output, then `make demo-clean` and that nothing it started still runs.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/common.sh

base=$(mktemp -d "${TMPDIR:-/tmp}/cmw-test-demo.XXXXXX")
export CLAUDE_MIDDLEWARE_DEMO_DIR=$base/demo
cleanup() {
  local rc=$?
  [ "$rc" -eq 0 ] || { echo "--- demo logs"; tail -n 20 "$base"/demo/logs/*.log 2>/dev/null || true; }
  make demo-clean >/dev/null 2>&1 || true
  rm -rf "$base"
  exit "$rc"
}
trap cleanup EXIT

expect() {
  local log=$1 pattern=$2 what=$3
  grep -Eq -- "$pattern" "$log" || die "the demo's output lacks $what (/$pattern/)"
  say "ok: $what"
}

check_run() {
  local log=$1
  expect "$log" 'deployment.apps/claude-middleware-operator serverside-applied' "deploy/ applied with kubectl apply -k"
  expect "$log" 'claudemiddleware.middleware.claude-relay.io/relay-production serverside-applied' "the production example applied"
  expect "$log" '^ +claude-relay +relay-production +(True|False) +[0-9]+/[0-9]+ +http://relay-production.claude-relay.svc:8080' "kubectl get cmw with status and endpoint"
  expect "$log" 'horizontalpodautoscaler.autoscaling/relay-production' "the HPA among the children"
  expect "$log" 'poddisruptionbudget.policy/relay-production' "the PDB among the children"
  expect "$log" 'TARGET_URL=http://claude-relay.claude-relay.svc:3001 +\(overridden locally' "the rendered TARGET_URL, overridden for the local run"
  expect "$log" 'REDIS_PASSWORD=<secret relay-redis/password' "REDIS_PASSWORD resolved from its Secret"
  expect "$log" 'MIDDLEWARE_API_KEYS_FILE=/etc/claude-middleware/api-keys/keys +\(overridden locally' "the API-keys file mount, written locally"
  expect "$log" 'events: message_start .*content_block_delta .*message_stop' "a streamed answer, start to stop"
  expect "$log" '→ served by a3 \(fixture account "a3 priority"\)' "the first request served by a3 (the best priority)"
  expect "$log" 'a3 \([0-9a-f-]+\) → 429' "the backend's 429 for a3"
  expect "$log" 'failover: a3 was rate limited \(429\), the same request was retried on a[0-9]' "the failover to another account"
  expect "$log" 'make demo-clean' "how to clean up"
}

step "make demo (first run)"
start=$SECONDS
make demo >"$base/run1.log" 2>&1 || { tail -n 40 "$base/run1.log"; die "make demo failed"; }
say "took $((SECONDS - start)) s"
check_run "$base/run1.log"

step "make demo (second run: stops the first run's leftovers, starts afresh)"
start=$SECONDS
make demo >"$base/run2.log" 2>&1 || { tail -n 40 "$base/run2.log"; die "the second make demo failed"; }
say "took $((SECONDS - start)) s"
check_run "$base/run2.log"

step "make demo-clean"
pids=$(cat "$CLAUDE_MIDDLEWARE_DEMO_DIR"/pids/* "$CLAUDE_MIDDLEWARE_DEMO_DIR"/controlplane/pids/* 2>/dev/null || true)
[ -n "$pids" ] || die "no pid files under $CLAUDE_MIDDLEWARE_DEMO_DIR"
make demo-clean | sed 's/^/    /'
for pid in $pids; do
  if alive "$pid" && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q 'claude-middleware\|stand-in-relay\|redis-server\|kube-\|etcd'; then
    die "pid $pid ($(tr '\0' ' ' <"/proc/$pid/cmdline")) still runs after make demo-clean"
  fi
done
[ ! -e "$CLAUDE_MIDDLEWARE_DEMO_DIR" ] || die "$CLAUDE_MIDDLEWARE_DEMO_DIR still exists"
say "ok: every process stopped, $CLAUDE_MIDDLEWARE_DEMO_DIR removed"
echo
echo "test-demo: ok"

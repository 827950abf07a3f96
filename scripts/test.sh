#!/usr/bin/env bash
# The test command (README: `make test`). On a fresh machine it installs what
# the tests need: redis-server and prometheus (with promtool) via apt, and the
# control-plane binaries built from the public Go modules and cached outside
# the repo.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

step() { printf '\n==> %s\n' "$*"; }

if ! command -v redis-server >/dev/null 2>&1; then
  step "installing redis-server (apt)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq redis-server >/dev/null
  # The package starts a system-wide instance; the tests start their own.
  (service redis-server stop || systemctl stop redis-server) >/dev/null 2>&1 || true
fi

if ! command -v prometheus >/dev/null 2>&1 || ! command -v promtool >/dev/null 2>&1; then
  step "installing prometheus and promtool (apt)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends prometheus >/dev/null
  # The package starts a system-wide instance; the tests start their own.
  (service prometheus stop || systemctl stop prometheus) >/dev/null 2>&1 || true
fi

step "control plane binaries"
tests/controlplane/build.sh >/dev/null

step "starting the local control plane"
export CLAUDE_MIDDLEWARE_CONTROLPLANE="${CLAUDE_MIDDLEWARE_CONTROLPLANE:-${TMPDIR:-/tmp}/claude-middleware-controlplane-test-$$}"
cleanup() { tests/controlplane/down.sh "$CLAUDE_MIDDLEWARE_CONTROLPLANE" >/dev/null 2>&1 || true; }
trap cleanup EXIT
tests/controlplane/up.sh "$CLAUDE_MIDDLEWARE_CONTROLPLANE"

step "building"
cargo build --workspace --bins --locked

step "deploy/, packaging, GitOps, monitoring and README checks"
scripts/check-packaging.py
scripts/check-monitoring.py
scripts/check-gitops.sh
scripts/check-readme.py

step "cargo test"
# The cluster end-to-end tests run in their own step below, on their own cluster.
CLAUDE_MIDDLEWARE_CLUSTER_SKIPPED="they run in the test command's 'cluster end to end' step" \
  cargo test --workspace --locked 2>&1 | tee "${TMPDIR:-/tmp}/claude-middleware-test.log"

step "cluster end to end: a real kubelet, kube-proxy and containerd (tests/cluster/up.sh)"
# Needs root (containerd, the kubelet, a bridge) and the Debian packages below;
# otherwise skipped, saying why.
cluster_skip=""
if [ "$(id -u)" -ne 0 ]; then
  cluster_skip="not root: containerd and the kubelet need root"
elif [ ! -d /sys/fs/cgroup/memory ] && [ ! -f /sys/fs/cgroup/cgroup.controllers ]; then
  cluster_skip="no cgroup filesystem at /sys/fs/cgroup"
else
  source tests/cluster/lib.sh
  if [ -n "$(cluster_missing_tools)" ]; then
    if command -v apt-get >/dev/null 2>&1; then
      echo "installing $CLUSTER_PACKAGES (apt)"
      export DEBIAN_FRONTEND=noninteractive
      apt-get update -qq && apt-get install -y -qq $CLUSTER_PACKAGES >/dev/null || true
    fi
    [ -z "$(cluster_missing_tools)" ] || cluster_skip="missing $(cluster_missing_tools), and apt-get could not install them"
  fi
fi
if [ -n "$cluster_skip" ]; then
  echo "cluster end-to-end tests SKIPPED: $cluster_skip"
else
  cluster_dir="${TMPDIR:-/tmp}/claude-middleware-cluster-test-$$"
  cleanup() {
    tests/cluster/down.sh "$cluster_dir" >/dev/null 2>&1 || true
    tests/controlplane/down.sh "$CLAUDE_MIDDLEWARE_CONTROLPLANE" >/dev/null 2>&1 || true
  }
  tests/cluster/build.sh >/dev/null
  cluster_start=$(date +%s)
  tests/cluster/up.sh "$cluster_dir"
  CLAUDE_MIDDLEWARE_CLUSTER="$cluster_dir" cargo test --locked -p claude-middleware-tests --test cluster_e2e \
    -- --nocapture 2>&1 | tee -a "${TMPDIR:-/tmp}/claude-middleware-test.log"
  tests/cluster/down.sh "$cluster_dir"
  echo "cluster end to end: $(( $(date +%s) - cluster_start ))s (up, tests, down)"
fi

step "fuzz targets: a short smoke run of each (make fuzz runs them longer)"
make fuzz FUZZ_SECONDS=5

step "deploy/ against the API server: dry runs, RBAC as the operator's ServiceAccount"
# After cargo test, so that the operator it runs (watching every namespace)
# never meets the CRs of the operator tests.
scripts/check-deploy.sh "$CLAUDE_MIDDLEWARE_CONTROLPLANE"

step "the demo, end to end (make demo twice, make demo-clean)"
scripts/test-demo.sh

# One closing line with the totals of every cargo test binary above.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "\ntests: %d passed, %d failed\n", p, f }' "${TMPDIR:-/tmp}/claude-middleware-test.log"

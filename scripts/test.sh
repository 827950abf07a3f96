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
cargo test --workspace --locked 2>&1 | tee "${TMPDIR:-/tmp}/claude-middleware-test.log"

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

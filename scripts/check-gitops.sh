#!/usr/bin/env bash
# Checks deploy/gitops/: the Argo CD health check gives Healthy, Progressing and
# Degraded on the right statuses (its Lua test cases, run with Debian's Lua
# 5.4, installed when missing), the copy of it in argocd-cm-patch.yaml is
# current, and the Argo CD / Flux manifests parse and say what the README
# promises (ignoreDifferences on spec.replicas, Flux wait and healthChecks).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/common.sh

step "Argo CD health check (deploy/gitops/argocd/health.lua)"
ensure_tool lua5.4 lua5.4
lua5.4 deploy/gitops/argocd/health_test.lua | sed "s/^/    /"

step "GitOps manifests"
scripts/lib/ensure-pyyaml.sh
python3 - <<'PY'
import sys, yaml
root = "deploy/gitops"
def load_all(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d]

patch = load_all(f"{root}/argocd/argocd-cm-patch.yaml")[0]
key = "resource.customizations.health.middleware.claude-relay.io_ClaudeMiddleware"
embedded = patch["data"][key]
with open(f"{root}/argocd/health.lua") as f:
    lua = f.read()
if embedded != lua:
    sys.exit(f"{root}/argocd/argocd-cm-patch.yaml has a stale copy of health.lua; regenerate it (see the file's header)")
print("    argocd-cm-patch.yaml carries health.lua verbatim")

apps = {d["metadata"]["name"]: d for d in load_all(f"{root}/argocd/application.yaml")}
proxies = apps["claude-middleware-proxies"]["spec"]
ignored = [(i["group"], i["kind"], p) for i in proxies["ignoreDifferences"] for p in i.get("jsonPointers", [])]
assert ("middleware.claude-relay.io", "ClaudeMiddleware", "/spec/replicas") in ignored, ignored
assert "RespectIgnoreDifferences=true" in proxies["syncPolicy"]["syncOptions"]
assert apps["claude-middleware-operator"]["spec"]["source"]["path"] == "deploy"
print("    application.yaml: ignoreDifferences /spec/replicas of ClaudeMiddleware, RespectIgnoreDifferences")

flux = {d["metadata"]["name"]: d for d in load_all(f"{root}/flux/kustomizations.yaml")}
op = flux["claude-middleware-operator"]["spec"]
assert op["wait"] is True and op["path"] == "./deploy", op
px = flux["claude-middleware-proxies"]["spec"]
assert {"name": "claude-middleware-operator"} in px["dependsOn"]
checks = px["healthChecks"]
assert any(c["kind"] == "ClaudeMiddleware" and c["apiVersion"] == "middleware.claude-relay.io/v1alpha1" for c in checks), checks
print("    flux/kustomizations.yaml: operator with wait, proxies dependsOn it with a ClaudeMiddleware healthCheck")
PY
echo
echo "check-gitops: ok"

#!/usr/bin/env python3
"""Checks what cannot run here (no Docker engine, no GitHub runner):

- Dockerfile.proxy / Dockerfile.operator: multi-stage; every COPY source exists
  in the repository and survives .dockerignore; `cargo build -p PKG --bin BIN`
  names a package and one of its binaries (`cargo metadata`); the binary copied
  into the runtime stage is that one; the runtime is distroless, non-root, with
  no shell; EXPOSE is the port the program listens on by default.
- deploy/docker-compose.yml parses and sets only variables the proxy reads.
- .github/workflows/release.yml parses, builds both Dockerfiles for
  linux/amd64 and linux/arm64 with the promised tags, and renders deploy/.

Run from anywhere: python3 scripts/check-packaging.py
"""

import fnmatch
import json
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
try:
    import yaml
except ImportError:  # a fresh machine: Debian's python3-yaml, else pip
    subprocess.run([os.path.join(ROOT, "scripts/lib/ensure-pyyaml.sh")], check=True)
    import yaml
os.chdir(ROOT)
failures = []


def check(ok, message):
    if ok:
        print(f"    ok    {message}")
    else:
        print(f"    FAIL  {message}")
        failures.append(message)


def cargo_metadata():
    out = subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--no-deps", "--locked"],
        check=True, capture_output=True, text=True,
    ).stdout
    packages = {}
    for p in json.loads(out)["packages"]:
        packages[p["name"]] = {t["name"] for t in p["targets"] if "bin" in t["kind"]}
    return packages


def proxy_env_vars():
    """Every variable the proxy reads: the settings of the contract crate."""
    with open("contract/src/settings.rs") as fh:
        return set(re.findall(r'^\s+([A-Z][A-Z0-9_]*): [^=]+ = ', fh.read(), re.M))


def proxy_default_port():
    with open("contract/src/settings.rs") as fh:
        m = re.search(r'^\s+PORT: u16 = (\d+);', fh.read(), re.M)
    return int(m.group(1)) if m else None


def dockerignore_allows(path):
    """Docker's rule: the last matching pattern wins; `!` re-includes."""
    allowed = True
    with open(".dockerignore") as f:
        patterns = [l.strip() for l in f if l.strip() and not l.startswith("#")]
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        regex = re.escape(pattern).replace(r"\*\*", ".*").replace(r"\*", "[^/]*")
        if re.fullmatch(regex, path) or re.fullmatch(regex + "/.*", path):
            allowed = negate
    return allowed


def files_under(path):
    if os.path.isfile(path):
        return [path]
    out = []
    for dirpath, _, files in os.walk(path):
        out += [os.path.join(dirpath, f) for f in files]
    return out


def parse_dockerfile(path):
    """Stages as dicts: base, name, instructions [(KEYWORD, args)] (continuations joined)."""
    with open(path) as f:
        text = re.sub(r"\\\n", " ", f.read())
    stages = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, args = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            m = re.match(r"(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?", args, re.I)
            stages.append({"base": m.group(1), "name": m.group(2), "ins": []})
        elif stages:
            stages[-1]["ins"].append((keyword, args.strip()))
    return stages


def check_dockerfile(path, package, binary, port, packages):
    print(f"\n==> {path}")
    stages = parse_dockerfile(path)
    names = [s["name"] for s in stages]
    check(len(stages) >= 2, f"multi-stage ({len(stages)} stages: {names})")
    build, runtime = stages[0], stages[-1]
    check(build["base"].split("/")[-1].startswith("rust:"), f"builder is a Rust image ({build['base']})")
    check("distroless" in runtime["base"] and runtime["base"].endswith(":nonroot"),
          f"runtime is distroless nonroot, no shell ({runtime['base']})")
    # COPY sources of the build stage exist and survive .dockerignore.
    for kw, args in build["ins"]:
        if kw != "COPY" or args.startswith("--from"):
            continue
        parts = [a for a in args.split() if not a.startswith("--")]
        for src in parts[:-1]:
            src = src.rstrip("/")
            found = files_under(src)
            kept = [f for f in found if dockerignore_allows(f)]
            check(bool(found) and bool(kept), f"COPY {src}: exists ({len(found)} files) and is in the build context ({len(kept)} kept)")
    run = " ".join(a for kw, a in build["ins"] if kw == "RUN")
    m = re.search(r"cargo build (.*?)(?:&&|$)", run)
    check(m is not None, "the build stage runs cargo build")
    args = m.group(1) if m else ""
    check("--release" in args and "--locked" in args, "cargo build --release --locked")
    pkg = re.search(r"-p\s+(\S+)", args)
    binm = re.search(r"--bin\s+(\S+)", args)
    check(pkg is not None and pkg.group(1) == package and package in packages,
          f"-p {pkg.group(1) if pkg else '?'} is the workspace package {package}")
    check(binm is not None and binm.group(1) == binary and binary in packages.get(package, set()),
          f"--bin {binm.group(1) if binm else '?'} is a binary of {package} {sorted(packages.get(package, []))}")
    check(f"target/release/{binary}" in run, f"the build stage takes target/release/{binary}")
    copies = [a for kw, a in runtime["ins"] if kw == "COPY" and a.startswith(f"--from={build['name']}")]
    check(any(a.split()[-1] == f"/usr/local/bin/{binary}" for a in copies), f"runtime gets /usr/local/bin/{binary} from the build stage")
    entry = [a for kw, a in runtime["ins"] if kw == "ENTRYPOINT"]
    check(entry and json.loads(entry[-1]) == [f"/usr/local/bin/{binary}"], f"ENTRYPOINT runs {binary} (exec form, no shell)")
    users = [a for kw, a in runtime["ins"] if kw == "USER"]
    check(users and users[-1].split(":")[0] not in ("0", "root"), f"USER is non-root ({users[-1] if users else 'unset'})")
    exposed = [a for kw, a in runtime["ins"] if kw == "EXPOSE"]
    check(exposed == [str(port)], f"EXPOSE {port} (got {exposed})")
    labels = " ".join(a for kw, a in runtime["ins"] if kw == "LABEL")
    for label in ("title", "source", "version", "revision", "licenses"):
        check(f"org.opencontainers.image.{label}=" in labels, f"OCI label org.opencontainers.image.{label}")


def default_of(flag_env, path):
    with open(path) as f:
        text = f.read()
    m = re.search(r'env = "%s", default_value = "([^"]+)"' % flag_env, text)
    return m.group(1) if m else None


def check_compose(known):
    print("\n==> deploy/docker-compose.yml")
    with open("deploy/docker-compose.yml") as f:
        compose = yaml.safe_load(f)
    services = compose.get("services", {})
    check({"redis", "claude-middleware"} <= set(services), f"services redis and claude-middleware ({sorted(services)})")
    proxy = services.get("claude-middleware", {})
    env = proxy.get("environment", {})
    if isinstance(env, list):
        env = dict(e.split("=", 1) for e in env)
    unknown = sorted(set(env) - known)
    check(not unknown, f"every variable is one the proxy reads ({len(env)} set; unknown: {unknown})")
    check(env.get("REDIS_HOST") == "redis", "REDIS_HOST points at the redis service")
    check("8080:8080" in [str(p) for p in proxy.get("ports", [])], "port 8080 published")
    for name, secret in compose.get("secrets", {}).items():
        check("file" in secret, f"secret {name} comes from a file")


def check_workflow():
    print("\n==> .github/workflows/release.yml")
    with open(".github/workflows/release.yml") as f:
        wf = yaml.safe_load(f)
    on = wf.get(True, wf.get("on"))  # YAML 1.1 reads the key `on` as True
    check("tags" in on.get("push", {}) and "branches" in on.get("push", {}), "runs on branch pushes and version tags")
    images = wf["jobs"]["images"]
    files = [i["dockerfile"] for i in images["strategy"]["matrix"]["include"]]
    check(sorted(files) == ["Dockerfile.operator", "Dockerfile.proxy"], f"builds both Dockerfiles {files}")
    for f in files:
        check(os.path.isfile(f), f"{f} exists")
    steps = images["steps"]
    build = [s for s in steps if str(s.get("uses", "")).startswith("docker/build-push-action")]
    check(len(build) == 1, "one docker/build-push-action step")
    w = build[0]["with"] if build else {}
    check(set(str(w.get("platforms", "")).split(",")) == {"linux/amd64", "linux/arm64"}, f"platforms linux/amd64,linux/arm64 ({w.get('platforms')})")
    check(any(str(s.get("uses", "")).startswith("docker/setup-buildx-action") for s in steps), "buildx set up")
    check(any(str(s.get("uses", "")).startswith("docker/setup-qemu-action") for s in steps), "QEMU set up (arm64 on amd64 runners)")
    meta = [s for s in steps if str(s.get("uses", "")).startswith("docker/metadata-action")]
    tags = meta[0]["with"]["tags"] if meta else ""
    for want, what in [("value=latest", "latest"), ("type=semver,pattern={{version}}", "X.Y.Z"),
                       ("type=ref,event=branch", "branch"), ("type=sha,prefix={{branch}}-", "branch-sha")]:
        check(want in tags, f"tag {what}")
    manifest = wf["jobs"]["install-manifest"]
    script = " ".join(str(s.get("run", "")) for s in manifest["steps"])
    check("kubectl kustomize deploy/" in script, "renders deploy/ with kubectl kustomize")
    check(os.path.isfile("deploy/kustomization.yaml"), "deploy/kustomization.yaml exists")
    with open("deploy/kustomization.yaml") as f:
        kust = yaml.safe_load(f)
    check(any(i.get("newTag") for i in kust.get("images", [])) and re.search(r"\^    newTag: ", script) is not None,
          "the newTag line the workflow rewrites exists in deploy/kustomization.yaml")
    check(any("claude-middleware-install.yaml" in str(s.get("with", {}).get("files", "")) for s in manifest["steps"]),
          "attaches claude-middleware-install.yaml to the release")
    with open("deploy/kustomization.yaml") as f:
        check(re.search(r"^    newTag: ", f.read(), re.M) is not None, "deploy/kustomization.yaml has the `    newTag:` line sed rewrites")


def main():
    packages = cargo_metadata()
    known = proxy_env_vars()
    port = proxy_default_port()
    check(port is not None, f"the proxy's default PORT is read from contract/src/settings.rs ({port})")
    check(len(known) > 20, f"the proxy's variables are read from contract/src/settings.rs ({len(known)})")
    check_dockerfile("Dockerfile.proxy", "claude-middleware", "claude-middleware", port or 8080, packages)
    metrics = default_of("METRICS_ADDR", "operator/src/main.rs") or ":8081"
    check_dockerfile("Dockerfile.operator", "claude-middleware-operator", "claude-middleware-operator",
                     int(metrics.rsplit(":", 1)[1]), packages)
    check_compose(known)
    check_workflow()
    if failures:
        print(f"\ncheck-packaging: {len(failures)} failed")
        sys.exit(1)
    print("\ncheck-packaging: ok")


if __name__ == "__main__":
    main()

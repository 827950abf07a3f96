#!/usr/bin/env python3
"""Every command in README.md is run by the demo or a test.

The commands are the lines of the README's ```sh blocks. Each one (up to a
redirection or pipe) must appear in the scripts the test command runs: the
demo, the checks, the test command, CI and the Makefile, where the scripts'
kubectl wrappers (`k`, `kk`) count as `kubectl`. `docker` commands cannot run
here (no engine): their image must be one the Dockerfiles build, their `-e`
variables ones the proxy reads, and their files must exist.
"""

import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
os.chdir(ROOT)

RUNNERS = ["Makefile", ".ci/run", "scripts/test.sh", "scripts/demo.sh", "scripts/test-demo.sh"]
RUNNERS += sorted(
    os.path.join("scripts", f) for f in os.listdir("scripts") if f.startswith("check-") and f.endswith(".sh")
)


def commands(markdown):
    out = []
    for block in re.findall(r"```sh\n(.*?)```", markdown, re.S):
        block = re.sub(r"\\\n\s*", " ", block)
        for line in block.splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                out.append(line)
    return out


def runner_text():
    text = []
    for path in RUNNERS:
        if not os.path.exists(path):
            continue
        with open(path) as f:
            src = f.read()
        src = re.sub(r"\\\n\s*", " ", src)
        # The scripts' wrappers around kubectl with the control plane's kubeconfig.
        src = re.sub(r"(^|[\s;(|&!])(?:k|kk|kubectl_) (?=\S)", r"\1kubectl ", src, flags=re.M)
        text.append(src)
    return "\n".join(text)


def proxy_env_vars():
    """The variables the proxy reads: the settings contract declares each once
    (`NAME: type = default;` inside `settings! { … }`)."""
    with open("contract/src/settings.rs") as fh:
        source = fh.read()
    block = source[source.index("settings! {"):]
    names = set(re.findall(r"^\s*([A-Z][A-Z0-9_]*)\s*:", block, re.M))
    if not names:
        sys.exit("check-readme: no settings found in contract/src/settings.rs")
    return names


def check_docker(cmd, problems):
    known = proxy_env_vars()
    for var in re.findall(r"-e ([A-Z_][A-Z0-9_]*)=", cmd):
        if var not in known:
            problems.append(f"{cmd!r}: {var} is not a variable the proxy reads")
    for image in re.findall(r"ghcr\.io/claude-middleware/([a-z-]+):", cmd):
        if image not in ("claude-middleware", "claude-middleware-operator"):
            problems.append(f"{cmd!r}: image {image} is not one the release builds")
    for path in re.findall(r"-f (\S+)", cmd):
        if not os.path.exists(path):
            problems.append(f"{cmd!r}: {path} does not exist")


def main():
    with open("README.md") as f:
        cmds = commands(f.read())
    ran = runner_text()
    problems = []
    for cmd in cmds:
        if cmd.startswith("docker "):
            check_docker(cmd, problems)
            print(f"    checked (no Docker engine here): {cmd[:90]}")
            continue
        core = re.split(r"\s+(?:>|\|)\s*", cmd)[0].strip()
        if core in ran:
            print(f"    run by a test or the demo: {core}")
        else:
            problems.append(f"not run by the demo or any test: {cmd}")
    if not cmds:
        problems.append("no ```sh blocks found in README.md")
    for p in problems:
        print(f"    FAIL  {p}")
    if problems:
        sys.exit(1)
    print(f"\ncheck-readme: ok ({len(cmds)} commands)")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Writes a docker-archive image tar (what `docker save` writes, and what
`ctr images import` reads) for one of the project's Dockerfiles, from a binary
already built on this machine, with no registry and no Docker.

    image.py DOCKERFILE BINARY TAG OUT.tar
    image.py --scratch BINARY TAG OUT.tar ENTRYPOINT   (the pause image)

The image follows what the Dockerfile's runtime stage promises: the binary at
its COPY destination, its USER, ENTRYPOINT, CMD, EXPOSE and LABELs (ARG
defaults substituted). The base it stands in for is distroless/cc (glibc, no
shell): the binary's shared libraries and loader (from ldd) go in at the
same paths, with /etc/passwd and /etc/group naming root and nonroot (65532),
a /tmp, a home for nonroot, and the machine's CA bundle. Debug info is
stripped from the copy so the layer stays small. Everything is written with
fixed owners and times, so the same binary gives the same image id.
"""

import hashlib
import io
import json
import os
import re
import shlex
import subprocess
import sys
import tarfile
import tempfile

ENV = [
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt",
]
PASSWD = "root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"
GROUP = "root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n"


def runtime_stage(dockerfile):
    """The instructions of the last stage, continuation lines joined, ARG defaults applied."""
    text = open(dockerfile).read()
    text = re.sub(r"\\\n", " ", text)
    lines = [l.strip() for l in text.splitlines() if l.strip() and not l.strip().startswith("#")]
    stage = []
    for line in lines:
        if line.upper().startswith("FROM "):
            stage = []
        stage.append(line)
    args = {}
    out = []
    for line in stage:
        word, _, rest = line.partition(" ")
        word = word.upper()
        if word == "ARG":
            name, _, default = rest.partition("=")
            args[name.strip()] = default.strip()
            continue
        rest = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), ""), rest)
        out.append((word, rest.strip()))
    return out


def config_from_dockerfile(dockerfile):
    """User, entrypoint, cmd, ports, labels and the binary's path in the image."""
    config = {"Env": list(ENV), "Labels": {}, "ExposedPorts": {}, "WorkingDir": "/"}
    binary_path = None
    for word, rest in runtime_stage(dockerfile):
        if word == "USER":
            config["User"] = rest
        elif word == "ENTRYPOINT":
            config["Entrypoint"] = json.loads(rest)
        elif word == "CMD":
            config["Cmd"] = json.loads(rest)
        elif word == "EXPOSE":
            for port in rest.split():
                config["ExposedPorts"][port if "/" in port else port + "/tcp"] = {}
        elif word == "LABEL":
            for pair in shlex.split(rest):
                key, _, value = pair.partition("=")
                config["Labels"][key] = value
        elif word == "COPY":
            parts = [p for p in rest.split() if not p.startswith("--")]
            binary_path = parts[-1]
    if binary_path is None:
        sys.exit(f"image.py: no COPY of the binary in the runtime stage of {dockerfile}")
    return config, binary_path


def shared_libraries(binary):
    """Absolute paths of the libraries and loader ldd names ([] for a static binary)."""
    result = subprocess.run(["ldd", binary], capture_output=True, text=True)
    if result.returncode != 0:
        return []
    paths = []
    for line in result.stdout.splitlines():
        match = re.search(r"(/\S+)\s+\(0x", line)
        if match:
            paths.append(match.group(1))
    return paths


def add_dir(layer, path, mode=0o755, uid=0):
    info = tarfile.TarInfo(path.lstrip("/"))
    info.type = tarfile.DIRTYPE
    info.mode = mode
    info.uid = info.gid = uid
    layer.addfile(info)


def add_bytes(layer, path, data, mode=0o644):
    info = tarfile.TarInfo(path.lstrip("/"))
    info.size = len(data)
    info.mode = mode
    layer.addfile(info, io.BytesIO(data))


def add_file(layer, path, source, mode):
    with open(source, "rb") as f:
        add_bytes(layer, path, f.read(), mode)


def parents(path):
    parts = path.strip("/").split("/")[:-1]
    return ["/" + "/".join(parts[: i + 1]) for i in range(len(parts))]


def build_layer(files, with_base):
    """files: [(path in image, source path, mode)]. Returns the layer tar bytes."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as layer:
        dirs = set()
        wanted = [p for f in files for p in parents(f[0])]
        if with_base:
            wanted += ["/etc", "/etc/ssl", "/etc/ssl/certs", "/home"]
        for d in sorted(set(wanted)):
            add_dir(layer, d)
            dirs.add(d)
        if with_base:
            add_dir(layer, "/tmp", 0o1777)
            add_dir(layer, "/home/nonroot", 0o700, 65532)
            add_bytes(layer, "/etc/passwd", PASSWD.encode())
            add_bytes(layer, "/etc/group", GROUP.encode())
            if os.path.exists(ENV[1].split("=", 1)[1]):
                add_file(layer, "/etc/ssl/certs/ca-certificates.crt", ENV[1].split("=", 1)[1], 0o644)
        for path, source, mode in files:
            add_file(layer, path, source, mode)
    return buffer.getvalue()


def write_archive(out, tag, config, layer):
    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    image = {
        "architecture": "amd64",
        "os": "linux",
        "created": "1970-01-01T00:00:00Z",
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created": "1970-01-01T00:00:00Z", "created_by": "tests/cluster/image.py"}],
    }
    config_bytes = json.dumps(image, sort_keys=True).encode()
    config_name = hashlib.sha256(config_bytes).hexdigest() + ".json"
    layer_name = diff_id.split(":")[1] + "/layer.tar"
    manifest = [{"Config": config_name, "RepoTags": [tag], "Layers": [layer_name]}]
    with tarfile.open(out, "w") as archive:
        add_bytes(archive, config_name, config_bytes)
        add_bytes(archive, layer_name, layer)
        add_bytes(archive, "manifest.json", json.dumps(manifest).encode())
    return image


def main(argv):
    if argv[1:2] == ["--scratch"]:
        _, _, binary, tag, out, entrypoint = argv
        config = {"Entrypoint": [entrypoint], "User": "65535:65535", "WorkingDir": "/"}
        layer = build_layer([(entrypoint, binary, 0o755)], with_base=False)
        write_archive(out, tag, config, layer)
        return
    _, dockerfile, binary, tag, out = argv
    config, binary_path = config_from_dockerfile(dockerfile)
    with tempfile.TemporaryDirectory() as tmp:
        stripped = os.path.join(tmp, "binary")
        if subprocess.run(["strip", "--strip-debug", "-o", stripped, binary]).returncode != 0:
            stripped = binary
        files = [(binary_path, stripped, 0o755)]
        files += [(lib, os.path.realpath(lib), 0o755) for lib in shared_libraries(binary)]
        layer = build_layer(files, with_base=True)
        write_archive(out, tag, config, layer)


if __name__ == "__main__":
    main(sys.argv)

#!/usr/bin/env bash
# Makes `import yaml` work for python3: Debian's python3-yaml, else pip.
set -euo pipefail
python3 -c 'import yaml' 2>/dev/null && exit 0
echo "    installing PyYAML" >&2
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" -eq 0 ]; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-yaml >/dev/null 2>&1 || true
fi
python3 -c 'import yaml' 2>/dev/null && exit 0
python3 -m pip install -q pyyaml

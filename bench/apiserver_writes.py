"""Reads the API server's /metrics on stdin and prints, as JSON, the apiserver_request_total
counters of write verbs summed by "resource[/subresource] verb" (every client counted: the
API server has no per-client label; bench/operator.sh reads them before and after a window)."""

import json
import re
import sys

WRITE_VERBS = {"POST", "PUT", "PATCH", "APPLY", "DELETE", "DELETECOLLECTION"}
LINE = re.compile(r"^apiserver_request_total\{(?P<labels>[^}]*)\}\s+(?P<value>\S+)")
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')

totals = {}
for line in sys.stdin:
    match = LINE.match(line)
    if not match:
        continue
    labels = dict(LABEL.findall(match["labels"]))
    if labels.get("verb") not in WRITE_VERBS:
        continue
    resource = labels.get("resource", "")
    if labels.get("subresource"):
        resource += "/" + labels["subresource"]
    key = f"{resource}/{labels['verb']}"
    totals[key] = totals.get(key, 0) + float(match["value"])
print(json.dumps(totals, sort_keys=True))

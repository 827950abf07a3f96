#!/usr/bin/env python3
"""Checks deploy/monitoring/ with the real promtool.

- prometheus-rule.yaml is a PrometheusRule whose groups pass
  `promtool check rules`; every alert has a severity, a summary and a
  description, and at least one promtool unit test in
  deploy/monitoring/tests/ (run with `promtool test rules`).
- grafana-dashboard.json is a dashboard: unique panel ids, panels inside the
  24-column grid and not overlapping, every query on the dashboard's
  data-source variable, every variable it uses defined, and every PromQL
  expression parsed by promtool (as a recording rule, with the Grafana
  variables replaced by what Grafana sends).

That the dashboard's metrics really exist is checked against a live proxy
and operator by tests/tests/monitoring.rs.

Run from anywhere: python3 scripts/check-monitoring.py
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
try:
    import yaml
except ImportError:  # a fresh machine: Debian's python3-yaml, else pip
    subprocess.run([os.path.join(ROOT, "scripts/lib/ensure-pyyaml.sh")], check=True)
    import yaml

MONITORING = os.path.join(ROOT, "deploy/monitoring")
RULE = os.path.join(MONITORING, "prometheus-rule.yaml")
RULE_TESTS = os.path.join(MONITORING, "tests/prometheus-rule.test.yaml")
DASHBOARD = os.path.join(MONITORING, "grafana-dashboard.json")
# What Grafana puts in place of its built-in variables when it queries.
GRAFANA_BUILTINS = {"__rate_interval": "1m", "__interval": "15s", "__range": "1h"}

failures = []


def check(ok, message):
    print(f"    {'ok  ' if ok else 'FAIL'}  {message}")
    if not ok:
        failures.append(message)


def promtool(*args):
    run = subprocess.run(["promtool", *args], capture_output=True, text=True)
    return run.returncode == 0, (run.stdout + run.stderr).strip()


def rule_groups():
    with open(RULE) as f:
        doc = yaml.safe_load(f)
    check(doc.get("apiVersion") == "monitoring.coreos.com/v1", "PrometheusRule apiVersion")
    check(doc.get("kind") == "PrometheusRule", "kind PrometheusRule")
    return doc["spec"]["groups"]


def check_rules(work):
    groups = rule_groups()
    rules_file = os.path.join(work, "rules.yaml")
    with open(rules_file, "w") as f:
        yaml.safe_dump({"groups": groups}, f, sort_keys=False)
    ok, out = promtool("check", "rules", rules_file)
    check(ok, f"promtool check rules: {out.splitlines()[-1] if out else ''}")
    if not ok:
        print(out)

    alerts = [r for g in groups for r in g["rules"] if "alert" in r]
    for rule in alerts:
        name = rule["alert"]
        check(rule.get("labels", {}).get("severity") in ("critical", "warning"), f"{name}: severity")
        notes = rule.get("annotations", {})
        check(bool(notes.get("summary")) and bool(notes.get("description")), f"{name}: summary and description")

    with open(RULE_TESTS) as f:
        tests = yaml.safe_load(f)
    tested = {t["alertname"] for case in tests["tests"] for t in case.get("alert_rule_test", [])}
    for rule in alerts:
        check(rule["alert"] in tested, f"{rule['alert']}: has a promtool unit test")
    unknown = tested - {r["alert"] for r in alerts}
    check(not unknown, f"unit tests name only alerts that exist {sorted(unknown) or ''}")

    shutil.copy(RULE_TESTS, work)
    ok, out = promtool("test", "rules", os.path.join(work, os.path.basename(RULE_TESTS)))
    check(ok, "promtool test rules")
    if not ok:
        print(out)


def overlaps(a, b):
    return a["x"] < b["x"] + b["w"] and b["x"] < a["x"] + a["w"] and a["y"] < b["y"] + b["h"] and b["y"] < a["y"] + a["h"]


def grafana_vars(text):
    return set(re.findall(r"\$\{?(\w+)", text))


def expand(expr, values):
    return re.sub(r"\$\{?(\w+)\}?", lambda m: values[m.group(1)], expr)


def check_dashboard(work):
    with open(DASHBOARD) as f:
        dash = json.load(f)
    check(bool(dash.get("uid")) and bool(dash.get("title")), "dashboard has a uid and a title")
    variables = {v["name"]: v for v in dash.get("templating", {}).get("list", [])}
    check(variables.get("datasource", {}).get("type") == "datasource", "a data-source variable")
    check(variables.get("datasource", {}).get("query") == "prometheus", "the data source is Prometheus")

    panels = dash["panels"]
    ids = [p["id"] for p in panels]
    check(len(ids) == len(set(ids)), "panel ids are unique")
    outside = [p["title"] for p in panels if p["gridPos"]["x"] < 0 or p["gridPos"]["x"] + p["gridPos"]["w"] > 24]
    check(not outside, f"panels inside the 24-column grid {outside or ''}")
    clashes = [
        (a["title"], b["title"]) for i, a in enumerate(panels) for b in panels[i + 1 :] if overlaps(a["gridPos"], b["gridPos"])
    ]
    check(not clashes, f"no two panels overlap {clashes or ''}")
    exprs = []
    wrong_source, no_queries, clashing_refs = [], [], []
    for p in panels:
        if p["type"] == "row":
            continue
        if p.get("datasource", {}).get("uid") != "${datasource}":
            wrong_source.append(p["title"])
        targets = p.get("targets", [])
        if not targets or not all(t.get("expr") and t.get("datasource", {}).get("uid") == "${datasource}" for t in targets):
            no_queries.append(p["title"])
        refs = [t.get("refId") for t in targets]
        if len(refs) != len(set(refs)):
            clashing_refs.append(p["title"])
        exprs += [(p["title"], t["expr"]) for t in targets if t.get("expr")]
    check(not wrong_source, f"every panel queries the data-source variable {wrong_source or ''}")
    check(not no_queries, f"every panel has PromQL queries on that data source {no_queries or ''}")
    check(not clashing_refs, f"refIds are unique in each panel {clashing_refs or ''}")

    # The query variables' own queries use label_values(), which is Grafana's, not PromQL.
    for name, v in variables.items():
        query = v.get("query")
        query = query.get("query") if isinstance(query, dict) else query
        for used in grafana_vars(str(query)):
            check(used in variables, f"variable {name} uses a defined variable ${used}")
    values = dict(GRAFANA_BUILTINS)
    values.update({name: ".*" for name in variables})
    undefined = sorted({(title, used) for title, expr in exprs for used in grafana_vars(expr) if used not in values})
    check(not undefined, f"the queries use only defined variables {undefined or ''}")

    rules = [{"record": f"dashboard:expr_{i}", "expr": expand(e, values)} for i, (_, e) in enumerate(exprs)]
    path = os.path.join(work, "dashboard-exprs.yaml")
    with open(path, "w") as f:
        yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}, f, sort_keys=False)
    ok, out = promtool("check", "rules", path)
    check(ok, f"promtool parses the dashboard's {len(exprs)} PromQL expressions")
    if not ok:
        print(out)


def main():
    if not shutil.which("promtool"):
        sys.exit("promtool is missing: apt-get install prometheus (scripts/test.sh does)")
    with tempfile.TemporaryDirectory(prefix="cmw-monitoring-") as work:
        print("  deploy/monitoring/prometheus-rule.yaml")
        check_rules(work)
        print("  deploy/monitoring/grafana-dashboard.json")
        check_dashboard(work)
    if failures:
        print(f"\n{len(failures)} monitoring check(s) failed", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()

"""Turns the raw measurements of bench/http.sh and bench/operator.sh into results.json and
results.md (a goals table, then one table per figure).

    python3 bench/report.py OUT_DIR      (reads OUT_DIR/raw/*.json)

Each figure is the median over the interleaved repetitions; "added" figures are the median
of the per-repetition differences to the direct run next to it in time.
"""

import glob
import json
import os
import re
import statistics
import sys

PATHS = ("direct", "nginx", "proxy")


def load_raw(raw_dir):
    """{figure: {path: {rep: data}}} from FIGURE-PATH-REP.json files."""
    runs = {}
    for file in sorted(glob.glob(os.path.join(raw_dir, "*.json"))):
        match = re.fullmatch(r"(\w+)-(direct|nginx|proxy)-(\d+)\.json", os.path.basename(file))
        if not match:
            continue
        figure, path, rep = match.groups()
        with open(file) as f:
            text = f.read().strip()
        if not text:
            continue
        runs.setdefault(figure, {}).setdefault(path, {})[int(rep)] = json.loads(text)
    return runs


def load_one(raw_dir, name):
    try:
        with open(os.path.join(raw_dir, name)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def per_path(runs, figure, metric):
    """{path: {"median": m, "runs": [...]}} of metric(data) over repetitions."""
    result = {}
    for path, reps in runs.get(figure, {}).items():
        values = [metric(reps[r]) for r in sorted(reps)]
        result[path] = {"median": median(values), "runs": values}
    return result


def added(runs, figure, metric):
    """{path: median over reps of metric(path, rep) - metric(direct, rep)}."""
    direct = runs.get(figure, {}).get("direct", {})
    result = {}
    for path in ("nginx", "proxy"):
        reps = runs.get(figure, {}).get(path, {})
        pairs = [(metric(reps[r]), metric(direct[r])) for r in sorted(reps) if r in direct]
        result[path] = median([a - b for a, b in pairs if a is not None and b is not None])
    return result


def wrk_errors(d):
    return sum(d["errors"].values())


def wrk_rps(d):
    return d["requests"] / (d["duration_us"] / 1e6)


def oha_pct(key):
    return lambda d: d["latencyPercentiles"][key] * 1e6


def oha_errors(d):
    codes = d.get("statusCodeDistribution", {})
    bad = sum(n for code, n in codes.items() if not code.startswith("2"))
    # Requests still in flight when the run's time is up are cut, not failed.
    errors = d.get("errorDistribution", {})
    return bad + sum(n for kind, n in errors.items() if kind != "aborted due to deadline")


def summarise(raw_dir):
    runs = load_raw(raw_dir)
    figures = {}

    for figure, key in (("rps", "rps_small"), ("rps_high", "rps_small_high")):
        if figure not in runs:
            continue
        rps = per_path(runs, figure, wrk_rps)
        errors = per_path(runs, figure, wrk_errors)
        cpu = per_path(runs, figure, lambda d: d["server_cpu_s"] * 1e6 / d["requests"] if "server_cpu_s" in d else None)
        connections = per_path(runs, figure, lambda d: d.get("connections"))
        for path in rps:
            rps[path]["errors"] = sum(errors[path]["runs"])
            rps[path]["server_cpu_us_per_request"] = cpu[path]["median"]
        ratio = None
        if rps.get("proxy", {}).get("median") and rps.get("nginx", {}).get("median"):
            ratio = rps["proxy"]["median"] / rps["nginx"]["median"]
        figures[key] = {"paths": rps, "ratio_proxy_nginx": ratio,
                        "connections": connections.get("proxy", {}).get("median")}

    for figure in ("lat_c1", "lat_open"):
        if figure not in runs:
            continue
        entry = {
            "p50_us": per_path(runs, figure, oha_pct("p50")),
            "p99_us": per_path(runs, figure, oha_pct("p99")),
            "rps": per_path(runs, figure, lambda d: d["summary"]["requestsPerSec"]),
            "errors": {p: sum(v["runs"]) for p, v in per_path(runs, figure, oha_errors).items()},
            "added_p50_us": added(runs, figure, oha_pct("p50")),
            "added_p99_us": added(runs, figure, oha_pct("p99")),
        }
        if figure == "lat_open":
            entry["rate"] = (load_one(raw_dir, "open_rate.json") or {}).get("rate")
        figures[figure] = entry

    if "sse" in runs:
        figures["sse"] = {
            "ttfb_p50_us": per_path(runs, "sse", lambda d: d["ttfb_us"]["p50"]),
            "gap_p50_us": per_path(runs, "sse", lambda d: d["gap_us"]["p50"]),
            "gap_p99_us": per_path(runs, "sse", lambda d: d["gap_us"]["p99"]),
            "errors": {p: sum(v["runs"]) for p, v in per_path(runs, "sse", lambda d: d["errors"]).items()},
            "added_ttfb_p50_us": added(runs, "sse", lambda d: d["ttfb_us"]["p50"]),
            "added_gap_p50_us": added(runs, "sse", lambda d: d["gap_us"]["p50"]),
            "added_gap_p99_us": added(runs, "sse", lambda d: d["gap_us"]["p99"]),
            # The stand-in stamps each event with its send time; the delay to the client
            # is the path's own, without the stand-in's timer jitter the gaps carry.
            "delivery_p50_us": per_path(runs, "sse", lambda d: (d.get("delivery_us") or {}).get("p50")),
            "delivery_p99_us": per_path(runs, "sse", lambda d: (d.get("delivery_us") or {}).get("p99")),
            "added_delivery_p99_us": added(runs, "sse", lambda d: (d.get("delivery_us") or {}).get("p99")),
        }

    if "rss" in runs:
        rss = {}
        for path, reps in runs["rss"].items():
            d = reps[min(reps)]
            per_stream = None
            if d.get("open_kib") and d.get("streams"):
                per_stream = (d["open_kib"] - d["idle_kib"]) / d["streams"]
            rss[path] = dict(d, per_stream_kib=per_stream)
        figures["rss"] = rss

    if "large" in runs:
        figures["large_body"] = {
            "rps": per_path(runs, "large", wrk_rps),
            "mib_s": per_path(runs, "large", lambda d: wrk_rps(d) * d["body_bytes"] / 2**20),
            "p99_us": per_path(runs, "large", lambda d: d["latency_us"]["p99"]),
            "errors": {p: sum(v["runs"]) for p, v in per_path(runs, "large", wrk_errors).items()},
        }

    cost = load_one(raw_dir, "cost.json")
    if cost:
        figures["cost"] = cost
    cost_plain = load_one(os.path.join(raw_dir, "plain"), "cost.json")
    if cost_plain:
        figures["cost_plain"] = cost_plain

    operator = []
    for file in sorted(glob.glob(os.path.join(raw_dir, "operator-*.json"))):
        with open(file) as f:
            operator.append(json.load(f))
    operator.sort(key=lambda o: o["n"])
    for op in operator:
        # Server-side applies of children and status patches: the operator's own writes.
        mine = re.compile(r"^(claudemiddlewares/status|deployments|services|networkpolicies|ingresses|"
                          r"horizontalpodautoscalers|poddisruptionbudgets)/(APPLY|PATCH|DELETE)$")
        writes = op.get("converge_writes_by_resource", {})
        op["converge_operator_writes"] = sum(v for k, v in writes.items() if mine.match(k))
        op["converge_operator_writes_per_cr"] = op["converge_operator_writes"] / op["n"]
    if operator:
        figures["operator"] = operator
    return figures


def goals(figures):
    """[(goal, measured text, nginx's text, met)] for the goals of issues 7 and 13."""
    out = []

    def get(*keys):
        node = figures
        for key in keys:
            if not isinstance(node, dict) or key not in node or node[key] is None:
                return None
            node = node[key]
        return node

    for key in ("rps_small", "rps_small_high"):
        ratio = get(key, "ratio_proxy_nginx")
        if ratio is None:
            continue
        rps = figures[key]["paths"]
        out.append((f"throughput ≥ nginx's (small JSON, {fmt(figures[key].get('connections'))} connections)",
                    f"proxy/nginx = {ratio:.2f} ({fmt(rps['proxy']['median'])} vs {fmt(rps['nginx']['median'])} RPS)",
                    "1.00", ratio >= 1.0))
    cpu = get("rps_small", "paths", "proxy", "server_cpu_us_per_request")
    nginx_cpu = get("rps_small", "paths", "nginx", "server_cpu_us_per_request")
    if cpu is not None and nginx_cpu is not None:
        out.append(("server CPU per request ≤ nginx's (figure 1)", f"{cpu:.1f} µs", f"{nginx_cpu:.1f} µs",
                    cpu <= nginx_cpu))
    instructions = get("cost", "instructions_per_request")
    nginx_instructions = get("cost", "nginx_instructions_per_request")
    if instructions is not None and nginx_instructions is not None:
        out.append(("CPU instructions per request ≤ nginx's (figure 6, callgrind)", fmt(instructions),
                    fmt(nginx_instructions), instructions <= nginx_instructions))
    p99 = get("lat_c1", "added_p99_us", "proxy")
    if p99 is not None:
        out.append(("added p99 < 1 ms at 1 concurrent request", f"{p99:+.0f} µs",
                    f"{get('lat_c1', 'added_p99_us', 'nginx') or 0:+.0f} µs", p99 < 1000))
    delivery = get("sse", "added_delivery_p99_us", "proxy")
    if delivery is not None:
        out.append(("added SSE delivery p99 < 0.5 ms (figure 3, stamped events)", f"{delivery:+.0f} µs",
                    f"{get('sse', 'added_delivery_p99_us', 'nginx') or 0:+.0f} µs", delivery < 500))
    gap = get("sse", "added_gap_p99_us", "proxy")
    if gap is not None:
        out.append(("added inter-event gap p99 < 0.5 ms", f"{gap:+.0f} µs",
                    f"{get('sse', 'added_gap_p99_us', 'nginx') or 0:+.0f} µs", gap < 500))
    per_stream = get("rss", "proxy", "per_stream_kib")
    if per_stream is not None:
        nginx = get("rss", "nginx", "per_stream_kib")
        out.append(("≤ 32 KiB per open stream", f"{per_stream:.1f} KiB",
                    f"{nginx:.1f} KiB" if nginx is not None else "–", per_stream <= 32))
    for op in figures.get("operator", []):
        if op["n"] == 500:
            out.append(("500 CRs converged in < 60 s", f"{op['converge_s']:.1f} s", "", op["converge_s"] < 60))
    if figures.get("operator"):
        peak = max(op["peak_rss_kib"] for op in figures["operator"]) / 1024
        out.append(("operator < 64 MiB RSS (peak, any N)", f"{peak:.1f} MiB", "", peak < 64))
        writes = sum(op["steady_writes"] for op in figures["operator"])
        windows = ", ".join(f"{op['steady_window_s']} s at N={op['n']}" for op in figures["operator"])
        out.append(("zero steady-state writes", f"{writes:.0f} ({windows})", "", writes == 0))
    return out


def fmt(value, unit="", digits=0):
    if value is None:
        return "–"
    return f"{value:,.{digits}f}{unit}"


def bar(value, largest, width=30):
    if not value or not largest:
        return ""
    return "█" * max(1, round(width * value / largest))


def markdown(result):
    f = result["figures"]
    m = result["machine"]
    lines = [
        "# Benchmark results",
        "",
        f"- **Date:** {result['date']}",
        f"- **Machine:** {m.get('cpu', '?')}, {m.get('cores', '?')} cores, {m.get('memory', '?')}, "
        f"Linux {m.get('kernel', '?')}",
        f"- **Load average** (1/5/15 min) at start: {m.get('load_start', '?')}; at end: {m.get('load_end', '?')}"
        f" (above ~2, other work shared these 2 cores and the figures are noisy); took {m.get('took', '?')}",
        f"- **Pinning:** {m.get('pinning', '?')}",
        f"- **Tree:** {m.get('commit', '?')}; tools: "
        + ", ".join(f"{k} {v}" for k, v in m.get("tools", {}).items()),
        f"- **Command:** `{result['command']}`; {result['settings']}",
        f"- **Proxy measured:** `{m.get('proxy', '?')}`"
        + (" (the release build with a profile of its own traffic, scripts/build-pgo.sh: what "
           "`make release` and the image ship)" if m.get("proxy", "").endswith("pgo/claude-middleware") else ""),
        "",
        "## Goals at a glance",
        "",
        "| goal | measured | nginx, for comparison | met |",
        "|---|---|---|:-:|",
    ]
    for goal, measured, nginx, met in result["goals"]:
        lines.append(f"| {goal} | {measured} | {nginx} | {'✅' if met else '❌'} |")
    lines += ["", "\"Added\" figures are the median, over the interleaved repetitions, of the path's "
              "value minus the direct run's value next to it in time; a negative one means the "
              "difference is inside the run-to-run noise."]

    for key, title in (("rps_small", "## 1. Throughput, small JSON requests (wrk, closed loop)"),
                       ("rps_small_high", "## 1b. The same at high concurrency")):
        if key not in f:
            continue
        rps = f[key]["paths"]
        largest = max((rps[p]["median"] or 0) for p in rps)
        lines += ["", f"{title}, {fmt(f[key].get('connections'))} connections", "",
                  "| path | max RPS (median) | errors | server CPU per request | |", "|---|--:|--:|--:|---|"]
        for p in PATHS:
            if p in rps:
                lines.append(f"| {p} | {fmt(rps[p]['median'])} | {rps[p]['errors']} | "
                             f"{fmt(rps[p].get('server_cpu_us_per_request'), ' µs', 1)} | "
                             f"`{bar(rps[p]['median'], largest)}` |")
        lines.append("\nServer CPU per request: user + system time of the stand-in (direct), nginx's "
                     "master and worker, or the proxy, over the run, divided by its requests; the "
                     "stand-in's share is not counted for nginx and the proxy.")
        lines.append(f"\nproxy / nginx = **{fmt(f[key]['ratio_proxy_nginx'], digits=2)}**")

    for key, title in (("lat_c1", "## 2a. Latency at 1 concurrent request (oha)"),
                       ("lat_open", "## 2b. Latency, open loop at half of the slowest path's max RPS (oha --latency-correction)")):
        if key not in f:
            continue
        e = f[key]
        lines += ["", title + (f", {e['rate']} RPS" if e.get("rate") else ""), "",
                  "| path | p50 µs | p99 µs | added p50 µs | added p99 µs | errors |",
                  "|---|--:|--:|--:|--:|--:|"]
        for p in PATHS:
            if p in e["p50_us"]:
                lines.append(
                    f"| {p} | {fmt(e['p50_us'][p]['median'])} | {fmt(e['p99_us'][p]['median'])} | "
                    f"{fmt(e['added_p50_us'].get(p))} | {fmt(e['added_p99_us'].get(p))} | {e['errors'].get(p, 0)} |")

    if "sse" in f:
        s = f["sse"]
        lines += ["", "## 3. Streaming: SSE of 200 events 10 ms apart (sse-bench, 10 streams × 3 rounds)", "",
                  "| path | TTFB p50 µs | gap p50 µs | gap p99 µs | added TTFB µs | added gap p50 µs | added gap p99 µs | errors |",
                  "|---|--:|--:|--:|--:|--:|--:|--:|"]
        for p in PATHS:
            if p in s["ttfb_p50_us"]:
                lines.append(
                    f"| {p} | {fmt(s['ttfb_p50_us'][p]['median'])} | {fmt(s['gap_p50_us'][p]['median'])} | "
                    f"{fmt(s['gap_p99_us'][p]['median'])} | {fmt(s['added_ttfb_p50_us'].get(p))} | "
                    f"{fmt(s['added_gap_p50_us'].get(p))} | {fmt(s['added_gap_p99_us'].get(p))} | {s['errors'].get(p, 0)} |")
        if s.get("delivery_p99_us"):
            lines += ["", "Delivery: from the stand-in handing an event to its socket to its arrival at "
                      "the client (the stand-in stamps each event with the wall clock; same machine). "
                      "Unlike the gaps, it leaves out the stand-in's own timer jitter.", "",
                      "| path | delivery p50 µs | delivery p99 µs | added delivery p99 µs |", "|---|--:|--:|--:|"]
            for p in PATHS:
                if p in s["delivery_p99_us"]:
                    lines.append(f"| {p} | {fmt(s['delivery_p50_us'][p]['median'])} | "
                                 f"{fmt(s['delivery_p99_us'][p]['median'])} | {fmt(s['added_delivery_p99_us'].get(p))} |")

    if "rss" in f:
        lines += ["", "## 4. Memory: RSS idle and with open streams", "",
                  "| server | idle | with N open streams | N (ok / errors) | per open stream |",
                  "|---|--:|--:|--:|--:|"]
        for p in ("nginx", "proxy"):
            if p in f["rss"]:
                r = f["rss"][p]
                open_kib = r.get("open_kib")
                lines.append(
                    f"| {p} | {fmt(r['idle_kib'] / 1024, ' MiB', 1)} | "
                    f"{fmt(open_kib / 1024 if open_kib else None, ' MiB', 1)} | {r['streams']} ({r['ok']} / {r['errors']}) | "
                    f"{fmt(r['per_stream_kib'], ' KiB', 1)} |")
        lines.append("\nnginx: master + worker summed. The proxy holds two sockets per stream (client and upstream).")

    if "large_body" in f:
        b = f["large_body"]
        lines += ["", "## 5. Large bodies: 2 MiB JSON requests (wrk, 8 connections)", "",
                  "| path | RPS | MiB/s uploaded | p99 ms | errors |", "|---|--:|--:|--:|--:|"]
        for p in PATHS:
            if p in b["rps"]:
                lines.append(
                    f"| {p} | {fmt(b['rps'][p]['median'], digits=1)} | {fmt(b['mib_s'][p]['median'])} | "
                    f"{fmt(b['p99_us'][p]['median'] / 1000, digits=1)} | {b['errors'].get(p, 0)} |")

    if "cost" in f:
        c = f["cost"]
        plain = f.get("cost_plain", {})

        def row(label, key, digits=0):
            cells = [fmt(c.get(key), digits=digits)]
            if plain:
                cells.append(fmt(plain.get(key), digits=digits))
            cells.append(fmt(c.get("nginx_" + key)) if "nginx_" + key in c else "–")
            return f"| {label} | " + " | ".join(cells) + " |"

        header = "| figure | proxy | " + ("plain release build | " if plain else "") + "nginx |"
        lines += ["", "## 6. Cost per request, independent of the machine's load (bench/cost.sh)", "",
                  header, "|---|--:|" + ("--:|" if plain else "") + "--:|",
                  row("CPU instructions per small JSON request (callgrind)", "instructions_per_request"),
                  row("estimated cycles per small JSON request (callgrind's cache and branch simulation)",
                      "cycles_per_request"),
                  row("L1 cache misses per small JSON request (instruction and data)", "l1_misses_per_request"),
                  row("CPU instructions per SSE stream of 9 events (callgrind)", "instructions_per_stream"),
                  row("heap allocations per small JSON request (heaptrack)", "allocations_per_request", digits=1),
                  "", f"Over {c['requests']} requests after a 200-request warm-up, 4 connections. Compare "
                  "these between two trees: they do not move with what else runs on the machine. Estimated "
                  "cycles weigh each L1 miss and branch misprediction as 10 instructions and each "
                  "last-level miss as 100."]

    if "operator" in f:
        lines += ["", "## Operator at scale (local kube-apiserver + etcd + controller-manager)", "",
                  "| CRs | created in | converged in | operator writes per CR while converging | peak RSS "
                  "| cluster quiet after | steady window | writes in window | objects changed | reconciles |",
                  "|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
        for op in f["operator"]:
            lines.append(
                f"| {op['n']} | {op['create_s']:.1f} s | {op['converge_s']:.1f} s | "
                f"{fmt(op.get('converge_operator_writes_per_cr'), digits=1)} | "
                f"{op['peak_rss_kib'] / 1024:.1f} MiB | {fmt(op.get('quiet_after_converged_s'), ' s', 0)} | "
                f"{op['steady_window_s']} s | {op['steady_writes']:.0f} | "
                f"{op['steady_changed_objects']} | {op['steady_reconciles']:.0f} |")
        lines.append(
            "\nConverged = every CR has status.observedGeneration == metadata.generation and its "
            "Deployment, Service and NetworkPolicy exist; timed from the start of `kubectl create` "
            "(one POST per CR; the create time is included). Writes per CR while converging: server-side "
            "applies of children and status patches, from `apiserver_request_total`. The steady window starts once nobody (operator or controller "
            "manager) has written to CRs, children, ReplicaSets or Pods for 10 s (\"cluster quiet "
            "after\" convergence). Steady writes = the API server's `apiserver_request_total` for write verbs "
            "on CRs and every kind of child (all clients; Leases, Events and IP-allocator repairs "
            "reported in results.json, not counted), over the window.")
    lines += ["", "Raw runs (every repetition) are in `results.json`. Where a goal is missed, "
              "[`profiles.md`](profiles.md) says what costs the time or memory "
              "(`bench/profile.sh small|large|streams` reproduces it)."]
    return "\n".join(lines) + "\n"


def main():
    out_dir = sys.argv[1]
    raw_dir = os.path.join(out_dir, "raw")
    meta = load_one(raw_dir, "machine.json") or {}
    figures = summarise(raw_dir)
    result = {
        "date": meta.get("date"),
        "command": meta.get("command", "make bench"),
        "settings": meta.get("settings", ""),
        "machine": meta,
        "figures": figures,
        "goals": [],
    }
    result["goals"] = goals(figures)
    with open(os.path.join(out_dir, "results.json"), "w") as f:
        json.dump(dict(result, goals=[{"goal": g, "measured": v, "nginx": n, "met": m} for g, v, n, m in result["goals"]]),
                  f, indent=2, ensure_ascii=False)
        f.write("\n")
    with open(os.path.join(out_dir, "results.md"), "w") as f:
        f.write(markdown(result))


if __name__ == "__main__":
    main()

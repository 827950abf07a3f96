#!/usr/bin/env bash
# What one proxied request costs the proxy, in figures that do not move with the
# machine's load: CPU instructions (valgrind's callgrind) and heap allocations
# (heaptrack), per small JSON request, over a fixed number of requests after a
# warm-up. Wall-time figures (bench/run.sh) are noisy on a shared machine; these
# are what a change to the request path should be compared with.
#
#   bench/cost.sh [REQUESTS]     (default 2000; make bench runs it after the HTTP figures)
#
# Also instructions per SSE stream (REQUESTS/4 streams of 9 events), and both instruction
# figures for nginx as a plain reverse proxy (bench/nginx.conf.template, one process) on the
# same requests. Instructions are not cycles: callgrind also simulates the caches and branch
# predictor, and the estimated cycles (its usual weighting: Ir + 10 × (L1 misses + branch
# mispredictions) + 100 × last-level misses) are what tracked CPU time on this machine.
# Prints {"requests":…, "instructions_per_request":…, "nginx_instructions_per_request":…,
# "cycles_per_request":…, "nginx_cycles_per_request":…, "l1_misses_per_request":…,
# "nginx_l1_misses_per_request":…, "streams":…, "instructions_per_stream":…,
# "nginx_instructions_per_stream":…, "allocations_per_request":…} and writes it to
# $OUT/cost.json. The proxy measured is $PROXY_BIN (bench/lib.sh), else $BIN's.
# Needs target/release (or $BIN), valgrind and heaptrack (Debian packages). KEEP_WORK=1 keeps
# the callgrind dumps (callgrind_annotate them to see where the instructions go).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/bench/lib.sh"
BIN=${BIN:-$ROOT/target/release}
OUT=${OUT:-$ROOT/target/bench}
REQUESTS=${1:-2000}
STREAMS=$((REQUESTS / 4))
WARMUP=200
CONNECTIONS=4
WORK=$(mktemp -d /tmp/cmw-bench-cost.XXXXXX)
trap 'bench_cleanup; [ -n "${KEEP_WORK:-}" ] || rm -rf "$WORK"' EXIT
mkdir -p "$OUT"
for tool in valgrind callgrind_control heaptrack heaptrack_print python3 jq; do
  command -v "$tool" >/dev/null || die "$tool is needed (Debian: apt-get install valgrind heaptrack jq)"
done

redis=$(free_port); start_redis "$redis" "$WORK"
standin=$(free_port); start_standin "$standin"

# drive PORT COUNT [json|stream]: exactly COUNT requests, prints {"requests":…,"non_200":…}.
drive() {
  "${PIN_LOAD[@]}" python3 "$ROOT/bench/count.py" "$1" "$2" "$CONNECTIONS" "${3:-json}"
}
requests_of() { jq -r .requests <<<"$1"; }

# callgrind_counts PID PORT OUT: instructions (callgrind, instrumenting only between the
# warm-up and the dumps) over REQUESTS JSON requests, then over STREAMS streams (SSE, 5 text
# deltas: 9 events; each dump zeroes the counts). Prints "INSTRUCTIONS REQUESTS
# STREAM_INSTRUCTIONS STREAMS". Dumps on request are OUT.1 and OUT.2; the one at exit is not
# counted.
callgrind_counts() {
  local pid=$1 port=$2 out=$3 sent streams
  drive "$port" "$WARMUP" >/dev/null
  callgrind_control -i on "$pid" >/dev/null
  sent=$(requests_of "$(drive "$port" "$REQUESTS")")
  callgrind_control -d "$pid" >/dev/null
  streams=$(requests_of "$(drive "$port" "$STREAMS" stream)")
  callgrind_control -d "$pid" >/dev/null
  echo "$(totals "$out.1") $sent $(totals "$out.2") $streams"
}
totals() { awk '/^totals:/ { print $2 }' "$1"; }
# simulated FILE: "ESTIMATED_CYCLES L1_MISSES" of a dump, from its events by name.
simulated() {
  awk '/^events:/ { for (i = 2; i <= NF; i++) col[$i] = i }
    /^totals:/ { l1 = $col["I1mr"] + $col["D1mr"] + $col["D1mw"]
      ll = $col["ILmr"] + $col["DLmr"] + $col["DLmw"]; bm = $col["Bcm"] + $col["Bim"]
      print $col["Ir"] + 10 * (l1 + bm) + 100 * ll, l1 }' "$1"
}

SIMULATE=(--cache-sim=yes --branch-sim=yes)
PROXY_WRAP=(valgrind --tool=callgrind --instr-atstart=no "${SIMULATE[@]}"
  --callgrind-out-file="$WORK/callgrind.out")
proxy=$(free_port); start_proxy "$proxy" "$redis" "$standin"
read -r instructions sent stream_instructions streams \
  < <(callgrind_counts "$PROXY_PID" "$proxy" "$WORK/callgrind.out")
stop_pid "$PROXY_PID"

# The same for nginx, as the reference the proxy's figures are compared with.
NGINX_WRAP=(valgrind --tool=callgrind --instr-atstart=no "${SIMULATE[@]}"
  --callgrind-out-file="$WORK/nginx.callgrind.out")
nginx=$(free_port); NGINX_MASTER=off start_nginx "$nginx" "$standin" "$WORK/nginx"
read -r nginx_instructions nginx_sent nginx_stream_instructions nginx_streams \
  < <(callgrind_counts "$NGINX_PID" "$nginx" "$WORK/nginx.callgrind.out")
stop_pid "$NGINX_PID"
read -r cycles l1_misses < <(simulated "$WORK/callgrind.out.1")
read -r nginx_cycles nginx_l1_misses < <(simulated "$WORK/nginx.callgrind.out.1")

# Allocations: heaptrack has no switch, so two runs, with and without the
# measured requests, and the difference.
heap_run() { # NAME EXTRA_REQUESTS
  PROXY_WRAP=(heaptrack -o "$WORK/heap-$1")
  local port; port=$(free_port); start_proxy "$port" "$redis" "$standin"
  drive "$port" "$WARMUP" >/dev/null
  [ "$2" -eq 0 ] || drive "$port" "$2" >"$WORK/heap-$1.requests"
  local real; real=$(pgrep -f "^$(proxy_bin)" -P "$PROXY_PID" | head -1 || true)
  kill -TERM "${real:-$PROXY_PID}" 2>/dev/null || true
  wait "$PROXY_PID" 2>/dev/null || true
  heaptrack_print -f "$WORK"/heap-"$1".*zst --print-peaks 0 --print-allocators 0 \
    --print-temporary 0 --print-leaks 0 2>/dev/null >"$WORK/heap-$1.txt"
}
heap_run base 0
heap_run load "$REQUESTS"
calls() { sed -n 's/^calls to allocation functions: \([0-9]*\).*/\1/p' "$WORK/heap-$1.txt"; }
heap_sent=$(requests_of "$(cat "$WORK/heap-load.requests")")

jq -n --argjson instructions "$instructions" --argjson sent "$sent" \
  --argjson stream_instructions "$stream_instructions" --argjson streams "$streams" \
  --argjson calls_load "$(calls load)" --argjson calls_base "$(calls base)" \
  --argjson heap_sent "$heap_sent" \
  --argjson nginx_instructions "$nginx_instructions" --argjson nginx_sent "$nginx_sent" \
  --argjson nginx_stream_instructions "$nginx_stream_instructions" \
  --argjson nginx_streams "$nginx_streams" \
  --argjson cycles "$cycles" --argjson nginx_cycles "$nginx_cycles" \
  --argjson l1_misses "$l1_misses" --argjson nginx_l1_misses "$nginx_l1_misses" '{
    requests: $sent,
    instructions_per_request: ($instructions / $sent | round),
    nginx_instructions_per_request: ($nginx_instructions / $nginx_sent | round),
    cycles_per_request: ($cycles / $sent | round),
    nginx_cycles_per_request: ($nginx_cycles / $nginx_sent | round),
    l1_misses_per_request: ($l1_misses / $sent | round),
    nginx_l1_misses_per_request: ($nginx_l1_misses / $nginx_sent | round),
    streams: $streams,
    instructions_per_stream: ($stream_instructions / $streams | round),
    nginx_instructions_per_stream: ($nginx_stream_instructions / $nginx_streams | round),
    allocations_per_request: (($calls_load - $calls_base) / $heap_sent * 10 | round / 10)
  }' | tee "$OUT/cost.json"

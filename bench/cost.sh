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
# same requests. Prints {"requests":…, "instructions_per_request":…,
# "nginx_instructions_per_request":…, "streams":…, "instructions_per_stream":…,
# "nginx_instructions_per_stream":…, "allocations_per_request":…} and writes it to
# $OUT/cost.json.
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

# Instructions: callgrind instruments only between the warm-up and the dump.
PROXY_WRAP=(valgrind --tool=callgrind --instr-atstart=no
  --callgrind-out-file="$WORK/callgrind.out")
proxy=$(free_port); start_proxy "$proxy" "$redis" "$standin"
drive "$proxy" "$WARMUP" >/dev/null
callgrind_control -i on "$PROXY_PID" >/dev/null
measured=$(drive "$proxy" "$REQUESTS")
callgrind_control -d "$PROXY_PID" >/dev/null
# Dumps on request are callgrind.out.1, .2; the one at exit (shutdown) is not counted.
instructions=$(awk '/^totals:/ { print $2 }' "$WORK/callgrind.out.1")
sent=$(requests_of "$measured")
# Streams (SSE, 5 text deltas: 9 events) after a dump, which zeroes the counts.
streamed=$(drive "$proxy" "$STREAMS" stream)
callgrind_control -d "$PROXY_PID" >/dev/null
stream_instructions=$(awk '/^totals:/ { print $2 }' "$WORK/callgrind.out.2")
streams=$(requests_of "$streamed")
stop_pid "$PROXY_PID"

# The same for nginx (one process: master_process off, so that callgrind sees the
# worker), as the reference the proxy's figures are compared with.
nginx_dir=$WORK/nginx
nginx=$(free_port)
mkdir -p "$nginx_dir"
sed -e "s#@PREFIX@#$nginx_dir#g" -e "s#@PORT@#$nginx#g" -e "s#@UPSTREAM_PORT@#$standin#g" \
  -e 's/^master_process on;/master_process off;/' "$ROOT/bench/nginx.conf.template" >"$nginx_dir/nginx.conf"
"${PIN_SERVER[@]}" valgrind --tool=callgrind --instr-atstart=no \
  --callgrind-out-file="$WORK/nginx.callgrind.out" \
  nginx -p "$nginx_dir" -c "$nginx_dir/nginx.conf" -e "$nginx_dir/error.log" 2>"$WORK/nginx.valgrind" &
NGINX_PID=$!
BENCH_PIDS+=("$NGINX_PID")
wait_http "http://127.0.0.1:$nginx/health" 60 || die "nginx under valgrind did not start"
drive "$nginx" "$WARMUP" >/dev/null
callgrind_control -i on "$NGINX_PID" >/dev/null
nginx_sent=$(requests_of "$(drive "$nginx" "$REQUESTS")")
callgrind_control -d "$NGINX_PID" >/dev/null
nginx_instructions=$(awk '/^totals:/ { print $2 }' "$WORK/nginx.callgrind.out.1")
nginx_streams=$(requests_of "$(drive "$nginx" "$STREAMS" stream)")
callgrind_control -d "$NGINX_PID" >/dev/null
nginx_stream_instructions=$(awk '/^totals:/ { print $2 }' "$WORK/nginx.callgrind.out.2")
stop_pid "$NGINX_PID"

# Allocations: heaptrack has no switch, so two runs, with and without the
# measured requests, and the difference.
heap_run() { # NAME EXTRA_REQUESTS
  PROXY_WRAP=(heaptrack -o "$WORK/heap-$1")
  local port; port=$(free_port); start_proxy "$port" "$redis" "$standin"
  drive "$port" "$WARMUP" >/dev/null
  [ "$2" -eq 0 ] || drive "$port" "$2" >"$WORK/heap-$1.requests"
  local real; real=$(pgrep -f "^$BIN/claude-middleware" -P "$PROXY_PID" | head -1 || true)
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
  --argjson nginx_streams "$nginx_streams" '{
    requests: $sent,
    instructions_per_request: ($instructions / $sent | round),
    nginx_instructions_per_request: ($nginx_instructions / $nginx_sent | round),
    streams: $streams,
    instructions_per_stream: ($stream_instructions / $streams | round),
    nginx_instructions_per_stream: ($nginx_stream_instructions / $nginx_streams | round),
    allocations_per_request: (($calls_load - $calls_base) / $heap_sent * 10 | round / 10)
  }' | tee "$OUT/cost.json"

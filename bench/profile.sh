#!/usr/bin/env bash
# Where the proxy spends its CPU under load, or its memory per open stream.
#
#   bench/profile.sh small|large [SECONDS]   perf (software cpu-clock event, so it works in
#       VMs without hardware counters) on the proxy while wrk drives small JSON requests
#       (figure 1) or 2 MiB bodies (figure 5) through it; prints the hottest symbols.
#   bench/profile.sh streams [N]             heaptrack on the proxy while N (1000) SSE
#       streams are open (figure 4); prints the biggest allocation sites at the peak.
#
# Needs target/release (or $BIN), perf (Debian: linux-perf) and heaptrack (Debian: heaptrack).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/bench/lib.sh"
BIN=${BIN:-$ROOT/target/release}
OUT=${OUT:-$ROOT/target/bench}
load=${1:-small}
seconds=${2:-10}
connections=$([ "$load" = large ] && echo 8 || echo 64)
WORK=$(mktemp -d /tmp/cmw-bench-profile.XXXXXX)
trap 'bench_cleanup; rm -rf "$WORK"' EXIT
ulimit -n "$(ulimit -Hn)"
mkdir -p "$OUT"

redis=$(free_port); start_redis "$redis" "$WORK"
standin=$(free_port); start_standin "$standin"

if [ "$load" = streams ]; then
  command -v heaptrack >/dev/null || die "heaptrack is needed (Debian: apt-get install heaptrack)"
  streams=${2:-1000}
  PROXY_WRAP=(heaptrack -o "$OUT/heaptrack-proxy")
  proxy=$(free_port); start_proxy "$proxy" "$redis" "$standin"
  # PROXY_PID is heaptrack's; the proxy is its child.
  real=$(pgrep -f "^$(proxy_bin)" | head -1)
  "${PIN_LOAD[@]}" "$BIN/sse-bench" --url "http://127.0.0.1:$proxy" --streams "$streams" \
    --deltas 30 --gap-ms 300 --ramp-ms 3000 --settle-ms 1000 --rss-pids "$real" >"$WORK/sse.json"
  kill -TERM "$real"
  wait "$PROXY_PID" || true
  heaptrack_print -f "$OUT"/heaptrack-proxy.*zst --print-peaks 1 --print-allocators 0 \
    --print-temporary 0 --print-leaks 0 --peak-limit 8 -s 2 2>/dev/null |
    grep -v '^ *in /\|^ *at \|^$' | tee "$OUT/profile-proxy-streams.txt"
  jq -c . "$WORK/sse.json"
  exit 0
fi

command -v perf >/dev/null || die "perf is needed (Debian: apt-get install linux-perf)"
proxy=$(free_port); start_proxy "$proxy" "$redis" "$standin"
"${PIN_LOAD[@]}" wrk -t1 -c"$connections" -d2s -s "$ROOT/bench/$load.lua" \
  "http://127.0.0.1:$proxy/v1/messages" >/dev/null

"${PIN_LOAD[@]}" wrk -t1 -c"$connections" -d"$((seconds + 2))s" -s "$ROOT/bench/$load.lua" \
  "http://127.0.0.1:$proxy/v1/messages" >"$WORK/wrk.txt" &
wrk_pid=$!
sleep 1
perf record -e cpu-clock -F 499 -g -p "$PROXY_PID" -o "$OUT/perf-proxy-$load.data" -- sleep "$seconds" 2>/dev/null
wait "$wrk_pid"
{
  perf report -i "$OUT/perf-proxy-$load.data" --stdio --no-children --sort dso -g none 2>/dev/null
  perf report -i "$OUT/perf-proxy-$load.data" --stdio --no-children --sort symbol --percent-limit 0.8 \
    -g none 2>/dev/null
} | grep -v '^#' | grep -v '^$' | head -45 | tee "$OUT/profile-proxy-$load.txt"
log "perf data: $OUT/perf-proxy-$load.data; summary: $OUT/profile-proxy-$load.txt"

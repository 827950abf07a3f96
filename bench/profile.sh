#!/usr/bin/env bash
# Where the proxy spends its CPU under load: perf (software cpu-clock event, so it works
# in VMs without hardware counters) on the running proxy while wrk drives small JSON
# requests (figure 1) or 2 MiB bodies (figure 5) through it; prints the hottest symbols.
#
#   bench/profile.sh [small|large] [SECONDS]    (needs target/release; perf from linux-perf)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/bench/lib.sh"
BIN=${BIN:-$ROOT/target/release}
OUT=${OUT:-$ROOT/target/bench}
load=${1:-small}
seconds=${2:-10}
connections=$([ "$load" = large ] && echo 8 || echo 64)
command -v perf >/dev/null || die "perf is needed (Debian: apt-get install linux-perf)"
WORK=$(mktemp -d /tmp/cmw-bench-profile.XXXXXX)
trap 'bench_cleanup; rm -rf "$WORK"' EXIT
ulimit -n "$(ulimit -Hn)"
mkdir -p "$OUT"

redis=$(free_port); start_redis "$redis" "$WORK"
standin=$(free_port); start_standin "$standin"
proxy=$(free_port); start_proxy "$proxy" "$redis" "$standin"
"${PIN_LOAD[@]}" wrk -t1 -c"$connections" -d2s -s "$ROOT/bench/$load.lua" \
  "http://127.0.0.1:$proxy/v1/messages" >/dev/null

"${PIN_LOAD[@]}" wrk -t1 -c"$connections" -d"$((seconds + 2))s" -s "$ROOT/bench/$load.lua" \
  "http://127.0.0.1:$proxy/v1/messages" >"$WORK/wrk.txt" &
wrk_pid=$!
sleep 1
perf record -e cpu-clock -F 499 -g -p "$PROXY_PID" -o "$OUT/perf-proxy-$load.data" -- sleep "$seconds" 2>/dev/null
wait "$wrk_pid"
perf report -i "$OUT/perf-proxy-$load.data" --stdio --no-children --sort symbol --percent-limit 1.5 -g none \
  2>/dev/null | grep -v '^#' | grep -v '^$' | head -40 | tee "$OUT/profile-proxy-$load.txt"
log "perf data: $OUT/perf-proxy-$load.data; summary: $OUT/profile-proxy-$load.txt"

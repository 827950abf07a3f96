#!/usr/bin/env bash
# Figures 1-5: the same stand-in relay reached directly, through nginx and through
# claude-middleware, measured in interleaved repetitions (direct, nginx, proxy, direct, ...).
# Writes one JSON file per measurement under $RAW, named FIGURE-PATH-REP.json:
#   rps      wrk closed loop, small JSON requests (figure 1)
#   lat_c1   oha, 1 request at a time (figure 2)
#   lat_open oha open loop at half of direct's max RPS, --latency-correction (figure 2)
#   sse      sse-bench, SSE of 200 events 10 ms apart (figure 3)
#   large    wrk closed loop, 2 MiB request bodies (figure 5)
#   rss      idle RSS, and RSS with 1,000 open streams, proxy and nginx (figure 4)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/bench/lib.sh"
BIN=${BIN:-$ROOT/target/release}
RAW=${RAW:-$ROOT/target/bench/raw}
DURATION=${BENCH_DURATION:-10}
REPS=${BENCH_REPS:-3}
CONNECTIONS=${BENCH_CONNECTIONS:-50}
# Figure 1 again at high concurrency (issue 13 asks for both).
HIGH_CONNECTIONS=${BENCH_HIGH_CONNECTIONS:-256}
OPEN_STREAMS=${BENCH_OPEN_STREAMS:-1000}
OHA=${OHA:-oha}
WORK=$(mktemp -d /tmp/cmw-bench.XXXXXX)
mkdir -p "$RAW"
trap 'bench_cleanup; rm -rf "$WORK"' EXIT
# 1,000 streams through a proxy are 2,000 sockets there and 1,000 in the client: raise the
# soft limit as far as the hard one allows (65536 at most).
hard=$(ulimit -Hn)
if [ "$hard" = unlimited ] || [ "$hard" -gt 65536 ]; then hard=65536; fi
ulimit -n "$hard"

PATHS=(direct nginx proxy)
declare -A URL

start_servers() {
  REDIS_PORT=$(free_port)
  start_redis "$REDIS_PORT" "$WORK"
  STANDIN_PORT=$(free_port)
  start_standin "$STANDIN_PORT"
  NGINX_PORT=$(free_port)
  start_nginx "$NGINX_PORT" "$STANDIN_PORT" "$WORK/nginx"
  PROXY_PORT=$(free_port)
  start_proxy "$PROXY_PORT" "$REDIS_PORT" "$STANDIN_PORT"
  URL=([direct]=http://127.0.0.1:$STANDIN_PORT [nginx]=http://127.0.0.1:$NGINX_PORT
    [proxy]=http://127.0.0.1:$PROXY_PORT)
}

# The last JSON line a tool printed (wrk prints its own report before our done()).
last_json() { grep '^{' | tail -1; }

wrk_run() { # SCRIPT CONNECTIONS URL
  "${PIN_LOAD[@]}" wrk -t1 -c"$2" -d"${DURATION}s" --timeout 10s -s "$ROOT/bench/$1" "$3/v1/messages" | last_json
}

small_body='{"model":"claude-sonnet-4-5","max_tokens":64,"messages":[{"role":"user","content":"bench"}]}'
oha_run() { # URL ARGS...
  local url=$1; shift
  "${PIN_LOAD[@]}" "$OHA" --no-tui --output-format json -z "${DURATION}s" -m POST \
    -H "content-type: application/json" -H "x-api-key: $BENCH_API_KEY" \
    -H "anthropic-version: 2023-06-01" -d "$small_body" "$@" "$url/v1/messages"
}

median() { sort -n | awk '{v[NR]=$1} END {if (NR) print v[int((NR+1)/2)]; else print 0}'; }

start_servers
log "servers: stand-in :$STANDIN_PORT, nginx :$NGINX_PORT, proxy :$PROXY_PORT, redis :$REDIS_PORT; pinning: $PINNING"

log "warm-up"
for p in "${PATHS[@]}"; do
  DURATION=2 wrk_run small.lua "$CONNECTIONS" "${URL[$p]}" >/dev/null
done

# The server process(es) whose CPU a path costs, the stand-in excluded (except direct).
server_pids() {
  case $1 in
    direct) echo "$STANDIN_PID" ;;
    nginx) nginx_pids ;;
    proxy) echo "$PROXY_PID" ;;
  esac
}

clk_tck=$(getconf CLK_TCK)
# rps_figure NAME CONNECTIONS: max RPS and server CPU per request of each path, interleaved.
rps_figure() {
  local name=$1 connections=$2 rep p pids before used
  for rep in $(seq "$REPS"); do
    for p in "${PATHS[@]}"; do
      pids=$(server_pids "$p")
      before=$(cpu_ticks $pids)
      wrk_run small.lua "$connections" "${URL[$p]}" >"$WORK/wrk.json"
      used=$(($(cpu_ticks $pids) - before))
      # CPU per request is steadier than RPS on a shared machine.
      jq --argjson ticks "$used" --argjson hz "$clk_tck" --argjson c "$connections" \
        '. + {server_cpu_s: ($ticks / $hz), connections: $c}' "$WORK/wrk.json" >"$RAW/$name-$p-$rep.json"
    done
  done
}
if [ "${BENCH_ONLY_OPEN:-}" != 1 ]; then
  log "figure 1: max RPS, small JSON, ${REPS} × ${DURATION}s per path, $CONNECTIONS connections"
  rps_figure rps "$CONNECTIONS"
  log "figure 1b: the same at $HIGH_CONNECTIONS connections"
  rps_figure rps_high "$HIGH_CONNECTIONS"
fi
max_rps() { for f in "$RAW"/rps-"$1"-*.json; do jq '.requests / (.duration_us / 1e6)' "$f"; done | median; }
direct_rps=$(max_rps direct)
# Half of the slowest path's maximum: half of direct's alone would overload nginx and the
# proxy whenever direct is more than twice as fast (the stand-in is cheap), and then the
# open-loop latencies measure a growing queue, not the path.
slowest=$(for p in "${PATHS[@]}"; do max_rps "$p"; done | sort -n | head -1)
rate=$(printf '%.0f' "$(echo "$slowest / 2" | bc -l)")
log "direct max ≈ ${direct_rps} RPS, slowest ≈ $slowest; open-loop rate = $rate RPS"

log "figure 2: latency at 1 concurrent request, and open loop at $rate RPS"
for rep in $(seq "$REPS"); do
  if [ "${BENCH_ONLY_OPEN:-}" != 1 ]; then
    for p in "${PATHS[@]}"; do
      oha_run "${URL[$p]}" -c 1 >"$RAW/lat_c1-$p-$rep.json"
    done
  fi
  for p in "${PATHS[@]}"; do
    oha_run "${URL[$p]}" -c 256 -q "$rate" --latency-correction >"$RAW/lat_open-$p-$rep.json"
  done
done
echo "{\"rate\": $rate, \"direct_max_rps\": $direct_rps, \"slowest_max_rps\": $slowest}" >"$RAW/open_rate.json"
# BENCH_ONLY_OPEN=1 re-runs only the open-loop runs, from the figure-1 files already in $RAW.
[ "${BENCH_ONLY_OPEN:-}" != 1 ] || exit 0

log "figure 3: SSE, 200 events 10 ms apart, 10 streams × 3 rounds per run"
for rep in $(seq "$REPS"); do
  for p in "${PATHS[@]}"; do
    "${PIN_LOAD[@]}" "$BIN/sse-bench" --url "${URL[$p]}" --streams 10 --rounds 3 \
      --deltas 195 --gap-ms 10 >"$RAW/sse-$p-$rep.json"
  done
done

log "figure 5: 2 MiB request bodies, 8 connections"
for rep in $(seq "$REPS"); do
  for p in "${PATHS[@]}"; do
    wrk_run large.lua 8 "${URL[$p]}" >"$RAW/large-$p-$rep.json"
  done
done

log "figure 4: RSS idle and with $OPEN_STREAMS open streams (fresh nginx and proxy)"
stop_pid "$PROXY_PID"
stop_pid "$NGINX_PID"
start_nginx "$NGINX_PORT" "$STANDIN_PORT" "$WORK/nginx"
start_proxy "$PROXY_PORT" "$REDIS_PORT" "$STANDIN_PORT"
for p in nginx proxy; do
  # A few requests first, so that idle means "started and has served", not "never touched".
  DURATION=1 wrk_run small.lua 4 "${URL[$p]}" >/dev/null
  sleep 1
  if [ "$p" = nginx ]; then pids=$(nginx_pids); else pids=$PROXY_PID; fi
  idle=$(rss_kib $pids)
  # 60 events 250 ms apart: each stream lasts ~15 s, long enough for all to be open at once.
  "${PIN_LOAD[@]}" "$BIN/sse-bench" --url "${URL[$p]}" --streams "$OPEN_STREAMS" --rounds 1 \
    --deltas 55 --gap-ms 250 --ramp-ms 3000 --settle-ms 1000 \
    --rss-pids "$(echo $pids | tr ' ' ',')" >"$WORK/rss-$p.json"
  jq --argjson idle "$idle" --arg pids "$pids" '{idle_kib: $idle, open_kib: .rss_kib_open,
      streams: .streams, ok: .ok, errors: .errors, error_kinds: .error_kinds, pids: $pids}' \
    "$WORK/rss-$p.json" >"$RAW/rss-$p-1.json"
  cat "$RAW/rss-$p-1.json" >&2
done
log "http figures done"

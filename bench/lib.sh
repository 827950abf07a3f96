# Helpers shared by the bench scripts (sourced): logging, ports, CPU pinning, starting
# and stopping the servers, reading RSS. Every process started here is recorded in
# BENCH_PIDS and stopped by bench_cleanup (call it from an EXIT trap).

BENCH_PIDS=()
# A command the proxy runs under (bench/profile.sh: heaptrack); empty for the benchmark.
PROXY_WRAP=()
# So that the EXIT trap of each script (which stops what it started) runs on Ctrl-C and kill.
trap 'exit 130' INT
trap 'exit 143' TERM
# Servers on one core, load generators on the other (only on a machine with two or more).
SERVER_CPU=${BENCH_SERVER_CPU:-0}
LOAD_CPU=${BENCH_LOAD_CPU:-1}
# Same key for every path: the proxy checks it, nginx and the stand-in ignore it.
BENCH_API_KEY=${BENCH_API_KEY:-cr_bench_key_000001}
export BENCH_API_KEY

log() { printf '[bench %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Command prefixes (arrays, not functions, so that `$!` of a background start is the
# server's own pid: taskset execs the command).
if [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then
  PIN_SERVER=(taskset -c "$SERVER_CPU")
  PIN_LOAD=(taskset -c "$LOAD_CPU")
  PINNING="servers (stand-in, nginx, proxy, redis) on cpu $SERVER_CPU, load generators on cpu $LOAD_CPU"
else
  PIN_SERVER=()
  PIN_LOAD=()
  PINNING="none (fewer than 2 cores or no taskset)"
fi

# A port nobody listens on, below the ephemeral range (so that the thousands of
# client sockets of a run can never take it).
free_port() {
  python3 - <<'PY'
import random, socket
for _ in range(200):
    port = random.randint(20000, 30999)
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
        print(port)
        break
    except OSError:
        pass
    finally:
        s.close()
PY
}

# wait_http URL [seconds]: until URL answers 2xx.
wait_http() {
  local url=$1 deadline=$((SECONDS + ${2:-30}))
  while [ $SECONDS -lt $deadline ]; do
    curl -fsS -o /dev/null --max-time 2 "$url" 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

# stop_pid PID: TERM, then KILL after 5 s; forgets it.
stop_pid() {
  local pid=$1 i
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  local kept=() p
  for p in "${BENCH_PIDS[@]}"; do [ "$p" = "$pid" ] || kept+=("$p"); done
  BENCH_PIDS=("${kept[@]}")
}

bench_cleanup() {
  local pid
  for pid in "${BENCH_PIDS[@]}"; do stop_pid "$pid"; done
}

# Sum of VmRSS (KiB) of these pids.
rss_kib() {
  local total=0 pid kib
  for pid in "$@"; do
    kib=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
    total=$((total + ${kib:-0}))
  done
  echo "$total"
}

# CPU time (user + system, in clock ticks of getconf CLK_TCK) these pids have used, all
# their threads included.
cpu_ticks() {
  local total=0 pid
  for pid in "$@"; do
    total=$((total + $(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0)))
  done
  echo "$total"
}

# Peak RSS (VmHWM, KiB) of one pid.
hwm_kib() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

# start_redis PORT DIR: a private redis-server loaded with the relay fixtures.
start_redis() {
  local port=$1 dir=$2 fixtures
  fixtures=${CLAUDE_MIDDLEWARE_FIXTURES:-$ROOT/../shared/fixtures}/relay-accounts.redis
  [ -f "$fixtures" ] || die "fixtures not found: $fixtures (set CLAUDE_MIDDLEWARE_FIXTURES)"
  "${PIN_SERVER[@]}" redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
    --dir "$dir" --logfile "$dir/redis.log" &
  BENCH_PIDS+=($!)
  local i
  for i in $(seq 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
  redis-cli -p "$port" <"$fixtures" >/dev/null
}

# start_standin PORT: the stand-in relay in fast mode, one thread, on the server core.
start_standin() {
  "${PIN_SERVER[@]}" "$BIN/stand-in-relay" --port "$1" --fast --threads 1 >/dev/null &
  STANDIN_PID=$!
  BENCH_PIDS+=("$STANDIN_PID")
  wait_http "http://127.0.0.1:$1/health" || die "stand-in did not start"
}

# start_nginx PORT UPSTREAM_PORT DIR: sets NGINX_PID (the master).
# NGINX_WRAP: a command nginx runs under (bench/cost.sh: callgrind, with NGINX_MASTER=off so
# that the one process it sees does the work); empty for the benchmark.
NGINX_WRAP=()
start_nginx() {
  local port=$1 upstream=$2 dir=$3
  mkdir -p "$dir"
  sed -e "s#@PREFIX@#$dir#g" -e "s#@PORT@#$port#g" -e "s#@UPSTREAM_PORT@#$upstream#g" \
    -e "s/^master_process on;/master_process ${NGINX_MASTER:-on};/" \
    "$ROOT/bench/nginx.conf.template" >"$dir/nginx.conf"
  "${PIN_SERVER[@]}" "${NGINX_WRAP[@]}" nginx -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" \
    2>"$dir/stderr" &
  NGINX_PID=$!
  BENCH_PIDS+=("$NGINX_PID")
  wait_http "http://127.0.0.1:$port/health" 60 || die "nginx did not start (see $dir/error.log)"
}

# The master and its workers.
nginx_pids() { echo "$NGINX_PID" $(pgrep -P "$NGINX_PID"); }

# The proxy binary measured: $PROXY_BIN, else $BIN/claude-middleware. bench/run.sh sets the
# release build with a profile (scripts/build-pgo.sh), which make release and the image ship.
proxy_bin() { echo "${PROXY_BIN:-$BIN/claude-middleware}"; }

# start_proxy PORT REDIS_PORT TARGET_PORT: claude-middleware with auth on, the fixture pool
# and shared health; per-request log lines off (RUST_LOG=warn), like nginx's access_log off.
start_proxy() {
  local port=$1 redis=$2 target=$3
  PORT=$port GIN_MODE=release RUST_LOG=warn \
    MIDDLEWARE_AUTH_ENABLED=true MIDDLEWARE_API_KEYS=$BENCH_API_KEY \
    REDIS_URL=redis://127.0.0.1:$redis/0 TARGET_URL=http://127.0.0.1:$target \
    SHARED_HEALTH=true SHUTDOWN_DELAY=0 \
    "${PIN_SERVER[@]}" "${PROXY_WRAP[@]}" "$(proxy_bin)" >/dev/null 2>"$WORK/proxy.stderr" &
  PROXY_PID=$!
  BENCH_PIDS+=("$PROXY_PID")
  wait_http "http://127.0.0.1:$port/ready" 30 || die "proxy not ready (see $WORK/proxy.stderr)"
}

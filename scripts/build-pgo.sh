#!/usr/bin/env bash
# The release build of the proxy, optimised with a profile of its own traffic
# (profile-guided optimisation). `make release`, Dockerfile.proxy and
# `make bench` use it.
#
#   scripts/build-pgo.sh      writes target/pgo/claude-middleware
#
# Without a profile, the compiler guesses which code is hot and lays the rest
# between it; the request path then spans more instruction cache than nginx's,
# and pays for it in cycles (bench/results/profiles.md). The steps:
#  1. an instrumented build of the proxy;
#  2. the instrumented proxy serves a training load: small JSON answers,
#     SSE streams, a failover after a 429, and refused client keys, from the
#     stand-in relay, with the fixture accounts in a private redis-server, at
#     the default log level and at warn;
#  3. llvm-profdata merges what it counted;
#  4. the release build uses that profile;
#  5. the built proxy serves one request, as a check.
# Needs redis-server, python3 and curl (redis-server is installed with apt
# when missing) and rustup's llvm-tools component (added when missing).
# Knobs: PGO_REQUESTS (small requests per phase, 4000), PGO_OUT (the binary's
# path), CARGO_TARGET_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
. scripts/lib/common.sh

target=${CARGO_TARGET_DIR:-$root/target}
work=$target/pgo
out=${PGO_OUT:-$work/claude-middleware}
requests=${PGO_REQUESTS:-4000}
fixture=${CLAUDE_MIDDLEWARE_FIXTURES:-$root/tests/fixtures}/relay-accounts.redis
train_key=cr_pgo_training_key_0001
# --target: RUSTFLAGS then reach only the proxy and its dependencies, not the
# build scripts, which would leave profiles of their own.
host=$(rustc -vV | sed -n 's/^host: //p')

ensure_tool redis-server redis-server
ensure_tool redis-cli redis-tools
ensure_tool python3 python3
ensure_tool curl curl
profdata=$(rustc --print sysroot)/lib/rustlib/$host/bin/llvm-profdata
if [ ! -x "$profdata" ]; then
  command -v rustup >/dev/null ||
    die "llvm-profdata of this rustc's LLVM is needed at $profdata (rustup component add llvm-tools)"
  step "adding rustup's llvm-tools (llvm-profdata reads the profile)"
  rustup component add llvm-tools >/dev/null
  [ -x "$profdata" ] || die "llvm-profdata not found at $profdata"
fi

pids=()
cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT
rm -rf "$work/raw" "$work/logs"
mkdir -p "$work/raw" "$work/logs"

step "1/5 instrumented build"
CARGO_TARGET_DIR=$work/train RUSTFLAGS="${RUSTFLAGS:-} -Cprofile-generate=$work/raw" \
  cargo build --release --locked --quiet -p claude-middleware --bin claude-middleware --target "$host"
cargo build --locked --quiet -p claude-middleware-tests --bin stand-in-relay

step "2/5 training load"
redis_port=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no \
  --dir "$work" --logfile "$work/logs/redis.log" &
pids+=($!)
wait_for 10 "redis-server" redis-cli -p "$redis_port" ping
relay_port=$(free_port)
"$target/debug/stand-in-relay" --port "$relay_port" >"$work/logs/stand-in.log" 2>&1 &
pids+=($!)
wait_for 10 "the stand-in relay" curl -fsS "http://127.0.0.1:$relay_port/health"

# drive PORT COUNT CONNECTIONS MODE KEY EXPECTED_NON_200
drive() {
  local result
  result=$(BENCH_API_KEY=$5 python3 bench/count.py "$1" "$2" "$3" "$4")
  [ "$(sed 's/.*"non_200": *\([0-9]*\).*/\1/' <<<"$result")" = "$6" ] ||
    die "training load: expected $6 refused of $2 $4 requests, got $result"
}

# start_proxy BINARY LOG_NAME LOG_LEVEL: the proxy against the stand-in and the
# fixture pool, with auth on; sets port and pid once it is ready. Only the
# instrumented build reads LLVM_PROFILE_FILE.
start_proxy() {
  port=$(free_port)
  PORT=$port RUST_LOG=$3 LLVM_PROFILE_FILE="$work/raw/proxy-%p-%m.profraw" \
    MIDDLEWARE_AUTH_ENABLED=true MIDDLEWARE_API_KEYS=$train_key \
    REDIS_URL="redis://127.0.0.1:$redis_port/0" TARGET_URL="http://127.0.0.1:$relay_port" \
    SHARED_HEALTH=true SHUTDOWN_DELAY=0 \
    "$1" >"$work/logs/proxy-$2.log" 2>&1 &
  pid=$!
  pids+=("$pid")
  wait_for 30 "the proxy ($2)" curl -fsS "http://127.0.0.1:$port/ready"
}

# train LOG_LEVEL: one instrumented proxy through every phase, on a fresh pool
# and unscripted relay, then a clean exit (SIGTERM drains), which is when it
# writes its profile.
train() {
  local level=$1 port pid
  redis-cli -p "$redis_port" flushdb >/dev/null
  redis-cli -p "$redis_port" <"$fixture" >/dev/null
  curl -fsS -X POST "http://127.0.0.1:$relay_port/__stand-in/clear-scripts" >/dev/null
  start_proxy "$work/train/$host/release/claude-middleware" "$level" "$level"
  say "$level: $requests small JSON requests, $((requests / 4)) SSE streams"
  drive "$port" "$requests" 4 json "$train_key" 0
  drive "$port" "$((requests / 4))" 4 stream "$train_key" 0
  # The next two answers are 429s, whichever accounts they are for: those are
  # cooled down and the request fails over (two failures at most, within
  # RETRY_ATTEMPTS' default of 2).
  say "$level: two 429s, and the failover"
  curl -fsS "http://127.0.0.1:$relay_port/__stand-in/script" -H 'content-type: application/json' \
    -d '{"behaviour":"rate_limited","reset_in_secs":1,"times":2}' >/dev/null
  drive "$port" 200 4 stream "$train_key" 0
  say "$level: refused client keys"
  drive "$port" 200 4 json cr_not_a_configured_key 200
  kill -TERM "$pid"
  wait "$pid" || die "the instrumented proxy did not exit cleanly (see $work/logs/proxy-$level.log)"
}
train info
train warn

step "3/5 merging the profile"
ls "$work"/raw/proxy-*.profraw >/dev/null 2>&1 || die "the instrumented proxy wrote no profile"
"$profdata" merge -o "$work/merged.profdata" "$work"/raw/proxy-*.profraw

step "4/5 release build with the profile"
CARGO_TARGET_DIR=$work/use RUSTFLAGS="${RUSTFLAGS:-} -Cprofile-use=$work/merged.profdata" \
  cargo build --release --locked --quiet -p claude-middleware --bin claude-middleware --target "$host"
mkdir -p "$(dirname "$out")"
cp "$work/use/$host/release/claude-middleware" "$out"

step "5/5 the built proxy answers"
start_proxy "$out" built warn
drive "$port" 10 1 json "$train_key" 0
say "built $out"

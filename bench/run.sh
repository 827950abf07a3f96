#!/usr/bin/env bash
# `make bench`: the proxy against a direct connection and nginx, and the operator at scale.
#
#   bench/run.sh [--save] [--no-build] [--only http|operator]
#
# Builds the release binaries and the proxy as shipped (scripts/build-pgo.sh: the release
# build with a profile of its own traffic), installs what is missing (nginx, wrk, redis-server, jq, bc
# from Debian; oha from crates.io), runs bench/http.sh (figures 1-5) and bench/operator.sh
# (operator at scale), and writes target/bench/results.md and results.json. --save copies
# them to bench/results/latest.{md,json}. Takes about 12-15 minutes on 2 cores.
#
# Knobs (environment): BENCH_DURATION (s per load run, 10), BENCH_REPS (3),
# BENCH_CONNECTIONS (50), BENCH_HIGH_CONNECTIONS (256), BENCH_OPEN_STREAMS (1000), BENCH_OPERATOR_COUNTS ("50 200 500"),
# BENCH_STEADY_SECONDS (60), BENCH_SERVER_CPU (0), BENCH_LOAD_CPU (1).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
. bench/lib.sh

save=false
build=true
only=all
while [ $# -gt 0 ]; do
  case $1 in
    --save) save=true ;;
    # Use the release binaries already built (e.g. while the tree is mid-edit).
    --no-build) build=false ;;
    --only) only=$2; shift ;;
    -h | --help) sed -n '2,13p' "$0"; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
  shift
done

install_tools() {
  local missing=() tool
  for tool in nginx:nginx wrk:wrk redis-server:redis-server redis-cli:redis-tools jq:jq bc:bc \
    valgrind:valgrind heaptrack:heaptrack; do
    command -v "${tool%%:*}" >/dev/null || missing+=("${tool#*:}")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
  if ! command -v oha >/dev/null && [ ! -x "$HOME/.cargo/bin/oha" ]; then
    log "installing oha from crates.io (a few minutes, once)"
    cargo install oha --locked --quiet
  fi
  OHA=$(command -v oha || echo "$HOME/.cargo/bin/oha")
  export OHA
}

machine_json() { # COMMAND SETTINGS
  jq -n --arg date "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
    --arg cpu "$(lscpu | sed -n 's/^Model name: *//p' | head -1)" \
    --arg cores "$(nproc)" --arg memory "$(free -g | awk '/^Mem:/ {print $2 " GiB"}')" \
    --arg kernel "$(uname -r)" --arg load_start "$(cut -d' ' -f1-3 /proc/loadavg)" \
    --arg pinning "$PINNING" --arg command "$1" --arg settings "$2" --arg proxy "$PROXY_BIN" \
    --arg nginx "$(nginx -v 2>&1 | sed 's/.*: //')" --arg wrk "$(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2)" \
    --arg oha "$("$OHA" --version)" --arg rustc "$(rustc --version)" \
    --arg commit "$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown)" \
    '{date: $date, cpu: $cpu, cores: $cores, memory: $memory, kernel: $kernel,
      load_start: $load_start, pinning: $pinning, command: $command, settings: $settings,
      proxy: $proxy,
      commit: $commit,
      tools: {nginx: $nginx, wrk: $wrk, oha: $oha, rustc: $rustc}}'
}

install_tools
if $build; then
  log "building release binaries"
  cargo build --release --workspace --bins --quiet
  log "building the proxy with its profile (scripts/build-pgo.sh, about 4 minutes)"
  scripts/build-pgo.sh >"${TMPDIR:-/tmp}/cmw-bench-build-pgo.log" 2>&1 ||
    die "scripts/build-pgo.sh failed (see ${TMPDIR:-/tmp}/cmw-bench-build-pgo.log)"
fi
# cargo honours CARGO_TARGET_DIR; so do we (the default is target/).
export BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release
# The proxy measured is the one shipped; figure 6 also counts the plain release build.
export PROXY_BIN=${PROXY_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/pgo/claude-middleware}
[ "$only" = operator ] || [ -x "$PROXY_BIN" ] ||
  die "$PROXY_BIN is missing: run scripts/build-pgo.sh (or bench/run.sh without --no-build)"
OUT=$ROOT/target/bench
export RAW=$OUT/raw
rm -rf "$RAW"
mkdir -p "$RAW"

settings="${BENCH_DURATION:-10} s per load run, ${BENCH_REPS:-3} interleaved repetitions (median), \
${BENCH_CONNECTIONS:-50} and ${BENCH_HIGH_CONNECTIONS:-256} wrk connections; the proxy logs at warn (RUST_LOG=warn: no per-request \
lines, like nginx's access_log off)"
machine_json "bench/run.sh $*" "$settings" >"$RAW/machine.json"

# Figure 6 for the proxy measured, and for the plain release build beside it.
cost() {
  OUT=$RAW bench/cost.sh
  [ "$PROXY_BIN" = "$BIN/claude-middleware" ] || PROXY_BIN=$BIN/claude-middleware OUT=$RAW/plain bench/cost.sh
}

started=$SECONDS
case $only in
  all) bench/http.sh; cost; bench/operator.sh ;;
  http) bench/http.sh; cost ;;
  operator) bench/operator.sh ;;
  *) die "--only takes http or operator" ;;
esac

jq --arg load_end "$(cut -d' ' -f1-3 /proc/loadavg)" --arg took "$((SECONDS - started)) s" \
  '. + {load_end: $load_end, took: $took}' "$RAW/machine.json" >"$RAW/machine.json.new"
mv "$RAW/machine.json.new" "$RAW/machine.json"
python3 bench/report.py "$OUT"
log "results: $OUT/results.md, $OUT/results.json ($((SECONDS - started)) s)"
cat "$OUT/results.md"
if $save; then
  mkdir -p bench/results
  cp "$OUT/results.md" bench/results/latest.md
  cp "$OUT/results.json" bench/results/latest.json
  log "saved to bench/results/latest.{md,json}"
fi

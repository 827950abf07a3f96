#!/usr/bin/env bash
# Fuzzes the proxy's parsers of untrusted input (header rewriting, the SSE
# first-event parser, session-id extraction, key parsing, the relay's answers
# as the upstream client reads them, the requests as the HTTP/1 server
# reads them) with cargo fuzz.
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     (make fuzz)
# Crashers land in fuzz/artifacts/TARGET/; add each as a regression test.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(header_rewrite sse_first_event session_id key_parsing relay_answer client_request)

command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
# libFuzzer's instrumentation flags are nightly-only; on a stable toolchain
# they are allowed with RUSTC_BOOTSTRAP (the toolchain here is stable only).
if ! rustc --version | grep -q nightly; then export RUSTC_BOOTSTRAP=1; fi

for target in "${targets[@]}"; do
  mkdir -p "corpus/$target"
  echo "==> fuzzing $target for ${seconds}s"
  cargo fuzz run --sanitizer none "$target" "corpus/$target" -- \
    -max_total_time="$seconds" -max_len=4096 2>&1 | tail -n 3
done

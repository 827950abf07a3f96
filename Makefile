.PHONY: demo demo-clean test lint fuzz bench release
# The two commands of README.md.
demo:
	./scripts/demo.sh
# Stops everything the demo started (it leaves it running for you to try).
demo-clean:
	./scripts/demo.sh clean
test:
	./scripts/test.sh
lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --locked -- -D warnings

# The proxy as shipped: the release build with a profile of its own traffic
# (target/pgo/claude-middleware; Dockerfile.proxy runs the same script).
release:
	./scripts/build-pgo.sh

FUZZ_SECONDS ?= 60
fuzz:
	./scripts/fuzz.sh $(FUZZ_SECONDS)

# Not part of the tests: the proxy against direct and nginx, the operator at scale (bench/).
bench:
	./bench/run.sh

.PHONY: demo demo-clean test lint fuzz bench
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

FUZZ_SECONDS ?= 60
fuzz:
	./scripts/fuzz.sh $(FUZZ_SECONDS)

# Not part of the tests: the proxy against direct and nginx, the operator at scale (bench/).
bench:
	./bench/run.sh

.PHONY: demo demo-clean test lint
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

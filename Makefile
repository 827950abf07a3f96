.PHONY: demo test lint
# The two commands of README.md.
demo:
	./scripts/demo.sh
test:
	./scripts/test.sh
lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --locked -- -D warnings

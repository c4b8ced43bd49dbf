.PHONY: run test lint fmt

run:
	cargo run -- serve

test:
	bash scripts/test.sh

lint:
	cargo fmt --check
	cargo clippy --all-targets -- -D warnings

fmt:
	cargo fmt

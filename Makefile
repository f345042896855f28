# Dropline: `make run` serves the app, `make test` runs every check. Each installs what it
# needs first (and skips what is already there), starting from rustup, Node.js and npm.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := run

CARGO_HOME ?= $(HOME)/.cargo
export PATH := $(CURDIR)/end2end/node_modules/.bin:$(CARGO_HOME)/bin:$(PATH)
# Playwright drives Debian's Chromium; it must never download a browser of its own.
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD := 1

CARGO_LEPTOS_VERSION := 0.3.10
# The wasm-bindgen CLI must equal the crate version in Cargo.lock exactly.
WASM_BINDGEN_VERSION := $(shell awk '/^name = "wasm-bindgen"$$/ { getline; gsub(/[^0-9.]/, ""); print; exit }' Cargo.lock)
# `unit` and `bench` run under scripts/with-postgres.sh, which exports POSTGRES_URL: the one given
# (make test POSTGRES_URL=...), else the server at 127.0.0.1:5432, else a throwaway server it
# installs (Debian's postgresql), starts under target/pg and stops when the command ends.
WITH_POSTGRES := scripts/with-postgres.sh
# schemathesis (pinned in fuzz/requirements.txt) lives in a virtualenv inside the repository.
FUZZ_VENV := target/fuzz-venv
# Where cargo puts binaries (a shared CARGO_TARGET_DIR is honoured).
TARGET_DIR := $(or $(CARGO_TARGET_DIR),target)
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run dev build test lint unit e2e fuzz bench tools wasm-target cargo-leptos wasm-bindgen npm-tools fuzz-tools python chromium clean

## run: build the release and serve http://127.0.0.1:3000 on SQLite with demo drops (and the
## demo's sign-in by display name beside accounts with passwords)
run: build
	DEMO_SIGN_IN=true target/release/dropline

## dev: rebuild and reload on every change
dev: tools
	DEMO_SIGN_IN=true cargo leptos watch

## build: the release server and site (WASM, JS, CSS, with content-hashed names and brotli/gzip
## copies beside them) under target/
build: tools
	cargo leptos build --release --precompress

## test: formatting, import circles, clippy (ssr and hydrate), Rust tests on SQLite and
## PostgreSQL, Playwright, and a schemathesis fuzz run of /api/v1 against its OpenAPI document
test: lint unit e2e fuzz

## lint: formatting, no module of src/ or load/src/ using another round a loop
## (scripts/import-cycles.py), and clippy
lint: wasm-target python
	cargo fmt --all --check
	python3 -m unittest discover -s scripts -p 'test_*.py'
	python3 scripts/import-cycles.py src load/src
	cargo clippy --features ssr --all-targets -- -D warnings
	cargo clippy -p dropline-load -- -D warnings
	cargo clippy -p dropline-verify --all-targets -- -D warnings
	cargo clippy --features hydrate --lib --target wasm32-unknown-unknown -- -D warnings

unit:
	$(WITH_POSTGRES) bash -c 'DROPLINE_TEST_POSTGRES_URL="$$POSTGRES_URL" cargo test --features ssr'
	cargo test -p dropline-load
	cargo test -p dropline-verify

e2e: build chromium
	cd end2end && playwright test

## fuzz: the release server on a throwaway SQLite database, fuzzed by schemathesis through its
## own OpenAPI document (no 5xx, every answer as documented); fixed seed, bounded examples
fuzz: build fuzz-tools
	fuzz/run.sh $(TARGET_DIR)/release/dropline $(FUZZ_VENV)/bin/st

## bench: load-test the release build on SQLite, then PostgreSQL, and measure the page a phone
## gets (bytes as sent, a throttled load, Lighthouse); writes BENCHMARKS.md
bench: build chromium
	cargo build --release -p dropline-load
	$(WITH_POSTGRES) bash -c '$(TARGET_DIR)/release/dropline-load \
		--server $(TARGET_DIR)/release/dropline --postgres "$$POSTGRES_URL"'

tools: wasm-target cargo-leptos wasm-bindgen npm-tools

wasm-target:
	@rustup target list --installed | grep -qx wasm32-unknown-unknown \
		|| rustup target add wasm32-unknown-unknown

cargo-leptos:
	@cargo leptos --version 2>/dev/null | grep -qF '$(CARGO_LEPTOS_VERSION)' \
		|| cargo install cargo-leptos --locked --version '$(CARGO_LEPTOS_VERSION)'

# Not --locked: the CLI's own lock file names a crate version the registry here lacks.
wasm-bindgen:
	@wasm-bindgen --version 2>/dev/null | grep -qF '$(WASM_BINDGEN_VERSION)' \
		|| cargo install wasm-bindgen-cli --version '$(WASM_BINDGEN_VERSION)'

# Playwright and wasm-opt (npm binaryen; Debian's binaryen breaks hydration).
npm-tools: end2end/node_modules/.installed

end2end/node_modules/.installed: end2end/package.json end2end/package-lock.json
	cd end2end && npm ci --no-audit --no-fund
	touch $@

fuzz-tools: $(FUZZ_VENV)/.installed

$(FUZZ_VENV)/.installed: fuzz/requirements.txt | python
	python3 -m venv $(FUZZ_VENV)
	$(FUZZ_VENV)/bin/pip install --quiet --disable-pip-version-check -r fuzz/requirements.txt
	touch $@

# Python 3 with venv: the import-circle check and the fuzz run's virtualenv.
python:
	@python3 -c 'import ensurepip, venv' 2>/dev/null \
		|| { $(SUDO) apt-get update && $(SUDO) apt-get install -y python3 python3-venv; }

chromium:
	@command -v chromium >/dev/null \
		|| { $(SUDO) apt-get update && $(SUDO) apt-get install -y chromium; }

clean:
	cargo clean
	rm -rf end2end/node_modules end2end/test-results dropline.db*

# Build, test and demo entry points. `make test` and `make demo` work on a
# fresh Debian machine with Rust (rustup), Go and Python 3: the scripts
# install everything else, pinned, into a cache that later runs reuse.

SHELL := /bin/bash
CARGO ?= cargo
MUSL_TARGET := x86_64-unknown-linux-musl
STATIC_BIN := target/$(MUSL_TARGET)/release/vault-stork
DEBUG_BIN := target/debug/vault-stork
CACHE ?= $(or $(VAULT_STORK_CACHE),$(HOME)/.cache/vault-stork)

.PHONY: all build static test test-unit test-e2e test-deps demo fmt clippy clean

all: build

build:
	$(CARGO) build

# The static binary: musl, size-optimised, no interpreter, no shared libraries.
static:
	@rustup target list --installed | grep -qx $(MUSL_TARGET) || rustup target add $(MUSL_TARGET)
	@command -v musl-gcc >/dev/null || { apt-get update -qq && apt-get install -y -qq musl-tools; }
	CC_x86_64_unknown_linux_musl=musl-gcc $(CARGO) build --release --locked --target $(MUSL_TARGET)
	@echo "static binary: $(STATIC_BIN) ($$(stat -c %s $(STATIC_BIN)) bytes)"

test-deps:
	VAULT_STORK_CACHE=$(CACHE) scripts/test-deps.sh

test-unit:
	$(CARGO) test --locked

# End-to-end tests run inside a network namespace with only loopback up, so
# nothing can reach IMDS, AWS or any other host, whatever a bug does.
test-e2e: test-deps build static
	source $(CACHE)/env.sh && \
	VAULT_STORK_BIN=$(DEBUG_BIN) VAULT_STORK_STATIC_BIN=$(STATIC_BIN) \
	scripts/in-netns.sh "$$STORK_TEST_VENV/bin/python" -m pytest -q tests

test: test-unit test-e2e

demo: test-deps build
	source $(CACHE)/env.sh && \
	scripts/in-netns.sh "$$STORK_TEST_VENV/bin/python" -m tests.stack run -- scripts/demo.sh $(DEBUG_BIN)

fmt:
	$(CARGO) fmt

clippy:
	$(CARGO) clippy --all-targets -- -D warnings

clean:
	$(CARGO) clean

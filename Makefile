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
# The AMI kit's validators (packer, cloud-init, systemd-analyze, lintian)
# run first, then one pytest run covers the whole suite.
test-e2e: test-deps kit-deps build static
	VAULT_STORK_CACHE=$(CACHE) VAULT_STORK_STATIC_BIN=$(STATIC_BIN) \
	scripts/in-netns.sh scripts/kit-checks.sh lint
	source $(CACHE)/env.sh && \
	VAULT_STORK_CACHE=$(CACHE) VAULT_STORK_BIN=$(DEBUG_BIN) VAULT_STORK_STATIC_BIN=$(STATIC_BIN) \
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

# Fuzz every parser of untrusted input for FUZZ_SECONDS each (libFuzzer
# time), and append the executions per target to fuzz/RESULTS.md.
# FUZZ_TARGETS picks targets (default: all). scripts/fuzz.sh installs a
# nightly toolchain if missing and cargo-fuzz, pinned, into the cache.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?=

.PHONY: fuzz
fuzz:
	VAULT_STORK_CACHE=$(CACHE) FUZZ_SECONDS=$(FUZZ_SECONDS) scripts/fuzz.sh $(FUZZ_TARGETS)

# AMI baking kit: the .deb, the release tarball, and the checks of
# scripts/install.sh, dist/ and packer/. kit-deps installs the validators and
# builds a Debian root filesystem with debootstrap (cached; about 3 minutes
# the first time); the checks then run inside the network namespace.
.PHONY: deb dist kit-deps test-kit test-slow

deb: static
	scripts/build-deb.sh --binary $(STATIC_BIN)

dist: static
	scripts/dist.sh --binary $(STATIC_BIN)

kit-deps:
	VAULT_STORK_CACHE=$(CACHE) scripts/kit-checks.sh deps

test-kit: test-deps kit-deps static
	VAULT_STORK_CACHE=$(CACHE) VAULT_STORK_STATIC_BIN=$(STATIC_BIN) \
	scripts/in-netns.sh scripts/kit-checks.sh lint
	source $(CACHE)/env.sh && \
	VAULT_STORK_CACHE=$(CACHE) VAULT_STORK_STATIC_BIN=$(STATIC_BIN) \
	scripts/in-netns.sh "$$STORK_TEST_VENV/bin/python" -m pytest -c tests/pytest.ini -q tests/e2e/test_install_kit.py

# test-kit with the Debian root filesystem built again from the mirror, as
# on a fresh machine.
test-slow:
	VAULT_STORK_CACHE=$(CACHE) scripts/kit-checks.sh deps --rebuild-rootfs
	$(MAKE) test-kit

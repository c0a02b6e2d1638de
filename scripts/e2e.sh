#!/usr/bin/env bash
# Run the end-to-end tests against the local stack (moto, OpenBao with the
# AWS auth plugin, a fake IMDS), all inside a network namespace that has
# only loopback. Arguments go to pytest; the default is tests/e2e.
#
# The binary under test is $VAULT_STORK_BIN; when that is unset, this script
# builds target/debug/vault-stork with cargo first.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

scripts/test-deps.sh
# shellcheck source=/dev/null
. "${VAULT_STORK_CACHE:-$HOME/.cache/vault-stork}/env.sh"

if [[ -z "${VAULT_STORK_BIN:-}" ]]; then
  echo "e2e: building target/debug/vault-stork"
  cargo build --quiet
fi

if (($# == 0)); then
  set -- tests/e2e
fi
exec scripts/in-netns.sh "$STORK_TEST_VENV/bin/python" -m pytest -c tests/pytest.ini "$@"

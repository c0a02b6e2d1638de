"""Constants and helpers shared by the TLS, proxy and namespace tests."""

from __future__ import annotations

from pathlib import Path

from tests.runner import Result, StorkRunner
from tests.stack import ImdsServer
from tests.stack.stack import PROFILE_POLICY, PROFILE_ROLE, READ_POLICY
from tests.stack.tls_openbao import TlsOpenBaoServer

# The AWS auth mount of the second OpenBao's root namespace. It is not
# called "aws", so a login that should have gone to the namespace's "aws"
# mount finds no mount at all in the root namespace.
ROOT_MOUNT = "aws-root"

# Retry settings for runs that fail on purpose, so they end in about a second.
SHORT_RETRY = ("--max-wait", "1s", "--min-backoff", "100ms", "--max-backoff", "200ms")
# Retry settings for runs whose attempts fail transiently at random before
# the failure the test checks (see test_client_certificate_rejection_explained_once).
PATIENT_RETRY = ("--max-wait", "20s", "--min-backoff", "100ms", "--max-backoff", "300ms")

TLS_EXIT = 79
USAGE_EXIT = 64


def login(stork: StorkRunner, imds: ImdsServer, directory: Path, server: str, *extra: str,
          env: dict[str, str] | None = None, mount: str = ROOT_MOUNT) -> Result:
    """Run ``login`` against SERVER with the token and nonce files in DIRECTORY, then EXTRA."""
    return stork.login(imds, directory / "token", directory / "nonce", "--mount", mount,
                       "--role", PROFILE_ROLE, *extra, server=server, env=env)


def read_token(directory: Path) -> str:
    token = (directory / "token").read_text()
    assert token, f"{directory / 'token'} is empty"
    return token


def assert_logged_in(bao: TlsOpenBaoServer, directory: Path, mount: str = ROOT_MOUNT,
                     namespace: str | None = None) -> dict:
    """Check that the token in DIRECTORY is the profile role's token from MOUNT; return its lookup data."""
    data = bao.lookup_self(read_token(directory), namespace=namespace)
    assert data["path"] == f"auth/{mount}/login"
    assert data["meta"]["role"] == PROFILE_ROLE
    assert READ_POLICY in data["policies"]
    assert PROFILE_POLICY in data["policies"]
    return data

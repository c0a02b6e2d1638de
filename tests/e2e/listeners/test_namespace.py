"""End-to-end tests of ``--namespace`` against an OpenBao namespace.

The AWS auth plugin is registered in the root namespace and enabled at
``aws`` inside namespace ``ns1`` of the second OpenBao, whose root namespace
has no ``aws`` mount (its AWS auth is at ``aws-root``).
"""

from __future__ import annotations

import pytest

from tests.stack.stack import PROFILE_ROLE

from .support import SHORT_RETRY, assert_logged_in, login

NAMESPACE = "ns1"
NAMESPACE_MOUNT = "aws"


@pytest.fixture(scope="module")
def namespace_bao(tls_bao, stack):
    """The second OpenBao with namespace ns1 and the AWS auth method at ns1's auth/aws."""
    tls_bao.create_namespace(NAMESPACE)
    tls_bao.configure_aws_auth(stack, NAMESPACE_MOUNT, namespace=NAMESPACE)
    return tls_bao


def namespace_login(stork, imds, directory, bao, pki, *extra, env=None):
    return login(stork, imds, directory, bao.listener("rsa").url, "--ca-cert", str(pki.rsa_ca.certificate),
                 *SHORT_RETRY, "--verbose", *extra, env=env, mount=NAMESPACE_MOUNT)


def assert_namespace_token(bao, directory) -> None:
    data = assert_logged_in(bao, directory, mount=NAMESPACE_MOUNT, namespace=NAMESPACE)
    assert data["namespace_path"] == f"{NAMESPACE}/"


def test_namespace_mount_accepts_login(namespace_bao, instance):
    # The control for the tests below: a login that sends the header, from Python.
    client = namespace_bao.client(NAMESPACE, token="")

    reply = client.write(f"auth/{NAMESPACE_MOUNT}/login",
                         {"pkcs7": instance.pkcs7, "nonce": "namespace-control-nonce", "role": PROFILE_ROLE})

    token = reply["auth"]["client_token"]
    data = namespace_bao.lookup_self(token, namespace=NAMESPACE)
    assert data["namespace_path"] == f"{NAMESPACE}/"
    assert data["path"] == f"auth/{NAMESPACE_MOUNT}/login"


def test_namespace_flag_login(namespace_bao, pki, stork, imds, tmp_path):
    result = namespace_login(stork, imds, tmp_path, namespace_bao, pki, "--namespace", NAMESPACE)

    assert result.code == 0, result.describe()
    assert_namespace_token(namespace_bao, tmp_path)


def test_namespace_variable_login(namespace_bao, pki, stork, imds, tmp_path):
    result = namespace_login(stork, imds, tmp_path, namespace_bao, pki, env={"VAULT_NAMESPACE": NAMESPACE})

    assert result.code == 0, result.describe()
    assert_namespace_token(namespace_bao, tmp_path)


def test_namespace_prefixed_mount_login(namespace_bao, pki, stork, imds, tmp_path):
    result = namespace_login(stork, imds, tmp_path, namespace_bao, pki,
                             "--namespace", NAMESPACE, "--mount", f"{NAMESPACE}/{NAMESPACE_MOUNT}")

    assert result.code == 0, result.describe()
    assert_namespace_token(namespace_bao, tmp_path)


def test_namespace_prefix_not_doubled(namespace_bao, pki, stork, imds, tmp_path):
    # Checks only the request the binary builds, so it passes despite the header bug above.
    url = namespace_bao.listener("rsa").url

    result = namespace_login(stork, imds, tmp_path, namespace_bao, pki,
                             "--namespace", f"/{NAMESPACE}/", "--mount", f"{NAMESPACE}/{NAMESPACE_MOUNT}")

    assert f"Vault namespace: {NAMESPACE}\n" in result.stderr, result.describe()
    assert f"Vault login: POST {url}/v1/auth/{NAMESPACE_MOUNT}/login" in result.stderr
    assert f"/{NAMESPACE}/{NAMESPACE_MOUNT}/login" not in result.stderr


def test_login_without_namespace_rejected(namespace_bao, pki, stork, imds, tmp_path):
    # Without the namespace the login goes to the root namespace's auth/aws,
    # which does not exist. OpenBao rejects an unauthenticated request to an
    # unmounted path with 403 "permission denied", which the binary reports
    # as a rejected login.
    result = namespace_login(stork, imds, tmp_path, namespace_bao, pki)

    assert result.code == 77, result.describe()
    assert "Vault rejected the login (HTTP 403): permission denied" in result.stderr
    assert "retrying" not in result.stderr
    assert not (tmp_path / "token").exists()


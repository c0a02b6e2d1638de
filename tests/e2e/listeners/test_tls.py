"""End-to-end tests of TLS to Vault against real OpenBao TLS listeners.

Each listener of the ``tls_bao`` fixture has its own certificate or TLS
settings (see conftest.py); every run is a full EC2 login through it.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.stack.certificates import message_time

from .pki import MISMATCH_NAME
from .support import PATIENT_RETRY, TLS_EXIT, USAGE_EXIT, assert_logged_in, login

# A CA file that cannot be read is a local file error, like any input file.
FILE_EXIT = 74


def tls_line(stderr: str) -> str:
    """Return the ``TLS: <version> with ...`` line that --verbose logs after a handshake."""
    lines = [line for line in stderr.splitlines() if line.startswith("vault-stork: TLS: ")]
    assert lines, f"--verbose logged no handshake line:\n{stderr}"
    return lines[-1]


def assert_single_attempt(result) -> None:
    """A TLS failure is permanent, so the binary must not retry it."""
    assert "retrying" not in result.stderr, result.describe()


# One successful login per listener


@pytest.mark.parametrize(
    ("listener_name", "ca_name", "version", "host", "subject"),
    [
        ("rsa", "rsa_ca", "TLSv1_3", "127.0.0.1", "CN=rsa-server"),
        # Only the ECDSA root is trusted, so this passes only if the listener sends the intermediate.
        ("ecdsa-chain", "ecdsa_root", "TLSv1_3", "127.0.0.1", "CN=ecdsa-server"),
        ("tls12-only", "rsa_ca", "TLSv1_2", "127.0.0.1", "CN=rsa-server"),
        ("tls13-only", "rsa_ca", "TLSv1_3", "127.0.0.1", "CN=rsa-server"),
        ("ipv6", "rsa_ca", "TLSv1_3", "::1", "CN=rsa-server"),
    ],
)
def test_listener_login_with_ca_cert(tls_bao, pki, stork, imds, tmp_path, listener_name, ca_name, version, host,
                                     subject):
    listener = tls_bao.listener(listener_name)
    ca = getattr(pki, ca_name).certificate

    result = login(stork, imds, tmp_path, listener.url, "--ca-cert", str(ca), "--verbose")

    assert result.code == 0, result.describe()
    assert f"TLS trust: --ca-cert {ca}" in result.stderr
    handshake = tls_line(result.stderr)
    assert f"TLS: {version} with {host} (verified as {host})" in handshake
    assert f"server certificate subject O=vault-stork tests, {subject}" in handshake
    assert_logged_in(tls_bao, tmp_path)


def test_ipv6_url_has_brackets(tls_bao, pki, stork, imds, tmp_path):
    listener = tls_bao.listener("ipv6")
    assert listener.url.startswith("https://[::1]:")

    result = login(stork, imds, tmp_path, listener.url, "--ca-cert", str(pki.rsa_ca.certificate), "--verbose")

    assert result.code == 0, result.describe()
    assert f"Vault login: POST {listener.url}/v1/auth/" in result.stderr


def test_ca_cert_from_environment(tls_bao, pki, stork, imds, tmp_path):
    result = login(stork, imds, tmp_path, tls_bao.listener("rsa").url, "--verbose",
                   env={"VAULT_CACERT": str(pki.rsa_ca.certificate)})

    assert result.code == 0, result.describe()
    assert f"TLS trust: --ca-cert {pki.rsa_ca.certificate}" in result.stderr
    assert_logged_in(tls_bao, tmp_path)


# Untrusted server certificates


def test_wrong_ca_rejected(tls_bao, pki, stork, imds, tmp_path):
    wrong = pki.wrong_ca.certificate

    result = login(stork, imds, tmp_path, tls_bao.listener("rsa").url, "--ca-cert", str(wrong))

    assert result.code == TLS_EXIT, result.describe()
    assert "not signed by a trusted CA" in result.stderr
    assert f"(trusted: --ca-cert {wrong})" in result.stderr
    assert "--ca-cert or VAULT_CACERT" in result.stderr
    assert not (tmp_path / "token").exists()
    assert_single_attempt(result)


def test_default_trust_rejects_private_ca(tls_bao, stork, imds, tmp_path):
    # The runner passes only PATH, so SSL_CERT_FILE and SSL_CERT_DIR are unset
    # and the binary reads a system bundle (if this machine has one) plus the
    # built-in roots.
    result = login(stork, imds, tmp_path, tls_bao.listener("rsa").url)

    assert result.code == TLS_EXIT, result.describe()
    assert "not signed by a trusted CA" in result.stderr
    assert "the built-in webpki roots" in result.stderr
    assert_single_attempt(result)


def test_ecdsa_chain_rejected_with_rsa_ca(tls_bao, pki, stork, imds, tmp_path):
    result = login(stork, imds, tmp_path, tls_bao.listener("ecdsa-chain").url,
                   "--ca-cert", str(pki.rsa_ca.certificate))

    assert result.code == TLS_EXIT, result.describe()
    assert "not signed by a trusted CA" in result.stderr


def test_name_mismatch_lists_certificate_names(tls_bao, pki, stork, imds, tmp_path):
    result = login(stork, imds, tmp_path, tls_bao.listener("name-mismatch").url,
                   "--ca-cert", str(pki.rsa_ca.certificate))

    assert result.code == TLS_EXIT, result.describe()
    assert 'not valid for the name "127.0.0.1"' in result.stderr
    assert MISMATCH_NAME in result.stderr
    assert "--tls-server-name" in result.stderr
    assert_single_attempt(result)


def test_name_mismatch_names_are_plain(tls_bao, pki, stork, imds, tmp_path):
    result = login(stork, imds, tmp_path, tls_bao.listener("name-mismatch").url,
                   "--ca-cert", str(pki.rsa_ca.certificate))

    assert result.code == TLS_EXIT, result.describe()
    assert f"it names {MISMATCH_NAME};" in result.stderr, result.describe()


def test_tls_server_name_accepts_mismatch_cert(tls_bao, pki, stork, imds, tmp_path):
    result = login(stork, imds, tmp_path, tls_bao.listener("name-mismatch").url,
                   "--ca-cert", str(pki.rsa_ca.certificate), "--tls-server-name", MISMATCH_NAME, "--verbose")

    assert result.code == 0, result.describe()
    assert f"with 127.0.0.1 (verified as {MISMATCH_NAME})" in tls_line(result.stderr)
    assert "CN=mismatch-server" in tls_line(result.stderr)
    assert_logged_in(tls_bao, tmp_path)


def test_tls_server_name_from_environment(tls_bao, pki, stork, imds, tmp_path):
    result = login(stork, imds, tmp_path, tls_bao.listener("name-mismatch").url, "--verbose",
                   env={"VAULT_CACERT": str(pki.rsa_ca.certificate), "VAULT_TLS_SERVER_NAME": MISMATCH_NAME})

    assert result.code == 0, result.describe()
    assert f"(verified as {MISMATCH_NAME})" in tls_line(result.stderr)


def test_tls_server_name_must_match_too(tls_bao, pki, stork, imds, tmp_path):
    result = login(stork, imds, tmp_path, tls_bao.listener("rsa").url,
                   "--ca-cert", str(pki.rsa_ca.certificate), "--tls-server-name", MISMATCH_NAME)

    assert result.code == TLS_EXIT, result.describe()
    assert f'not valid for the name "{MISMATCH_NAME}"' in result.stderr
    assert "127.0.0.1" in result.stderr


def test_expired_certificate_rejected(tls_bao, pki, stork, imds, tmp_path):
    result = login(stork, imds, tmp_path, tls_bao.listener("expired").url, "--ca-cert", str(pki.rsa_ca.certificate))

    assert result.code == TLS_EXIT, result.describe()
    assert f"its certificate expired at {message_time(pki.expired_server.not_after)}" in result.stderr
    assert "check this machine's clock" in result.stderr
    assert_single_attempt(result)


# --tls-skip-verify


@pytest.mark.parametrize("listener_name", ["expired", "name-mismatch"])
def test_skip_verify_accepts_bad_certificate(tls_bao, stork, imds, tmp_path, listener_name):
    result = login(stork, imds, tmp_path, tls_bao.listener(listener_name).url, "--tls-skip-verify")

    assert result.code == 0, result.describe()
    assert "warning: --tls-skip-verify is set" in result.stderr
    assert_logged_in(tls_bao, tmp_path)


def test_skip_verify_warns_on_every_run(tls_bao, stork, imds, tmp_path):
    url = tls_bao.listener("rsa").url

    for _ in range(2):
        result = login(stork, imds, tmp_path, url, env={"VAULT_SKIP_VERIFY": "true"})

        assert result.code == 0, result.describe()
        assert "warning: --tls-skip-verify is set" in result.stderr


# Client certificates


@pytest.mark.parametrize(
    ("key_type", "form"),
    [("rsa", "pkcs8"), ("rsa", "pkcs1"), ("ecdsa", "pkcs8"), ("ecdsa", "sec1"), ("ed25519", "pkcs8")],
)
@pytest.mark.parametrize("listener_name", ["client-cert", "client-cert-tls12"])
def test_client_certificate_key_forms(tls_bao, pki, stork, imds, tmp_path, listener_name, key_type, form):
    client = pki.clients[key_type]

    result = login(stork, imds, tmp_path, tls_bao.listener(listener_name).url,
                   "--ca-cert", str(pki.rsa_ca.certificate),
                   "--client-cert", str(client.certificate), "--client-key", str(client.key_in_form(form)))

    assert result.code == 0, result.describe()
    assert_logged_in(tls_bao, tmp_path)


def test_client_certificate_from_environment(tls_bao, pki, stork, imds, tmp_path):
    client = pki.clients["ecdsa"]

    result = login(stork, imds, tmp_path, tls_bao.listener("client-cert").url, env={
        "VAULT_CACERT": str(pki.rsa_ca.certificate),
        "VAULT_CLIENT_CERT": str(client.certificate),
        "VAULT_CLIENT_KEY": str(client.key_in_form("sec1")),
    })

    assert result.code == 0, result.describe()
    assert_logged_in(tls_bao, tmp_path)


def test_missing_client_certificate_tls12(tls_bao, pki, stork, imds, tmp_path):
    result = login(stork, imds, tmp_path, tls_bao.listener("client-cert-tls12").url,
                   "--ca-cert", str(pki.rsa_ca.certificate), *PATIENT_RETRY)

    assert result.code == TLS_EXIT, result.describe()
    # OpenBao (Go's crypto/tls) ends a TLS 1.2 handshake that lacks the required
    # certificate with a handshake_failure alert, which can also mean no common
    # version or cipher.
    assert "a client certificate is required" in result.stderr
    assert not (tmp_path / "token").exists()


def test_untrusted_client_certificate_tls12(tls_bao, pki, stork, imds, tmp_path):
    client = pki.untrusted_client

    result = login(stork, imds, tmp_path, tls_bao.listener("client-cert-tls12").url,
                   "--ca-cert", str(pki.rsa_ca.certificate), *PATIENT_RETRY,
                   "--client-cert", str(client.certificate), "--client-key", str(client.key))

    assert result.code == TLS_EXIT, result.describe()
    assert "rejected our client certificate" in result.stderr
    assert not (tmp_path / "token").exists()


# How often each single-attempt run below is repeated. Before the binary
# explained connections closed after a certificate request, about half of
# these runs failed with a bare "Broken pipe" (an estimate from 20 runs per
# case), so twelve runs all passing by chance is unlikely.
REJECTION_RUNS = 12


@pytest.mark.parametrize(("listener_name", "client", "explanation"), [
    pytest.param("client-cert-tls12", "missing", "a client certificate is required", id="tls12-missing"),
    pytest.param("client-cert-tls12", "untrusted", "rejected our client certificate", id="tls12-untrusted"),
    pytest.param("client-cert", "missing", "requires a client certificate", id="tls13-missing"),
    pytest.param("client-cert", "untrusted", "rejected our client certificate", id="tls13-untrusted"),
])
def test_client_certificate_rejection_explained_once(tls_bao, pki, stork, imds, tmp_path, listener_name, client,
                                                     explanation):
    extra = ["--max-wait", "0"]
    if client == "untrusted":
        extra += ["--client-cert", str(pki.untrusted_client.certificate),
                  "--client-key", str(pki.untrusted_client.key)]

    for _ in range(REJECTION_RUNS):
        result = login(stork, imds, tmp_path, tls_bao.listener(listener_name).url,
                       "--ca-cert", str(pki.rsa_ca.certificate), *extra)

        assert result.code == TLS_EXIT, result.describe()
        assert explanation in result.stderr, result.describe()


@pytest.mark.parametrize("other_key", ["same type", "other type"])
def test_mismatched_client_key_is_usage_error(tls_bao, pki, stork, imds, tmp_path, other_key):
    certificate = pki.clients["rsa"].certificate
    key = pki.untrusted_client.key if other_key == "same type" else pki.clients["ecdsa"].key

    result = login(stork, imds, tmp_path, tls_bao.listener("client-cert").url,
                   "--ca-cert", str(pki.rsa_ca.certificate),
                   "--client-cert", str(certificate), "--client-key", str(key))

    assert result.code == USAGE_EXIT, result.describe()
    assert f"cannot use client certificate {certificate} with key {key}" in result.stderr
    assert "the key does not match the certificate" in result.stderr
    # TLS settings are checked before the binary touches the network.
    assert imds.request_count() == 0
    assert not (tmp_path / "nonce").exists()


# Trust from directories and bundles


def write_bundle(path: Path, pki) -> Path:
    """Write a CA bundle with comments, an unrelated CA, an intermediate and both roots."""
    pieces = [
        "# CA bundle for vault-stork tests, laid out like a distribution bundle\n",
        "\n# unrelated CA\n", pki.wrong_ca.certificate.read_text(),
        "\nThis text between certificates is ignored.\n",
        "\n# ECDSA intermediate\n", pki.ecdsa_intermediate.certificate.read_text(),
        "\n# RSA CA\n", pki.rsa_ca.certificate.read_text(),
        "\n# ECDSA root\n", pki.ecdsa_root.certificate.read_text(),
    ]
    path.write_text("".join(pieces))
    return path


@pytest.mark.parametrize("listener_name", ["rsa", "ecdsa-chain"])
def test_bundle_with_comments_and_intermediates(tls_bao, pki, stork, imds, tmp_path, listener_name):
    bundle = write_bundle(tmp_path / "bundle.pem", pki)

    result = login(stork, imds, tmp_path, tls_bao.listener(listener_name).url, "--ca-cert", str(bundle))

    assert result.code == 0, result.describe()
    assert_logged_in(tls_bao, tmp_path)


def make_ca_directory(directory: Path, pki) -> Path:
    """Lay out DIRECTORY as OpenSSL's hashed CA directory, plus a file that contains no certificate."""
    directory.mkdir()
    shutil.copy(pki.rsa_ca.certificate, directory / "rsa-ca.pem")
    shutil.copy(pki.ecdsa_root.certificate, directory / "ecdsa-root.crt")
    (directory / "README").write_text("CA certificates for the vault-stork tests.\n")
    subprocess.run(["openssl", "rehash", str(directory)], check=True, capture_output=True)
    return directory


@pytest.mark.parametrize("listener_name", ["rsa", "ecdsa-chain"])
def test_ca_path_directory(tls_bao, pki, stork, imds, tmp_path, listener_name):
    directory = make_ca_directory(tmp_path / "cas", pki)

    result = login(stork, imds, tmp_path, tls_bao.listener(listener_name).url, "--ca-path", str(directory),
                   "--verbose")

    assert result.code == 0, result.describe()
    assert f"TLS trust: --ca-path {directory}" in result.stderr
    assert_logged_in(tls_bao, tmp_path)


def test_ca_path_from_environment(tls_bao, pki, stork, imds, tmp_path):
    directory = make_ca_directory(tmp_path / "cas", pki)

    result = login(stork, imds, tmp_path, tls_bao.listener("rsa").url, env={"VAULT_CAPATH": str(directory)})

    assert result.code == 0, result.describe()
    assert_logged_in(tls_bao, tmp_path)


def test_ca_path_without_certificates_is_usage_error(tls_bao, pki, stork, imds, tmp_path):
    directory = tmp_path / "empty-cas"
    directory.mkdir()
    (directory / "README").write_text("no certificates here\n")

    result = login(stork, imds, tmp_path, tls_bao.listener("rsa").url, "--ca-path", str(directory))

    assert result.code == USAGE_EXIT, result.describe()
    assert f"--ca-path {directory} contains no PEM certificate" in result.stderr
    assert imds.request_count() == 0


@pytest.mark.parametrize("contents", ["key only", "empty", "text"])
def test_ca_cert_without_certificate_named(tls_bao, pki, stork, imds, tmp_path, contents):
    ca_file = tmp_path / "not-a-bundle.pem"
    if contents == "key only":
        ca_file.write_text(pki.clients["rsa"].key.read_text())
    elif contents == "empty":
        ca_file.write_text("")
    else:
        ca_file.write_text("# this file was meant to hold the CA\n")

    result = login(stork, imds, tmp_path, tls_bao.listener("rsa").url, "--ca-cert", str(ca_file))

    assert result.code == USAGE_EXIT, result.describe()
    assert f"--ca-cert {ca_file} contains no PEM certificate" in result.stderr
    assert imds.request_count() == 0


def test_missing_ca_cert_file_named(tls_bao, stork, imds, tmp_path):
    ca_file = tmp_path / "no-such-ca.pem"

    result = login(stork, imds, tmp_path, tls_bao.listener("rsa").url, "--ca-cert", str(ca_file))

    assert result.code == FILE_EXIT, result.describe()
    assert f"cannot read --ca-cert {ca_file}" in result.stderr

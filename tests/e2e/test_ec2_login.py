"""End-to-end tests of ``vault-stork login`` with the EC2 method.

Each test gets a new moto instance and its own IMDS (fixtures ``instance``
and ``imds``), so OpenBao's identity access list has no nonce for it yet.
Every run of the binary is checked for secrets in its output by the runner.
"""

from __future__ import annotations

import fcntl
import os
import re
import time
from pathlib import Path

import pytest

from tests.runner import StorkRunner, file_mode
from tests.stack import CUSTOM_MOUNT, DEFAULT_MOUNT
from tests.stack.process import free_port
from tests.stack.stack import (
    AMI_POLICY,
    PROFILE_POLICY,
    PROFILE_ROLE,
    READ_POLICY,
    UNMATCHED_ACCOUNT_ROLE,
    UNMATCHED_AMI_ROLE,
)

# A new nonce is 88 characters of base64url, padding allowed.
NONCE_PATTERN = re.compile(r"(?=.{88}$)[A-Za-z0-9_-]+={0,2}")

TOKEN_PUT_PATH = "/latest/api/token"
IAM_INFO_PATH = "/latest/meta-data/iam/info"
DOCUMENT_PATH = "/latest/dynamic/instance-identity/document"
PKCS7_PATH = "/latest/dynamic/instance-identity/pkcs7"
RSA2048_PATH = "/latest/dynamic/instance-identity/rsa2048"
SIGNATURE_PATH = "/latest/dynamic/instance-identity/signature"

HTML_PAGE = """<!DOCTYPE html>
<html><head><title>Service Unavailable</title></head>
<body><h1>The metadata proxy is under maintenance</h1></body></html>
"""


# Retry settings for runs that meet a transient failure on purpose, so they
# end in about a second instead of the default two minutes.
SHORT_RETRY = ("--max-wait", "1s", "--min-backoff", "100ms", "--max-backoff", "200ms")
# Retry settings for runs that must outlast a failure the test then repairs.
PATIENT_RETRY = ("--max-wait", "60s", "--min-backoff", "200ms", "--max-backoff", "500ms")


def closed_port_url() -> str:
    """Return a loopback URL where nothing listens."""
    return f"http://127.0.0.1:{free_port()}"


def assert_token_grants(stack, token: str, role: str, policies: list[str], mount: str = DEFAULT_MOUNT) -> None:
    data = stack.lookup_self(token)
    assert data["meta"]["role"] == role
    assert data["path"] == f"auth/{mount}/login"
    for policy in policies:
        assert policy in data["policies"]


def file_names(directory: Path) -> list[str]:
    """List DIRECTORY without the ``.lock`` files the binary keeps beside the nonce."""
    return sorted(path.name for path in directory.iterdir() if not path.name.endswith(".lock"))


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {timeout:.0f} s waiting for {what}"
        time.sleep(0.05)


def read_token(token_path: Path) -> str:
    token = token_path.read_text()
    assert token, f"{token_path} is empty"
    assert token == token.strip(), f"{token_path} has surrounding whitespace: {token!r}"
    return token


def read_nonce(nonce_path: Path) -> str:
    return nonce_path.read_text().strip()


def write_old_token(token_path: Path) -> os.stat_result:
    """Write a placeholder token with mode 0640 and return its stat, to compare after a failure."""
    token_path.write_text("old-token-that-must-survive")
    token_path.chmod(0o640)
    return token_path.stat()


def assert_file_untouched(path: Path, before: os.stat_result, content: str) -> None:
    after = path.stat()
    assert path.read_text() == content
    assert after.st_ino == before.st_ino
    assert after.st_mtime_ns == before.st_mtime_ns


# First and repeated logins


def test_first_login_creates_nonce_and_token(stack, stork, imds, instance, tmp_path):
    token_path, nonce_path = tmp_path / "token", tmp_path / "nonce"

    result = stork.login(imds, token_path, nonce_path, "--role", PROFILE_ROLE)

    assert result.code == 0, result.describe()
    nonce = read_nonce(nonce_path)
    assert NONCE_PATTERN.fullmatch(nonce), f"nonce {nonce!r} is not 88 base64url characters"
    assert file_mode(nonce_path) == 0o600
    assert file_mode(token_path) == 0o640
    token = read_token(token_path)
    assert not token_path.read_bytes().endswith(b"\n")
    assert_token_grants(stack, token, PROFILE_ROLE, [READ_POLICY, PROFILE_POLICY])
    assert stack.access_list_nonce(instance.instance_id) == nonce
    assert file_names(tmp_path) == ["nonce", "token"]


def test_second_login_reuses_nonce(stack, stork, imds, instance, tmp_path):
    token_path, nonce_path = tmp_path / "token", tmp_path / "nonce"
    first = stork.login(imds, token_path, nonce_path, "--role", PROFILE_ROLE)
    assert first.code == 0, first.describe()
    first_token = read_token(token_path)
    first_token_inode = token_path.stat().st_ino
    nonce_before = nonce_path.stat()
    nonce = nonce_path.read_text()

    second = stork.login(imds, token_path, nonce_path, "--role", PROFILE_ROLE)

    assert second.code == 0, second.describe()
    assert_file_untouched(nonce_path, nonce_before, nonce)
    second_token = read_token(token_path)
    assert second_token != first_token
    # A new inode shows the token file was replaced by a rename, not rewritten in place.
    assert token_path.stat().st_ino != first_token_inode
    assert_token_grants(stack, second_token, PROFILE_ROLE, [READ_POLICY, PROFILE_POLICY])
    assert stack.access_list_nonce(instance.instance_id) == nonce.strip()


def test_existing_nonce_file_is_used_and_trimmed(stack, stork, imds, instance, tmp_path):
    token_path, nonce_path = tmp_path / "token", tmp_path / "nonce"
    nonce_path.write_text("nonce-chosen-by-the-operator\n")
    nonce_path.chmod(0o644)

    result = stork.login(imds, token_path, nonce_path, "--role", PROFILE_ROLE)

    assert result.code == 0, result.describe()
    assert nonce_path.read_text() == "nonce-chosen-by-the-operator\n"
    assert file_mode(nonce_path) == 0o644
    assert stack.access_list_nonce(instance.instance_id) == "nonce-chosen-by-the-operator"


def test_empty_nonce_file_gets_new_nonce(stack, stork, imds, instance, tmp_path):
    token_path, nonce_path = tmp_path / "token", tmp_path / "nonce"
    nonce_path.write_text("")

    result = stork.login(imds, token_path, nonce_path, "--role", PROFILE_ROLE)

    assert result.code == 0, result.describe()
    nonce = read_nonce(nonce_path)
    assert NONCE_PATTERN.fullmatch(nonce), f"nonce {nonce!r} is not 88 base64url characters"
    assert stack.access_list_nonce(instance.instance_id) == nonce


def test_nonce_mismatch_keeps_old_token(stack, stork, imds, instance, tmp_path):
    first = stork.login(imds, tmp_path / "first-token", tmp_path / "first-nonce", "--role", PROFILE_ROLE)
    assert first.code == 0, first.describe()
    token_path, nonce_path = tmp_path / "token", tmp_path / "nonce"
    token_before = write_old_token(token_path)
    nonce_path.write_text("a-different-nonce-than-the-first-login")

    result = stork.login(imds, token_path, nonce_path, "--role", PROFILE_ROLE)

    assert result.code == 80, result.describe()
    assert "client nonce mismatch" in result.stderr
    assert_file_untouched(token_path, token_before, "old-token-that-must-survive")
    assert nonce_path.read_text() == "a-different-nonce-than-the-first-login"


def test_nonce_kept_after_failed_login(stack, stork, imds, instance, tmp_path):
    token_path, nonce_path = tmp_path / "token", tmp_path / "nonce"
    failed = stork.login(imds, token_path, nonce_path, "--role", "no-such-role")
    assert failed.code == 77, failed.describe()
    assert not token_path.exists()
    nonce_before = nonce_path.stat()
    nonce = nonce_path.read_text()

    result = stork.login(imds, token_path, nonce_path, "--role", PROFILE_ROLE)

    assert result.code == 0, result.describe()
    assert_file_untouched(nonce_path, nonce_before, nonce)
    assert stack.access_list_nonce(instance.instance_id) == nonce.strip()


# Logins Vault rejects


def test_stopped_instance_rejected(stack, stork, imds, instance, tmp_path):
    token_path, nonce_path = tmp_path / "token", tmp_path / "nonce"
    stack.stop_instance(instance.instance_id)

    result = stork.login(imds, token_path, nonce_path, "--role", PROFILE_ROLE)

    assert result.code == 77, result.describe()
    assert "failed to verify instance ID: instance is not in 'running' state" in result.stderr
    assert not token_path.exists()
    assert nonce_path.exists()


def test_unknown_role_rejected(stork, imds, tmp_path):
    token_path, nonce_path = tmp_path / "token", tmp_path / "nonce"

    result = stork.login(imds, token_path, nonce_path, "--role", "no-such-role")

    assert result.code == 77, result.describe()
    assert 'entry for role "no-such-role" not found' in result.stderr
    assert not token_path.exists()


@pytest.mark.parametrize(
    ("role", "bound"),
    [(UNMATCHED_AMI_ROLE, "AMI ID"), (UNMATCHED_ACCOUNT_ROLE, "account ID")],
)
def test_unmatched_bound_rejected(stork, imds, tmp_path, role, bound):
    token_path, nonce_path = tmp_path / "token", tmp_path / "nonce"

    result = stork.login(imds, token_path, nonce_path, "--role", role)

    assert result.code == 77, result.describe()
    assert "Error validating instance:" in result.stderr
    assert f'does not belong to role "{role}"' in result.stderr
    assert bound in result.stderr
    assert not token_path.exists()


# IMDS versions


def test_imds_v2_only_login(stack, stork, imds, tmp_path):
    token_path, nonce_path = tmp_path / "token", tmp_path / "nonce"
    imds.set_mode("v2-only")

    result = stork.login(imds, token_path, nonce_path, "--role", PROFILE_ROLE)

    assert result.code == 0, result.describe()
    assert_token_grants(stack, read_token(token_path), PROFILE_ROLE, [READ_POLICY])
    assert imds.request_count(TOKEN_PUT_PATH) >= 1
    gets = [request for request in imds.requests() if request[0] == "GET"]
    assert gets, "the binary made no GET request to IMDS"
    assert all(had_token for _, _, had_token in gets), f"GET requests without a token: {gets}"


def test_imds_v2_only_rejects_forced_v1(stork, imds, tmp_path):
    token_path, nonce_path = tmp_path / "token", tmp_path / "nonce"
    imds.set_mode("v2-only")

    result = stork.login(imds, token_path, nonce_path, "--role", PROFILE_ROLE, "--imds-version", "v1")

    assert result.code == 69, result.describe()
    assert not token_path.exists()


@pytest.mark.parametrize("token_status", [403, 404])
def test_imds_v1_only_login(stack, stork, imds, tmp_path, token_status):
    token_path, nonce_path = tmp_path / "token", tmp_path / "nonce"
    imds.set_mode("v1-only", v1_only_token_status=token_status)

    result = stork.login(imds, token_path, nonce_path, "--role", PROFILE_ROLE)

    assert result.code == 0, result.describe()
    assert_token_grants(stack, read_token(token_path), PROFILE_ROLE, [READ_POLICY])
    gets = [request for request in imds.requests() if request[0] == "GET"]
    assert gets, "the binary made no GET request to IMDS"
    assert not any(had_token for _, _, had_token in gets)


@pytest.mark.parametrize("token_status", [403, 404])
def test_imds_v1_only_rejects_forced_v2(stork, imds, tmp_path, token_status):
    token_path, nonce_path = tmp_path / "token", tmp_path / "nonce"
    imds.set_mode("v1-only", v1_only_token_status=token_status)

    result = stork.login(imds, token_path, nonce_path, "--role", PROFILE_ROLE, "--imds-version", "v2")

    assert result.code == 69, result.describe()
    assert not token_path.exists()


def test_imds_unreachable(stack, stork, tmp_path):
    token_path, nonce_path = tmp_path / "token", tmp_path / "nonce"
    logins_before = stack.login_requests()

    result = stork.login(None, token_path, nonce_path, "--role", PROFILE_ROLE, *SHORT_RETRY,
                         imds_url=closed_port_url())

    assert result.code == 69, result.describe()
    assert not token_path.exists()
    assert stack.login_requests() == logins_before


def test_imds_html_pkcs7_rejected(stack, stork, imds, tmp_path):
    token_path, nonce_path = tmp_path / "token", tmp_path / "nonce"
    imds.set_response(PKCS7_PATH, 200, HTML_PAGE)
    logins_before = stack.login_requests()

    result = stork.login(imds, token_path, nonce_path, "--role", PROFILE_ROLE)

    assert result.code == 65, result.describe()
    assert imds.request_count(PKCS7_PATH) >= 1
    assert stack.login_requests() == logins_before
    assert not token_path.exists()


# Role selection and mounts


def test_default_role_from_instance_profile(stack, stork, imds, tmp_path):
    token_path, nonce_path = tmp_path / "token", tmp_path / "nonce"

    result = stork.login(imds, token_path, nonce_path)

    assert result.code == 0, result.describe()
    assert imds.request_count(IAM_INFO_PATH) >= 1
    assert_token_grants(stack, read_token(token_path), PROFILE_ROLE, [READ_POLICY, PROFILE_POLICY])


def test_no_instance_profile_uses_ami_role(stack, stork, imds, tmp_path):
    token_path, nonce_path = tmp_path / "token", tmp_path / "nonce"
    without_profile = stack.new_instance(with_profile=False)
    stork.add_instance_secrets(without_profile)
    imds.set_instance(without_profile)

    result = stork.login(imds, token_path, nonce_path)

    assert result.code == 0, result.describe()
    assert_token_grants(stack, read_token(token_path), stack.ami_id, [READ_POLICY, AMI_POLICY])


def test_custom_mount(stack, stork, imds, tmp_path):
    token_path, nonce_path = tmp_path / "token", tmp_path / "nonce"
    default_logins = stack.login_requests(DEFAULT_MOUNT)
    custom_logins = stack.login_requests(CUSTOM_MOUNT)

    result = stork.login(imds, token_path, nonce_path, "--mount", CUSTOM_MOUNT)

    assert result.code == 0, result.describe()
    assert_token_grants(stack, read_token(token_path), PROFILE_ROLE, [READ_POLICY, PROFILE_POLICY], mount=CUSTOM_MOUNT)
    assert stack.login_requests(CUSTOM_MOUNT) == custom_logins + 1
    assert stack.login_requests(DEFAULT_MOUNT) == default_logins


# Signature types and --pkcs7


def test_signature_type_rsa2048(stack, stork, imds, tmp_path):
    token_path, nonce_path = tmp_path / "token", tmp_path / "nonce"

    result = stork.login(imds, token_path, nonce_path, "--signature-type", "rsa2048")

    assert result.code == 0, result.describe()
    assert imds.request_count(RSA2048_PATH) >= 1
    assert imds.request_count(PKCS7_PATH) == 0
    assert_token_grants(stack, read_token(token_path), PROFILE_ROLE, [READ_POLICY, PROFILE_POLICY])


def test_signature_type_identity(stack, stork, imds, tmp_path):
    token_path, nonce_path = tmp_path / "token", tmp_path / "nonce"

    result = stork.login(imds, token_path, nonce_path, "--signature-type", "identity")

    assert result.code == 0, result.describe()
    assert imds.request_count(DOCUMENT_PATH) >= 1
    assert imds.request_count(SIGNATURE_PATH) >= 1
    assert imds.request_count(PKCS7_PATH) == 0
    assert_token_grants(stack, read_token(token_path), PROFILE_ROLE, [READ_POLICY, PROFILE_POLICY])


def test_pkcs7_from_file(stack, stork, imds, instance, tmp_path):
    token_path, nonce_path = tmp_path / "token", tmp_path / "nonce"
    pkcs7_path = tmp_path / "pkcs7"
    pkcs7_path.write_text(instance.pkcs7)

    result = stork.login(imds, token_path, nonce_path, "--pkcs7", f"@{pkcs7_path}", "--role", PROFILE_ROLE)

    assert result.code == 0, result.describe()
    assert imds.request_count() == 0
    assert_token_grants(stack, read_token(token_path), PROFILE_ROLE, [READ_POLICY, PROFILE_POLICY])


def test_pkcs7_from_stdin(stack, stork, imds, instance, tmp_path):
    token_path, nonce_path = tmp_path / "token", tmp_path / "nonce"

    result = stork.login(imds, token_path, nonce_path, "--pkcs7", "-", "--role", PROFILE_ROLE,
                         stdin=instance.pkcs7 + "\n")

    assert result.code == 0, result.describe()
    assert imds.request_count() == 0
    assert_token_grants(stack, read_token(token_path), PROFILE_ROLE, [READ_POLICY, PROFILE_POLICY])


def test_pkcs7_pem_armoured(stack, stork, imds, instance, tmp_path):
    token_path, nonce_path = tmp_path / "token", tmp_path / "nonce"
    pkcs7_path = tmp_path / "pkcs7.pem"
    pkcs7_path.write_text(f"-----BEGIN PKCS7-----\n{instance.pkcs7}\n-----END PKCS7-----\n")

    result = stork.login(imds, token_path, nonce_path, "--pkcs7", f"@{pkcs7_path}", "--role", PROFILE_ROLE)

    assert result.code == 0, result.describe()
    assert imds.request_count() == 0
    assert_token_grants(stack, read_token(token_path), PROFILE_ROLE, [READ_POLICY, PROFILE_POLICY])


def test_pkcs7_value_without_role_uses_ami_role(stack, stork, imds, instance, tmp_path):
    token_path, nonce_path = tmp_path / "token", tmp_path / "nonce"

    result = stork.login(imds, token_path, nonce_path, "--pkcs7", instance.pkcs7)

    assert result.code == 0, result.describe()
    assert imds.request_count() == 0
    assert_token_grants(stack, read_token(token_path), stack.ami_id, [READ_POLICY, AMI_POLICY])


def test_pkcs7_not_base64_rejected(stack, stork, imds, tmp_path):
    token_path, nonce_path = tmp_path / "token", tmp_path / "nonce"
    pkcs7_path = tmp_path / "pkcs7.html"
    pkcs7_path.write_text(HTML_PAGE)
    logins_before = stack.login_requests()

    result = stork.login(imds, token_path, nonce_path, "--pkcs7", f"@{pkcs7_path}", "--role", PROFILE_ROLE)

    assert result.code == 65, result.describe()
    assert imds.request_count() == 0
    assert stack.login_requests() == logins_before
    assert not token_path.exists()


# Local files


def test_missing_token_directory(stork, imds, tmp_path):
    missing = tmp_path / "missing"
    token_path, nonce_path = missing / "token", tmp_path / "nonce"
    workdir = tmp_path / "workdir"
    workdir.mkdir()

    result = stork.login(imds, token_path, nonce_path, "--role", PROFILE_ROLE, cwd=workdir)

    assert result.code == 74, result.describe()
    assert str(missing) in result.stderr
    assert not missing.exists()
    assert not nonce_path.exists()
    assert list(workdir.iterdir()) == []
    assert file_names(tmp_path) == ["workdir"]


def test_missing_nonce_directory(stork, imds, tmp_path):
    missing = tmp_path / "missing"
    token_path, nonce_path = tmp_path / "token", missing / "nonce"

    result = stork.login(imds, token_path, nonce_path, "--role", PROFILE_ROLE)

    assert result.code == 74, result.describe()
    assert str(missing) in result.stderr
    assert not missing.exists()
    assert not token_path.exists()


def test_custom_file_modes(stork, imds, tmp_path):
    token_path, nonce_path = tmp_path / "token", tmp_path / "nonce"

    result = stork.login(imds, token_path, nonce_path, "--role", PROFILE_ROLE,
                         "--token-mode", "0600", "--nonce-mode", "440")

    assert result.code == 0, result.describe()
    assert file_mode(token_path) == 0o600
    assert file_mode(nonce_path) == 0o440


def test_existing_token_file_gets_token_mode(stork, imds, tmp_path):
    token_path, nonce_path = tmp_path / "token", tmp_path / "nonce"
    token_path.write_text("old-token")
    token_path.chmod(0o644)

    result = stork.login(imds, token_path, nonce_path, "--role", PROFILE_ROLE)

    assert result.code == 0, result.describe()
    assert file_mode(token_path) == 0o640
    assert read_token(token_path) != "old-token"


def test_token_written_to_stdout(stack, stork, imds, tmp_path):
    nonce_path = tmp_path / "nonce"
    args = [
        "login", "--server", stack.vault_addr, "--token", "-", "--nonce", str(nonce_path),
        "--imds-endpoint", imds.url, "--role", PROFILE_ROLE,
    ]

    result = stork.run(args, check_secrets=False)

    assert result.code == 0, result.describe()
    token = result.stdout.strip()
    assert_token_grants(stack, token, PROFILE_ROLE, [READ_POLICY, PROFILE_POLICY])
    assert token not in result.stderr
    assert read_nonce(nonce_path) not in result.stderr
    assert file_names(tmp_path) == ["nonce"]


# Environment variables and server address


def test_environment_variables(stack, stork, imds, tmp_path):
    token_path, nonce_path = tmp_path / "token", tmp_path / "nonce"
    stork.secret_files.extend([token_path, nonce_path])
    env = {
        "VAULT_ADDR": stack.vault_addr,
        "STORK_TOKEN": str(token_path),
        "STORK_NONCE": str(nonce_path),
        "STORK_ROLE": PROFILE_ROLE,
        "STORK_MOUNT": CUSTOM_MOUNT,
        "STORK_TOKEN_MODE": "0600",
        "STORK_NONCE_MODE": "0640",
        "AWS_EC2_METADATA_SERVICE_ENDPOINT": imds.url,
    }

    result = stork.run(["login"], env=env)

    assert result.code == 0, result.describe()
    assert file_mode(token_path) == 0o600
    assert file_mode(nonce_path) == 0o640
    assert_token_grants(stack, read_token(token_path), PROFILE_ROLE, [READ_POLICY, PROFILE_POLICY], mount=CUSTOM_MOUNT)


def test_flags_beat_environment_variables(stack, stork, imds, tmp_path):
    token_path, nonce_path = tmp_path / "token", tmp_path / "nonce"
    unused = tmp_path / "unused"
    env = {
        "VAULT_ADDR": closed_port_url(),
        "STORK_TOKEN": str(unused / "token"),
        "STORK_NONCE": str(unused / "nonce"),
        "STORK_ROLE": "no-such-role",
        "STORK_MOUNT": "no-such-mount",
        "STORK_TOKEN_MODE": "0644",
        "AWS_EC2_METADATA_SERVICE_ENDPOINT": closed_port_url(),
    }

    result = stork.login(imds, token_path, nonce_path, "--role", PROFILE_ROLE, "--mount", DEFAULT_MOUNT,
                         "--token-mode", "0600", env=env)

    assert result.code == 0, result.describe()
    assert file_mode(token_path) == 0o600
    assert not unused.exists()
    assert_token_grants(stack, read_token(token_path), PROFILE_ROLE, [READ_POLICY, PROFILE_POLICY])


def test_server_with_trailing_slash(stack, stork, imds, tmp_path):
    token_path, nonce_path = tmp_path / "token", tmp_path / "nonce"

    result = stork.login(imds, token_path, nonce_path, "--role", PROFILE_ROLE, server=stack.vault_addr + "/")

    assert result.code == 0, result.describe()
    assert_token_grants(stack, read_token(token_path), PROFILE_ROLE, [READ_POLICY, PROFILE_POLICY])


def test_verbose_logs_steps_without_secrets(stack, stork, imds, tmp_path):
    token_path, nonce_path = tmp_path / "token", tmp_path / "nonce"

    result = stork.login(imds, token_path, nonce_path, "--role", PROFILE_ROLE, "--verbose")

    # The runner already failed the test if the output held the token, the
    # nonce or a signature.
    assert result.code == 0, result.describe()
    assert result.stderr.strip(), "--verbose logged nothing"
    assert_token_grants(stack, read_token(token_path), PROFILE_ROLE, [READ_POLICY])


# Vault unavailable


def test_vault_unreachable(stack, stork, imds, tmp_path):
    token_path, nonce_path = tmp_path / "token", tmp_path / "nonce"
    token_before = write_old_token(token_path)

    result = stork.login(imds, token_path, nonce_path, "--role", PROFILE_ROLE, *SHORT_RETRY,
                         server=closed_port_url())

    assert result.code == 75, result.describe()
    assert_file_untouched(token_path, token_before, "old-token-that-must-survive")


def test_vault_sealed(stack, stork, imds, tmp_path):
    token_path, nonce_path = tmp_path / "token", tmp_path / "nonce"
    token_before = write_old_token(token_path)

    stack.seal()
    try:
        result = stork.login(imds, token_path, nonce_path, "--role", PROFILE_ROLE, "--max-wait", "0")
    finally:
        stack.unseal()

    assert result.code == 75, result.describe()
    assert "Vault is sealed" in result.stderr
    assert_file_untouched(token_path, token_before, "old-token-that-must-survive")


# Retries, --min-ttl and the run lock


def test_vault_unsealed_during_retry(stack, stork, imds, tmp_path):
    token_path, nonce_path = tmp_path / "token", tmp_path / "nonce"

    stack.seal()
    try:
        running = stork.start_login(imds, token_path, nonce_path, "--role", PROFILE_ROLE, *PATIENT_RETRY)
        # A sealed server writes no audit log, so the sign of retrying is a
        # run that has not ended after a few backoff periods.
        time.sleep(2)
        still_retrying = running.running()
    finally:
        stack.unseal()
    result = running.wait()

    assert still_retrying, result.describe()

    assert result.code == 0, result.describe()
    assert_token_grants(stack, read_token(token_path), PROFILE_ROLE, [READ_POLICY, PROFILE_POLICY])


def test_imds_error_then_recovers(stack, stork, imds, tmp_path):
    token_path, nonce_path = tmp_path / "token", tmp_path / "nonce"
    imds.set_response(PKCS7_PATH, 500, "internal error")

    running = stork.start_login(imds, token_path, nonce_path, "--role", PROFILE_ROLE, *PATIENT_RETRY)
    wait_for(lambda: imds.request_count(PKCS7_PATH) >= 2, timeout=30, what="two pkcs7 requests")
    imds.clear_responses()
    result = running.wait()

    assert result.code == 0, result.describe()
    assert_token_grants(stack, read_token(token_path), PROFILE_ROLE, [READ_POLICY, PROFILE_POLICY])


def test_min_ttl_skips_login_while_token_valid(stack, stork, imds, tmp_path):
    token_path, nonce_path = tmp_path / "token", tmp_path / "nonce"
    first = stork.login(imds, token_path, nonce_path, "--role", PROFILE_ROLE)
    assert first.code == 0, first.describe()
    token = read_token(token_path)
    token_before = token_path.stat()
    logins_before = stack.login_requests()

    skipped = stork.login(imds, token_path, nonce_path, "--role", PROFILE_ROLE, "--min-ttl", "1m")

    assert skipped.code == 0, skipped.describe()
    assert_file_untouched(token_path, token_before, token)
    assert stack.login_requests() == logins_before

    # The dev server's default token TTL is 768 hours, less than --min-ttl here.
    renewed = stork.login(imds, token_path, nonce_path, "--role", PROFILE_ROLE, "--min-ttl", "1000h")

    assert renewed.code == 0, renewed.describe()
    assert read_token(token_path) != token
    assert stack.login_requests() == logins_before + 1


def test_concurrent_first_runs_share_one_nonce(stack, stork, imds, instance, tmp_path):
    nonce_path = tmp_path / "nonce"
    runs = [
        stork.start_login(imds, tmp_path / f"token-{index}", nonce_path, "--role", PROFILE_ROLE, *PATIENT_RETRY)
        for index in range(3)
    ]

    results = [run.wait() for run in runs]

    for result in results:
        assert result.code == 0, result.describe()
    assert stack.access_list_nonce(instance.instance_id) == read_nonce(nonce_path)
    for index in range(3):
        assert_token_grants(stack, read_token(tmp_path / f"token-{index}"), PROFILE_ROLE, [READ_POLICY])


def test_lock_held_until_max_wait(stack, stork, imds, tmp_path):
    token_path, nonce_path = tmp_path / "token", tmp_path / "nonce"
    logins_before = stack.login_requests()

    with open(tmp_path / "nonce.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        result = stork.login(imds, token_path, nonce_path, "--role", PROFILE_ROLE, *SHORT_RETRY)

    assert result.code == 81, result.describe()
    assert str(tmp_path / "nonce.lock") in result.stderr
    assert not token_path.exists()
    assert not nonce_path.exists()
    assert stack.login_requests() == logins_before

"""End-to-end tests of ``vault-stork login --method iam``.

The binary signs ``sts:GetCallerIdentity`` for moto's URL, and OpenBao's
plugin replays the signed request to moto, its configured ``sts_endpoint``.
The runner requires a loopback ``--sts-endpoint`` for every iam run.

Each test gets a new moto instance whose IMDS serves new temporary
credentials of the instance role from moto's ``sts:AssumeRole`` (fixtures
``iam_instance`` and ``iam_imds``). The runner treats their secret key and
session token as secrets.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import threading
import urllib.error
import urllib.request
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.runner import StorkRunner, assert_no_secrets, file_mode
from tests.stack import DEFAULT_MOUNT
from tests.stack.imds import aws_timestamp
from tests.stack.moto_aws import ACCOUNT_ID, ROLE_NAME
from tests.stack.process import urlopen
from tests.stack.stack import (
    IAM_ALTERNATE_POLICY,
    IAM_ALTERNATE_ROLE,
    IAM_HEADER_MOUNT,
    IAM_POLICY,
    IAM_ROLE,
    IAM_SERVER_ID,
    IAM_UNMATCHED_ROLE,
    READ_POLICY,
)

TOKEN_PUT_PATH = "/latest/api/token"
CREDENTIALS_PATH = "/latest/meta-data/iam/security-credentials/"
ROLE_CREDENTIALS_PATH = CREDENTIALS_PATH + ROLE_NAME
GET_CALLER_IDENTITY_BODY = "Action=GetCallerIdentity&Version=2011-06-15"
SERVER_ID_HEADER = "X-Vault-AWS-IAM-Server-ID"

# Retry settings for runs that fail on purpose, so a transient-looking
# failure ends in about a second instead of the default two minutes.
SHORT_RETRY = ("--max-wait", "1s", "--min-backoff", "100ms", "--max-backoff", "200ms")


def read_token(token_path: Path) -> str:
    token = token_path.read_text()
    assert token, f"{token_path} is empty"
    assert token == token.strip(), f"{token_path} has surrounding whitespace: {token!r}"
    return token


def assert_token_grants(stack, token_path: Path, role: str, policies: list[str],
                        session_name: str, mount: str = DEFAULT_MOUNT) -> None:
    """Check that the token in TOKEN_PATH came from an IAM login as SESSION_NAME to ROLE on MOUNT."""
    assert file_mode(token_path) == 0o640
    data = stack.lookup_self(read_token(token_path))
    role_id = stack.client().read(f"auth/{mount}/role/{role}")["data"]["role_id"]
    assert data["path"] == f"auth/{mount}/login"
    assert data["meta"]["auth_type"] == "iam"
    assert data["meta"]["role_id"] == role_id
    assert data["meta"]["account_id"] == ACCOUNT_ID
    assert data["display_name"] == f"{mount}-{ROLE_NAME}/{session_name}"
    for policy in policies:
        assert policy in data["policies"]


def assert_vault_not_called(stack, audit_before: list[str]) -> None:
    assert stack.audit_request_paths() == audit_before, "OpenBao received a request"


def decode_login_fields(body: dict) -> dict:
    """Decode the base64 ``iam_request_*`` fields of a login body."""
    return {
        "method": body["iam_http_request_method"],
        "url": base64.b64decode(body["iam_request_url"]).decode(),
        "body": base64.b64decode(body["iam_request_body"]).decode(),
        "headers": json.loads(base64.b64decode(body["iam_request_headers"])),
    }


class RecordingProxy:
    """A reverse proxy in front of OpenBao that keeps the JSON body of every POST.

    It lets a test read the exact login request the binary sent, signature
    included, while the login still reaches OpenBao.
    """

    def __init__(self, target: str):
        self.target = target.rstrip("/")
        self.bodies: list[dict] = []
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self.handler_class())
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="recording-proxy", daemon=True)

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def handler_class(self):
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args) -> None:  # noqa: A002 (name fixed by http.server)
                pass

            def forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                data = self.rfile.read(length) if length else None
                if self.command == "POST" and data:
                    with proxy.lock:
                        proxy.bodies.append(json.loads(data))
                request = urllib.request.Request(proxy.target + self.path, data=data, method=self.command)
                for name, value in self.headers.items():
                    if name.lower().startswith("x-vault-") or name.lower() == "content-type":
                        request.add_header(name, value)
                try:
                    with urlopen(request, timeout=30) as response:
                        status, body, content_type = response.status, response.read(), response.headers.get("Content-Type")
                except urllib.error.HTTPError as error:
                    status, body, content_type = error.code, error.read(), error.headers.get("Content-Type")
                self.send_response(status)
                self.send_header("Content-Type", content_type or "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = forward  # noqa: N815 (names fixed by http.server)

        return Handler

    def __enter__(self) -> "RecordingProxy":
        self.thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)

    def login_bodies(self) -> list[dict]:
        with self.lock:
            return [body for body in self.bodies if "iam_request_headers" in body]


# Logins that succeed


def test_iam_login_with_instance_role(stack, iam_stork, iam_imds, iam_instance, tmp_path):
    iam_imds.set_mode("v2-only")
    token_path = tmp_path / "token"
    logins_before = stack.login_requests()

    result = iam_stork.iam_login(iam_imds, token_path, "--verbose")

    assert result.code == 0, result.describe()
    assert f"role: {IAM_ROLE} (IAM role name from IMDS)" in result.stderr
    assert "IMDSv2" in result.stderr
    assert_token_grants(stack, token_path, IAM_ROLE, [READ_POLICY, IAM_POLICY], iam_instance.instance_id)
    assert stack.login_requests() == logins_before + 1
    requests = iam_imds.requests()
    assert [(method, path) for method, path, _ in requests] == [
        ("PUT", TOKEN_PUT_PATH),
        ("GET", CREDENTIALS_PATH),
        ("GET", ROLE_CREDENTIALS_PATH),
    ]
    assert all(had_token for method, _, had_token in requests if method == "GET")
    assert sorted(path.name for path in tmp_path.iterdir() if not path.name.endswith(".lock")) == ["token"]


def test_iam_login_over_imdsv1(stack, iam_stork, iam_imds, iam_instance, tmp_path):
    iam_imds.set_mode("v1-only")
    token_path = tmp_path / "token"

    result = iam_stork.iam_login(iam_imds, token_path, "--verbose")

    assert result.code == 0, result.describe()
    assert "IMDSv1" in result.stderr
    assert_token_grants(stack, token_path, IAM_ROLE, [READ_POLICY, IAM_POLICY], iam_instance.instance_id)
    gets = [(path, had_token) for method, path, had_token in iam_imds.requests() if method == "GET"]
    assert gets == [(CREDENTIALS_PATH, False), (ROLE_CREDENTIALS_PATH, False)]


def test_iam_login_with_role_flag(stack, iam_stork, iam_imds, iam_instance, tmp_path):
    token_path = tmp_path / "token"

    result = iam_stork.iam_login(iam_imds, token_path, "--role", IAM_ALTERNATE_ROLE)

    assert result.code == 0, result.describe()
    assert_token_grants(stack, token_path, IAM_ALTERNATE_ROLE, [READ_POLICY, IAM_ALTERNATE_POLICY],
                        iam_instance.instance_id)
    data = stack.lookup_self(read_token(token_path))
    assert IAM_POLICY not in data["policies"]


def test_iam_login_with_env_credentials(stack, iam_stork, iam_imds, tmp_path):
    session_name = "stork-env-session"
    credentials = stack.new_role_credentials(session_name)
    iam_stork.add_credential_secrets(credentials)
    token_path = tmp_path / "token"
    env = {
        "AWS_ACCESS_KEY_ID": credentials.access_key_id,
        "AWS_SECRET_ACCESS_KEY": credentials.secret_access_key,
        "AWS_SESSION_TOKEN": credentials.token,
    }

    result = iam_stork.iam_login(iam_imds, token_path, "--verbose", env=env)

    assert result.code == 0, result.describe()
    assert "IMDS not used" in result.stderr
    # With no role sent, Vault picks the role named after the IAM role.
    assert "role: none sent" in result.stderr
    assert_token_grants(stack, token_path, IAM_ROLE, [READ_POLICY, IAM_POLICY], session_name)
    assert iam_imds.request_count() == 0, iam_imds.requests()


@pytest.mark.parametrize("region", ["us-east-1", "eu-west-1"])
def test_iam_signed_request_fields(stack, iam_stork, iam_imds, iam_instance, tmp_path, region):
    token_path = tmp_path / "token"

    with RecordingProxy(stack.vault_addr) as proxy:
        result = iam_stork.iam_login(iam_imds, token_path, "--region", region, server=proxy.url)
        bodies = proxy.login_bodies()

    assert result.code == 0, result.describe()
    assert_token_grants(stack, token_path, IAM_ROLE, [IAM_POLICY], iam_instance.instance_id)
    assert len(bodies) == 1, bodies
    body = bodies[0]
    assert body["role"] == IAM_ROLE
    assert "nonce" not in body
    fields = decode_login_fields(body)
    assert fields["method"] == "POST"
    assert fields["url"] == stack.moto_url + "/"
    assert fields["body"] == GET_CALLER_IDENTITY_BODY
    headers = fields["headers"]
    assert headers["Host"] == [urlsplit(stack.moto_url).netloc]
    assert headers["X-Amz-Security-Token"] == [iam_instance.credentials.token]
    assert SERVER_ID_HEADER not in headers
    authorization = headers["Authorization"][0]
    assert authorization.startswith(f"AWS4-HMAC-SHA256 Credential={iam_instance.credentials.access_key_id}/")
    assert f"/{region}/sts/aws4_request" in authorization


def test_iam_verbose_hides_credentials(stack, iam_stork, iam_imds, iam_instance, tmp_path):
    token_path = tmp_path / "token"

    with RecordingProxy(stack.vault_addr) as proxy:
        result = iam_stork.iam_login(iam_imds, token_path, "--verbose", server=proxy.url)
        bodies = proxy.login_bodies()

    assert result.code == 0, result.describe()
    assert len(bodies) == 1, bodies
    authorization = decode_login_fields(bodies[0])["headers"]["Authorization"][0]
    signature = authorization.rsplit("Signature=", 1)[1]
    assert len(signature) == 64, authorization
    # The runner already checked the secret key, session token and token.
    assert_no_secrets(result, signature, bodies[0]["iam_request_headers"])
    assert "Signature=" not in result.stderr
    assert "Authorization" not in result.stderr
    assert "STS request: POST" in result.stderr


# The X-Vault-AWS-IAM-Server-ID header


def test_iam_header_value_accepted(stack, iam_stork, iam_imds, iam_instance, tmp_path):
    token_path = tmp_path / "token"

    result = iam_stork.iam_login(iam_imds, token_path, "--header-value", IAM_SERVER_ID, mount=IAM_HEADER_MOUNT)

    assert result.code == 0, result.describe()
    assert_token_grants(stack, token_path, IAM_ROLE, [READ_POLICY, IAM_POLICY], iam_instance.instance_id,
                        mount=IAM_HEADER_MOUNT)


@pytest.mark.parametrize(("header_args", "message"), [
    (("--header-value", "vault.wrong.test"), f'expected "{IAM_SERVER_ID}" but got "vault.wrong.test"'),
    ((), f'missing header "{SERVER_ID_HEADER}"'),
], ids=["wrong", "missing"])
def test_iam_header_value_rejected(stack, iam_stork, iam_imds, tmp_path, header_args, message):
    token_path = tmp_path / "token"

    result = iam_stork.iam_login(iam_imds, token_path, *header_args, *SHORT_RETRY, mount=IAM_HEADER_MOUNT)

    assert result.code == 77, result.describe()
    assert f"error validating {SERVER_ID_HEADER} header: {message}" in result.stderr
    assert not token_path.exists()


# Logins Vault rejects


def test_iam_bound_principal_mismatch(stack, iam_stork, iam_imds, iam_instance, tmp_path):
    token_path = tmp_path / "token"

    result = iam_stork.iam_login(iam_imds, token_path, "--role", IAM_UNMATCHED_ROLE, *SHORT_RETRY)

    assert result.code == 77, result.describe()
    caller_arn = f"arn:aws:sts::{ACCOUNT_ID}:assumed-role/{ROLE_NAME}/{iam_instance.instance_id}"
    assert f'IAM Principal "{caller_arn}" does not belong to the role "{IAM_UNMATCHED_ROLE}"' in result.stderr
    assert not token_path.exists()


def tamper_secret_key(iam_stork, iam_imds, iam_instance) -> None:
    """Make IMDS serve a wrong secret key, and the runner treat it as a secret."""
    real = iam_instance.credentials
    tampered = dataclasses.replace(real, secret_access_key=real.secret_access_key[::-1])
    assert tampered.secret_access_key != real.secret_access_key
    iam_stork.add_credential_secrets(tampered)
    iam_imds.set_credentials(tampered)


def test_iam_tampered_secret_key_rejected(stack, iam_stork, iam_imds, iam_instance, tmp_path):
    tamper_secret_key(iam_stork, iam_imds, iam_instance)
    token_path = tmp_path / "token"
    moto_before = len(stack.moto_replies())

    result = iam_stork.iam_login(iam_imds, token_path, *SHORT_RETRY)

    assert result.code == 77, result.describe()
    assert "Vault rejected the login (HTTP 400): error making upstream request" in result.stderr
    # moto rejected the replayed request: the only request it got in the run.
    assert stack.moto_replies()[moto_before:] == [("POST", "/", 403)]
    assert not token_path.exists()


# NOTE: moto 5.2.5 sends its authentication errors with Content-Type
# application/xml, and Vault v1.21.4 reads the body of an STS reply only when
# its Content-Type is text/xml, so Vault reports "body of GetCallerIdentity is
# invalid" in place of moto's error. The binary passes on Vault's message
# unchanged (see the test above).
@pytest.mark.xfail(strict=True, reason="moto 5.2.5 sends STS errors as application/xml, which Vault "
                                       "v1.21.4 does not read; Vault replies 'body of GetCallerIdentity is invalid'")
def test_iam_tampered_secret_key_message(stack, iam_stork, iam_imds, iam_instance, tmp_path):
    tamper_secret_key(iam_stork, iam_imds, iam_instance)
    token_path = tmp_path / "token"

    result = iam_stork.iam_login(iam_imds, token_path, *SHORT_RETRY)

    assert result.code == 77, result.describe()
    assert "SignatureDoesNotMatch" in result.stderr, result.describe()


# Credentials the binary rejects before calling Vault


def test_iam_expired_credentials(stack, iam_stork, iam_imds, iam_instance, tmp_path):
    expired_at = aws_timestamp(datetime.now(timezone.utc) - timedelta(minutes=5))
    iam_imds.set_credentials(dataclasses.replace(iam_instance.credentials, expiration=expired_at))
    token_path = tmp_path / "token"
    audit_before = stack.audit_request_paths()

    result = iam_stork.iam_login(iam_imds, token_path, *SHORT_RETRY)

    assert result.code == 78, result.describe()
    assert f"the credentials expired at {expired_at}" in result.stderr
    assert iam_imds.request_count(ROLE_CREDENTIALS_PATH) == 1
    assert_vault_not_called(stack, audit_before)
    assert not token_path.exists()


def test_iam_instance_without_role(stack, stork_binary, imds, tmp_path):
    # The ``imds`` fixture's instance has an instance profile but IMDS serves no credentials.
    runner = StorkRunner(stork_binary, stack)
    token_path = tmp_path / "token"
    audit_before = stack.audit_request_paths()

    result = runner.iam_login(imds, token_path, *SHORT_RETRY)

    assert result.code == 78, result.describe()
    assert "the instance has no IAM role" in result.stderr
    assert_vault_not_called(stack, audit_before)
    assert not token_path.exists()


@pytest.mark.parametrize(("present", "missing"), [
    ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"),
    ("AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID"),
])
def test_iam_partial_env_credentials(stack, iam_stork, iam_imds, iam_instance, tmp_path, present, missing):
    values = {
        "AWS_ACCESS_KEY_ID": iam_instance.credentials.access_key_id,
        "AWS_SECRET_ACCESS_KEY": iam_instance.credentials.secret_access_key,
    }
    env = {present: values[present], "AWS_SESSION_TOKEN": iam_instance.credentials.token}
    token_path = tmp_path / "token"
    audit_before = stack.audit_request_paths()

    result = iam_stork.iam_login(iam_imds, token_path, *SHORT_RETRY, env=env)

    assert result.code == 78, result.describe()
    assert f"{present} is set but {missing} is not" in result.stderr
    assert iam_imds.request_count() == 0, iam_imds.requests()
    assert_vault_not_called(stack, audit_before)
    assert not token_path.exists()

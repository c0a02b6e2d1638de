"""Checks of the test stack itself, with no vault-stork binary involved.

They log in from Python the way the binary does, so a failure here points at
the stack (moto, OpenBao, the plugin, IMDS or the signing), not the binary.
"""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import time
import urllib.error
import urllib.request

import boto3
import pytest
from botocore.exceptions import ClientError

from tests.stack import CUSTOM_MOUNT, DEFAULT_MOUNT, OpenBaoError
from tests.stack.imds import RoleCredentials
from tests.stack.process import urlopen
from tests.stack.stack import AMI_POLICY, PROFILE_POLICY, PROFILE_ROLE, READ_POLICY, interfaces

PKCS7_PATH = "/latest/dynamic/instance-identity/pkcs7"
DOCUMENT_PATH = "/latest/dynamic/instance-identity/document"
TOKEN_PATH = "/latest/api/token"


def imds_request(url: str, method: str = "GET", headers: dict[str, str] | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def imds_token(imds_url: str) -> str:
    status, token = imds_request(f"{imds_url}{TOKEN_PATH}", "PUT", {"X-aws-ec2-metadata-token-ttl-seconds": "60"})
    assert status == 200
    return token


def test_network_namespace_has_only_loopback():
    assert interfaces() == ["lo"]


@pytest.mark.parametrize("signature_type", ["pkcs7", "rsa2048", "identity"])
def test_python_login_each_signature_type(stack, instance, signature_type):
    auth = stack.login_with_http(instance, nonce="smoke-nonce", role=PROFILE_ROLE, signature_type=signature_type)

    data = stack.lookup_self(auth["client_token"])
    assert READ_POLICY in data["policies"]
    assert PROFILE_POLICY in data["policies"]
    assert data["meta"]["role"] == PROFILE_ROLE
    assert stack.access_list_nonce(instance.instance_id) == "smoke-nonce"


def test_python_login_without_role_uses_ami_role(stack):
    instance = stack.new_instance(with_profile=False)

    auth = stack.login_with_http(instance, nonce="smoke-nonce")

    data = stack.lookup_self(auth["client_token"])
    assert data["meta"]["role"] == stack.ami_id
    assert AMI_POLICY in data["policies"]


def test_python_login_on_custom_mount(stack, instance):
    before = stack.login_requests(CUSTOM_MOUNT)

    auth = stack.login_with_http(instance, nonce="smoke-nonce", mount=CUSTOM_MOUNT)

    assert stack.lookup_self(auth["client_token"])["path"] == f"auth/{CUSTOM_MOUNT}/login"
    assert stack.login_requests(CUSTOM_MOUNT) == before + 1


def test_python_login_nonce_mismatch_rejected(stack, instance):
    stack.login_with_http(instance, nonce="first-nonce")

    with pytest.raises(OpenBaoError) as raised:
        stack.login_with_http(instance, nonce="second-nonce")

    assert raised.value.status == 400
    assert raised.value.errors == ["client nonce mismatch"]


def test_python_login_stopped_instance_rejected(stack, instance):
    stack.stop_instance(instance.instance_id)

    with pytest.raises(OpenBaoError) as raised:
        stack.login_with_http(instance, nonce="smoke-nonce")

    assert raised.value.status == 400
    assert raised.value.errors == ["failed to verify instance ID: instance is not in 'running' state"]

    stack.start_instance(instance.instance_id)
    auth = stack.login_with_http(instance, nonce="smoke-nonce")
    assert auth["client_token"]


def test_access_list_entry_can_be_deleted(stack, instance):
    stack.login_with_http(instance, nonce="first-nonce")
    stack.delete_access_list_entry(instance.instance_id)

    stack.login_with_http(instance, nonce="second-nonce")

    assert stack.access_list_nonce(instance.instance_id) == "second-nonce"


def test_moto_rejects_unsigned_requests(stack):
    ec2 = boto3.client(
        "ec2",
        endpoint_url=stack.moto_url,
        region_name="us-east-1",
        aws_access_key_id="AKIAUNKNOWNKEY000000",
        aws_secret_access_key="not-a-real-secret",
    )

    with pytest.raises(ClientError) as raised:
        ec2.describe_instances()

    assert raised.value.response["Error"]["Code"] == "AuthFailure"


@pytest.mark.parametrize("mount", [DEFAULT_MOUNT, CUSTOM_MOUNT])
def test_openbao_aws_endpoints_point_at_moto(stack, mount):
    config = stack.client().read(f"auth/{mount}/config/client")["data"]

    assert config["endpoint"] == stack.moto_url
    assert config["iam_endpoint"] == stack.moto_url
    assert config["sts_endpoint"] == stack.moto_url


def test_plugin_registered_by_sha256(stack):
    entry = stack.client().read("sys/plugins/catalog/auth/awsauth")["data"]
    plugin = stack.openbao.plugin

    assert entry["sha256"] == hashlib.sha256(plugin.read_bytes()).hexdigest()
    assert entry["command"] == plugin.name


def test_imds_token_put_rules(imds):
    url = f"{imds.url}{TOKEN_PATH}"

    assert imds_request(url, "PUT")[0] == 400
    assert imds_request(url, "PUT", {"X-aws-ec2-metadata-token-ttl-seconds": "0"})[0] == 400
    assert imds_request(url, "PUT", {"X-aws-ec2-metadata-token-ttl-seconds": "21601"})[0] == 400
    assert imds_request(url, "PUT", {"X-aws-ec2-metadata-token-ttl-seconds": "21600"})[0] == 200
    forwarded = {"X-aws-ec2-metadata-token-ttl-seconds": "60", "X-Forwarded-For": "203.0.113.1"}
    assert imds_request(url, "PUT", forwarded)[0] == 403


def test_imds_get_token_rules(imds):
    url = f"{imds.url}{DOCUMENT_PATH}"

    assert imds_request(url)[0] == 200
    assert imds_request(url, headers={"X-aws-ec2-metadata-token": "not-a-token"})[0] == 401
    assert imds_request(url, headers={"X-aws-ec2-metadata-token": imds_token(imds.url)})[0] == 200

    imds.set_mode("v2-only")
    assert imds_request(url)[0] == 401
    assert imds_request(url, headers={"X-aws-ec2-metadata-token": imds_token(imds.url)})[0] == 200


def test_imds_token_expires_after_ttl(imds):
    status, token = imds_request(f"{imds.url}{TOKEN_PATH}", "PUT", {"X-aws-ec2-metadata-token-ttl-seconds": "1"})
    assert status == 200
    url = f"{imds.url}{DOCUMENT_PATH}"
    assert imds_request(url, headers={"X-aws-ec2-metadata-token": token})[0] == 200

    time.sleep(1.2)

    assert imds_request(url, headers={"X-aws-ec2-metadata-token": token})[0] == 401


@pytest.mark.parametrize("status", [403, 404])
def test_imds_v1_only_rejects_token_put(imds, status):
    imds.set_mode("v1-only", v1_only_token_status=status)

    put_status, _ = imds_request(f"{imds.url}{TOKEN_PATH}", "PUT", {"X-aws-ec2-metadata-token-ttl-seconds": "60"})

    assert put_status == status
    assert imds_request(f"{imds.url}{DOCUMENT_PATH}")[0] == 200


def test_imds_iam_info_has_profile_with_path(imds, instance):
    status, body = imds_request(f"{imds.url}/latest/meta-data/iam/info")

    assert status == 200
    info = json.loads(body)
    assert info["Code"] == "Success"
    assert info["InstanceProfileArn"] == instance.instance_profile.arn
    assert info["InstanceProfileArn"].endswith(f":instance-profile/stork/{PROFILE_ROLE}")

    imds.remove_instance_profile()
    assert imds_request(f"{imds.url}/latest/meta-data/iam/info")[0] == 404


def test_imds_serves_role_credentials(imds):
    credentials = RoleCredentials(
        role_name="stork-instance-role",
        access_key_id="ASIAEXAMPLEKEY000000",
        secret_access_key="example-secret",
        token="example-session-token",
        expiration="2030-01-01T00:00:00Z",
    )
    assert imds_request(f"{imds.url}/latest/meta-data/iam/security-credentials/")[0] == 404

    imds.set_credentials(credentials)

    status, role_name = imds_request(f"{imds.url}/latest/meta-data/iam/security-credentials/")
    assert status == 200
    assert role_name == "stork-instance-role"
    status, body = imds_request(f"{imds.url}/latest/meta-data/iam/security-credentials/stork-instance-role")
    assert status == 200
    served = json.loads(body)
    assert served["Type"] == "AWS-HMAC"
    assert served["AccessKeyId"] == "ASIAEXAMPLEKEY000000"
    assert served["SecretAccessKey"] == "example-secret"
    assert served["Token"] == "example-session-token"
    assert served["Expiration"] == "2030-01-01T00:00:00Z"
    assert imds_request(f"{imds.url}/latest/meta-data/iam/security-credentials/other-role")[0] == 404


def test_imds_document_matches_pkcs7(stack, imds, instance, tmp_path):
    status, document = imds_request(f"{imds.url}{DOCUMENT_PATH}")
    assert status == 200
    fields = json.loads(document)
    assert fields["instanceId"] == instance.instance_id
    assert fields["imageId"] == stack.ami_id
    assert fields["accountId"] == "123456789012"
    assert fields["kernelId"] is None

    status, pkcs7 = imds_request(f"{imds.url}{PKCS7_PATH}")
    assert status == 200
    assert "BEGIN" not in pkcs7
    assert max(len(line) for line in pkcs7.splitlines()) == 64

    signed = tmp_path / "pkcs7.der"
    signed.write_bytes(base64.b64decode(pkcs7))
    verified = subprocess.run(
        ["openssl", "cms", "-verify", "-inform", "DER", "-in", str(signed), "-binary",
         "-certfile", str(stack.keys.dsa_certificate), "-noverify"],
        capture_output=True, check=False,
    )
    assert verified.returncode == 0, verified.stderr.decode()
    assert verified.stdout.decode() == document


def test_imds_override_and_counts(imds):
    imds.set_response(PKCS7_PATH, 200, "<html><body>maintenance</body></html>")

    status, body = imds_request(f"{imds.url}{PKCS7_PATH}")

    assert status == 200
    assert body.startswith("<html>")
    assert imds.request_count(PKCS7_PATH) == 1
    assert imds.request_count() == 1


def test_openbao_seal_and_unseal(stack, instance):
    stack.seal()
    try:
        with pytest.raises(OpenBaoError) as raised:
            stack.login_with_http(instance, nonce="smoke-nonce")
        assert raised.value.status == 503
    finally:
        stack.unseal()

    auth = stack.login_with_http(instance, nonce="smoke-nonce")
    assert auth["client_token"]

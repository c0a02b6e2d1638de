"""A second OpenBao dev server with TLS listeners of the tests' own configuration.

The dev server keeps its plain HTTP listener on 127.0.0.1, which the tests
use to configure it, and adds the ``listener "tcp"`` blocks of a config
file (OpenBao 2.7.2 dev mode starts every listener of ``-config`` beside
its own). Its AWS auth method points at the stack's moto and trusts the
stack's signing certificates, so an instance minted by the stack can log in
through any listener.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .certificates import IssuedCertificate
from .moto_aws import ACCOUNT_ID, REGION
from .openbao import PLUGIN_NAME, OpenBaoClient, OpenBaoError
from .process import ManagedProcess, StackError, environment
from .stack import POLICIES, PROFILE_POLICY, PROFILE_ROLE, READ_POLICY, Stack, ToolPaths

log = logging.getLogger("tests.stack.tls_openbao")

TLS_VERSIONS = ("tls12", "tls13")


def free_port_pair_on(host: str, attempts: int = 50) -> int:
    """Return a free TCP port P on HOST (IPv4 or IPv6) whose neighbour P+1 is free too.

    OpenBao opens each listener's cluster port at P+1.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for _ in range(attempts):
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.bind((host, 0))
            port = probe.getsockname()[1]
        if port >= 65535:
            continue
        with socket.socket(family, socket.SOCK_STREAM) as neighbour:
            try:
                neighbour.bind((host, port + 1))
            except OSError:
                continue
        return port
    raise StackError(f"found no free pair of adjacent ports on {host} in {attempts} attempts")


def accepts_connections(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


@dataclass
class TlsListener:
    """One ``listener "tcp"`` block: address, served chain, TLS versions and client certificates."""

    name: str
    certificate: IssuedCertificate
    host: str = "127.0.0.1"
    min_version: str | None = None
    max_version: str | None = None
    # When set, the listener requires a client certificate signed by this CA.
    client_ca: Path | None = None
    port: int = 0

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"https://{host}:{self.port}"

    def hcl(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        lines = [
            'listener "tcp" {',
            f'  address = "{host}:{self.port}"',
            f'  tls_cert_file = "{self.certificate.chain}"',
            f'  tls_key_file = "{self.certificate.key}"',
        ]
        for setting, version in (("tls_min_version", self.min_version), ("tls_max_version", self.max_version)):
            if version is not None:
                if version not in TLS_VERSIONS:
                    raise ValueError(f"{self.name}: unknown {setting} {version!r}; expected one of {TLS_VERSIONS}")
                lines.append(f'  {setting} = "{version}"')
        if self.client_ca is not None:
            lines.append("  tls_require_and_verify_client_cert = true")
            lines.append(f'  tls_client_ca_file = "{self.client_ca}"')
        lines.append("}")
        return "\n".join(lines) + "\n"


class TlsOpenBaoServer:
    """``bao server -dev`` with a plain admin listener plus the given TLS listeners."""

    def __init__(self, tools: ToolPaths, run_dir: Path, listeners: list[TlsListener]):
        self.plugin = tools.plugin
        self.run_dir = run_dir
        run_dir.mkdir(parents=True, exist_ok=True)
        self.admin_port = free_port_pair_on("127.0.0.1")
        self.listeners = {listener.name: listener for listener in listeners}
        for listener in listeners:
            listener.port = free_port_pair_on(listener.host)
        self.root_token = secrets.token_urlsafe(24)

        config = run_dir / "openbao-listeners.hcl"
        config.write_text("".join(listener.hcl() for listener in listeners))
        home = run_dir / "openbao-home"  # the dev server writes ~/.vault-token here
        home.mkdir(exist_ok=True)
        self.process = ManagedProcess(
            "openbao-tls",
            [
                str(tools.bao), "server", "-dev",
                f"-dev-root-token-id={self.root_token}",
                f"-dev-listen-address=127.0.0.1:{self.admin_port}",
                f"-dev-plugin-dir={self.plugin.parent}",
                f"-config={config}",
            ],
            environment({
                "HOME": str(home),
                "AWS_EC2_METADATA_DISABLED": "true",
                "AWS_CONFIG_FILE": "/dev/null",
                "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
            }),
            run_dir / "openbao-tls.log",
            cwd=run_dir,
        )

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    def listener(self, name: str) -> TlsListener:
        return self.listeners[name]

    def client(self, namespace: str | None = None, token: str | None = None) -> OpenBaoClient:
        """A client of the plain admin listener, with the root token unless TOKEN is given."""
        return OpenBaoClient(self.admin_url, token if token is not None else self.root_token, namespace)

    def start(self) -> "TlsOpenBaoServer":
        self.process.start()
        self.process.wait_until(self.is_unsealed, timeout=60, what="OpenBao to report unsealed")
        for listener in self.listeners.values():
            self.process.wait_until(lambda: accepts_connections(listener.host, listener.port), timeout=10,
                                    what=f"listener {listener.name} on {listener.url}")
        log.info("OpenBao with TLS listeners ready: admin %s, %s", self.admin_url,
                 ", ".join(f"{name} {listener.url}" for name, listener in self.listeners.items()))
        return self

    def stop(self) -> None:
        self.process.stop()

    def is_unsealed(self) -> bool:
        try:
            status = self.client(token="").read("sys/seal-status")
        except OpenBaoError:
            return False
        return status.get("sealed") is False

    def register_plugin(self) -> None:
        """Register the AWS auth plugin in the root namespace under its SHA-256."""
        digest = hashlib.sha256(self.plugin.read_bytes()).hexdigest()
        self.client().request("PUT", f"sys/plugins/catalog/auth/{PLUGIN_NAME}", {
            "sha256": digest,
            "command": self.plugin.name,
        })
        log.info("registered auth plugin %s with sha256 %s", PLUGIN_NAME, digest)

    def create_namespace(self, namespace: str) -> None:
        self.client().write(f"sys/namespaces/{namespace}")
        log.info("created namespace %s", namespace)

    def configure_aws_auth(self, stack: Stack, mount: str, namespace: str | None = None) -> None:
        """Enable the AWS auth plugin at MOUNT in NAMESPACE and configure it as the stack's mounts are.

        The role is the stack's profile role: bound to the stack's AMI, account
        and IAM role, with the read and profile policies.
        """
        client = self.client(namespace)
        client.write(f"sys/auth/{mount}", {"type": PLUGIN_NAME})
        # The AWS endpoints point at moto before anything can log in, so the
        # plugin never calls real AWS.
        client.write(f"auth/{mount}/config/client", {
            "access_key": stack.aws.openbao_key.access_key_id,
            "secret_key": stack.aws.openbao_key.secret_access_key,
            "endpoint": stack.aws.url,
            "iam_endpoint": stack.aws.url,
            "sts_endpoint": stack.aws.url,
            "sts_region": REGION,
        })
        dsa = stack.keys.dsa_certificate_pem()
        rsa = stack.keys.rsa_certificate_pem()
        client.write(f"auth/{mount}/config/certificate/stork-dsa", {"aws_public_cert": dsa, "type": "pkcs7"})
        client.write(f"auth/{mount}/config/certificate/stork-rsa2048", {"aws_public_cert": rsa, "type": "pkcs7"})
        for name in (READ_POLICY, PROFILE_POLICY):
            client.request("PUT", f"sys/policies/acl/{name}", {"policy": POLICIES[name]})
        client.write(f"auth/{mount}/role/{PROFILE_ROLE}", {
            "auth_type": "ec2",
            "bound_ami_id": stack.aws.image_id,
            "bound_account_id": ACCOUNT_ID,
            "bound_iam_role_arn": stack.aws.role_arn,
            "token_policies": [READ_POLICY, PROFILE_POLICY],
        })
        log.info("enabled and configured %s at auth/%s in namespace %s", PLUGIN_NAME, mount, namespace or "(root)")

    def lookup_self(self, token: str, namespace: str | None = None) -> dict[str, Any]:
        """Return the ``data`` of ``auth/token/lookup-self`` for TOKEN, sent in NAMESPACE."""
        return self.client(namespace, token=token).read("auth/token/lookup-self")["data"]

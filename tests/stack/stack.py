"""The whole local test stack: moto, OpenBao with the AWS auth plugin, and IMDS.

Everything listens on 127.0.0.1 only, and ``Stack.start`` raises StackError
outside a network namespace whose only interface is loopback (see
scripts/in-netns.sh), so nothing can reach real AWS or the real IMDS.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import shlex
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .imds import ImdsServer, InstanceMetadata, InstanceProfile, RoleCredentials, aws_timestamp
from .moto_aws import (
    ACCOUNT_ID,
    INSTANCE_PROFILE_NAME,
    MAX_SESSION_SECONDS,
    REGION,
    ROLE_NAME,
    MotoAws,
    MotoServer,
)
from .openbao import OpenBaoClient, OpenBaoError, OpenBaoServer
from .process import StackError
from .signing import SigningKeys

log = logging.getLogger("tests.stack")

DEFAULT_MOUNT = "aws"
CUSTOM_MOUNT = "aws-custom"
MOUNTS = (DEFAULT_MOUNT, CUSTOM_MOUNT)

# Role names configured on every mount. The profile role is what the binary
# picks by default (the last path segment of the instance profile ARN), and
# the AMI role is what Vault picks when a login sends no role.
PROFILE_ROLE = INSTANCE_PROFILE_NAME
UNMATCHED_AMI_ROLE = "stork-unmatched-ami"
UNMATCHED_ACCOUNT_ROLE = "stork-unmatched-account"
READ_POLICY = "stork-read"
PROFILE_POLICY = "stork-by-profile"
AMI_POLICY = "stork-by-ami"

POLICIES = {
    READ_POLICY: 'path "secret/data/stork/*" {\n  capabilities = ["read"]\n}\n',
    PROFILE_POLICY: 'path "secret/data/stork/profile/*" {\n  capabilities = ["read"]\n}\n',
    AMI_POLICY: 'path "secret/data/stork/ami/*" {\n  capabilities = ["read"]\n}\n',
}

CACHE_ENV_FILE = "env.sh"

# The IAM method (auth_type=iam). IAM_ROLE is named after the instance's IAM
# role, the role the binary sends by default. IAM_HEADER_MOUNT requires the
# X-Vault-AWS-IAM-Server-ID header with the value IAM_SERVER_ID. The header
# value is part of a mount's client config, so it needs a mount of its own.
IAM_HEADER_MOUNT = "aws-iam-header"
IAM_SERVER_ID = "vault.stork.test"
IAM_ROLE = ROLE_NAME
IAM_ALTERNATE_ROLE = "stork-iam-alternate"
IAM_UNMATCHED_ROLE = "stork-iam-unmatched"
IAM_POLICY = "stork-by-iam"
IAM_ALTERNATE_POLICY = "stork-by-iam-alternate"

IAM_POLICIES = {
    IAM_POLICY: 'path "secret/data/stork/iam/*" {\n  capabilities = ["read"]\n}\n',
    IAM_ALTERNATE_POLICY: 'path "secret/data/stork/iam-alternate/*" {\n  capabilities = ["read"]\n}\n',
}


@dataclass(frozen=True)
class ToolPaths:
    """Where scripts/test-deps.sh installed the stack's programs."""

    venv: Path
    bao: Path
    plugin: Path

    @property
    def moto_server(self) -> Path:
        return self.venv / "bin" / "moto_server"

    @classmethod
    def locate(cls) -> "ToolPaths":
        """Read STORK_TEST_VENV, STORK_TEST_BAO and STORK_TEST_PLUGIN from the environment,
        or from the env.sh that scripts/test-deps.sh writes into the cache."""
        values = {name: os.environ.get(name) for name in ("STORK_TEST_VENV", "STORK_TEST_BAO", "STORK_TEST_PLUGIN")}
        if not all(values.values()):
            cache = Path(os.environ.get("VAULT_STORK_CACHE", Path.home() / ".cache" / "vault-stork"))
            env_file = cache / CACHE_ENV_FILE
            if not env_file.exists():
                raise StackError(f"{env_file} not found; run scripts/test-deps.sh first")
            for line in env_file.read_text().splitlines():
                words = shlex.split(line)
                if len(words) == 2 and words[0] == "export" and "=" in words[1]:
                    name, value = words[1].split("=", 1)
                    if not values.get(name):
                        values[name] = value
        paths = cls(Path(values["STORK_TEST_VENV"]), Path(values["STORK_TEST_BAO"]), Path(values["STORK_TEST_PLUGIN"]))
        for path in (paths.moto_server, paths.bao, paths.plugin):
            if not path.exists():
                raise StackError(f"{path} not found; run scripts/test-deps.sh")
        return paths


def interfaces() -> list[str]:
    """Return the network interfaces of this process's network namespace."""
    lines = Path("/proc/self/net/dev").read_text().splitlines()[2:]
    return [line.split(":", 1)[0].strip() for line in lines]


def require_loopback_only_network() -> None:
    found = interfaces()
    if found != ["lo"]:
        raise StackError(
            f"the test stack must run in a network namespace with only loopback, but this one has "
            f"interfaces {found}; run the command under scripts/in-netns.sh"
        )


def identity_document(instance_id: str, image_id: str, instance_type: str, availability_zone: str,
                      private_ip: str, pending_time: str) -> bytes:
    """Return an instance identity document laid out as EC2 serves it."""
    fields = {
        "accountId": ACCOUNT_ID,
        "architecture": "x86_64",
        "availabilityZone": availability_zone,
        "billingProducts": None,
        "devpayProductCodes": None,
        "marketplaceProductCodes": None,
        "imageId": image_id,
        "instanceId": instance_id,
        "instanceType": instance_type,
        "kernelId": None,
        "pendingTime": pending_time,
        "privateIp": private_ip,
        "ramdiskId": None,
        "region": REGION,
        "version": "2017-09-30",
    }
    return json.dumps(fields, indent=2, separators=(",", " : ")).encode()


class Stack:
    """Start, configure and stop moto, OpenBao and a default IMDS."""

    def __init__(self, run_dir: Path | None = None):
        if run_dir is None:
            configured = os.environ.get("STORK_TEST_RUN_DIR")
            run_dir = Path(configured) if configured else Path(tempfile.mkdtemp(prefix="vault-stork-stack-"))
        self.run_dir = run_dir
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.log_handlers: list[logging.Handler] = []
        self.keys = SigningKeys(self.run_dir / "signing")
        self.moto: MotoServer | None = None
        self.aws: MotoAws | None = None
        self.openbao: OpenBaoServer | None = None
        self.imds_servers: list[ImdsServer] = []
        self.imds: ImdsServer | None = None
        self.default_instance: InstanceMetadata | None = None

    # Start and stop

    def start(self) -> "Stack":
        """Start every component; on failure stop what started and raise StackError naming the logs."""
        self.setup_logging()
        try:
            require_loopback_only_network()
            # boto3 in this process must never look for credentials in IMDS,
            # and must reach moto directly even if a proxy is configured.
            os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
            os.environ["NO_PROXY"] = ",".join(filter(None, [os.environ.get("NO_PROXY"), "127.0.0.1", "localhost"]))
            tools = ToolPaths.locate()
            self.keys.generate()

            self.moto = MotoServer(tools.moto_server, self.run_dir)
            self.moto.start()
            self.aws = MotoAws(self.moto.url)
            self.aws.create_fixtures()
            self.moto.require_authentication()

            self.openbao = OpenBaoServer(tools.bao, tools.plugin, self.run_dir)
            self.openbao.start()
            self.configure_openbao()

            self.default_instance = self.new_instance()
            self.imds = self.start_imds(self.default_instance)
            self.start_iam_method()
        except Exception as error:
            self.stop()
            raise StackError(f"test stack failed to start: {error}\n{self.describe_logs()}") from error
        log.info("stack ready: OpenBao %s, moto %s, IMDS %s", self.vault_addr, self.moto.url, self.imds.url)
        return self

    def stop(self) -> None:
        """Stop every component that was started, in reverse order."""
        for server in reversed(self.imds_servers):
            server.stop()
        self.imds_servers.clear()
        if self.openbao is not None:
            self.openbao.stop()
        if self.moto is not None:
            self.moto.stop()
        log.info("stack stopped; logs kept in %s", self.run_dir)
        for handler in self.log_handlers:
            handler.close()
            logging.getLogger(handler.get_name()).removeHandler(handler)
        self.log_handlers.clear()

    def __enter__(self) -> "Stack":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def setup_logging(self) -> None:
        formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
        for logger_name, file_name in (("tests.stack", "stack.log"), ("tests.stack.imds", "imds.log")):
            handler = logging.FileHandler(self.run_dir / file_name)
            handler.set_name(logger_name)
            handler.setFormatter(formatter)
            logger = logging.getLogger(logger_name)
            logger.addHandler(handler)
            logger.setLevel(logging.INFO)
            self.log_handlers.append(handler)

    def log_files(self) -> list[Path]:
        return sorted(path for path in self.run_dir.glob("*.log"))

    def describe_logs(self) -> str:
        return "stack logs: " + ", ".join(str(path) for path in self.log_files())

    # OpenBao configuration

    def configure_openbao(self) -> None:
        assert self.openbao is not None, "OpenBao is not started"
        assert self.aws is not None and self.aws.openbao_key is not None, "moto fixtures are not created"
        bao = self.openbao.client
        self.openbao.register_plugin()
        for mount in MOUNTS:
            self.openbao.enable_auth(mount)
            # The AWS endpoints must point at moto before anything can log in,
            # so the plugin never calls real AWS.
            bao.write(f"auth/{mount}/config/client", {
                "access_key": self.aws.openbao_key.access_key_id,
                "secret_key": self.aws.openbao_key.secret_access_key,
                "endpoint": self.aws.url,
                "iam_endpoint": self.aws.url,
                "sts_endpoint": self.aws.url,
                "sts_region": REGION,
            })
            self.register_certificates(mount)

        for name, rules in POLICIES.items():
            bao.request("PUT", f"sys/policies/acl/{name}", {"policy": rules})
        for mount in MOUNTS:
            self.write_roles(mount)
        log.info("OpenBao configured: mounts %s, roles %s", MOUNTS, self.role_names())

    def register_certificates(self, mount: str) -> None:
        bao = self.openbao.client
        dsa = self.keys.dsa_certificate_pem()
        rsa = self.keys.rsa_certificate_pem()
        # "pkcs7" certificates verify the pkcs7 and rsa2048 documents, and
        # "identity" certificates verify the bare signature.
        bao.write(f"auth/{mount}/config/certificate/stork-dsa", {"aws_public_cert": dsa, "type": "pkcs7"})
        bao.write(f"auth/{mount}/config/certificate/stork-rsa2048", {"aws_public_cert": rsa, "type": "pkcs7"})
        bao.write(f"auth/{mount}/config/certificate/stork-identity", {"aws_public_cert": rsa, "type": "identity"})

    def role_names(self) -> dict[str, str]:
        return {
            "profile": PROFILE_ROLE,
            "ami": self.aws.image_id,
            "unmatched_ami": UNMATCHED_AMI_ROLE,
            "unmatched_account": UNMATCHED_ACCOUNT_ROLE,
        }

    def write_roles(self, mount: str) -> None:
        bao = self.openbao.client
        common = {"auth_type": "ec2", "bound_ami_id": self.aws.image_id, "bound_account_id": ACCOUNT_ID}
        roles = {
            # Bound to the IAM role ARN too, so a login makes the plugin call
            # iam:GetInstanceProfile on moto with a path in the ARN.
            PROFILE_ROLE: {**common, "bound_iam_role_arn": self.aws.role_arn,
                           "token_policies": [READ_POLICY, PROFILE_POLICY]},
            self.aws.image_id: {**common, "token_policies": [READ_POLICY, AMI_POLICY]},
            UNMATCHED_AMI_ROLE: {**common, "bound_ami_id": "ami-00000000", "token_policies": [READ_POLICY]},
            UNMATCHED_ACCOUNT_ROLE: {**common, "bound_account_id": "000000000000", "token_policies": [READ_POLICY]},
        }
        for name, settings in roles.items():
            bao.write(f"auth/{mount}/role/{name}", settings)

    # Instances and IMDS

    def new_instance(self, with_profile: bool = True) -> InstanceMetadata:
        """Launch a new moto instance and sign its identity document.

        Each instance starts with no entry in OpenBao's identity access list,
        so it can log in with any nonce the first time.
        """
        ec2 = self.aws.run_instance(with_profile=with_profile)
        document = identity_document(ec2.instance_id, ec2.image_id, ec2.instance_type,
                                     ec2.availability_zone, ec2.private_ip, ec2.launch_time)
        signed = self.keys.sign(document)
        profile = None
        if ec2.instance_profile_arn:
            profile = InstanceProfile(ec2.instance_profile_arn, ec2.instance_profile_id or self.aws.instance_profile_id)
        return InstanceMetadata(
            instance_id=ec2.instance_id,
            image_id=ec2.image_id,
            region=REGION,
            availability_zone=ec2.availability_zone,
            private_ip=ec2.private_ip,
            instance_type=ec2.instance_type,
            document=signed.document,
            pkcs7=signed.pkcs7,
            rsa2048=signed.rsa2048,
            signature=signed.signature,
            instance_profile=profile,
        )

    def start_imds(self, instance: InstanceMetadata) -> ImdsServer:
        """Start another IMDS serving INSTANCE; ``stop`` (or ``stop_imds``) stops it."""
        server = ImdsServer(instance).start()
        self.imds_servers.append(server)
        return server

    def stop_imds(self, server: ImdsServer) -> None:
        server.stop()
        if server in self.imds_servers:
            self.imds_servers.remove(server)

    def stop_instance(self, instance_id: str) -> None:
        self.aws.stop_instance(instance_id)

    def start_instance(self, instance_id: str) -> None:
        self.aws.start_instance(instance_id)

    # OpenBao access

    @property
    def vault_addr(self) -> str:
        return self.openbao.url

    @property
    def root_token(self) -> str:
        return self.openbao.root_token

    @property
    def moto_url(self) -> str:
        return self.moto.url

    @property
    def ami_id(self) -> str:
        return self.aws.image_id

    def client(self, token: str | None = None) -> OpenBaoClient:
        return OpenBaoClient(self.vault_addr, token if token is not None else self.root_token)

    def login_with_http(self, instance: InstanceMetadata, nonce: str | None = None, role: str | None = None,
                        mount: str = DEFAULT_MOUNT, signature_type: str = "pkcs7") -> dict[str, Any]:
        """Log in as INSTANCE the way the binary does, from Python; return the ``auth`` object."""
        body: dict[str, Any] = {}
        if signature_type == "pkcs7":
            body["pkcs7"] = instance.pkcs7
        elif signature_type == "rsa2048":
            body["pkcs7"] = instance.rsa2048
        elif signature_type == "identity":
            body["identity"] = base64_text(instance.document)
            body["signature"] = instance.signature
        else:
            raise ValueError(f"unknown signature type {signature_type!r}")
        if nonce is not None:
            body["nonce"] = nonce
        if role is not None:
            body["role"] = role
        reply = self.client(token="").write(f"auth/{mount}/login", body)
        return reply["auth"]

    def lookup_self(self, token: str) -> dict[str, Any]:
        """Return the ``data`` of ``auth/token/lookup-self`` for TOKEN."""
        return self.client(token=token).read("auth/token/lookup-self")["data"]

    def login_requests(self, mount: str = DEFAULT_MOUNT) -> int:
        """Count the login requests OpenBao received on auth/MOUNT so far (from its audit log)."""
        return self.openbao.login_requests(mount)

    def access_list_nonce(self, instance_id: str, mount: str = DEFAULT_MOUNT) -> str | None:
        """Return the client nonce OpenBao stored for INSTANCE_ID, or None if it has no entry."""
        try:
            reply = self.client().read(f"auth/{mount}/identity-accesslist/{instance_id}")
        except OpenBaoError as error:
            if error.status == 404:
                return None
            raise
        return reply["data"]["client_nonce"]

    def delete_access_list_entry(self, instance_id: str, mount: str = DEFAULT_MOUNT) -> None:
        """Forget the nonce OpenBao stored for INSTANCE_ID at its first login."""
        self.client().delete(f"auth/{mount}/identity-accesslist/{instance_id}")

    def seal(self) -> None:
        self.openbao.seal()

    def unseal(self) -> None:
        self.openbao.unseal()

    def environment(self) -> dict[str, str]:
        """Return the variables ``python -m tests.stack run`` exports to its command."""
        instance = self.default_instance
        return {
            "VAULT_ADDR": self.vault_addr,
            "AWS_EC2_METADATA_SERVICE_ENDPOINT": self.imds.url,
            "STORK_TEST_ROOT_TOKEN": self.root_token,
            "STORK_TEST_MOTO_URL": self.moto_url,
            "STORK_TEST_RUN_DIR": str(self.run_dir),
            "STORK_TEST_INSTANCE_ID": instance.instance_id,
            "STORK_TEST_AMI_ID": self.ami_id,
            "STORK_TEST_PROFILE_ROLE": PROFILE_ROLE,
            "STORK_TEST_CUSTOM_MOUNT": CUSTOM_MOUNT,
            **self.iam_environment(),
        }

    # IAM method
    #
    # Everything the IAM method needs beyond the EC2 setup: ``start`` calls
    # ``start_iam_method`` last, and ``environment`` adds ``iam_environment``.

    def start_iam_method(self) -> None:
        """Set up the IAM method: moto fixtures, OpenBao mount and roles, and role credentials
        in the default instance's IMDS (valid for 12 hours)."""
        self.aws.create_iam_method_fixtures()
        self.configure_openbao_iam()
        self.imds.set_credentials(self.new_role_credentials(self.default_instance.instance_id,
                                                            duration_seconds=MAX_SESSION_SECONDS))

    def configure_openbao_iam(self) -> None:
        bao = self.openbao.client
        self.openbao.enable_auth(IAM_HEADER_MOUNT)
        # Like the EC2 mounts, every AWS endpoint points at moto before any
        # login. The plugin replays an IAM login's signed request to
        # sts_endpoint unchanged, and sts_region only sets the region of the
        # plugin's own STS client (Vault v1.21.4, builtin/credential/aws).
        bao.write(f"auth/{IAM_HEADER_MOUNT}/config/client", {
            "access_key": self.aws.openbao_key.access_key_id,
            "secret_key": self.aws.openbao_key.secret_access_key,
            "endpoint": self.aws.url,
            "iam_endpoint": self.aws.url,
            "sts_endpoint": self.aws.url,
            "sts_region": REGION,
            "iam_server_id_header_value": IAM_SERVER_ID,
        })

        for name, rules in IAM_POLICIES.items():
            bao.request("PUT", f"sys/policies/acl/{name}", {"policy": rules})

        # The plugin resolves each bound role ARN to the role's unique ID
        # with iam:GetRole on moto when the role is written, and compares a
        # login's caller with that ID.
        roles = {
            IAM_ROLE: {"bound_iam_principal_arn": [self.aws.role_arn],
                       "token_policies": [READ_POLICY, IAM_POLICY]},
            IAM_ALTERNATE_ROLE: {"bound_iam_principal_arn": [self.aws.role_arn],
                                 "token_policies": [READ_POLICY, IAM_ALTERNATE_POLICY]},
            IAM_UNMATCHED_ROLE: {"bound_iam_principal_arn": [self.aws.other_role_arn],
                                 "token_policies": [READ_POLICY]},
        }
        for name, settings in roles.items():
            bao.write(f"auth/{DEFAULT_MOUNT}/role/{name}", {"auth_type": "iam", **settings})
        bao.write(f"auth/{IAM_HEADER_MOUNT}/role/{IAM_ROLE}", {"auth_type": "iam", **roles[IAM_ROLE]})
        log.info("OpenBao IAM method configured: roles %s on auth/%s, %s on auth/%s",
                 sorted(roles), DEFAULT_MOUNT, IAM_ROLE, IAM_HEADER_MOUNT)

    def new_role_credentials(self, session_name: str, duration_seconds: int = 3600) -> RoleCredentials:
        """Return new temporary credentials of the instance role, as IMDS serves them.

        EC2 names the role session after the instance ID.
        """
        session = self.aws.assume_instance_role(session_name, duration_seconds)
        return RoleCredentials(
            role_name=ROLE_NAME,
            access_key_id=session.access_key_id,
            secret_access_key=session.secret_access_key,
            token=session.session_token,
            expiration=aws_timestamp(session.expiration),
        )

    def new_iam_instance(self) -> InstanceMetadata:
        """Launch a new instance whose IMDS serves new credentials of the instance role."""
        instance = self.new_instance()
        instance.credentials = self.new_role_credentials(instance.instance_id)
        return instance

    def audit_request_paths(self) -> list[str]:
        """Return the path of every request OpenBao received so far (from its audit log)."""
        return self.openbao.audit_request_paths()

    def moto_replies(self) -> list[tuple[str, str, int]]:
        """Return (method, path, status) of every request moto has logged so far."""
        return self.moto.replies()

    def iam_environment(self) -> dict[str, str]:
        return {
            "STORK_TEST_IAM_ROLE": IAM_ROLE,
            "STORK_TEST_IAM_HEADER_MOUNT": IAM_HEADER_MOUNT,
            "STORK_TEST_IAM_SERVER_ID": IAM_SERVER_ID,
        }


def base64_text(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")

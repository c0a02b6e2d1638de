"""A moto server that emulates EC2, IAM and STS, and the AWS fixtures in it.

Fixtures are created while moto accepts any request. Then moto's request
authentication is switched on (``POST /moto-api/reset-auth`` with the number
of requests still allowed without authentication, here 0), so from then on
every request, including OpenBao's, must carry a valid SigV4 signature from
an IAM user whose policies allow the action. Temporary credentials from
``sts:AssumeRole`` sign valid requests too.
"""

from __future__ import annotations

import json
import logging
import re
import urllib.request
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import boto3

from .process import ManagedProcess, StackError, environment, free_port, urlopen

log = logging.getLogger(__name__)

REGION = "us-east-1"
ACCOUNT_ID = "123456789012"  # moto's default account
IAM_PATH = "/stork/"
ROLE_NAME = "stork-instance-role"
INSTANCE_PROFILE_NAME = "stork-instance-profile"
FIXTURE_USER = "stork-fixture-admin"
OPENBAO_USER = "stork-openbao"
# The user that assumes the instance role to get the temporary credentials
# IMDS serves for it. It has the path "/" because moto 5.2.5 leaves the path
# out of the caller ARN it compares with a trust policy's principal, so a
# user with another path could not match its real ARN there.
ROLE_ASSUMER_USER = "stork-role-assumer"
# The maximum session duration of the instance role, in seconds.
MAX_SESSION_SECONDS = 12 * 3600
# A second IAM role that no instance has. Vault roles bound to it reject
# logins with the instance role's credentials.
OTHER_ROLE_NAME = "stork-other-role"

# The AWS calls of Vault's AWS auth backend (builtin/credential/aws in Vault
# v1.21.4). EC2 logins call sts:GetCallerIdentity to learn the account of the
# configured keys, ec2:DescribeInstances to check the instance, and
# iam:GetInstanceProfile for roles bound to an IAM role ARN. iam:GetRole and
# iam:GetUser resolve bound_iam_principal_arn for roles of the IAM method.
OPENBAO_ACTIONS = [
    "ec2:DescribeInstances",
    "iam:GetInstanceProfile",
    "iam:GetRole",
    "iam:GetUser",
    "sts:GetCallerIdentity",
]

EC2_ASSUME_ROLE_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{
        "Effect": "Allow",
        "Principal": {"Service": "ec2.amazonaws.com"},
        "Action": "sts:AssumeRole",
    }],
}


# A line of the access log that moto's web server (werkzeug) writes, e.g.
# `127.0.0.1 - - [04/Dec/2026 20:44:17] "POST / HTTP/1.1" 403 -`, where the
# request line may be wrapped in terminal colour codes.
ACCESS_LOG_LINE = re.compile(
    r'"(?:\x1b\[[0-9;]*m)*(?P<method>[A-Z]+) (?P<path>\S+) HTTP/[0-9.]+(?:\x1b\[[0-9;]*m)*" (?P<status>\d{3}) '
)


@dataclass(frozen=True)
class AccessKey:
    access_key_id: str
    secret_access_key: str


@dataclass(frozen=True)
class SessionCredentials:
    """Temporary credentials from ``sts:AssumeRole``."""

    access_key_id: str
    secret_access_key: str
    session_token: str
    expiration: datetime


@dataclass(frozen=True)
class Ec2Instance:
    """The moto view of one running instance, as the identity document needs it."""

    instance_id: str
    image_id: str
    instance_type: str
    availability_zone: str
    private_ip: str
    launch_time: str
    instance_profile_arn: str | None
    instance_profile_id: str | None


class MotoServer:
    """A ``moto_server`` process on 127.0.0.1."""

    def __init__(self, moto_server: Path, run_dir: Path):
        self.port = free_port()
        self.process = ManagedProcess(
            "moto",
            [str(moto_server), "-H", "127.0.0.1", "-p", str(self.port)],
            environment({"AWS_EC2_METADATA_DISABLED": "true", "HOME": str(run_dir)}),
            run_dir / "moto.log",
            cwd=run_dir,
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.process.start()
        self.process.wait_until(self.responds, timeout=60, what="moto to answer HTTP")

    def responds(self) -> bool:
        with urlopen(f"{self.url}/moto-api/data.json", timeout=2) as response:
            return response.status == 200

    def stop(self) -> None:
        self.process.stop()

    def replies(self) -> list[tuple[str, str, int]]:
        """Return (method, path, status) of every request in moto's access log, oldest first."""
        text = self.process.log_path.read_text(errors="replace")
        return [(match["method"], match["path"], int(match["status"]))
                for match in ACCESS_LOG_LINE.finditer(text)]

    def require_authentication(self) -> None:
        """Make moto authenticate and authorize every request from now on."""
        # The body is the bare number. A form content type (urllib's default)
        # would make the server parse it as a form and see an empty body.
        request = urllib.request.Request(
            f"{self.url}/moto-api/reset-auth",
            data=b"0",
            method="POST",
            headers={"Content-Type": "text/plain"},
        )
        with urlopen(request, timeout=10) as response:
            reply = json.load(response)
        if reply.get("status") != "ok":
            raise StackError(f"moto rejected reset-auth: {reply}")
        log.info("moto now authenticates every request (previous free request count: %s)",
                 reply.get("PREVIOUS_INITIAL_NO_AUTH_ACTION_COUNT"))


class MotoAws:
    """The IAM users, role, instance profile and instances the tests use."""

    def __init__(self, url: str):
        self.url = url
        self.fixture_key: AccessKey | None = None
        self.openbao_key: AccessKey | None = None
        self.image_id = ""
        self.role_arn = ""
        self.instance_profile_arn = ""
        self.instance_profile_id = ""
        self.role_assumer_key: AccessKey | None = None
        self.other_role_arn = ""

    def client(self, service: str, key: AccessKey | None = None):
        key = key or self.fixture_key or AccessKey("AKIAIOSFODNN7EXAMPLE", "unused-before-auth")
        return boto3.client(
            service,
            endpoint_url=self.url,
            region_name=REGION,
            aws_access_key_id=key.access_key_id,
            aws_secret_access_key=key.secret_access_key,
        )

    def create_user(self, iam, name: str, actions: list[str] | str, resource: str = "*",
                    path: str = IAM_PATH) -> AccessKey:
        iam.create_user(UserName=name, Path=path)
        iam.put_user_policy(
            UserName=name,
            PolicyName=f"{name}-policy",
            PolicyDocument=json.dumps({
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": actions, "Resource": resource}],
            }),
        )
        created = iam.create_access_key(UserName=name)["AccessKey"]
        return AccessKey(created["AccessKeyId"], created["SecretAccessKey"])

    def create_fixtures(self) -> None:
        """Create users, role, instance profile and pick an AMI, before authentication is on."""
        iam = self.client("iam")
        self.fixture_key = self.create_user(iam, FIXTURE_USER, "*")
        self.openbao_key = self.create_user(iam, OPENBAO_USER, OPENBAO_ACTIONS)

        role = iam.create_role(
            RoleName=ROLE_NAME,
            Path=IAM_PATH,
            AssumeRolePolicyDocument=json.dumps(EC2_ASSUME_ROLE_POLICY),
        )["Role"]
        self.role_arn = role["Arn"]
        profile = iam.create_instance_profile(InstanceProfileName=INSTANCE_PROFILE_NAME, Path=IAM_PATH)
        self.instance_profile_arn = profile["InstanceProfile"]["Arn"]
        self.instance_profile_id = profile["InstanceProfile"]["InstanceProfileId"]
        iam.add_role_to_instance_profile(InstanceProfileName=INSTANCE_PROFILE_NAME, RoleName=ROLE_NAME)

        images = self.client("ec2").describe_images(
            Owners=["amazon"],
            Filters=[{"Name": "architecture", "Values": ["x86_64"]}],
        )["Images"]
        linux = [image for image in images if image.get("Platform") != "windows"]
        if not linux:
            raise StackError("moto lists no built-in x86_64 Linux AMI")
        self.image_id = sorted(image["ImageId"] for image in linux)[0]
        log.info("moto fixtures: role %s, instance profile %s, AMI %s",
                 self.role_arn, self.instance_profile_arn, self.image_id)

    def run_instance(self, with_profile: bool = True) -> Ec2Instance:
        """Launch a new running instance of the fixture AMI, with the instance profile or without."""
        ec2 = self.client("ec2")
        arguments = {
            "ImageId": self.image_id,
            "MinCount": 1,
            "MaxCount": 1,
            "InstanceType": "t3.micro",
        }
        if with_profile:
            arguments["IamInstanceProfile"] = {"Arn": self.instance_profile_arn}
        instance = ec2.run_instances(**arguments)["Instances"][0]
        log.info("moto launched instance %s (instance profile: %s)",
                 instance["InstanceId"], with_profile)
        return self.describe(instance["InstanceId"])

    def describe(self, instance_id: str) -> Ec2Instance:
        reply = self.client("ec2").describe_instances(InstanceIds=[instance_id])
        instance = reply["Reservations"][0]["Instances"][0]
        profile = instance.get("IamInstanceProfile") or {}
        return Ec2Instance(
            instance_id=instance["InstanceId"],
            image_id=instance["ImageId"],
            instance_type=instance["InstanceType"],
            availability_zone=instance["Placement"]["AvailabilityZone"],
            private_ip=instance["PrivateIpAddress"],
            launch_time=instance["LaunchTime"].strftime("%Y-%m-%dT%H:%M:%SZ"),
            instance_profile_arn=profile.get("Arn"),
            instance_profile_id=profile.get("Id"),
        )

    def state(self, instance_id: str) -> str:
        reply = self.client("ec2").describe_instances(InstanceIds=[instance_id])
        return reply["Reservations"][0]["Instances"][0]["State"]["Name"]

    def stop_instance(self, instance_id: str) -> None:
        self.client("ec2").stop_instances(InstanceIds=[instance_id])
        log.info("moto stopped instance %s", instance_id)

    def start_instance(self, instance_id: str) -> None:
        self.client("ec2").start_instances(InstanceIds=[instance_id])
        log.info("moto started instance %s", instance_id)

    # Fixtures of the IAM method

    def create_iam_method_fixtures(self) -> None:
        """Let a new user assume the instance role, and create a second role.

        Works before and after authentication is switched on, because the
        fixture user may do anything.
        """
        iam = self.client("iam")
        self.role_assumer_key = self.create_user(iam, ROLE_ASSUMER_USER, "sts:AssumeRole",
                                                 resource=self.role_arn, path="/")
        assumer_arn = iam.get_user(UserName=ROLE_ASSUMER_USER)["User"]["Arn"]
        # A role allows sessions of one hour unless its MaxSessionDuration is
        # longer, and the default instance's credentials must last a whole
        # `python -m tests.stack run` session.
        iam.update_role(RoleName=ROLE_NAME, MaxSessionDuration=MAX_SESSION_SECONDS)
        # One statement names both principals. moto 5.2.5 fails with HTTP 500
        # on sts:AssumeRole by a user when the trust policy has a statement
        # whose only principal is a service.
        iam.update_assume_role_policy(RoleName=ROLE_NAME, PolicyDocument=json.dumps({
            "Version": "2012-10-17",
            "Statement": [{
                "Effect": "Allow",
                "Principal": {"Service": "ec2.amazonaws.com", "AWS": assumer_arn},
                "Action": "sts:AssumeRole",
            }],
        }))
        other = iam.create_role(
            RoleName=OTHER_ROLE_NAME,
            Path=IAM_PATH,
            AssumeRolePolicyDocument=json.dumps(EC2_ASSUME_ROLE_POLICY),
        )["Role"]
        self.other_role_arn = other["Arn"]
        log.info("moto IAM method fixtures: %s may assume %s; second role %s",
                 assumer_arn, self.role_arn, self.other_role_arn)

    def assume_instance_role(self, session_name: str, duration_seconds: int = 3600) -> SessionCredentials:
        """Return new temporary credentials of the instance role from ``sts:AssumeRole``, called
        as the assumer user. EC2 names the session after the instance ID, so callers pass that."""
        sts = self.client("sts", self.role_assumer_key)
        reply = sts.assume_role(RoleArn=self.role_arn, RoleSessionName=session_name,
                                DurationSeconds=duration_seconds)["Credentials"]
        log.info("moto issued credentials %s for %s session %s, expiring %s",
                 reply["AccessKeyId"], ROLE_NAME, session_name, reply["Expiration"])
        return SessionCredentials(reply["AccessKeyId"], reply["SecretAccessKey"], reply["SessionToken"],
                                  reply["Expiration"])

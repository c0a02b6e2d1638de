"""Run the vault-stork binary under test and check its output for secrets."""

from __future__ import annotations

import os
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from tests.stack import ImdsServer, InstanceMetadata, Stack
from tests.stack.imds import RoleCredentials

BINARY_TIMEOUT_SECONDS = 90


@dataclass
class Result:
    """The outcome of one run of the binary."""

    argv: list[str]
    code: int
    stdout: str
    stderr: str

    def describe(self) -> str:
        return (
            f"command: {' '.join(self.argv)}\nexit code: {self.code}\n"
            f"stdout:\n{self.stdout}\nstderr:\n{self.stderr}"
        )


def is_loopback_url(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    return host == "localhost" or host == "::1" or host.startswith("127.")


def flag_value(args: list[str], flag: str) -> str | None:
    """Return the value of the last FLAG in ARGS, given as ``FLAG VALUE`` or ``FLAG=VALUE``."""
    value = None
    for index, arg in enumerate(args):
        if arg == flag and index + 1 < len(args):
            value = args[index + 1]
        elif arg.startswith(f"{flag}="):
            value = arg.split("=", 1)[1]
    return value


def file_mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def assert_no_secrets(result: Result, *secrets: str) -> None:
    """Fail if stdout or stderr contains any of SECRETS, or any line of a multi-line one."""
    for secret in secrets:
        if not secret:
            continue
        pieces = {secret, secret.replace("\n", "")}
        pieces.update(line for line in secret.splitlines() if len(line) >= 16)
        for piece in pieces:
            assert piece not in result.stdout, f"stdout contains a secret:\n{result.describe()}"
            assert piece not in result.stderr, f"stderr contains a secret:\n{result.describe()}"


class RunningStork:
    """A run of the binary started in the background by ``StorkRunner.start``."""

    def __init__(self, runner: "StorkRunner", argv: list[str], process: subprocess.Popen,
                 stdin: str | None, check_secrets: bool):
        self.runner = runner
        self.argv = argv
        self.process = process
        self.stdin = stdin
        self.check_secrets = check_secrets

    def running(self) -> bool:
        return self.process.poll() is None

    def wait(self, timeout: float = BINARY_TIMEOUT_SECONDS) -> Result:
        """Send the standard input, wait for the run to end and return its result.

        Kills the run if it lasts more than TIMEOUT seconds.
        """
        try:
            stdout, stderr = self.process.communicate(input=self.stdin, timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.communicate()
            raise
        result = Result(self.argv, self.process.returncode, stdout, stderr)
        if self.check_secrets:
            self.runner.check_output(result)
        return result


class StorkRunner:
    """Runs the vault-stork binary with an explicit environment.

    The environment is PATH plus what the test passes. It never contains
    AWS_EC2_METADATA_DISABLED, which would make the binary refuse to use IMDS.
    Every run must name a loopback IMDS endpoint, by flag or variable, so no
    run can reach the real IMDS address. Every run of the iam method must
    name a loopback STS endpoint too, so the binary never signs for real STS.
    """

    def __init__(self, binary: Path, stack: Stack):
        self.binary = binary
        self.stack = stack
        # Values that must never appear in the binary's output.
        self.secrets: list[str] = []
        # Files whose contents must never appear in the binary's output.
        self.secret_files: list[Path] = []

    def add_instance_secrets(self, instance: InstanceMetadata) -> None:
        self.secrets.extend([instance.pkcs7, instance.rsa2048, instance.signature])

    def add_credential_secrets(self, credentials: RoleCredentials) -> None:
        """Treat the secret access key and session token of CREDENTIALS as secrets."""
        self.secrets.extend([credentials.secret_access_key, credentials.token])

    def check_output(self, result: Result) -> None:
        file_contents = [path.read_text() for path in self.secret_files if path.is_file()]
        assert_no_secrets(result, *self.secrets, *file_contents)

    def start(self, args: list[str], env: dict[str, str] | None = None, stdin: str | None = None,
              cwd: Path | None = None, check_secrets: bool = True) -> RunningStork:
        """Start the binary with ARGS in the background; ``wait`` sends STDIN.

        Unless CHECK_SECRETS is False, ``wait`` fails if the output contains a secret.
        """
        full_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        full_env.update(env or {})
        assert "AWS_EC2_METADATA_DISABLED" not in full_env, "the binary must not get AWS_EC2_METADATA_DISABLED"
        self.check_imds_endpoint(args, full_env)
        self.check_sts_endpoint(args, full_env)

        argv = [str(self.binary), *args]
        process = subprocess.Popen(
            argv,
            env=full_env,
            cwd=cwd,
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        return RunningStork(self, argv, process, stdin, check_secrets)

    def run(self, args: list[str], env: dict[str, str] | None = None, stdin: str | None = None,
            cwd: Path | None = None, check_secrets: bool = True) -> Result:
        """Run the binary with ARGS to the end; see ``start``."""
        return self.start(args, env=env, stdin=stdin, cwd=cwd, check_secrets=check_secrets).wait()

    @staticmethod
    def check_imds_endpoint(args: list[str], env: dict[str, str]) -> None:
        endpoint = None
        for index, arg in enumerate(args):
            if arg == "--imds-endpoint" and index + 1 < len(args):
                endpoint = args[index + 1]
            elif arg.startswith("--imds-endpoint="):
                endpoint = arg.split("=", 1)[1]
        if endpoint is None:
            endpoint = env.get("AWS_EC2_METADATA_SERVICE_ENDPOINT")
        assert endpoint is not None, "every run must pass a loopback --imds-endpoint"
        assert is_loopback_url(endpoint), f"IMDS endpoint {endpoint} is not a loopback address"

    @staticmethod
    def check_sts_endpoint(args: list[str], env: dict[str, str]) -> None:
        method = flag_value(args, "--method") or env.get("STORK_METHOD")
        if method != "iam":
            return
        endpoint = flag_value(args, "--sts-endpoint") or env.get("AWS_ENDPOINT_URL_STS")
        assert endpoint is not None, "every run of the iam method must pass a loopback --sts-endpoint"
        assert is_loopback_url(endpoint), f"STS endpoint {endpoint} is not a loopback address"

    def iam_login_args(self, imds: ImdsServer, token: Path, *extra: str, server: str | None = None,
                       mount: str | None = None) -> list[str]:
        """Return ``login --method iam`` arguments signed for moto's STS, then EXTRA.

        The contents of TOKEN count as a secret for this and later runs.
        """
        self.secret_files.append(token)
        args = [
            "login",
            "--method", "iam",
            "--server", server or self.stack.vault_addr,
            "--token", str(token),
            "--imds-endpoint", imds.url,
            "--sts-endpoint", self.stack.moto_url,
        ]
        if mount is not None:
            args += ["--mount", mount]
        return [*args, *extra]

    def iam_login(self, imds: ImdsServer, token: Path, *extra: str, server: str | None = None,
                  mount: str | None = None, env: dict[str, str] | None = None) -> Result:
        """Run ``login --method iam`` to the end; see ``iam_login_args``."""
        return self.run(self.iam_login_args(imds, token, *extra, server=server, mount=mount), env=env)

    def login_args(self, imds: ImdsServer | None, token: Path, nonce: Path, *extra: str,
                   server: str | None = None, imds_url: str | None = None) -> list[str]:
        """Return ``login`` arguments with --server, --token, --nonce and --imds-endpoint, then EXTRA.

        The contents of TOKEN and NONCE count as secrets for this and later runs.
        """
        self.secret_files.extend([token, nonce])
        if imds_url is None:
            assert imds is not None, "pass an IMDS server or an IMDS URL"
            imds_url = imds.url
        return [
            "login",
            "--server", server or self.stack.vault_addr,
            "--token", str(token),
            "--nonce", str(nonce),
            "--imds-endpoint", imds_url,
            *extra,
        ]

    def login(self, imds: ImdsServer | None, token: Path, nonce: Path, *extra: str,
              server: str | None = None, env: dict[str, str] | None = None,
              stdin: str | None = None, imds_url: str | None = None, cwd: Path | None = None) -> Result:
        """Run ``login`` to the end; see ``login_args``."""
        args = self.login_args(imds, token, nonce, *extra, server=server, imds_url=imds_url)
        return self.run(args, env=env, stdin=stdin, cwd=cwd)

    def start_login(self, imds: ImdsServer | None, token: Path, nonce: Path, *extra: str,
                    server: str | None = None) -> RunningStork:
        """Start ``login`` in the background; see ``login_args``."""
        return self.start(self.login_args(imds, token, nonce, *extra, server=server))

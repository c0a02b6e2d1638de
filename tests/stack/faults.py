"""Fault injection helpers for the stack: a restartable OpenBao, a TLS
certificate for fault servers, and small filesystems to fill or make read-only.

The session's OpenBao is a dev server, which keeps everything in memory and
loses its configuration and its nonce records when it stops. To stop and
start a real OpenBao, ``start_restartable_openbao`` runs a second server
with integrated (raft) storage (OpenBao 2.x has no file storage), configured
like the session's one: same plugin, mounts, roles and signing
certificates. After a restart it is sealed, as a production
server would be, and ``RestartableOpenBao.unseal`` opens it with the key kept
from initialisation.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import subprocess
import time
from pathlib import Path
from typing import Iterator

from .openbao import OpenBaoClient, OpenBaoError, OpenBaoServer
from .process import ManagedProcess, StackError, environment, free_port_pair
from .signing import run_openssl
from .stack import Stack, ToolPaths

log = logging.getLogger(__name__)


class RestartableOpenBao(OpenBaoServer):
    """``bao server`` with integrated (raft) storage in RUN_DIR, so its state survives a restart.

    ``start`` initialises the server on its first start (one unseal key) and
    unseals it unless ``unseal`` is False. ``stop`` sends SIGTERM; the port and the
    storage are kept for the next ``start``.
    """

    def __init__(self, bao: Path, plugin: Path, run_dir: Path):
        # OpenBaoServer.__init__ builds a dev server; only its methods are reused.
        self.plugin = plugin
        self.port = free_port_pair()  # the cluster listener takes port + 1
        self.run_dir = run_dir
        self.root_token = ""
        self.unseal_key: str | None = None
        self.audit_log = run_dir / "restartable-openbao-audit.log"

        storage = run_dir / "restartable-openbao-data"
        storage.mkdir(parents=True, exist_ok=True)
        config = run_dir / "restartable-openbao.hcl"
        config.write_text(
            f'storage "raft" {{\n  path = "{storage}"\n  node_id = "restartable"\n  performance_multiplier = 1\n}}\n'
            'listener "tcp" {\n'
            f'  address = "127.0.0.1:{self.port}"\n'
            f'  cluster_address = "127.0.0.1:{self.port + 1}"\n'
            '  tls_disable = true\n'
            '}\n'
            f'api_addr = "http://127.0.0.1:{self.port}"\n'
            f'cluster_addr = "http://127.0.0.1:{self.port + 1}"\n'
            f'plugin_directory = "{plugin.parent}"\n'
            'audit "file" "file" {\n'
            f'  options {{\n    file_path = "{self.audit_log}"\n  }}\n'
            '}\n'
        )

        home = run_dir / "restartable-openbao-home"
        home.mkdir(exist_ok=True)
        self.process = ManagedProcess(
            "restartable-openbao",
            [str(bao), "server", f"-config={config}"],
            environment({
                "HOME": str(home),
                "AWS_EC2_METADATA_DISABLED": "true",
                "AWS_CONFIG_FILE": "/dev/null",
                "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
            }),
            run_dir / "restartable-openbao.log",
            cwd=run_dir,
        )
        self.client = OpenBaoClient(self.url, None)

    def start(self, unseal: bool = True) -> None:
        """Start the process; initialise on the first start; unseal if UNSEAL."""
        self.process.start()
        self.process.wait_until(self.answers, timeout=60, what="OpenBao to answer sys/seal-status")
        if self.unseal_key is None:
            reply = self.client.request("PUT", "sys/init", {"secret_shares": 1, "secret_threshold": 1}, token="")
            self.unseal_key = reply["keys"][0]
            self.root_token = reply["root_token"]
            self.client.token = self.root_token
            log.info("initialised the restartable OpenBao on %s", self.url)
        if unseal:
            self.unseal()

    def answers(self) -> bool:
        try:
            self.client.read("sys/seal-status", token="", timeout=2)
        except OpenBaoError:
            return False
        return True

    def read_unseal_key(self) -> str | None:
        return self.unseal_key

    def is_sealed(self) -> bool:
        return self.client.read("sys/seal-status", token="")["sealed"] is True

    def running(self) -> bool:
        return self.process.running()


def start_restartable_openbao(stack: Stack, run_dir: Path, aws_endpoint: str) -> RestartableOpenBao:
    """Start a RestartableOpenBao configured like STACK's OpenBao, with AWS calls sent to AWS_ENDPOINT.

    AWS_ENDPOINT is moto's URL, or a fault server in front of moto, which is
    how a test makes AWS unreachable without stopping the moto that every
    other test shares.
    """
    tools = ToolPaths.locate()
    server = RestartableOpenBao(tools.bao, tools.plugin, run_dir)
    server.start()
    try:
        # Stack.configure_openbao configures stack.openbao and gives it
        # stack.aws.url as the AWS endpoint. A shallow copy with both replaced
        # configures this server instead and leaves the session's stack alone.
        configured = copy.copy(stack)
        configured.openbao = server
        configured.aws = copy.copy(stack.aws)
        configured.aws.url = aws_endpoint
        configured.configure_openbao()
    except Exception:
        server.stop()
        raise
    return server


def server_certificate(directory: Path, host: str = "127.0.0.1") -> tuple[Path, Path, Path]:
    """Create a CA and a server certificate for the IP address HOST; return (CA, certificate, key).

    The binary verifies with webpki, which rejects a self-signed CA
    certificate used as the server's own, hence the separate CA.
    """
    directory.mkdir(parents=True, exist_ok=True)
    ca_certificate, ca_key = directory / "ca.crt", directory / "ca.key"
    certificate, key = directory / "server.crt", directory / "server.key"
    new_key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2"]
    run_openssl(["req", "-x509", *new_key, "-keyout", str(ca_key), "-out", str(ca_certificate),
                 "-subj", "/CN=vault-stork fault test CA"])
    run_openssl([
        "req", "-x509", *new_key, "-keyout", str(key), "-out", str(certificate), "-subj", f"/CN={host}",
        "-CA", str(ca_certificate), "-CAkey", str(ca_key),
        "-addext", f"subjectAltName=IP:{host}",
        "-addext", "basicConstraints=critical,CA:FALSE",
        "-addext", "extendedKeyUsage=serverAuth",
    ])
    return ca_certificate, certificate, key


# Filesystems. Mounts must stay inside the test's own mount namespace, which
# scripts/in-netns.sh creates, so a leftover mount never reaches the host.


def in_private_mount_namespace() -> bool:
    """Return True when this process's mount namespace is not the one scripts/in-netns.sh was started in.

    scripts/in-netns.sh exports that namespace as STORK_OUTER_MOUNT_NS.
    """
    outer = os.environ.get("STORK_OUTER_MOUNT_NS")
    if not outer:
        return False
    return os.readlink("/proc/self/ns/mnt") != outer


def require_private_mount_namespace() -> None:
    if not in_private_mount_namespace():
        raise StackError(
            "mounting filesystems needs a private mount namespace; run the tests under "
            "scripts/in-netns.sh, which creates one")


def run_mount(args: list[str]) -> None:
    result = subprocess.run(args, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise StackError(f"{' '.join(args)} failed with exit code {result.returncode}: {result.stderr.strip()}")


@contextlib.contextmanager
def tmpfs(path: Path, size: str, inodes: int | None = None) -> Iterator[Path]:
    """Mount a tmpfs of SIZE (such as ``64k``) at PATH for the ``with`` block, then unmount it."""
    require_private_mount_namespace()
    path.mkdir(parents=True, exist_ok=True)
    options = f"size={size},mode=0755"
    if inodes is not None:
        options += f",nr_inodes={inodes}"
    run_mount(["mount", "-t", "tmpfs", "-o", options, "vault-stork-test", str(path)])
    try:
        yield path
    finally:
        unmount(path)


@contextlib.contextmanager
def read_only(path: Path) -> Iterator[Path]:
    """Make the directory PATH read-only for the ``with`` block with a read-only bind mount.

    A read-only mount stops root too, unlike a 0555 directory mode.
    """
    require_private_mount_namespace()
    run_mount(["mount", "--bind", str(path), str(path)])
    try:
        run_mount(["mount", "-o", "remount,bind,ro", str(path)])
        yield path
    finally:
        unmount(path)


def unmount(path: Path, attempts: int = 50) -> None:
    """Unmount PATH, retrying while a process that was just killed still has files open in it."""
    for _ in range(attempts):
        result = subprocess.run(["umount", str(path)], capture_output=True, text=True, check=False)
        if result.returncode == 0:
            return
        time.sleep(0.1)
    raise StackError(f"umount {path} failed: {result.stderr.strip()}")


def fill_filesystem(directory: Path, name: str = "filler") -> Path:
    """Write zeros to DIRECTORY/NAME until the filesystem is full; return the file's path."""
    filler = directory / name
    block = b"\0" * 4096
    with open(filler, "wb", buffering=0) as output:
        try:
            while True:
                output.write(block)
        except OSError:
            pass
        # tmpfs may still take a partial page; write single bytes until it cannot.
        try:
            while True:
                output.write(b"\0")
        except OSError:
            pass
    return filler

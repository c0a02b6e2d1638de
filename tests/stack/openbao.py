"""An OpenBao dev server with the AWS auth plugin, and a small HTTP client for it."""

from __future__ import annotations

import hashlib
import json
import logging
import re
import secrets
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from .process import ManagedProcess, StackError, environment, free_port_pair, urlopen

log = logging.getLogger(__name__)

PLUGIN_NAME = "awsauth"


class OpenBaoError(RuntimeError):
    """OpenBao returned an HTTP error status for a request."""

    def __init__(self, method: str, path: str, status: int, errors: list[str]):
        super().__init__(f"{method} /v1/{path} returned HTTP {status}: {errors}")
        self.status = status
        self.errors = errors


class OpenBaoClient:
    """Call OpenBao's HTTP API with ``urllib``.

    TOKEN is sent as ``X-Vault-Token``, and NAMESPACE, when given, as
    ``X-Vault-Namespace``.
    """

    def __init__(self, address: str, token: str | None = None, namespace: str | None = None):
        self.address = address.rstrip("/")
        self.token = token
        self.namespace = namespace

    def request(self, method: str, path: str, body: dict[str, Any] | None = None,
                token: str | None = None, timeout: float = 30) -> dict[str, Any]:
        """Send METHOD to /v1/PATH and return the decoded JSON reply ({} for 204).

        Raises OpenBaoError for an HTTP error status, with the reply's ``errors``.
        """
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"{self.address}/v1/{path}", data=data, method=method)
        token = token if token is not None else self.token
        if token:
            request.add_header("X-Vault-Token", token)
        if self.namespace:
            request.add_header("X-Vault-Namespace", self.namespace)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urlopen(request, timeout=timeout) as response:
                text = response.read().decode()
        except urllib.error.HTTPError as error:
            text = error.read().decode(errors="replace")
            try:
                errors = json.loads(text).get("errors", [text])
            except ValueError:
                errors = [text]
            raise OpenBaoError(method, path, error.code, errors) from None
        return json.loads(text) if text.strip() else {}

    def read(self, path: str, **kwargs) -> dict[str, Any]:
        return self.request("GET", path, **kwargs)

    def write(self, path: str, body: dict[str, Any] | None = None, **kwargs) -> dict[str, Any]:
        return self.request("POST", path, body or {}, **kwargs)

    def delete(self, path: str, **kwargs) -> dict[str, Any]:
        return self.request("DELETE", path, **kwargs)


class OpenBaoServer:
    """``bao server -dev`` on 127.0.0.1 with a random root token.

    The dev server registers every executable in its plugin directory at
    start; ``register_plugin`` registers the plugin again by its SHA-256 as a
    production setup would.
    """

    def __init__(self, bao: Path, plugin: Path, run_dir: Path):
        self.plugin = plugin
        self.port = free_port_pair()  # the dev server also listens on port + 1 for cluster traffic
        self.root_token = secrets.token_urlsafe(24)
        self.audit_log = run_dir / "openbao-audit.log"

        home = run_dir / "openbao-home"  # the dev server writes ~/.vault-token here
        home.mkdir(exist_ok=True)

        # OpenBao 2.7.2 rejects enabling audit devices through the API, so the
        # audit log that ``login_requests`` reads is declared in a config file.
        config = run_dir / "openbao-audit.hcl"
        config.write_text(
            'audit "file" "file" {\n'
            f'  options {{\n    file_path = "{self.audit_log}"\n  }}\n'
            '}\n'
        )

        # The plugin's cache directory contains no other executable, so the
        # dev server registers only the plugin from it.
        self.process = ManagedProcess(
            "openbao",
            [
                str(bao), "server", "-dev",
                f"-dev-root-token-id={self.root_token}",
                f"-dev-listen-address=127.0.0.1:{self.port}",
                f"-dev-plugin-dir={plugin.parent}",
                f"-config={config}",
            ],
            environment({
                "HOME": str(home),
                "AWS_EC2_METADATA_DISABLED": "true",
                "AWS_CONFIG_FILE": "/dev/null",
                "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
            }),
            run_dir / "openbao.log",
            cwd=run_dir,
        )

        self.client = OpenBaoClient(self.url, self.root_token)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.process.start()
        self.process.wait_until(self.is_unsealed, timeout=60, what="OpenBao to report unsealed")

    def stop(self) -> None:
        self.process.stop()

    def is_unsealed(self) -> bool:
        try:
            status = self.client.read("sys/seal-status", token="")
        except OpenBaoError:
            return False
        return status.get("sealed") is False

    def read_unseal_key(self) -> str | None:
        """Return the unseal key the dev server printed to its log at start."""
        match = re.search(r"^Unseal Key: (\S+)$", self.process.log_path.read_text(errors="replace"), re.M)
        return match.group(1) if match else None

    def register_plugin(self) -> str:
        """Register the plugin binary under its SHA-256; return the digest."""
        digest = hashlib.sha256(self.plugin.read_bytes()).hexdigest()
        self.client.request("PUT", f"sys/plugins/catalog/auth/{PLUGIN_NAME}", {
            "sha256": digest,
            "command": self.plugin.name,
        })
        log.info("registered auth plugin %s with sha256 %s", PLUGIN_NAME, digest)
        return digest

    def enable_auth(self, mount: str) -> None:
        self.client.write(f"sys/auth/{mount}", {"type": PLUGIN_NAME})
        log.info("enabled %s at auth/%s", PLUGIN_NAME, mount)

    def login_requests(self, mount: str) -> int:
        """Count the login requests on auth/MOUNT recorded in the audit log."""
        if not self.audit_log.exists():
            return 0
        count = 0
        for line in self.audit_log.read_text().splitlines():
            entry = json.loads(line)
            if entry.get("type") == "request" and entry.get("request", {}).get("path") == f"auth/{mount}/login":
                count += 1
        return count

    def audit_request_paths(self) -> list[str]:
        """Return the path of every request in the audit log, oldest first."""
        if not self.audit_log.exists():
            return []
        paths = []
        for line in self.audit_log.read_text().splitlines():
            entry = json.loads(line)
            if entry.get("type") == "request":
                paths.append(entry.get("request", {}).get("path", ""))
        return paths

    def seal(self) -> None:
        self.client.request("PUT", "sys/seal")
        log.info("sealed OpenBao")

    def unseal(self, timeout: float = 30) -> None:
        unseal_key = self.read_unseal_key()
        if unseal_key is None:
            raise StackError(f"no unseal key found in {self.process.log_path}")
        self.client.request("PUT", "sys/unseal", {"key": unseal_key}, token="")
        deadline = time.monotonic() + timeout
        while not self.is_unsealed():
            if time.monotonic() > deadline:
                raise StackError(f"OpenBao still sealed {timeout:.0f} s after unseal; log {self.process.log_path}")
            time.sleep(0.1)
        log.info("unsealed OpenBao")

"""A tinyproxy HTTP proxy on 127.0.0.1 whose log the proxy tests read.

tinyproxy (Debian package ``tinyproxy``, tested with 1.11.1) logs every
request line, CONNECT included, at ``LogLevel Info``, for example
``Request (file descriptor 5): CONNECT 127.0.0.1:8200 HTTP/1.1``. With
``ConnectPort`` lines it allows CONNECT only to those ports.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from .process import ManagedProcess, StackError, environment
from .tls_openbao import accepts_connections, free_port_pair_on

log = logging.getLogger("tests.stack.tinyproxy")


class TinyProxy:
    """tinyproxy allowing CONNECT to CONNECT_PORTS, with Basic credentials when USER is given."""

    def __init__(self, run_dir: Path, name: str, connect_ports: list[int],
                 user: str | None = None, password: str | None = None):
        binary = shutil.which("tinyproxy")
        if binary is None:
            raise StackError("tinyproxy not found; run scripts/test-deps.sh, which installs it")
        if (user is None) != (password is None):
            raise ValueError("give both the proxy user and password, or neither")
        if not connect_ports:
            # Without ConnectPort lines tinyproxy allows CONNECT to every port.
            raise ValueError("give at least one port to allow CONNECT to")
        self.name = name
        self.user = user
        self.password = password
        self.port = free_port_pair_on("127.0.0.1")
        self.log_path = run_dir / f"{name}.log"
        self.log_path.write_text("")

        lines = [
            f"Port {self.port}",
            "Listen 127.0.0.1",
            "Timeout 30",
            f'LogFile "{self.log_path}"',
            "LogLevel Info",
            "MaxClients 20",
            "Allow 127.0.0.1",
            "DisableViaHeader Yes",
            *(f"ConnectPort {port}" for port in connect_ports),
        ]
        if user is not None:
            lines.append(f"BasicAuth {user} {password}")
        config = run_dir / f"{name}.conf"
        config.write_text("\n".join(lines) + "\n")
        # -d keeps tinyproxy in the foreground, so the PID that ``stop`` signals is the proxy's.
        self.process = ManagedProcess(name, [binary, "-d", "-c", str(config)], environment({}),
                                      run_dir / f"{name}.out", cwd=run_dir)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """The proxy URL, with the credentials when the proxy requires them."""
        if self.user is None:
            return f"http://{self.address}"
        return f"http://{self.user}:{self.password}@{self.address}"

    def start(self) -> "TinyProxy":
        self.process.start()
        self.process.wait_until(lambda: accepts_connections("127.0.0.1", self.port), timeout=10,
                                what=f"tinyproxy to listen on {self.address}")
        return self

    def stop(self) -> None:
        self.process.stop()

    def log_size(self) -> int:
        """Return the log's length in bytes, a mark for ``requests_since``."""
        return self.log_path.stat().st_size

    def requests_since(self, mark: int = 0) -> list[str]:
        """Return the request lines (``METHOD TARGET HTTP/x``) logged after byte MARK."""
        with open(self.log_path, "rb") as log_file:
            log_file.seek(mark)
            text = log_file.read().decode(errors="replace")
        requests = []
        for line in text.splitlines():
            _, found, request = line.partition("]: Request (file descriptor ")
            if found:
                requests.append(request.split("): ", 1)[1])
        return requests

    def log_text_since(self, mark: int = 0) -> str:
        with open(self.log_path, "rb") as log_file:
            log_file.seek(mark)
            return log_file.read().decode(errors="replace")

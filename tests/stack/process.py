"""Start and stop the stack's server processes and pick their ports."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Callable

log = logging.getLogger(__name__)


class StackError(RuntimeError):
    """A component of the test stack failed to start or to respond."""


# Every server of the stack is on 127.0.0.1, so requests bypass any proxy
# configured in the environment.
loopback_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def urlopen(request: urllib.request.Request | str, timeout: float):
    """Open REQUEST without a proxy; errors are raised as by ``urllib.request.urlopen``."""
    return loopback_opener.open(request, timeout=timeout)


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port_pair(attempts: int = 50) -> int:
    """Return a free port P on 127.0.0.1 whose neighbour P+1 is free too."""
    for _ in range(attempts):
        port = free_port()
        if port < 65535 and port_is_free(port + 1):
            return port
    raise StackError(f"found no free pair of adjacent ports on 127.0.0.1 in {attempts} attempts")


def log_tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return f"(no log file at {path})"
    return "\n".join(text.splitlines()[-lines:])


class ManagedProcess:
    """A child process whose output goes to a log file and that is stopped by PID."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_path: Path,
                 cwd: Path | None = None):
        self.name = name
        self.argv = argv
        self.env = env
        self.log_path = log_path
        self.cwd = cwd
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        log.info("starting %s: %s (log: %s)", self.name, " ".join(self.argv), self.log_path)
        with open(self.log_path, "ab") as log_file:
            self.process = subprocess.Popen(
                self.argv,
                env=self.env,
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        log.info("%s started with PID %d", self.name, self.process.pid)

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def wait_until(self, ready: Callable[[], bool], timeout: float, what: str) -> None:
        """Poll READY until it returns True; fail if the process exits or TIMEOUT seconds pass."""
        deadline = time.monotonic() + timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            if not self.running():
                code = self.process.returncode if self.process else None
                raise StackError(
                    f"{self.name} exited with code {code} before {what}; log {self.log_path}:\n"
                    f"{log_tail(self.log_path)}"
                )
            try:
                if ready():
                    return
            except OSError as error:
                last_error = error
            time.sleep(0.1)
        raise StackError(
            f"{self.name} timed out after {timeout:.0f} s waiting for {what} "
            f"(last error: {last_error}); log {self.log_path}:\n{log_tail(self.log_path)}"
        )

    def stop(self, timeout: float = 10.0) -> None:
        """Send SIGTERM to the process, then SIGKILL if it is still running after TIMEOUT seconds."""
        if self.process is None or self.process.poll() is not None:
            return
        pid = self.process.pid
        log.info("stopping %s (PID %d)", self.name, pid)
        self.process.terminate()
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            log.warning("%s (PID %d) still running %.0f s after SIGTERM; sending SIGKILL",
                        self.name, pid, timeout)
            self.process.kill()
            self.process.wait(timeout=timeout)
        log.info("%s (PID %d) exited with code %s", self.name, pid, self.process.returncode)
        self.stop_process_group(pid)

    def stop_process_group(self, pgid: int) -> None:
        """Kill children left in the process group that ``start`` created (its ID is PGID).

        OpenBao stops its plugin processes when it shuts down cleanly, but
        not when it is killed.
        """
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            return
        log.warning("killed processes left in the process group of %s (PGID %d)", self.name, pgid)


def environment(extra: dict[str, str]) -> dict[str, str]:
    """Return a minimal environment: PATH plus EXTRA, nothing else inherited."""
    env = {"PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin")}
    env.update(extra)
    return env

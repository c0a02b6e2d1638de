"""Helpers and fixtures shared by the fault and durability tests.

Timed runs record their duration. When STORK_FAULT_TIMINGS names a file,
each timed run appends one JSON line to it (test, label, exit code,
seconds, retry warnings), and other measurements add lines of their own.
RELIABILITY.md was filled from that file.
"""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.runner import Result, RunningStork, StorkRunner
from tests.stack.fault_server import FaultServer, Proxy

# A new nonce is 88 characters of base64url, padding allowed.
NONCE_PATTERN = re.compile(r"(?=.{88}$)[A-Za-z0-9_-]+={0,2}")

# Temporary files of the binary: ".NAME.PID.RANDOM.tmp" beside the target.
TEMP_FILE_PATTERN = re.compile(r"^\..+\.\d+\.[0-9a-f]{12}\.tmp$")

RETRY_LINE_PATTERN = re.compile(
    r"^vault-stork: warning: (?P<what>.+?): attempt (?P<attempt>\d+) failed, "
    r"retrying in (?P<delay>\d+\.\d)s: (?P<reason>.*)$",
    re.MULTILINE,
)
GAVE_UP_PATTERN = re.compile(r"\(gave up after (\d+) attempts\)")

OLD_TOKEN = "old-token-that-must-survive"


# Timed runs


@dataclass
class Timed:
    """A finished run of the binary and how long it took, in seconds."""

    result: Result
    seconds: float

    @property
    def code(self) -> int:
        return self.result.code

    def describe(self) -> str:
        return f"{self.result.describe()}\nduration: {self.seconds:.2f} s"


class TimedStart:
    """A run started in the background by ``TimedRunner.start``."""

    def __init__(self, recorder: "TimedRunner", label: str, running: RunningStork, started: float):
        self.recorder = recorder
        self.label = label
        self.running = running
        # time.monotonic() just before the process was created.
        self.started = started

    @property
    def pid(self) -> int:
        return self.running.process.pid

    def is_running(self) -> bool:
        return self.running.running()

    def signal(self, signal_number: int) -> float:
        """Send SIGNAL_NUMBER to the run; return the monotonic time it was sent."""
        sent = time.monotonic()
        os.kill(self.pid, signal_number)
        return sent

    def kill(self) -> None:
        self.signal(signal.SIGKILL)

    def wait(self, timeout: float = 90) -> Timed:
        result = self.running.wait(timeout=timeout)
        timed = Timed(result, time.monotonic() - self.started)
        self.recorder.record(self.label, timed)
        return timed


class TimedRunner:
    """Runs the binary like STORK and records each run's duration under the test's name."""

    def __init__(self, stork: StorkRunner, test_name: str):
        self.stork = stork
        self.test_name = test_name

    def run(self, args: list[str], label: str = "", **kwargs) -> Timed:
        return self.start(args, label, **kwargs).wait()

    def start(self, args: list[str], label: str = "", **kwargs) -> TimedStart:
        started = time.monotonic()
        return TimedStart(self, label, self.stork.start(args, **kwargs), started)

    def record(self, label: str, timed: Timed) -> None:
        retries = len(RETRY_LINE_PATTERN.findall(timed.result.stderr))
        record_measurement(self.test_name, label, code=timed.code, seconds=round(timed.seconds, 3), retries=retries)


def record_measurement(test_name: str, label: str, **values) -> None:
    """Append one JSON line of VALUES to $STORK_FAULT_TIMINGS, if it is set."""
    path = os.environ.get("STORK_FAULT_TIMINGS")
    if not path:
        return
    with open(path, "a") as output:
        output.write(json.dumps({"test": test_name, "label": label, **values}) + "\n")


def run_measuring_memory(stork: StorkRunner, args: list[str], interval: float = 0.002) -> tuple[Result, int]:
    """Run the binary to the end; return its result and the highest VmHWM seen, in KiB.

    VmHWM is the peak resident set size of the binary's own address space.
    It is polled every INTERVAL seconds, so a peak in the last moments of
    the run can be missed. ``getrusage`` cannot replace it, because its
    maximum includes the pages the child shared with this Python process
    before exec.
    """
    running = stork.start(args)
    status_path = Path(f"/proc/{running.process.pid}/status")
    peak = 0
    while running.running():
        try:
            for line in status_path.read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]))
        except (OSError, ValueError):
            pass
        time.sleep(interval)
    return running.wait(), peak


# Fixtures


@pytest.fixture
def timed(request, stork) -> TimedRunner:
    """Run the binary with durations recorded under this test's name."""
    return TimedRunner(stork, request.node.name)


@pytest.fixture
def vault_front(stack):
    """A fault server in front of the session's OpenBao; by default it forwards everything."""
    server = FaultServer("vault-front", default=[Proxy(stack.vault_addr)]).start()
    yield server
    server.stop()


@pytest.fixture
def imds_front(imds):
    """A fault server in front of the test's IMDS; by default it forwards everything."""
    server = FaultServer("imds-front", default=[Proxy(imds.url)]).start()
    yield server
    server.stop()


# Retry log lines


@dataclass(frozen=True)
class RetryLine:
    """One "attempt N failed, retrying in Xs" warning."""

    what: str
    attempt: int
    delay: float
    reason: str


def retry_lines(stderr: str, what: str) -> list[RetryLine]:
    """Return the retry warnings in STDERR whose operation is WHAT, such as "Vault login"."""
    return [
        RetryLine(match["what"], int(match["attempt"]), float(match["delay"]), match["reason"])
        for match in RETRY_LINE_PATTERN.finditer(stderr)
        if match["what"] == what
    ]


def assert_retry_lines(result: Result, what: str, count: int | None = None,
                       max_backoff: float | None = None, reason: str | None = None) -> list[RetryLine]:
    """Check the retry warnings of WHAT: numbered 1, 2, ..., delays within MAX_BACKOFF seconds.

    COUNT, when given, is the exact number of warnings expected; REASON is
    text each warning must contain.
    """
    lines = retry_lines(result.stderr, what)
    if count is not None:
        assert len(lines) == count, f"expected {count} retry lines for {what}:\n{result.describe()}"
    assert [line.attempt for line in lines] == list(range(1, len(lines) + 1)), result.describe()
    if max_backoff is not None:
        for line in lines:
            # The delay is printed rounded to 0.1 s.
            assert line.delay <= max_backoff + 0.05, f"delay {line.delay}s above {max_backoff}s:\n{result.describe()}"
    if reason is not None:
        for line in lines:
            assert reason in line.reason, f"retry line without {reason!r}:\n{result.describe()}"
    return lines


def gave_up_after(result: Result) -> int | None:
    """Return N from "(gave up after N attempts)" in the error line, or None."""
    match = GAVE_UP_PATTERN.search(result.stderr)
    return int(match.group(1)) if match else None


def assert_gave_up(result: Result, attempts: int) -> None:
    """Check the error line reports ATTEMPTS attempts; a single attempt is reported without a count."""
    expected = attempts if attempts > 1 else None
    assert gave_up_after(result) == expected, f"expected {attempts} attempts:\n{result.describe()}"


def assert_duration(timed: Timed, at_least: float, at_most: float) -> None:
    assert timed.seconds >= at_least, f"ended too early ({timed.seconds:.2f} s < {at_least} s):\n{timed.describe()}"
    assert timed.seconds <= at_most, f"took too long ({timed.seconds:.2f} s > {at_most} s):\n{timed.describe()}"


# Files


def file_mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def temp_files(directory: Path) -> list[str]:
    """Return the names of the binary's temporary files in DIRECTORY."""
    return sorted(path.name for path in directory.iterdir() if TEMP_FILE_PATTERN.match(path.name))


def state_files(directory: Path) -> list[str]:
    """List DIRECTORY without the ``.lock`` files the binary keeps beside the nonce."""
    return sorted(path.name for path in directory.iterdir() if not path.name.endswith(".lock"))


def write_old_token(token_path: Path) -> os.stat_result:
    """Write a placeholder token with mode 0640 and return its stat, to compare after a failure."""
    token_path.write_text(OLD_TOKEN)
    token_path.chmod(0o640)
    return token_path.stat()


def assert_file_untouched(path: Path, before: os.stat_result, content: str) -> None:
    after = path.stat()
    assert path.read_text() == content, f"{path} changed"
    assert after.st_ino == before.st_ino, f"{path} was replaced"
    assert after.st_mtime_ns == before.st_mtime_ns, f"{path} was rewritten"


def read_nonce(nonce_path: Path) -> str:
    return nonce_path.read_text().strip()


def assert_nonce_complete(nonce_path: Path) -> str:
    """Check NONCE_PATH contains a whole new nonce with mode 0600; return it."""
    nonce = read_nonce(nonce_path)
    assert NONCE_PATTERN.fullmatch(nonce), f"nonce file holds {len(nonce)} characters, not a whole nonce"
    assert file_mode(nonce_path) == 0o600
    return nonce


def read_token(token_path: Path) -> str:
    token = token_path.read_text()
    assert token, f"{token_path} is empty"
    assert token == token.strip(), f"{token_path} has surrounding whitespace"
    return token


def wait_for(condition, timeout: float, what: str, interval: float = 0.01) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {timeout:.0f} s waiting for {what}"
        time.sleep(interval)


# Processes


# x86_64 system call numbers, read from /proc/PID/syscall.
SYSCALL_NANOSLEEP = 35
SYSCALL_CLOCK_NANOSLEEP = 230


def current_syscall(pid: int) -> int | None:
    """Return the number of the system call PID is blocked in, or None if it is running or gone."""
    try:
        text = Path(f"/proc/{pid}/syscall").read_text().split()
    except OSError:
        return None
    if not text or text[0] == "running":
        return None
    try:
        return int(text[0])
    except ValueError:
        return None


def wait_until_sleeping(pid: int, timeout: float) -> None:
    """Wait until PID is in nanosleep or clock_nanosleep: the binary's wait between retries."""
    wait_for(lambda: current_syscall(pid) in (SYSCALL_NANOSLEEP, SYSCALL_CLOCK_NANOSLEEP),
             timeout, f"process {pid} to sleep between retries", interval=0.002)


def run_with_streams(stork: StorkRunner, args: list[str], stdout, stderr,
                     env: dict[str, str] | None = None, timeout: float = 90) -> int:
    """Run the binary with the given stdout and stderr (files or descriptors); return its exit code.

    The runner's IMDS endpoint check still applies.
    """
    full_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **(env or {})}
    stork.check_imds_endpoint(args, full_env)
    process = subprocess.Popen([str(stork.binary), *args], env=full_env, stdin=subprocess.DEVNULL,
                               stdout=stdout, stderr=stderr)
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise

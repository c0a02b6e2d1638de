"""Durability tests: the nonce and token files when the binary is killed,
runs race, the disk is full or read-only, or the output pipes are closed.

The invariants, checked after every fault:

* the nonce file is absent or contains a whole nonce, and once written it
  never changes;
* OpenBao never holds a nonce that is not on disk;
* the token file is the old one, untouched, or a whole new token;
* temporary files are never wider than the final mode, and the next run
  removes those a killed run left behind.

Exact kill points come from strace, which sends SIGKILL when the binary
enters a chosen system call (``-e inject=SYSCALL:signal=KILL:when=N``).
"""

from __future__ import annotations

import os
import platform
import random
import shutil
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.fault_support import (  # noqa: F401 (vault_front and timed are fixtures)
    NONCE_PATTERN,
    OLD_TOKEN,
    assert_file_untouched,
    assert_nonce_complete,
    file_mode,
    read_nonce,
    read_token,
    record_measurement,
    run_with_streams,
    state_files,
    temp_files,
    timed,
    vault_front,
    wait_until_sleeping,
    write_old_token,
)
from tests.runner import Result, StorkRunner
from tests.stack.fault_server import Close, Hang, Hold, Proxy
from tests.stack.faults import fill_filesystem, read_only, tmpfs
from tests.stack.stack import PROFILE_ROLE, READ_POLICY

LOGIN_PATH = "/v1/auth/aws/login"
PATIENT_RETRY = ("--max-wait", "20s", "--min-backoff", "100ms", "--max-backoff", "300ms")
# Long delays between retries, so a signal lands in a sleep.
SLEEPY_RETRY = ("--max-wait", "30s", "--min-backoff", "2s", "--max-backoff", "4s")
# How soon a run must end after SIGTERM or SIGINT; measured values are a few ms.
PROMPT_EXIT_SECONDS = 1.0

x86_64_only = pytest.mark.skipif(platform.machine() != "x86_64",
                                 reason="system call names and numbers are those of x86_64")


def assert_token_of_role(stack, token: str) -> None:
    data = stack.lookup_self(token)
    assert data["meta"]["role"] == PROFILE_ROLE
    assert READ_POLICY in data["policies"]


def assert_temp_modes(directory: Path) -> None:
    """Check every leftover temporary file has its target's final mode: 0600 nonce, 0640 token."""
    for name in temp_files(directory):
        expected = 0o600 if name.startswith(".nonce.") else 0o640
        assert file_mode(directory / name) == expected, f"{name} has mode {file_mode(directory / name):o}"


# Killed while the login is held in flight


def test_kill_during_held_login_vault_completes(stack, timed, imds, instance, vault_front, tmp_path):
    """Killed while its login is in flight; OpenBao then completes it, and the next run matches the nonce."""
    token_path, nonce_path = tmp_path / "token", tmp_path / "nonce"
    token_before = write_old_token(token_path)
    held = Hold(Proxy(stack.vault_addr))
    vault_front.script([held])

    running = timed.start(timed.stork.login_args(imds, token_path, nonce_path, "--role", PROFILE_ROLE,
                                                 *PATIENT_RETRY, server=vault_front.url), label="killed")
    held.wait_arrived(timeout=30)
    # The nonce is on disk, whole, before the login reaches OpenBao.
    nonce = assert_nonce_complete(nonce_path)
    running.kill()
    killed = running.wait()

    assert killed.code == -signal.SIGKILL, killed.describe()
    assert_file_untouched(token_path, token_before, OLD_TOKEN)
    assert read_nonce(nonce_path) == nonce
    assert temp_files(tmp_path) == []

    held.release()
    held.wait_finished(timeout=30)
    assert stack.access_list_nonce(instance.instance_id) == nonce

    again = timed.run(timed.stork.login_args(imds, token_path, nonce_path, "--role", PROFILE_ROLE,
                                             server=stack.vault_addr), label="next run")

    assert again.code == 0, again.describe()
    assert_token_of_role(stack, read_token(token_path))
    assert read_nonce(nonce_path) == nonce


def test_kill_during_held_login_never_delivered(stack, timed, imds, instance, vault_front, tmp_path):
    """Killed after storing the nonce, before OpenBao saw any login: the next run registers that nonce."""
    token_path, nonce_path = tmp_path / "token", tmp_path / "nonce"
    held = Hold(Close())
    vault_front.script([held])

    running = timed.start(timed.stork.login_args(imds, token_path, nonce_path, "--role", PROFILE_ROLE,
                                                 *PATIENT_RETRY, server=vault_front.url), label="killed")
    held.wait_arrived(timeout=30)
    nonce = assert_nonce_complete(nonce_path)
    running.kill()
    killed = running.wait()
    held.release()

    assert killed.code == -signal.SIGKILL, killed.describe()
    assert not token_path.exists()
    assert stack.access_list_nonce(instance.instance_id) is None

    again = timed.run(timed.stork.login_args(imds, token_path, nonce_path, "--role", PROFILE_ROLE,
                                             server=stack.vault_addr), label="next run")

    assert again.code == 0, again.describe()
    assert read_nonce(nonce_path) == nonce
    assert stack.access_list_nonce(instance.instance_id) == nonce
    assert_token_of_role(stack, read_token(token_path))


@x86_64_only
def test_kill_during_retry_wait(stack, timed, imds, instance, vault_front, tmp_path):
    token_path, nonce_path = tmp_path / "token", tmp_path / "nonce"
    token_before = write_old_token(token_path)
    vault_front.script([Close()])

    running = timed.start(timed.stork.login_args(imds, token_path, nonce_path, "--role", PROFILE_ROLE,
                                                 *SLEEPY_RETRY, server=vault_front.url), label="killed")
    vault_front.wait_for_requests(1, timeout=30, path=LOGIN_PATH)
    wait_until_sleeping(running.pid, timeout=10)
    running.kill()
    killed = running.wait()

    assert killed.code == -signal.SIGKILL, killed.describe()
    nonce = assert_nonce_complete(nonce_path)
    assert_file_untouched(token_path, token_before, OLD_TOKEN)
    assert temp_files(tmp_path) == []

    again = timed.run(timed.stork.login_args(imds, token_path, nonce_path, "--role", PROFILE_ROLE,
                                             server=stack.vault_addr), label="next run")

    assert again.code == 0, again.describe()
    assert stack.access_list_nonce(instance.instance_id) == nonce


# Killed at exact system calls


@dataclass(frozen=True)
class KillPoint:
    """Where strace kills the binary, and the files that must be left."""

    name: str
    syscall: str
    # Which call of SYSCALL, counting from 1.
    when: int
    # True: an earlier login created the nonce and a token; False: a first run.
    existing_state: bool
    # "absent", "new" (created by the killed run) or "kept" (from the earlier login).
    nonce: str
    # "old" (untouched) or "new" (a whole token from the killed run).
    token: str
    # The temporary file left behind: None, or (prefix, "empty" or "whole").
    temp: tuple[str, str] | None


# In a first run the binary writes the nonce temporary file (write, fsync),
# links it into place (linkat), removes the temporary name (unlink) and
# flushes the directory (fsync). Later it writes the token temporary file
# (write, fsync), renames it into place (rename) and flushes the directory
# (fsync). With a nonce already stored, only the token steps happen.
KILL_POINTS = [
    KillPoint("nonce-before-write", "write", 1, False, "absent", "old", (".nonce.", "empty")),
    KillPoint("nonce-before-fsync", "fsync", 1, False, "absent", "old", (".nonce.", "whole")),
    KillPoint("nonce-before-link", "linkat", 1, False, "absent", "old", (".nonce.", "whole")),
    KillPoint("nonce-linked-before-login", "unlink", 1, False, "new", "old", (".nonce.", "whole")),
    KillPoint("token-before-write", "write", 1, True, "kept", "old", (".token.", "empty")),
    KillPoint("token-before-fsync", "fsync", 1, True, "kept", "old", (".token.", "whole")),
    KillPoint("token-before-rename", "rename", 1, True, "kept", "old", (".token.", "whole")),
    KillPoint("token-renamed-before-dir-fsync", "fsync", 2, True, "kept", "new", None),
]


def strace_runner(stork: StorkRunner, directory: Path, point: KillPoint) -> StorkRunner:
    """Return a runner whose binary is a script that runs the real one under strace, killed at POINT."""
    strace = shutil.which("strace")
    assert strace, "strace is not installed; scripts/test-deps.sh installs it"
    wrapper = directory / f"stork-killed-at-{point.name}"
    wrapper.write_text(
        "#!/bin/sh\n"
        f"exec {strace} -f -qq -o /dev/null -e trace={point.syscall} "
        f"-e inject={point.syscall}:signal=KILL:when={point.when} {stork.binary} \"$@\"\n"
    )
    wrapper.chmod(0o755)
    runner = StorkRunner(wrapper, stork.stack)
    runner.secrets = stork.secrets
    runner.secret_files = stork.secret_files
    return runner


@x86_64_only
@pytest.mark.parametrize("point", KILL_POINTS, ids=lambda point: point.name)
def test_kill_at_system_call(request, stack, stork, imds, instance, tmp_path, point):
    state = tmp_path / "state"
    state.mkdir()
    token_path, nonce_path = state / "token", state / "nonce"
    args = stork.login_args(imds, token_path, nonce_path, "--role", PROFILE_ROLE, server=stack.vault_addr)
    if point.existing_state:
        first = stork.run(args)
        assert first.code == 0, first.describe()
        old_token = token_path.read_text()
    else:
        old_token = OLD_TOKEN
        token_path.write_text(old_token)
        token_path.chmod(0o640)
    token_before = token_path.stat()
    nonce_before = nonce_path.read_text() if nonce_path.exists() else None

    killed = strace_runner(stork, tmp_path, point).run(args)

    assert killed.code == -signal.SIGKILL, killed.describe()
    if point.nonce == "absent":
        assert not nonce_path.exists()
    elif point.nonce == "new":
        assert_nonce_complete(nonce_path)
    else:
        assert nonce_path.read_text() == nonce_before
    if point.token == "old":
        assert_file_untouched(token_path, token_before, old_token)
    else:
        new_token = read_token(token_path)
        assert new_token != old_token
        assert file_mode(token_path) == 0o640
        assert_token_of_role(stack, new_token)
    left = temp_files(state)
    assert_temp_modes(state)
    if point.temp is None:
        assert left == []
    else:
        prefix, content = point.temp
        assert len(left) == 1, left
        assert left[0].startswith(prefix), left
        text = (state / left[0]).read_text()
        if content == "empty":
            assert text == ""
        elif prefix == ".nonce.":
            assert NONCE_PATTERN.fullmatch(text)
        else:
            assert_token_of_role(stack, text)
    # OpenBao never records a nonce that is not on disk.
    recorded = stack.access_list_nonce(instance.instance_id)
    assert recorded is None or recorded == read_nonce(nonce_path)

    again = stork.run(args)

    assert again.code == 0, again.describe()
    assert temp_files(state) == []
    nonce = assert_nonce_complete(nonce_path)
    if nonce_before is not None:
        assert nonce_path.read_text() == nonce_before
    assert stack.access_list_nonce(instance.instance_id) == nonce
    assert_token_of_role(stack, read_token(token_path))
    assert state_files(state) == ["nonce", "token"]


def measure_run_seconds(stack, stork, directory: Path) -> float:
    """Return the longest of three complete runs for a separate instance: the first creates its nonce."""
    reference = stack.new_instance()
    stork.add_instance_secrets(reference)
    server = stack.start_imds(reference)
    try:
        args = stork.login_args(server, directory / "token", directory / "nonce", "--role", PROFILE_ROLE)
        durations = []
        for _ in range(3):
            started = time.monotonic()
            result = stork.run(args)
            durations.append(time.monotonic() - started)
            assert result.code == 0, result.describe()
    finally:
        stack.stop_imds(server)
    return max(durations)


def test_kill_at_random_times(stack, stork, imds, instance, tmp_path):
    """SIGKILL at random moments of 30 runs sharing one nonce file; every state left must be safe."""
    reference_dir = tmp_path / "reference"
    reference_dir.mkdir()
    run_seconds = measure_run_seconds(stack, stork, reference_dir)
    rng = random.Random(20261204)
    state = tmp_path / "state"
    state.mkdir()
    token_path, nonce_path = state / "token", state / "nonce"
    token_path.write_text(OLD_TOKEN)
    token_path.chmod(0o640)
    args = stork.login_args(imds, token_path, nonce_path, "--role", PROFILE_ROLE, server=stack.vault_addr)
    first_nonce = None
    outcomes = {"killed": 0, "finished": 0, "temp file left": 0, "killed before the nonce existed": 0}

    for _ in range(30):
        running = stork.start(args)
        time.sleep(rng.uniform(0, run_seconds))
        running.process.kill()
        result = running.wait()
        outcomes["killed" if result.code == -signal.SIGKILL else "finished"] += 1
        assert result.code in (0, -signal.SIGKILL), result.describe()

        if nonce_path.exists():
            nonce = assert_nonce_complete(nonce_path)
            first_nonce = first_nonce or nonce
            assert nonce == first_nonce, "the nonce file changed"
        else:
            assert first_nonce is None, "the nonce file disappeared"
            outcomes["killed before the nonce existed"] += 1
        recorded = stack.access_list_nonce(instance.instance_id)
        assert recorded is None or recorded == first_nonce, "OpenBao recorded a nonce that is not on disk"
        token = token_path.read_text()
        assert file_mode(token_path) == 0o640
        if token != OLD_TOKEN:
            assert_token_of_role(stack, token)
        assert_temp_modes(state)
        outcomes["temp file left"] += bool(temp_files(state))

    final = stork.run(args)

    assert final.code == 0, final.describe()
    assert temp_files(state) == []
    assert stack.access_list_nonce(instance.instance_id) == assert_nonce_complete(nonce_path)
    record_measurement("test_kill_at_random_times", "outcomes of 30 runs", run_seconds=round(run_seconds, 3),
                       **outcomes)


# Concurrent runs


def test_concurrent_first_runs_second_waits(stack, timed, imds, instance, vault_front, tmp_path):
    nonce_path = tmp_path / "nonce"
    held = Hold(Proxy(stack.vault_addr))
    vault_front.script([held])

    def args(token_name: str, *retry: str) -> list[str]:
        return timed.stork.login_args(imds, tmp_path / token_name, nonce_path, "--role", PROFILE_ROLE, "--verbose",
                                      *retry, server=vault_front.url)

    first = timed.start(args("token-1", *PATIENT_RETRY), label="first")
    held.wait_arrived(timeout=30)
    imds_requests = imds.request_count()
    second = timed.start(args("token-2", *PATIENT_RETRY), label="second, waits")
    impatient = timed.run(args("token-3", "--max-wait", "1s"), label="third, --max-wait 1s")

    assert impatient.code == 81, impatient.describe()
    assert second.is_running()
    # Runs that wait for the lock have not asked IMDS or OpenBao anything.
    assert imds.request_count() == imds_requests
    assert vault_front.request_count(LOGIN_PATH) == 1

    held.release()
    first_run = first.wait()
    second_run = second.wait()

    assert first_run.code == 0, first_run.describe()
    assert second_run.code == 0, second_run.describe()
    assert "lock: waiting for another run to release" in second_run.result.stderr
    logins = vault_front.requests(LOGIN_PATH)
    assert len(logins) == 2
    # Same body, so the same nonce: the second run reused the first one's.
    assert logins[0].body_sha256 == logins[1].body_sha256
    nonce = assert_nonce_complete(nonce_path)
    assert stack.access_list_nonce(instance.instance_id) == nonce
    assert_token_of_role(stack, read_token(tmp_path / "token-1"))
    assert_token_of_role(stack, read_token(tmp_path / "token-2"))
    assert not (tmp_path / "token-3").exists()

    again = timed.run(timed.stork.login_args(imds, tmp_path / "token-1", nonce_path, "--role", PROFILE_ROLE,
                                             server=stack.vault_addr), label="re-login")

    assert again.code == 0, again.describe()
    assert read_nonce(nonce_path) == nonce


# Full and read-only filesystems


@pytest.mark.parametrize("exhausted", ["blocks", "inodes"])
def test_full_filesystem_first_run(stack, timed, imds, instance, tmp_path, exhausted):
    state = tmp_path / "state"
    # A tmpfs with 2 inodes has room for its root directory and the lock file.
    with tmpfs(state, "64k", inodes=2 if exhausted == "inodes" else None):
        token_path, nonce_path = state / "token", state / "nonce"
        args = timed.stork.login_args(imds, token_path, nonce_path, "--role", PROFILE_ROLE, server=stack.vault_addr)
        filler = fill_filesystem(state) if exhausted == "blocks" else None
        logins_before = stack.login_requests()

        run = timed.run(args, label=f"{exhausted} exhausted")

        assert run.code == 74, run.describe()
        assert "No space left on device" in run.result.stderr
        assert str(nonce_path) in run.result.stderr
        assert not nonce_path.exists()
        assert not token_path.exists()
        assert temp_files(state) == []
        assert stack.login_requests() == logins_before

        if filler is not None:
            filler.unlink()
            again = timed.run(args, label="space again")

            assert again.code == 0, again.describe()
            assert stack.access_list_nonce(instance.instance_id) == assert_nonce_complete(nonce_path)


def test_full_filesystem_keeps_old_files(stack, timed, imds, instance, tmp_path):
    state = tmp_path / "state"
    with tmpfs(state, "64k"):
        token_path, nonce_path = state / "token", state / "nonce"
        args = timed.stork.login_args(imds, token_path, nonce_path, "--role", PROFILE_ROLE, server=stack.vault_addr)
        first = timed.run(args, label="first")
        assert first.code == 0, first.describe()
        token, nonce = token_path.read_text(), nonce_path.read_text()
        token_before, nonce_before = token_path.stat(), nonce_path.stat()
        filler = fill_filesystem(state)

        run = timed.run(args, label="disk full")

        assert run.code == 74, run.describe()
        assert "No space left on device" in run.result.stderr
        assert str(token_path) in run.result.stderr
        assert_file_untouched(token_path, token_before, token)
        assert_file_untouched(nonce_path, nonce_before, nonce)
        assert temp_files(state) == []

        filler.unlink()
        again = timed.run(args, label="space again")

        assert again.code == 0, again.describe()
        assert read_token(token_path) != token
        assert nonce_path.read_text() == nonce


def test_read_only_token_directory(stack, timed, imds, instance, tmp_path):
    token_dir, nonce_dir = tmp_path / "run", tmp_path / "lib"
    token_dir.mkdir()
    nonce_dir.mkdir()
    token_path, nonce_path = token_dir / "token", nonce_dir / "nonce"
    args = timed.stork.login_args(imds, token_path, nonce_path, "--role", PROFILE_ROLE, server=stack.vault_addr)
    first = timed.run(args, label="first")
    assert first.code == 0, first.describe()
    token, nonce = token_path.read_text(), nonce_path.read_text()
    token_before, nonce_before = token_path.stat(), nonce_path.stat()
    logins_before = stack.login_requests()

    with read_only(token_dir):
        run = timed.run(args, label="token directory read-only")

    assert run.code == 74, run.describe()
    assert "Read-only file system" in run.result.stderr
    # The login itself happened: only the token could not be stored.
    assert stack.login_requests() == logins_before + 1
    assert_file_untouched(token_path, token_before, token)
    assert_file_untouched(nonce_path, nonce_before, nonce)
    assert temp_files(token_dir) == []


def test_read_only_state_directory(stack, timed, imds, instance, tmp_path):
    """With token and nonce in a read-only directory, the token cannot be written: 74, old files intact."""
    state = tmp_path / "state"
    state.mkdir()
    token_path, nonce_path = state / "token", state / "nonce"
    args = timed.stork.login_args(imds, token_path, nonce_path, "--role", PROFILE_ROLE, server=stack.vault_addr)
    first = timed.run(args, label="first")
    assert first.code == 0, first.describe()
    token, nonce = token_path.read_text(), nonce_path.read_text()
    token_before, nonce_before = token_path.stat(), nonce_path.stat()

    with read_only(state):
        run = timed.run(args, label="state directory read-only")

    assert run.code == 74, run.describe()
    assert "cannot write token file" in run.result.stderr
    assert "Read-only file system" in run.result.stderr
    assert_file_untouched(token_path, token_before, token)
    assert_file_untouched(nonce_path, nonce_before, nonce)


def test_read_only_nonce_directory_with_nonce(stack, timed, imds, instance, tmp_path):
    """A read-only nonce directory that already holds the nonce needs no lock: the login works."""
    state, tokens = tmp_path / "state", tmp_path / "tokens"
    state.mkdir()
    tokens.mkdir()
    token_path, nonce_path = tokens / "token", state / "nonce"
    args = timed.stork.login_args(imds, token_path, nonce_path, "--role", PROFILE_ROLE, server=stack.vault_addr)
    first = timed.run(args, label="first")
    assert first.code == 0, first.describe()
    nonce, nonce_before = nonce_path.read_text(), nonce_path.stat()

    with read_only(state):
        run = timed.run(args, label="nonce directory read-only")

    assert run.code == 0, run.describe()
    assert_file_untouched(nonce_path, nonce_before, nonce)
    assert token_path.read_text() != ""


# Signals


@x86_64_only
@pytest.mark.parametrize("signal_number", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_during_retry_wait(stack, timed, imds, instance, vault_front, tmp_path, signal_number):
    token_path, nonce_path = tmp_path / "token", tmp_path / "nonce"
    token_before = write_old_token(token_path)
    vault_front.script([Close()])
    running = timed.start(timed.stork.login_args(imds, token_path, nonce_path, "--role", PROFILE_ROLE,
                                                 *SLEEPY_RETRY, server=vault_front.url))
    vault_front.wait_for_requests(1, timeout=30, path=LOGIN_PATH)
    wait_until_sleeping(running.pid, timeout=10)

    sent = running.signal(signal_number)
    run = running.wait()
    latency = time.monotonic() - sent

    assert run.code == -signal_number, run.describe()
    record_measurement("test_signal_during_retry_wait", signal_number.name, exit_latency_seconds=round(latency, 4))
    assert latency < PROMPT_EXIT_SECONDS, f"{latency:.3f} s from {signal_number.name} to exit"
    assert_nonce_complete(nonce_path)
    assert_file_untouched(token_path, token_before, OLD_TOKEN)
    assert temp_files(tmp_path) == []


def test_sigterm_during_hung_request(stack, timed, imds, instance, vault_front, tmp_path):
    token_path, nonce_path = tmp_path / "token", tmp_path / "nonce"
    token_before = write_old_token(token_path)
    vault_front.script([Hang()])
    running = timed.start(timed.stork.login_args(imds, token_path, nonce_path, "--role", PROFILE_ROLE,
                                                 "--timeout", "60s", *PATIENT_RETRY, server=vault_front.url))
    vault_front.wait_for_requests(1, timeout=30, path=LOGIN_PATH)
    time.sleep(0.2)
    assert running.is_running()

    sent = running.signal(signal.SIGTERM)
    run = running.wait()
    latency = time.monotonic() - sent

    assert run.code == -signal.SIGTERM, run.describe()
    record_measurement("test_sigterm_during_hung_request", "SIGTERM", exit_latency_seconds=round(latency, 4))
    assert latency < PROMPT_EXIT_SECONDS, f"{latency:.3f} s from SIGTERM to exit"
    assert_nonce_complete(nonce_path)
    assert_file_untouched(token_path, token_before, OLD_TOKEN)
    assert temp_files(tmp_path) == []


# Closed output pipes


def closed_pipe() -> int:
    """Return the write end of a pipe whose read end is already closed."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    return write_end


def test_token_to_closed_stdout(stack, stork, imds, instance, tmp_path):
    nonce_path = tmp_path / "nonce"
    stork.secret_files.append(nonce_path)
    args = ["login", "--server", stack.vault_addr, "--token", "-", "--nonce", str(nonce_path),
            "--imds-endpoint", imds.url, "--role", PROFILE_ROLE]
    stdout = closed_pipe()
    stderr_path = tmp_path / "stderr"
    try:
        with open(stderr_path, "w") as stderr:
            code = run_with_streams(stork, args, stdout=stdout, stderr=stderr)
    finally:
        os.close(stdout)
    stderr_text = stderr_path.read_text()
    stork.check_output(Result(args, code, "", stderr_text))

    assert code == 74, stderr_text
    assert "cannot write the token to stdout" in stderr_text
    assert "Broken pipe" in stderr_text
    # The login itself succeeded and used the nonce on disk.
    assert stack.access_list_nonce(instance.instance_id) == assert_nonce_complete(nonce_path)


@pytest.mark.parametrize(("role", "expected_code"), [(PROFILE_ROLE, 0), ("no-such-role", 77)])
def test_closed_stderr(stack, stork, imds, instance, tmp_path, role, expected_code):
    token_path, nonce_path = tmp_path / "token", tmp_path / "nonce"
    args = stork.login_args(imds, token_path, nonce_path, "--role", role, "--verbose")
    stderr = closed_pipe()
    try:
        with open(os.devnull, "w") as stdout:
            code = run_with_streams(stork, args, stdout=stdout, stderr=stderr)
    finally:
        os.close(stderr)

    # 101 would be a panic; the exit code is the one the outcome calls for.
    assert code == expected_code
    if expected_code == 0:
        assert_token_of_role(stack, read_token(token_path))
    else:
        assert not token_path.exists()

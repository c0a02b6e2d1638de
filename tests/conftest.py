"""Fixtures for the end-to-end tests: the local stack and a runner for the binary.

Run the tests with scripts/e2e.sh, which installs the tools and runs pytest
in a network namespace that has only loopback.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.runner import StorkRunner
from tests.stack import InstanceMetadata, Stack, StackError

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_BINARY = REPO_ROOT / "target" / "debug" / "vault-stork"

# The stack of the running session and its log directory, so that failure
# reports and the closing summary can name the logs.
session_stack: Stack | None = None
session_run_dir: Path | None = None


@pytest.fixture(scope="session")
def stack():
    """Start the whole stack once per session; a failed start fails every test that uses it."""
    global session_stack, session_run_dir
    started = Stack()
    session_run_dir = started.run_dir
    try:
        started.start()
    except StackError as error:
        pytest.fail(str(error), pytrace=False)
    session_stack = started
    yield started
    started.stop()
    session_stack = None


@pytest.fixture
def instance(stack: Stack) -> InstanceMetadata:
    """A new running instance with the instance profile, unknown to OpenBao so far."""
    return stack.new_instance()


@pytest.fixture
def imds(stack: Stack, instance: InstanceMetadata):
    """An IMDS serving INSTANCE, stopped after the test."""
    server = stack.start_imds(instance)
    yield server
    stack.stop_imds(server)


@pytest.fixture
def iam_instance(stack: Stack) -> InstanceMetadata:
    """A new running instance whose IMDS serves new credentials of the instance role."""
    return stack.new_iam_instance()


@pytest.fixture
def iam_imds(stack: Stack, iam_instance: InstanceMetadata):
    """An IMDS serving IAM_INSTANCE and its role credentials, stopped after the test."""
    server = stack.start_imds(iam_instance)
    yield server
    stack.stop_imds(server)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed and session_stack is not None:
        report.sections.append(("stack logs", session_stack.describe_logs()))


def pytest_terminal_summary(terminalreporter):
    if session_run_dir is not None:
        terminalreporter.write_line(f"stack logs: {session_run_dir}")


@pytest.fixture(scope="session")
def stork_binary() -> Path:
    """The binary under test: $VAULT_STORK_BIN, or target/debug/vault-stork.

    A relative path is resolved now, because some tests run the binary in
    another working directory.
    """
    binary = Path(os.environ.get("VAULT_STORK_BIN", DEFAULT_BINARY)).resolve()
    if not binary.is_file() or not os.access(binary, os.X_OK):
        pytest.fail(
            f"vault-stork binary not found at {binary}; build it with `cargo build` "
            f"or set VAULT_STORK_BIN",
            pytrace=False,
        )
    return binary


@pytest.fixture
def stork(stork_binary: Path, stack: Stack, instance: InstanceMetadata) -> StorkRunner:
    """A runner for the binary that treats INSTANCE's signatures as secrets."""
    runner = StorkRunner(stork_binary, stack)
    runner.add_instance_secrets(instance)
    return runner


@pytest.fixture
def iam_stork(stork_binary: Path, stack: Stack, iam_instance: InstanceMetadata) -> StorkRunner:
    """A runner for the binary that treats IAM_INSTANCE's role credentials as secrets."""
    runner = StorkRunner(stork_binary, stack)
    runner.add_credential_secrets(iam_instance.credentials)
    return runner

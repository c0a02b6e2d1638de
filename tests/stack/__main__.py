"""Run a command against a freshly started test stack.

Usage: python -m tests.stack run [--run-dir DIR] -- CMD [ARG...]

Starts the stack, runs CMD with the stack's addresses in its environment
(VAULT_ADDR, AWS_EC2_METADATA_SERVICE_ENDPOINT and STORK_TEST_*), stops the
stack and exits with CMD's exit code. Run it under scripts/in-netns.sh.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from .process import StackError
from .stack import Stack


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.stack", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="start the stack, run CMD, stop the stack")
    run.add_argument("--run-dir", type=Path, help="directory for logs and keys (default: a new temporary directory)")
    run.add_argument("cmd", nargs=argparse.REMAINDER, help="command to run, after --")
    arguments = parser.parse_args(argv)
    if arguments.cmd[:1] == ["--"]:
        arguments.cmd = arguments.cmd[1:]
    if not arguments.cmd:
        parser.error("missing command to run after --")
    return arguments


def main(argv: list[str]) -> int:
    arguments = parse_arguments(argv)
    stack = Stack(arguments.run_dir)
    try:
        stack.start()
    except StackError as error:
        print(f"tests.stack: {error}", file=sys.stderr)
        return 1

    try:
        env = dict(os.environ)
        # The binary honours this variable and would refuse to use IMDS.
        env.pop("AWS_EC2_METADATA_DISABLED", None)
        env.update(stack.environment())
        print(f"tests.stack: stack ready, logs in {stack.run_dir}", file=sys.stderr)
        return subprocess.run(arguments.cmd, env=env, check=False).returncode
    except FileNotFoundError as error:
        print(f"tests.stack: cannot run {arguments.cmd[0]}: {error}", file=sys.stderr)
        return 127
    finally:
        stack.stop()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

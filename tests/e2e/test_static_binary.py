"""Checks of the static musl binary: ELF form, size budget, and a full login
inside an empty chroot.

`make test-e2e` sets VAULT_STORK_STATIC_BIN to the binary `make static`
builds; without it these tests fail rather than pass unnoticed.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from tests.runner import Result, file_mode

# The size budget of the static binary, in bytes. The build is
# deterministic for a given toolchain and lock file, so this is a fixed
# check, not a measurement.
SIZE_BUDGET_BYTES = 2_000_000

# ELF program header and dynamic section constants (System V ABI).
PT_DYNAMIC = 2
PT_INTERP = 3
DT_NULL = 0
DT_NEEDED = 1


@pytest.fixture(scope="module")
def static_binary() -> Path:
    value = os.environ.get("VAULT_STORK_STATIC_BIN")
    if not value:
        pytest.fail("VAULT_STORK_STATIC_BIN is not set; run `make static` and set it (make test-e2e does both)",
                    pytrace=False)
    path = Path(value).resolve()
    if not path.is_file():
        pytest.fail(f"static binary not found at {path}; run `make static`", pytrace=False)
    return path


def program_headers(data: bytes) -> list[tuple[int, int, int]]:
    """Return (type, file offset, file size) of each program header of a 64-bit little-endian ELF."""
    assert data[:4] == b"\x7fELF", "not an ELF file"
    assert data[4] == 2, "not a 64-bit ELF file"
    assert data[5] == 1, "not a little-endian ELF file"
    phoff, = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    headers = []
    for index in range(phnum):
        base = phoff + index * phentsize
        p_type, = struct.unpack_from("<I", data, base)
        p_offset, = struct.unpack_from("<Q", data, base + 0x08)
        p_filesz, = struct.unpack_from("<Q", data, base + 0x20)
        headers.append((p_type, p_offset, p_filesz))
    return headers


def dynamic_tags(data: bytes, offset: int, size: int) -> list[int]:
    """Return the tags of the dynamic section entries at OFFSET, up to DT_NULL."""
    tags = []
    for entry in range(offset, offset + size, 16):
        tag, = struct.unpack_from("<q", data, entry)
        if tag == DT_NULL:
            break
        tags.append(tag)
    return tags


def test_static_binary_has_no_interpreter(static_binary):
    headers = program_headers(static_binary.read_bytes())
    assert PT_INTERP not in [kind for kind, _, _ in headers]


def test_static_binary_needs_no_shared_library(static_binary):
    data = static_binary.read_bytes()
    needed = [
        tag
        for kind, offset, size in program_headers(data)
        if kind == PT_DYNAMIC
        for tag in dynamic_tags(data, offset, size)
        if tag == DT_NEEDED
    ]
    assert needed == []


def test_static_binary_within_size_budget(static_binary):
    size = static_binary.stat().st_size
    assert size <= SIZE_BUDGET_BYTES, f"static binary is {size} bytes, over the budget of {SIZE_BUDGET_BYTES}"


def make_empty_root(root: Path, static_binary: Path) -> None:
    """Lay out a root with only the binary, /etc/hosts and the state directories."""
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "hosts").write_text("127.0.0.1 localhost\n::1 localhost\n")
    shutil.copy2(static_binary, root / "vault-stork")
    (root / "state").mkdir(mode=0o700)


def run_in_chroot(root: Path, args: list[str]) -> Result:
    chroot = shutil.which("chroot")
    assert chroot, "chroot not found on PATH (Debian's coreutils has it)"
    argv = [chroot, str(root), "/vault-stork", *args]
    completed = subprocess.run(argv, env={"PATH": "/"}, capture_output=True, text=True, timeout=90, check=False)
    return Result(argv, completed.returncode, completed.stdout, completed.stderr)


def test_static_binary_ec2_login_in_empty_chroot(stack, stork, imds, tmp_path, static_binary):
    root = tmp_path / "root"
    make_empty_root(root, static_binary)
    assert sorted(p.name for p in root.iterdir()) == ["etc", "state", "vault-stork"]

    result = run_in_chroot(root, [
        "login",
        "--server", stack.vault_addr,
        "--imds-endpoint", imds.url,
        "--token", "/state/token",
        "--nonce", "/state/nonce",
        "--verbose",
    ])
    stork.secret_files.extend([root / "state" / "token", root / "state" / "nonce"])
    stork.check_output(result)

    assert result.code == 0, result.describe()
    token = (root / "state" / "token").read_text()
    assert file_mode(root / "state" / "token") == 0o640
    assert file_mode(root / "state" / "nonce") == 0o600
    assert len((root / "state" / "nonce").read_text()) == 88
    assert "IMDSv2" in result.stderr
    data = stack.lookup_self(token)
    assert "stork-read" in data["policies"], data


def test_static_binary_iam_login_in_empty_chroot(stack, iam_stork, iam_imds, iam_instance, tmp_path, static_binary):
    root = tmp_path / "root"
    make_empty_root(root, static_binary)
    assert sorted(p.name for p in root.iterdir()) == ["etc", "state", "vault-stork"]

    # Signed for moto's STS, as every iam run of the tests must be.
    result = run_in_chroot(root, [
        "login",
        "--method", "iam",
        "--server", stack.vault_addr,
        "--imds-endpoint", iam_imds.url,
        "--sts-endpoint", stack.moto_url,
        "--token", "/state/token",
        "--verbose",
    ])
    iam_stork.secret_files.append(root / "state" / "token")
    iam_stork.check_output(result)

    assert result.code == 0, result.describe()
    assert file_mode(root / "state" / "token") == 0o640
    assert "IMDSv2" in result.stderr
    assert f"credentials: instance role {iam_instance.credentials.role_name} from IMDS" in result.stderr
    data = stack.lookup_self((root / "state" / "token").read_text())
    assert data["path"] == "auth/aws/login"
    assert data["meta"]["auth_type"] == "iam"
    assert "stork-by-iam" in data["policies"], data
    assert sorted(p.name for p in (root / "state").iterdir() if not p.name.endswith(".lock")) == ["token"]

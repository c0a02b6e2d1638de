"""End-to-end tests of the default trust store, run in a chroot with the static binary.

Each chroot holds only the binary, /etc/hosts and the CA files a case puts
there, so the test controls every system bundle the binary could find.
"""

from __future__ import annotations

import os
import shutil
import struct
from pathlib import Path

import pytest

from tests.runner import StorkRunner
from tests.stack.stack import PROFILE_ROLE

from .support import ROOT_MOUNT, TLS_EXIT, assert_logged_in

REPO_ROOT = Path(__file__).resolve().parents[3]
DEFAULT_STATIC_BINARY = REPO_ROOT / "target" / "x86_64-unknown-linux-musl" / "release" / "vault-stork"

# The bundles the binary looks for when SSL_CERT_FILE and SSL_CERT_DIR are
# unset, in its order (SYSTEM_BUNDLES in src/tls.rs).
SYSTEM_BUNDLES = (
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
)

PT_INTERP = 3


def has_interpreter(binary: Path) -> bool:
    """Return True if the ELF64 file BINARY names a program interpreter, so it is dynamically linked."""
    data = binary.read_bytes()
    if data[:4] != b"\x7fELF" or data[4] != 2:
        raise ValueError(f"{binary} is not a 64-bit ELF file")
    program_header_offset = struct.unpack_from("<Q", data, 0x20)[0]
    entry_size, entry_count = struct.unpack_from("<HH", data, 0x36)
    for index in range(entry_count):
        (segment_type,) = struct.unpack_from("<I", data, program_header_offset + index * entry_size)
        if segment_type == PT_INTERP:
            return True
    return False


@pytest.fixture(scope="session")
def static_binary() -> Path:
    """The static binary: $VAULT_STORK_STATIC_BIN, or the musl release build of `make static`."""
    binary = Path(os.environ.get("VAULT_STORK_STATIC_BIN", DEFAULT_STATIC_BINARY))
    if not binary.is_file():
        pytest.fail(f"static binary not found at {binary}; build it with `make static` "
                    f"or set VAULT_STORK_STATIC_BIN", pytrace=False)
    if has_interpreter(binary):
        pytest.fail(f"{binary} is dynamically linked, so it cannot run in an empty chroot; "
                    f"build the static binary with `make static`", pytrace=False)
    return binary


class Chroot:
    """A directory holding only the static binary, /etc/hosts and what a test installs."""

    def __init__(self, root: Path, binary: Path):
        self.root = root
        (root / "etc").mkdir(parents=True)
        (root / "etc" / "hosts").write_text("127.0.0.1 localhost\n::1 localhost\n")
        (root / "run").mkdir()
        shutil.copy(binary, root / "vault-stork")

    def install(self, source: Path, inside: str) -> str:
        """Copy SOURCE to the absolute path INSIDE the chroot and return INSIDE."""
        target = self.root / inside.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, target)
        return inside

    def host_path(self, inside: str) -> Path:
        return self.root / inside.lstrip("/")


@pytest.fixture
def chroot(tmp_path: Path, static_binary: Path) -> Chroot:
    return Chroot(tmp_path / "root", static_binary)


@pytest.fixture
def chroot_stork(stack, instance) -> StorkRunner:
    """A runner whose ``binary`` is chroot(8): the arguments start with the chroot and /vault-stork."""
    chroot_command = shutil.which("chroot")
    assert chroot_command is not None, "chroot(8) not found; it is in Debian's coreutils"
    runner = StorkRunner(Path(chroot_command), stack)
    runner.add_instance_secrets(instance)
    return runner


def chroot_login(runner: StorkRunner, chroot: Chroot, imds, server: str, *extra: str,
                 env: dict[str, str] | None = None):
    """Run ``login`` with the static binary inside CHROOT; token and nonce go to /run."""
    runner.secret_files.extend([chroot.host_path("/run/token"), chroot.host_path("/run/nonce")])
    args = [
        str(chroot.root), "/vault-stork", "login",
        "--server", server,
        "--token", "/run/token",
        "--nonce", "/run/nonce",
        "--imds-endpoint", imds.url,
        "--mount", ROOT_MOUNT,
        "--role", PROFILE_ROLE,
        "--verbose",
        *extra,
    ]
    return runner.run(args, env=env)


def test_chroot_ca_cert_without_system_bundle(tls_bao, pki, chroot, chroot_stork, imds):
    ca = chroot.install(pki.rsa_ca.certificate, "/etc/vault/ca.pem")

    result = chroot_login(chroot_stork, chroot, imds, tls_bao.listener("rsa").url, "--ca-cert", ca)

    assert result.code == 0, result.describe()
    assert f"TLS trust: --ca-cert {ca}" in result.stderr
    assert_logged_in(tls_bao, chroot.host_path("/run"))


@pytest.mark.parametrize("bundle", SYSTEM_BUNDLES)
def test_chroot_system_bundle_trusted(tls_bao, pki, chroot, chroot_stork, imds, bundle):
    chroot.install(pki.rsa_ca.certificate, bundle)

    result = chroot_login(chroot_stork, chroot, imds, tls_bao.listener("rsa").url)

    assert result.code == 0, result.describe()
    assert f"TLS trust: system bundle {bundle} and the built-in webpki roots" in result.stderr
    assert_logged_in(tls_bao, chroot.host_path("/run"))


def test_chroot_first_system_bundle_wins(tls_bao, pki, chroot, chroot_stork, imds):
    # Like OpenSSL, the binary reads one system bundle: the first that exists.
    chroot.install(pki.wrong_ca.certificate, SYSTEM_BUNDLES[0])
    chroot.install(pki.rsa_ca.certificate, SYSTEM_BUNDLES[1])

    result = chroot_login(chroot_stork, chroot, imds, tls_bao.listener("rsa").url)

    assert result.code == TLS_EXIT, result.describe()
    assert f"trusted: system bundle {SYSTEM_BUNDLES[0]} and the built-in webpki roots" in result.stderr


def test_chroot_ssl_cert_file(tls_bao, pki, chroot, chroot_stork, imds):
    chroot.install(pki.wrong_ca.certificate, SYSTEM_BUNDLES[0])
    ca = chroot.install(pki.rsa_ca.certificate, "/opt/certs/ours.pem")

    result = chroot_login(chroot_stork, chroot, imds, tls_bao.listener("rsa").url, env={"SSL_CERT_FILE": ca})

    assert result.code == 0, result.describe()
    assert f"TLS trust: SSL_CERT_FILE {ca} and the built-in webpki roots" in result.stderr
    assert_logged_in(tls_bao, chroot.host_path("/run"))


def test_chroot_ssl_cert_dir(tls_bao, pki, chroot, chroot_stork, imds):
    chroot.install(pki.rsa_ca.certificate, "/opt/certs/rsa-ca.pem")
    chroot.install(pki.ecdsa_root.certificate, "/opt/certs/ecdsa-root.pem")

    result = chroot_login(chroot_stork, chroot, imds, tls_bao.listener("ecdsa-chain").url,
                          env={"SSL_CERT_DIR": "/opt/certs"})

    assert result.code == 0, result.describe()
    assert "TLS trust: SSL_CERT_DIR /opt/certs and the built-in webpki roots" in result.stderr


def test_chroot_ca_cert_replaces_system_bundle(tls_bao, pki, chroot, chroot_stork, imds):
    chroot.install(pki.rsa_ca.certificate, SYSTEM_BUNDLES[0])
    wrong = chroot.install(pki.wrong_ca.certificate, "/etc/vault/ca.pem")

    result = chroot_login(chroot_stork, chroot, imds, tls_bao.listener("rsa").url, "--ca-cert", wrong)

    assert result.code == TLS_EXIT, result.describe()
    assert f"(trusted: --ca-cert {wrong})" in result.stderr


def test_chroot_without_any_bundle(tls_bao, chroot, chroot_stork, imds):
    result = chroot_login(chroot_stork, chroot, imds, tls_bao.listener("rsa").url)

    assert result.code == TLS_EXIT, result.describe()
    assert "not signed by a trusted CA" in result.stderr
    assert "(trusted: the built-in webpki roots (no system CA bundle found))" in result.stderr
    assert not chroot.host_path("/run/token").exists()

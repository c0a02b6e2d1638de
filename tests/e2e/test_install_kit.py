"""Install the AMI baking kit into a real Debian root filesystem and log in from it.

The root is a debootstrap'd Debian 12 (minbase with systemd, man-db and
cloud-init), which ``scripts/kit-checks.sh deps`` builds into the cache as a
tarball. Each test unpacks a fresh copy and runs commands in it with chroot.
The chroot shares this process's network namespace, so the installed binary
reaches the loopback test stack at 127.0.0.1 as it would reach Vault from a
rescue shell on an instance.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import stat
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.stack.process import free_port
from tests.stack.stack import PROFILE_ROLE

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_STATIC_BINARY = REPO_ROOT / "target" / "x86_64-unknown-linux-musl" / "release" / "vault-stork"
COMMAND_TIMEOUT_SECONDS = 120
TOKEN_GROUP = "app"

# A new nonce is 88 characters of base64url, padding allowed.
NONCE_PATTERN = re.compile(r"(?=.{88}$)[A-Za-z0-9_-]+={0,2}")

# Owner, group and mode of each path after install.sh, inside the root.
INSTALLED_PATHS = {
    "/usr/local/bin/vault-stork": ("root", "root", 0o755),
    "/usr/local/share/man/man1/vault-stork.1": ("root", "root", 0o644),
    "/etc/systemd/system/vault-stork.service": ("root", "root", 0o644),
    "/etc/systemd/system/vault-stork.timer": ("root", "root", 0o644),
    "/etc/tmpfiles.d/vault-stork.conf": ("root", "root", 0o644),
    "/etc/stork": ("root", "root", 0o755),
    "/etc/stork/stork.env": ("root", "stork", 0o640),
    "/etc/stork/install.conf": ("root", "root", 0o644),
    "/var/lib/stork": ("stork", "stork", 0o700),
    "/run/stork": ("stork", TOKEN_GROUP, 0o2750),
}
ENABLED_LINKS = {
    "/etc/systemd/system/multi-user.target.wants/vault-stork.service": "/etc/systemd/system/vault-stork.service",
    "/etc/systemd/system/timers.target.wants/vault-stork.timer": "/etc/systemd/system/vault-stork.timer",
}


# --- The root filesystem ---------------------------------------------------


def cache_dir() -> Path:
    return Path(os.environ.get("VAULT_STORK_CACHE", Path.home() / ".cache" / "vault-stork"))


def read_exports(path: Path) -> dict[str, str]:
    """Return the NAME=value pairs of the ``export`` lines of a shell file."""
    values = {}
    for line in path.read_text().splitlines():
        words = shlex.split(line)
        if len(words) == 2 and words[0] == "export" and "=" in words[1]:
            name, value = words[1].split("=", 1)
            values[name] = value
    return values


@pytest.fixture(scope="session")
def rootfs_tarball() -> Path:
    """The cached Debian root filesystem; fails, naming the script that builds it, if missing."""
    kit_env = cache_dir() / "kit.env"
    if not kit_env.is_file():
        pytest.fail(f"{kit_env} not found; build the Debian root filesystem with "
                    f"`scripts/kit-checks.sh deps` (or `make kit-deps`) outside the network namespace",
                    pytrace=False)
    tarball = Path(read_exports(kit_env).get("STORK_KIT_ROOTFS", ""))
    if not tarball.is_file():
        pytest.fail(f"root filesystem {tarball} named in {kit_env} not found; rebuild it with "
                    f"`scripts/kit-checks.sh deps`", pytrace=False)
    return tarball


@pytest.fixture(scope="session")
def static_binary() -> Path:
    """The static binary to install: $VAULT_STORK_STATIC_BIN, or the one `make static` builds."""
    binary = Path(os.environ.get("VAULT_STORK_STATIC_BIN", DEFAULT_STATIC_BINARY))
    if not binary.is_file():
        pytest.fail(f"static binary {binary} not found; build it with `make static`", pytrace=False)
    return binary


@dataclass
class Completed:
    """The outcome of one command run in the root."""

    argv: list[str]
    code: int
    stdout: str
    stderr: str

    def describe(self) -> str:
        return (f"command: {shlex.join(self.argv)}\nexit code: {self.code}\n"
                f"stdout:\n{self.stdout}\nstderr:\n{self.stderr}")


class Root:
    """A Debian root filesystem unpacked in a temporary directory."""

    def __init__(self, path: Path):
        self.path = path

    def host_path(self, path: str) -> Path:
        """Return where PATH (absolute, inside the root) is on the host."""
        return self.path / path.lstrip("/")

    def run(self, *argv: str, env: dict[str, str] | None = None, stdin: str | None = None) -> Completed:
        """Run ARGV with chroot, as root, with only PATH and ENV in the environment."""
        full_env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
        full_env.update(env or {})
        command = ["chroot", str(self.path), *argv]
        completed = subprocess.run(command, env=full_env, input=stdin, capture_output=True, text=True,
                                   timeout=COMMAND_TIMEOUT_SECONDS, check=False)
        return Completed(command, completed.returncode, completed.stdout, completed.stderr)

    def check(self, *argv: str, env: dict[str, str] | None = None) -> Completed:
        """Run ARGV like ``run`` and fail the test unless it exits 0."""
        result = self.run(*argv, env=env)
        assert result.code == 0, result.describe()
        return result

    def run_as(self, user: str, *argv: str, env: dict[str, str]) -> Completed:
        """Run ARGV as USER (and its groups) with exactly ENV, as systemd's User= would."""
        assignments = [f"{name}={value}" for name, value in env.items()]
        return self.run("setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups",
                        "env", "-i", *assignments, *argv)

    def names(self, database: str) -> dict[int, str]:
        """Map IDs to names from the root's /etc/passwd or /etc/group."""
        entries = {}
        for line in self.host_path(f"/etc/{database}").read_text().splitlines():
            fields = line.split(":")
            entries[int(fields[2])] = fields[0]
        return entries

    def entry(self, database: str, name: str) -> list[str] | None:
        """Return the fields of NAME's line in /etc/passwd or /etc/group, or None."""
        for line in self.host_path(f"/etc/{database}").read_text().splitlines():
            fields = line.split(":")
            if fields[0] == name:
                return fields
        return None

    def owner(self, path: str) -> tuple[str, str, int]:
        """Return (user, group, mode) of PATH, with names from the root's own databases."""
        info = self.host_path(path).lstat()
        users = self.names("passwd")
        groups = self.names("group")
        return (users.get(info.st_uid, str(info.st_uid)), groups.get(info.st_gid, str(info.st_gid)),
                stat.S_IMODE(info.st_mode))

    def exists(self, path: str) -> bool:
        return os.path.lexists(self.host_path(path))

    def read(self, path: str) -> str:
        return self.host_path(path).read_text()


@pytest.fixture(scope="session")
def roots_dir(tmp_path_factory) -> Path:
    """Where the tests unpack roots: $STORK_KIT_ROOTS_DIR, else /dev/shm when it has room.

    A root is about 430 MB in 14,000 files. Unpacking one took 10 to 16
    seconds on the ext4 disk of a 2-core development VM, and half a second
    on its /dev/shm (tmpfs).
    """
    configured = os.environ.get("STORK_KIT_ROOTS_DIR")
    if configured:
        base = Path(configured)
    else:
        shm = Path("/dev/shm")
        room = shutil.disk_usage(shm).free if shm.is_dir() else 0
        base = shm if room > 4 * 2**30 else tmp_path_factory.getbasetemp()
    path = Path(tempfile.mkdtemp(prefix="vault-stork-roots-", dir=base))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def root(rootfs_tarball: Path, roots_dir: Path, request):
    """A fresh copy of the Debian root, deleted after the test."""
    path = Path(tempfile.mkdtemp(prefix=f"{request.node.name[:40]}-", dir=roots_dir))
    subprocess.run(["tar", "--numeric-owner", "-C", str(path), "-xf", str(rootfs_tarball)],
                   check=True, timeout=COMMAND_TIMEOUT_SECONDS)
    yield Root(path)
    shutil.rmtree(path, ignore_errors=True)


def copy_kit(root: Root, static_binary: Path) -> None:
    """Copy install.sh, dist/ (less build output) and the binary to /tmp/kit in the root."""
    kit = root.host_path("/tmp/kit")
    (kit / "scripts").mkdir(parents=True)
    shutil.copy2(REPO_ROOT / "scripts" / "install.sh", kit / "scripts" / "install.sh")
    shutil.copytree(REPO_ROOT / "dist", kit / "dist", ignore=shutil.ignore_patterns("out"))
    shutil.copy2(static_binary, kit / "vault-stork")


def install(root: Root, *options: str) -> Completed:
    """Run install.sh inside the root, as `chroot ROOT /bin/sh install.sh` does."""
    return root.run("/bin/sh", "/tmp/kit/scripts/install.sh", "--binary", "/tmp/kit/vault-stork",
                    "--kit", "/tmp/kit/dist", *options)


def snapshot(root: Root) -> dict[str, object]:
    """Return owners, modes and contents of everything install.sh manages, to compare runs."""
    state: dict[str, object] = {
        "passwd": root.entry("passwd", "stork"),
        "group": root.entry("group", "stork"),
        "token group": root.entry("group", TOKEN_GROUP),
    }
    for path in [*INSTALLED_PATHS, *ENABLED_LINKS]:
        host = root.host_path(path)
        contents: object = None
        if host.is_symlink():
            contents = os.readlink(host)
        elif host.is_file():
            contents = host.read_bytes()
        state[path] = (root.owner(path), contents)
    return state


def assert_installed_layout(root: Root, static_binary: Path) -> None:
    passwd = root.entry("passwd", "stork")
    assert passwd is not None, "user stork missing"
    assert int(passwd[2]) < 1000, f"stork is not a system user: {passwd}"
    assert passwd[5] == "/nonexistent", f"stork has a home directory: {passwd}"
    assert passwd[6] == "/usr/sbin/nologin", f"stork has a login shell: {passwd}"
    group = root.entry("group", "stork")
    assert group is not None, "group stork missing"
    assert passwd[3] == group[2], "stork's primary group is not stork"
    assert root.entry("group", TOKEN_GROUP) is not None, f"token group {TOKEN_GROUP} missing"

    for path, expected in INSTALLED_PATHS.items():
        assert root.exists(path), f"{path} missing"
        assert root.owner(path) == expected, f"{path}: owner, group and mode {root.owner(path)}, expected {expected}"
    for link, target in ENABLED_LINKS.items():
        assert os.readlink(root.host_path(link)) == target, f"{link} does not point to {target}"

    installed = root.host_path("/usr/local/bin/vault-stork").read_bytes()
    assert installed == static_binary.read_bytes(), "installed binary differs from the static binary"
    assert root.read("/etc/tmpfiles.d/vault-stork.conf").splitlines()[1:] == [
        "d /var/lib/stork 0700 stork stork -",
        f"d /run/stork 2750 stork {TOKEN_GROUP} -",
    ]


def unit_settings(root: Root, unit_path: str) -> tuple[dict[str, str], list[str]]:
    """Return the Environment= variables and the ExecStart= argv of a unit in the root."""
    environment: dict[str, str] = {}
    exec_start: list[str] = []
    for line in root.read(unit_path).splitlines():
        if line.startswith("Environment="):
            for assignment in shlex.split(line.split("=", 1)[1]):
                name, value = assignment.split("=", 1)
                environment[name] = value
        elif line.startswith("ExecStart="):
            exec_start = shlex.split(line.split("=", 1)[1])
    return environment, exec_start


def env_file_settings(root: Root, path: str = "/etc/stork/stork.env") -> dict[str, str]:
    """Return the NAME=value lines of an EnvironmentFile in the root."""
    settings = {}
    for line in root.read(path).splitlines():
        if line and not line.startswith("#") and "=" in line:
            name, value = line.split("=", 1)
            settings[name] = value
    return settings


def service_environment(root: Root, **overrides: str) -> tuple[dict[str, str], list[str]]:
    """Return the environment and argv vault-stork.service would run with, plus OVERRIDES.

    Like systemd, EnvironmentFile= (stork.env) beats Environment=.
    """
    environment, exec_start = unit_settings(root, "/etc/systemd/system/vault-stork.service")
    environment.update(env_file_settings(root))
    environment.update(overrides)
    return environment, exec_start


def closed_loopback_url() -> str:
    return f"http://127.0.0.1:{free_port()}"


# --- install.sh ------------------------------------------------------------


def test_install_twice_same_layout(root, static_binary):
    copy_kit(root, static_binary)

    first = install(root, "--vault-addr", "https://vault.example.com:8200", "--role", "web-servers",
                    "--token-group", TOKEN_GROUP)
    assert first.code == 0, first.describe()
    after_first = snapshot(root)
    second = install(root)
    assert second.code == 0, second.describe()

    assert_installed_layout(root, static_binary)
    assert snapshot(root) == after_first, "the second run changed the installation"
    assert "created system user stork" in first.stdout
    assert "kept user stork" in second.stdout
    assert "unchanged /usr/local/bin/vault-stork" in second.stdout
    settings = env_file_settings(root)
    assert settings == {"VAULT_ADDR": "https://vault.example.com:8200", "STORK_ROLE": "web-servers"}


def test_install_units_pass_systemd_verify(root, static_binary):
    copy_kit(root, static_binary)
    assert install(root, "--vault-addr", "https://vault.example.com:8200").code == 0

    # verify also checks that ExecStart= is executable and that the man page
    # named in Documentation= is installed.
    verified = root.run("systemd-analyze", "verify", "/etc/systemd/system/vault-stork.service",
                        "/etc/systemd/system/vault-stork.timer")

    assert verified.code == 0, verified.describe()
    assert verified.stderr == "", verified.describe()


def test_install_keeps_env_file_and_nonce(root, static_binary):
    copy_kit(root, static_binary)
    env_file = root.host_path("/etc/stork/stork.env")
    env_file.parent.mkdir(parents=True)
    env_file.write_text("VAULT_ADDR=https://old.example.com:8200\n")
    nonce = root.host_path("/var/lib/stork/nonce")
    nonce.parent.mkdir(parents=True)
    # A nonce left by an earlier installation, owned by a user ID that no
    # longer exists.
    nonce.write_text("N" * 88)
    os.chown(nonce, 4242, 4242)

    result = install(root, "--vault-addr", "https://new.example.com:8200")

    assert result.code == 0, result.describe()
    assert env_file.read_text() == "VAULT_ADDR=https://old.example.com:8200\n"
    assert "keeps its own VAULT_ADDR" in result.stderr
    assert nonce.read_text() == "N" * 88
    assert root.owner("/var/lib/stork/nonce") == ("stork", "stork", 0o644)


def test_install_with_root_option(root, static_binary):
    result = subprocess.run(
        [str(REPO_ROOT / "scripts" / "install.sh"), "--root", str(root.path), "--binary", str(static_binary),
         "--vault-addr", "https://vault.example.com:8200", "--token-group", TOKEN_GROUP],
        capture_output=True, text=True, timeout=COMMAND_TIMEOUT_SECONDS, check=False)

    assert result.returncode == 0, result.stderr
    assert_installed_layout(root, static_binary)
    leftovers = [path.name for path in root.host_path("/tmp").iterdir() if path.name.startswith("vault-stork-install")]
    assert leftovers == [], f"--root left its staging directory in /tmp: {leftovers}"


def test_install_custom_token_dir(root, static_binary):
    copy_kit(root, static_binary)

    result = install(root, "--token-dir", "/var/lib/stork-token", "--token-group", TOKEN_GROUP)

    assert result.code == 0, result.describe()
    assert root.owner("/var/lib/stork-token") == ("stork", TOKEN_GROUP, 0o2750)
    assert root.read("/etc/systemd/system/vault-stork.service.d/token-dir.conf").splitlines()[1:] == [
        "[Service]",
        "Environment=STORK_TOKEN=/var/lib/stork-token/token",
        "ReadWritePaths=",
        "ReadWritePaths=/var/lib/stork /var/lib/stork-token",
    ]
    assert "d /var/lib/stork-token 2750 stork app -" in root.read("/etc/tmpfiles.d/vault-stork.conf")
    verified = root.run("systemd-analyze", "verify", "/etc/systemd/system/vault-stork.service")
    assert verified.code == 0, verified.describe()


def test_install_without_systemd_skips_units(root, static_binary):
    copy_kit(root, static_binary)
    # The root stands in for a system without systemd, such as Alpine with
    # OpenRC: install.sh decides by whether systemctl is on PATH.
    root.host_path("/usr/bin/systemctl").unlink()

    result = install(root)

    assert result.code == 0, result.describe()
    assert "systemd not found: skipped the units" in result.stdout
    assert "/run/stork is on a tmpfs" in result.stderr
    assert not root.exists("/etc/systemd/system/vault-stork.service")
    assert not root.exists("/etc/tmpfiles.d/vault-stork.conf")
    assert root.owner("/usr/local/bin/vault-stork") == ("root", "root", 0o755)


@pytest.mark.parametrize("options, message", [
    (["--vault-addr", "https://vault.example.com;reboot"], "invalid --vault-addr"),
    (["--vault-addr", "vault.example.com"], "expected a URL starting with https://"),
    (["--method", "gcp"], "invalid --method 'gcp'"),
    (["--role", "web servers"], "invalid --role"),
    (["--token-dir", "relative/dir"], "expected an absolute path"),
    (["--token-dir", "/var/lib/stork"], "it must be a directory of its own"),
    (["--token-group", "-x"], "invalid --token-group"),
    (["--purge"], "--purge needs --uninstall"),
    (["--bogus"], "unknown option --bogus"),
])
def test_install_rejects_invalid_option(root, static_binary, options, message):
    copy_kit(root, static_binary)

    result = install(root, *options)

    assert result.code == 64, result.describe()
    assert message in result.stderr
    assert root.entry("passwd", "stork") is None, "a rejected run changed the system"


def test_install_missing_binary(root, static_binary):
    copy_kit(root, static_binary)

    result = root.run("/bin/sh", "/tmp/kit/scripts/install.sh", "--binary", "/tmp/kit/missing")

    assert result.code == 1, result.describe()
    assert "binary /tmp/kit/missing not found" in result.stderr


def test_uninstall_keeps_nonce_until_purge(root, static_binary):
    copy_kit(root, static_binary)
    assert install(root, "--token-group", TOKEN_GROUP).code == 0
    nonce = root.host_path("/var/lib/stork/nonce")
    nonce.write_text("N" * 88)
    root.host_path("/run/stork/token").write_text("s.token")

    uninstalled = install(root, "--uninstall")

    assert uninstalled.code == 0, uninstalled.describe()
    for path in ["/usr/local/bin/vault-stork", "/usr/local/share/man/man1/vault-stork.1",
                 "/etc/systemd/system/vault-stork.service", "/etc/systemd/system/vault-stork.timer",
                 "/etc/tmpfiles.d/vault-stork.conf", "/run/stork", *ENABLED_LINKS]:
        assert not root.exists(path), f"--uninstall left {path}"
    assert nonce.read_text() == "N" * 88
    assert root.exists("/etc/stork/stork.env")
    assert root.entry("passwd", "stork") is not None
    assert "kept /var/lib/stork/nonce" in uninstalled.stdout

    reinstalled = install(root)
    assert reinstalled.code == 0, reinstalled.describe()
    assert root.owner("/run/stork") == ("stork", TOKEN_GROUP, 0o2750), "reinstall forgot the token group"
    assert nonce.read_text() == "N" * 88

    purged = install(root, "--uninstall", "--purge")
    assert purged.code == 0, purged.describe()
    for path in ["/var/lib/stork", "/etc/stork", "/usr/local/bin/vault-stork"]:
        assert not root.exists(path), f"--purge left {path}"
    assert root.entry("passwd", "stork") is None
    assert root.entry("group", "stork") is None
    assert root.entry("group", TOKEN_GROUP) is not None, "--purge removed the application's group"
    assert "deleting /var/lib/stork/nonce" in purged.stderr


# --- Alpine's tools: BusyBox ---------------------------------------------------


@pytest.fixture
def busybox_root(roots_dir: Path, request):
    """A root with nothing but a static BusyBox that has adduser, as on Alpine, and no systemd."""
    kit_env = cache_dir() / "kit.env"
    busybox = Path(read_exports(kit_env).get("STORK_KIT_BUSYBOX", "")) if kit_env.is_file() else Path()
    if not busybox.is_file():
        pytest.fail(f"BusyBox with adduser not found (STORK_KIT_BUSYBOX in {kit_env}); build it with "
                    f"`scripts/kit-checks.sh deps` outside the network namespace", pytrace=False)
    path = Path(tempfile.mkdtemp(prefix=f"{request.node.name[:40]}-", dir=roots_dir))
    for directory in ["bin", "sbin", "usr/bin", "usr/sbin", "etc", "tmp", "dev"]:
        (path / directory).mkdir(parents=True)
    shutil.copy2(busybox, path / "bin" / "busybox")
    subprocess.run(["chroot", str(path), "/bin/busybox", "--install", "-s"], check=True)
    os.mknod(path / "dev" / "null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    (path / "dev" / "null").chmod(0o666)
    (path / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (path / "etc" / "group").write_text("root:x:0:\n")
    (path / "etc" / "shadow").write_text("root:*:19000:0:99999:7:::\n")
    yield Root(path)
    shutil.rmtree(path, ignore_errors=True)


def test_install_with_busybox_adduser(busybox_root, static_binary):
    root = busybox_root
    copy_kit(root, static_binary)
    assert not root.exists("/usr/sbin/useradd"), "the BusyBox root must not have shadow's useradd"

    first = install(root, "--vault-addr", "https://vault.example.com:8200", "--token-group", TOKEN_GROUP)
    assert first.code == 0, first.describe()
    second = install(root)
    assert second.code == 0, second.describe()

    passwd = root.entry("passwd", "stork")
    assert passwd is not None, first.describe()
    assert passwd[5] == "/nonexistent"
    assert passwd[6] in ("/usr/sbin/nologin", "/sbin/nologin", "/bin/false"), f"stork has a login shell: {passwd}"
    assert root.entry("group", TOKEN_GROUP) is not None
    assert root.owner("/var/lib/stork") == ("stork", "stork", 0o700)
    assert root.owner("/run/stork") == ("stork", TOKEN_GROUP, 0o2750)
    assert root.owner("/etc/stork/stork.env") == ("root", "stork", 0o640)
    assert root.owner("/usr/local/bin/vault-stork") == ("root", "root", 0o755)
    assert "systemd not found: skipped the units" in first.stdout
    assert "kept user stork" in second.stdout

    purged = install(root, "--uninstall", "--purge")
    assert purged.code == 0, purged.describe()
    assert root.entry("passwd", "stork") is None
    assert root.entry("group", "stork") is None
    assert not root.exists("/var/lib/stork")


# --- The .deb ----------------------------------------------------------------


@pytest.fixture(scope="session")
def deb_package(static_binary, tmp_path_factory) -> Path:
    """The .deb that scripts/build-deb.sh builds from the static binary."""
    out = tmp_path_factory.mktemp("deb")
    built = subprocess.run([str(REPO_ROOT / "scripts" / "build-deb.sh"), "--binary", str(static_binary),
                            "--out", str(out)], capture_output=True, text=True, timeout=300, check=False)
    assert built.returncode == 0, f"build-deb.sh failed (run `make deb` once outside the network " \
                                  f"namespace if cargo needed crates.io):\n{built.stderr}"
    return next(out.glob("*.deb"))


def test_deb_installs_and_lists_files(root, deb_package):
    shutil.copy2(deb_package, root.host_path("/tmp/vault-stork.deb"))

    installed = root.run("dpkg", "-i", "/tmp/vault-stork.deb")

    assert installed.code == 0, installed.describe()
    listed = set(root.check("dpkg", "-L", "vault-stork").stdout.splitlines())
    for path in ["/usr/bin/vault-stork", "/lib/systemd/system/vault-stork.service",
                 "/lib/systemd/system/vault-stork.timer", "/usr/share/man/man1/vault-stork.1.gz",
                 "/usr/share/vault-stork/install.sh", "/usr/share/vault-stork/stork.env.example",
                 "/usr/share/doc/vault-stork/copyright",
                 "/usr/share/doc/vault-stork/examples/stork.env.example",
                 "/usr/share/doc/vault-stork/examples/cloud-init/user-data.yaml"]:
        assert path in listed, f"dpkg -L vault-stork does not list {path}"
    assert root.entry("passwd", "stork") is not None
    assert root.owner("/var/lib/stork") == ("stork", "stork", 0o700)
    assert root.owner("/run/stork") == ("stork", "stork", 0o2750)
    assert root.owner("/etc/stork/stork.env") == ("root", "stork", 0o640)
    assert os.readlink(root.host_path("/etc/systemd/system/multi-user.target.wants/vault-stork.service")) \
        == "/lib/systemd/system/vault-stork.service"
    assert os.readlink(root.host_path("/etc/systemd/system/timers.target.wants/vault-stork.timer")) \
        == "/lib/systemd/system/vault-stork.timer"
    verified = root.run("systemd-analyze", "verify", "vault-stork.service", "vault-stork.timer")
    assert verified.code == 0, verified.describe()


def test_deb_remove_and_purge_keep_nonce(root, deb_package):
    shutil.copy2(deb_package, root.host_path("/tmp/vault-stork.deb"))
    root.check("dpkg", "-i", "/tmp/vault-stork.deb")
    nonce = root.host_path("/var/lib/stork/nonce")
    nonce.write_text("N" * 88)

    root.check("dpkg", "-r", "vault-stork")
    assert nonce.read_text() == "N" * 88, "dpkg -r changed the nonce"
    assert not root.exists("/usr/bin/vault-stork")
    assert not root.exists("/etc/tmpfiles.d/vault-stork.conf")
    purged = root.check("dpkg", "-P", "vault-stork")
    assert nonce.read_text() == "N" * 88, "dpkg -P changed the nonce"
    assert "kept /var/lib/stork/nonce" in purged.stdout
    assert not root.exists("/etc/stork")

    root.check("dpkg", "-i", "/tmp/vault-stork.deb")
    assert nonce.read_text() == "N" * 88, "reinstalling changed the nonce"
    assert root.owner("/var/lib/stork/nonce")[:2] == ("stork", "stork")


# --- Logging in from the root --------------------------------------------------


@pytest.fixture
def installed_root(root, static_binary, stack):
    """A root with the kit installed and VAULT_ADDR pointing at the test stack."""
    copy_kit(root, static_binary)
    result = install(root, "--vault-addr", stack.vault_addr, "--token-group", TOKEN_GROUP)
    assert result.code == 0, result.describe()
    return root


@pytest.fixture
def instance_imds(stack):
    """A new instance unknown to OpenBao, and an IMDS that serves it."""
    instance = stack.new_instance()
    server = stack.start_imds(instance)
    yield instance, server
    stack.stop_imds(server)


def test_service_login_as_stork(installed_root, stack, instance_imds):
    instance, imds = instance_imds
    root = installed_root
    environment, exec_start = service_environment(root, AWS_EC2_METADATA_SERVICE_ENDPOINT=imds.url)
    assert exec_start == ["/usr/local/bin/vault-stork", "login"]

    result = root.run_as("stork", *exec_start, env=environment)

    assert result.code == 0, result.describe()
    assert root.owner("/run/stork/token") == ("stork", TOKEN_GROUP, 0o640)
    assert root.owner("/var/lib/stork/nonce") == ("stork", "stork", 0o600)
    nonce = root.read("/var/lib/stork/nonce")
    assert NONCE_PATTERN.fullmatch(nonce), "the nonce is not 88 characters of base64url"
    assert stack.access_list_nonce(instance.instance_id) == nonce
    token = root.read("/run/stork/token")
    assert stack.lookup_self(token)["meta"]["role"] == PROFILE_ROLE
    assert token not in result.stdout + result.stderr
    assert nonce not in result.stdout + result.stderr


def test_timer_run_keeps_valid_token(installed_root, stack, instance_imds):
    _, imds = instance_imds
    root = installed_root
    environment, exec_start = service_environment(root, AWS_EC2_METADATA_SERVICE_ENDPOINT=imds.url)
    assert environment["STORK_MIN_TTL"] == "30m", "the unit no longer sets STORK_MIN_TTL for the timer"
    first = root.run_as("stork", *exec_start, env=environment)
    assert first.code == 0, first.describe()
    token = root.read("/run/stork/token")
    logins = stack.login_requests()

    second = root.run_as("stork", *exec_start, env=environment)

    assert second.code == 0, second.describe()
    assert root.read("/run/stork/token") == token, "the timer run replaced a token with a long TTL"
    assert stack.login_requests() == logins, "the timer run logged in although the token had a long TTL"


def test_rescue_shell_login_with_pkcs7(installed_root, stack):
    root = installed_root
    instance = stack.new_instance()
    pkcs7 = root.host_path("/tmp/pkcs7.txt")
    pkcs7.write_text(instance.pkcs7)
    pkcs7.chmod(0o644)
    # No IMDS at all: the endpoint is a closed loopback port.
    environment, exec_start = service_environment(root, AWS_EC2_METADATA_SERVICE_ENDPOINT=closed_loopback_url(),
                                                  STORK_PKCS7="@/tmp/pkcs7.txt")

    result = root.run_as("stork", *exec_start, env=environment)

    assert result.code == 0, result.describe()
    nonce = root.read("/var/lib/stork/nonce")
    assert stack.access_list_nonce(instance.instance_id) == nonce
    # Without IMDS no role is sent, so Vault uses the role named after the AMI.
    assert stack.lookup_self(root.read("/run/stork/token"))["meta"]["role"] == stack.ami_id


# --- cloud-init and the exit code 80 alarm -----------------------------------------


def runcmd_script(example: str) -> str:
    config = yaml.safe_load((REPO_ROOT / "dist" / "cloud-init" / example).read_text())
    scripts = [entry for entry in config["runcmd"] if isinstance(entry, str)]
    assert len(scripts) == 1, f"expected one shell script in the runcmd of {example}"
    return scripts[0]


def test_cloud_init_runcmd_login_and_alarm(installed_root, stack, instance_imds):
    instance, imds = instance_imds
    root = installed_root
    root.host_path("/tmp/runcmd.sh").write_text(runcmd_script("user-data.yaml"))
    # cloud-init runs runcmd as root with the settings from stork.env; the
    # IMDS endpoint is the only addition.
    environment = {"AWS_EC2_METADATA_SERVICE_ENDPOINT": imds.url}

    first = root.run("/bin/sh", "/tmp/runcmd.sh", env=environment)

    assert first.code == 0, first.describe()
    assert "first login succeeded" in first.stdout
    assert root.owner("/run/stork/token") == ("stork", TOKEN_GROUP, 0o640)
    assert root.owner("/var/lib/stork/nonce") == ("stork", "stork", 0o600)
    assert stack.access_list_nonce(instance.instance_id) == root.read("/var/lib/stork/nonce")

    # A lost nonce file: the next login sends a new nonce, and Vault refuses it.
    root.host_path("/var/lib/stork/nonce").unlink()
    second = root.run("/bin/sh", "/tmp/runcmd.sh", env=environment)

    assert second.code == 80, second.describe()
    assert "ALARM client nonce mismatch" in second.stderr
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\n", root.read("/var/lib/stork/nonce-mismatch"))


def exec_stop_post_command(root: Root) -> list[str]:
    """Return the unit's ExecStopPost= argv, with systemd's $$ and %% unescaped."""
    for line in root.read("/etc/systemd/system/vault-stork.service").splitlines():
        if line.startswith("ExecStopPost="):
            command = line.split("=", 1)[1].replace("$$", "$").replace("%%", "%")
            return shlex.split(command)
    raise AssertionError("vault-stork.service has no ExecStopPost=")


@pytest.mark.parametrize("exit_status, alarm", [("80", True), ("75", False), ("0", False)])
def test_unit_alarm_on_exit_code_80(installed_root, exit_status, alarm):
    root = installed_root
    command = exec_stop_post_command(root)

    # systemd sets EXIT_STATUS for ExecStopPost= and runs it as User=stork.
    result = root.run_as("stork", *command, env={"PATH": "/usr/bin:/bin", "EXIT_STATUS": exit_status})

    assert result.code == 0, result.describe()
    assert root.exists("/var/lib/stork/nonce-mismatch") == alarm
    assert ("<2>vault-stork: ALARM client nonce mismatch" in result.stderr) == alarm

"""End-to-end tests of proxy selection with a real tinyproxy in front of OpenBao.

The assertions read tinyproxy's log, which records the request line of
every request it receives, so a request that bypasses the proxy leaves no
line there.
"""

from __future__ import annotations

import secrets

import pytest

from tests.stack.process import free_port
from tests.stack.tinyproxy import TinyProxy

from .support import SHORT_RETRY, assert_logged_in, login

PROXY_USER = "stork-proxy-user"

ALL_PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")


@pytest.fixture(scope="module")
def proxy(tls_bao, stack):
    """tinyproxy allowing CONNECT to the rsa TLS listener and the plain admin listener only."""
    allowed = [tls_bao.listener("rsa").port, tls_bao.admin_port]
    started = TinyProxy(stack.run_dir, "tinyproxy", allowed).start()
    yield started
    started.stop()


@pytest.fixture(scope="module")
def auth_proxy(tls_bao, stack):
    """tinyproxy that requires Basic credentials (``BasicAuth``)."""
    started = TinyProxy(stack.run_dir, "tinyproxy-auth", [tls_bao.listener("rsa").port],
                        user=PROXY_USER, password=secrets.token_urlsafe(12)).start()
    yield started
    started.stop()


def ca_args(pki) -> tuple[str, str]:
    return ("--ca-cert", str(pki.rsa_ca.certificate))


def connect_line(port: int) -> str:
    return f"CONNECT 127.0.0.1:{port} HTTP/1.1"


# Logins through the proxy


@pytest.mark.parametrize("source", ["HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy", "VAULT_PROXY_ADDR",
                                    "--proxy"])
def test_login_through_proxy(tls_bao, pki, proxy, stork, imds, tmp_path, source):
    listener = tls_bao.listener("rsa")
    mark = proxy.log_size()
    if source == "--proxy":
        extra, env = ("--proxy", proxy.url), {}
    else:
        extra, env = (), {source: proxy.url}

    result = login(stork, imds, tmp_path, listener.url, *ca_args(pki), "--verbose", *extra, env=env)

    assert result.code == 0, result.describe()
    assert f"Vault {listener.url}: proxy {proxy.url} (from " in result.stderr
    if source != "VAULT_PROXY_ADDR":  # its label is checked by test_proxy_variable_named_in_log
        assert f"proxy {proxy.url} (from {source})" in result.stderr
    assert proxy.requests_since(mark) == [connect_line(listener.port)]
    assert_logged_in(tls_bao, tmp_path)


def test_proxy_variable_named_in_log(tls_bao, pki, proxy, stork, imds, tmp_path):
    result = login(stork, imds, tmp_path, tls_bao.listener("rsa").url, *ca_args(pki), "--verbose",
                   env={"VAULT_PROXY_ADDR": proxy.url})

    assert result.code == 0, result.describe()
    assert f"proxy {proxy.url} (from VAULT_PROXY_ADDR)" in result.stderr, result.describe()


def test_http_vault_through_http_proxy(tls_bao, proxy, stork, imds, tmp_path):
    # A plain http:// Vault takes HTTP_PROXY; the binary still tunnels with CONNECT.
    mark = proxy.log_size()

    result = login(stork, imds, tmp_path, tls_bao.admin_url, "--verbose", env={"HTTP_PROXY": proxy.url})

    assert result.code == 0, result.describe()
    assert f"proxy {proxy.url} (from HTTP_PROXY)" in result.stderr
    assert proxy.requests_since(mark) == [connect_line(tls_bao.admin_port)]
    assert_logged_in(tls_bao, tmp_path)


def test_https_vault_ignores_http_proxy(tls_bao, pki, proxy, stork, imds, tmp_path):
    mark = proxy.log_size()

    result = login(stork, imds, tmp_path, tls_bao.listener("rsa").url, *ca_args(pki), "--verbose",
                   env={"HTTP_PROXY": proxy.url, "http_proxy": proxy.url})

    assert result.code == 0, result.describe()
    assert "no proxy configured" in result.stderr
    assert proxy.requests_since(mark) == []


# Bypassing the proxy


@pytest.mark.parametrize(("variable", "entries"), [
    ("NO_PROXY", "127.0.0.1"),
    ("NO_PROXY", "127.0.0.0/8"),
    ("NO_PROXY", "vault.example.com, 127.0.0.1"),
    ("no_proxy", "10.0.0.0/8,127.0.0.0/24"),
])
def test_no_proxy_bypasses_proxy(tls_bao, pki, proxy, stork, imds, tmp_path, variable, entries):
    mark = proxy.log_size()

    result = login(stork, imds, tmp_path, tls_bao.listener("rsa").url, *ca_args(pki), "--verbose",
                   env={"HTTPS_PROXY": proxy.url, variable: entries})

    assert result.code == 0, result.describe()
    assert "no proxy: 127.0.0.1 matches NO_PROXY entry" in result.stderr
    assert proxy.requests_since(mark) == []
    assert_logged_in(tls_bao, tmp_path)


def test_no_proxy_for_other_hosts_keeps_proxy(tls_bao, pki, proxy, stork, imds, tmp_path):
    listener = tls_bao.listener("rsa")
    mark = proxy.log_size()

    result = login(stork, imds, tmp_path, listener.url, *ca_args(pki),
                   env={"HTTPS_PROXY": proxy.url, "NO_PROXY": "10.0.0.0/8,localhost,.example.com"})

    assert result.code == 0, result.describe()
    assert proxy.requests_since(mark) == [connect_line(listener.port)]


def test_no_proxy_flag_bypasses_proxy(tls_bao, pki, proxy, stork, imds, tmp_path):
    mark = proxy.log_size()

    result = login(stork, imds, tmp_path, tls_bao.listener("rsa").url, *ca_args(pki), "--no-proxy", "--verbose",
                   env={"HTTPS_PROXY": proxy.url, "ALL_PROXY": proxy.url})

    assert result.code == 0, result.describe()
    assert "no proxy (--no-proxy)" in result.stderr
    assert proxy.requests_since(mark) == []


# IMDS is never proxied


def test_imds_never_proxied(tls_bao, pki, proxy, stork, imds, tmp_path):
    listener = tls_bao.listener("rsa")
    imds_port = imds.url.rsplit(":", 1)[1]
    mark = proxy.log_size()

    result = login(stork, imds, tmp_path, listener.url, *ca_args(pki),
                   env={name: proxy.url for name in ALL_PROXY_VARIABLES})

    assert result.code == 0, result.describe()
    assert imds.request_count() > 0
    requests = proxy.requests_since(mark)
    assert requests == [connect_line(listener.port)]
    assert not [line for line in requests if imds_port in line or "/latest/" in line]


def test_imds_never_proxied_with_http_vault(tls_bao, proxy, stork, imds, tmp_path):
    # Vault and IMDS are both plain http:// here, and HTTP_PROXY applies to Vault only.
    imds_port = imds.url.rsplit(":", 1)[1]
    mark = proxy.log_size()

    result = login(stork, imds, tmp_path, tls_bao.admin_url,
                   env={"HTTP_PROXY": proxy.url, "http_proxy": proxy.url, "ALL_PROXY": proxy.url})

    assert result.code == 0, result.describe()
    assert imds.request_count() > 0
    requests = proxy.requests_since(mark)
    assert requests == [connect_line(tls_bao.admin_port)]
    assert not [line for line in requests if imds_port in line or "/latest/" in line]


# Proxy failures


def test_dead_proxy_is_unavailable(tls_bao, pki, stork, imds, tmp_path):
    dead = f"http://127.0.0.1:{free_port()}"

    result = login(stork, imds, tmp_path, tls_bao.listener("rsa").url, *ca_args(pki), *SHORT_RETRY,
                   env={"HTTPS_PROXY": dead})

    assert result.code == 75, result.describe()
    assert "Connection refused" in result.stderr
    assert not (tmp_path / "token").exists()


def test_dead_proxy_named_in_error(tls_bao, pki, stork, imds, tmp_path):
    address = f"127.0.0.1:{free_port()}"

    result = login(stork, imds, tmp_path, tls_bao.listener("rsa").url, *ca_args(pki), *SHORT_RETRY,
                   "--proxy", f"http://{address}")

    assert result.code == 75, result.describe()
    assert address in result.stderr, result.describe()


def test_proxy_refusing_port_is_unavailable(tls_bao, pki, proxy, stork, imds, tmp_path):
    # The proxy allows CONNECT only to the rsa and admin ports, not to this listener's.
    listener = tls_bao.listener("tls13-only")
    mark = proxy.log_size()

    result = login(stork, imds, tmp_path, listener.url, *ca_args(pki), *SHORT_RETRY, env={"HTTPS_PROXY": proxy.url})

    assert result.code == 75, result.describe()
    assert "CONNECT proxy failed" in result.stderr
    assert "403" in result.stderr
    assert connect_line(listener.port) in proxy.requests_since(mark)


# Proxy credentials


@pytest.mark.parametrize("source", ["HTTPS_PROXY", "--proxy"])
def test_proxy_credentials_used_and_hidden(tls_bao, pki, auth_proxy, stork, imds, tmp_path, source):
    listener = tls_bao.listener("rsa")
    stork.secrets.append(auth_proxy.password)
    mark = auth_proxy.log_size()
    if source == "--proxy":
        extra, env = ("--proxy", auth_proxy.url), {}
    else:
        extra, env = (), {source: auth_proxy.url}

    result = login(stork, imds, tmp_path, listener.url, *ca_args(pki), "--verbose", *extra, env=env)

    assert result.code == 0, result.describe()
    assert auth_proxy.password not in result.stderr
    assert auth_proxy.password not in result.stdout
    assert f"{PROXY_USER}:" not in result.stderr
    assert f"proxy http://{auth_proxy.address} (from {source})" in result.stderr
    assert auth_proxy.requests_since(mark) == [connect_line(listener.port)]
    assert_logged_in(tls_bao, tmp_path)


def test_proxy_credentials_required(tls_bao, pki, auth_proxy, stork, imds, tmp_path):
    wrong_password = secrets.token_urlsafe(12)
    stork.secrets.append(wrong_password)

    result = login(stork, imds, tmp_path, tls_bao.listener("rsa").url, *ca_args(pki), *SHORT_RETRY, "--verbose",
                   env={"HTTPS_PROXY": f"http://{PROXY_USER}:{wrong_password}@{auth_proxy.address}"})

    assert result.code == 75, result.describe()
    assert "CONNECT proxy failed" in result.stderr
    assert wrong_password not in result.stderr
    assert not (tmp_path / "token").exists()

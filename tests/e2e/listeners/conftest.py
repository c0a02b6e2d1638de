"""Fixtures for the TLS, proxy and namespace tests: certificates and a second OpenBao.

The second OpenBao (not the stack's) serves TLS listeners of our own
configuration. Its AWS auth method uses the stack's moto and signing
certificates, so the ``instance`` and ``imds`` fixtures work with it.
"""

from __future__ import annotations

import pytest

from tests.stack import Stack, StackError
from tests.stack.stack import ToolPaths
from tests.stack.tls_openbao import TlsListener, TlsOpenBaoServer

from .pki import Pki, build_pki
from .support import ROOT_MOUNT


@pytest.fixture(scope="session")
def pki(tmp_path_factory) -> Pki:
    return build_pki(tmp_path_factory.mktemp("pki"))


def listeners_for(pki: Pki) -> list[TlsListener]:
    return [
        TlsListener("rsa", pki.rsa_server),
        TlsListener("ecdsa-chain", pki.ecdsa_server),
        TlsListener("name-mismatch", pki.mismatch_server),
        TlsListener("expired", pki.expired_server),
        TlsListener("tls12-only", pki.rsa_server, max_version="tls12"),
        TlsListener("tls13-only", pki.rsa_server, min_version="tls13"),
        TlsListener("client-cert", pki.rsa_server, client_ca=pki.client_ca.certificate),
        TlsListener("client-cert-tls12", pki.rsa_server, max_version="tls12", client_ca=pki.client_ca.certificate),
        TlsListener("ipv6", pki.rsa_server, host="::1"),
    ]


@pytest.fixture(scope="session")
def tls_bao(stack: Stack, pki: Pki):
    """The second OpenBao with every TLS listener and the AWS auth method at ROOT_MOUNT."""
    server = TlsOpenBaoServer(ToolPaths.locate(), stack.run_dir / "openbao-tls", listeners_for(pki))
    try:
        server.start()
        server.register_plugin()
        server.configure_aws_auth(stack, ROOT_MOUNT)
    except (StackError, OSError) as error:
        server.stop()
        pytest.fail(f"OpenBao with TLS listeners failed to start: {error}; log {server.process.log_path}",
                    pytrace=False)
    except Exception:
        server.stop()
        raise
    yield server
    server.stop()

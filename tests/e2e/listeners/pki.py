"""The certificates of the TLS tests: CAs, server certificates, client certificates."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tests.stack.certificates import CertificateAuthority, IssuedCertificate, expired_window

# The only name in the certificate of the name-mismatch listener.
MISMATCH_NAME = "vault.internal.test"

# The loopback names every other server certificate carries.
LOOPBACK_DNS = ("localhost",)
LOOPBACK_IPS = ("127.0.0.1", "::1")


@dataclass(frozen=True)
class Pki:
    """Every CA and leaf certificate of the TLS tests, made once per session."""

    rsa_ca: CertificateAuthority
    ecdsa_root: CertificateAuthority
    ecdsa_intermediate: CertificateAuthority
    # A CA that signed none of the server certificates.
    wrong_ca: CertificateAuthority
    client_ca: CertificateAuthority

    rsa_server: IssuedCertificate
    # Signed by the ECDSA intermediate; its chain file carries the intermediate.
    ecdsa_server: IssuedCertificate
    mismatch_server: IssuedCertificate
    expired_server: IssuedCertificate

    # Client certificates by key type, signed by the client CA.
    clients: dict[str, IssuedCertificate]
    # A client certificate from a CA the client-certificate listener does not trust.
    untrusted_client: IssuedCertificate


def build_pki(directory: Path) -> Pki:
    """Generate every CA and certificate under DIRECTORY with the openssl CLI."""
    rsa_ca = CertificateAuthority(directory / "rsa-ca", "vault-stork test RSA CA").create()
    ecdsa_root = CertificateAuthority(directory / "ecdsa-root", "vault-stork test ECDSA root", "ecdsa").create()
    ecdsa_intermediate = CertificateAuthority(directory / "ecdsa-intermediate", "vault-stork test ECDSA intermediate",
                                              "ecdsa", parent=ecdsa_root).create()
    wrong_ca = CertificateAuthority(directory / "wrong-ca", "vault-stork test unrelated CA").create()
    client_ca = CertificateAuthority(directory / "client-ca", "vault-stork test client CA").create()

    not_before, not_after = expired_window()
    return Pki(
        rsa_ca=rsa_ca,
        ecdsa_root=ecdsa_root,
        ecdsa_intermediate=ecdsa_intermediate,
        wrong_ca=wrong_ca,
        client_ca=client_ca,
        rsa_server=rsa_ca.issue("rsa-server", "rsa", dns_names=LOOPBACK_DNS, ip_addresses=LOOPBACK_IPS),
        ecdsa_server=ecdsa_intermediate.issue("ecdsa-server", "ecdsa", dns_names=LOOPBACK_DNS,
                                              ip_addresses=LOOPBACK_IPS),
        mismatch_server=rsa_ca.issue("mismatch-server", "rsa", dns_names=(MISMATCH_NAME,)),
        expired_server=rsa_ca.issue("expired-server", "rsa", dns_names=LOOPBACK_DNS, ip_addresses=LOOPBACK_IPS,
                                    not_before=not_before, not_after=not_after),
        clients={key_type: client_ca.issue(f"client-{key_type}", key_type, usage="client")
                 for key_type in ("rsa", "ecdsa", "ed25519")},
        untrusted_client=wrong_ca.issue("client-untrusted", "rsa", usage="client"),
    )

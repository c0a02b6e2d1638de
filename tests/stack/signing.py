"""Sign instance identity documents the way EC2 does, with test keys.

IMDS serves three signatures of the identity document:

* ``pkcs7``: CMS signed data made with a DSA key and SHA-1, with signed
  attributes and no certificates, DER encoded and then base64 encoded in
  64-character lines without PEM armour.
* ``rsa2048``: the same structure made with an RSA-2048 key and SHA-256.
* ``signature``: a bare base64 RSA signature (PKCS #1 v1.5, SHA-256) over
  the document bytes.

Vault's AWS auth backend (v1.21.4, builtin/credential/aws/path_login.go)
verifies the two CMS forms against certificates of type ``pkcs7`` and the
bare signature with ``x509.SHA256WithRSA`` against certificates of type
``identity``.

The keys and self-signed certificates are made here with the ``openssl``
command-line tool, so no real AWS certificate is involved.
"""

from __future__ import annotations

import base64
import logging
import subprocess
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

# The subject of the public certificates AWS publishes for verifying
# identity documents.
CERTIFICATE_SUBJECT = "/C=US/ST=Washington State/L=Seattle/O=Amazon Web Services LLC"


class SigningError(RuntimeError):
    """An ``openssl`` command failed."""


def run_openssl(args: list[str], stdin: bytes | None = None) -> bytes:
    """Run ``openssl ARGS`` and return its standard output."""
    result = subprocess.run(
        ["openssl", *args],
        input=stdin,
        capture_output=True,
        check=False,
    )
    if result.returncode != 0:
        raise SigningError(
            f"openssl {' '.join(args)} failed with exit code {result.returncode}: "
            f"{result.stderr.decode(errors='replace').strip()}"
        )
    return result.stdout


def base64_lines(data: bytes, width: int = 64) -> str:
    """Encode DATA as base64 split into lines of WIDTH characters, as IMDS serves it."""
    encoded = base64.b64encode(data).decode("ascii")
    return "\n".join(encoded[i : i + width] for i in range(0, len(encoded), width))


@dataclass(frozen=True)
class SignedDocument:
    """An identity document with the three signatures EC2 serves for it."""

    document: bytes
    pkcs7: str
    rsa2048: str
    signature: str


class SigningKeys:
    """A DSA key and an RSA key, each with a self-signed certificate."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.dsa_key = directory / "dsa.key"
        self.dsa_certificate = directory / "dsa.crt"
        self.rsa_key = directory / "rsa.key"
        self.rsa_certificate = directory / "rsa.crt"

    def generate(self) -> None:
        """Create both keys and certificates in the directory."""
        self.directory.mkdir(parents=True, exist_ok=True)
        dsa_parameters = self.directory / "dsa-parameters.pem"

        log.info("generating DSA-2048 and RSA-2048 signing keys in %s", self.directory)
        run_openssl([
            "genpkey", "-genparam", "-algorithm", "DSA",
            "-pkeyopt", "dsa_paramgen_bits:2048", "-out", str(dsa_parameters),
        ])
        run_openssl(["genpkey", "-paramfile", str(dsa_parameters), "-out", str(self.dsa_key)])
        run_openssl([
            "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
            "-out", str(self.rsa_key),
        ])

        for key, certificate in ((self.dsa_key, self.dsa_certificate), (self.rsa_key, self.rsa_certificate)):
            run_openssl([
                "req", "-x509", "-new", "-key", str(key), "-sha256", "-days", "7",
                "-subj", CERTIFICATE_SUBJECT, "-out", str(certificate),
            ])

    def dsa_certificate_pem(self) -> str:
        return self.dsa_certificate.read_text()

    def rsa_certificate_pem(self) -> str:
        return self.rsa_certificate.read_text()

    def sign_cms(self, document: bytes, key: Path, certificate: Path, digest: str) -> str:
        """Return DOCUMENT as base64 CMS signed data, in 64-character lines without armour."""
        der = run_openssl(
            [
                "cms", "-sign", "-signer", str(certificate), "-inkey", str(key),
                "-nodetach", "-binary", "-nocerts", "-nosmimecap", "-md", digest,
                "-outform", "DER",
            ],
            stdin=document,
        )
        return base64_lines(der)

    def sign_rsa_sha256(self, document: bytes) -> str:
        """Return the base64 RSA-SHA256 signature of DOCUMENT, in 64-character lines."""
        signature = run_openssl(["dgst", "-sha256", "-sign", str(self.rsa_key)], stdin=document)
        return base64_lines(signature)

    def sign(self, document: bytes) -> SignedDocument:
        """Make all three signatures that IMDS serves for DOCUMENT."""
        return SignedDocument(
            document=document,
            pkcs7=self.sign_cms(document, self.dsa_key, self.dsa_certificate, "sha1"),
            rsa2048=self.sign_cms(document, self.rsa_key, self.rsa_certificate, "sha256"),
            signature=self.sign_rsa_sha256(document),
        )

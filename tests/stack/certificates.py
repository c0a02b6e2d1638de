"""Certificate authorities, server and client certificates for the TLS tests.

Everything is made at test time with the ``openssl`` command-line tool.
Leaf certificates are signed with ``openssl ca``, because ``openssl x509
-req`` in OpenSSL 3.0 cannot set the validity dates that an expired
certificate needs.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

KEY_TYPES = ("rsa", "ecdsa", "ed25519")

# PEM forms of a private key: PKCS#8 ("PRIVATE KEY") for every type, PKCS#1
# ("RSA PRIVATE KEY") for RSA and SEC1 ("EC PRIVATE KEY") for ECDSA.
KEY_FORMS = {
    "rsa": ("pkcs8", "pkcs1"),
    "ecdsa": ("pkcs8", "sec1"),
    "ed25519": ("pkcs8",),
}
KEY_FORM_HEADERS = {
    "pkcs8": "-----BEGIN PRIVATE KEY-----",
    "pkcs1": "-----BEGIN RSA PRIVATE KEY-----",
    "sec1": "-----BEGIN EC PRIVATE KEY-----",
}

VALIDITY_DAYS = 2

# The configuration of ``openssl ca`` and ``openssl req``: a flat database,
# random serial numbers, and the extension sections of CA certificates.
CA_CONFIG = """\
[ ca ]
default_ca = this_ca

[ this_ca ]
database = {directory}/index.txt
new_certs_dir = {directory}/issued
rand_serial = yes
default_md = sha256
policy = policy_any
unique_subject = no
email_in_dn = no
copy_extensions = none

[ policy_any ]
organizationName = optional
commonName = supplied

[ req ]
distinguished_name = req_distinguished_name

[ req_distinguished_name ]

[ root_ca ]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash

[ intermediate_ca ]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
"""

ORGANIZATION = "vault-stork tests"


class CertificateError(RuntimeError):
    """An ``openssl`` command failed."""


def run_openssl(args: list[str], cwd: Path | None = None) -> str:
    """Run ``openssl ARGS``; return its standard output or raise CertificateError with its stderr."""
    completed = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        raise CertificateError(
            f"openssl {' '.join(args)} failed with exit code {completed.returncode}:\n{completed.stderr}"
        )
    return completed.stdout


def generate_key(path: Path, key_type: str) -> Path:
    """Write a new private key of KEY_TYPE to PATH in PKCS#8 PEM form."""
    if key_type == "rsa":
        algorithm = ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"]
    elif key_type == "ecdsa":
        algorithm = ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"]
    elif key_type == "ed25519":
        algorithm = ["-algorithm", "ED25519"]
    else:
        raise ValueError(f"unknown key type {key_type!r}; expected one of {KEY_TYPES}")
    run_openssl(["genpkey", *algorithm, "-out", str(path)])
    path.chmod(0o600)
    return path


def convert_key(source: Path, target: Path, form: str) -> Path:
    """Write the key in SOURCE (PKCS#8) to TARGET in FORM: pkcs8, pkcs1 or sec1."""
    if form == "pkcs8":
        run_openssl(["pkey", "-in", str(source), "-out", str(target)])
    elif form in ("pkcs1", "sec1"):
        # -traditional writes the algorithm's own structure: PKCS#1 for RSA, SEC1 for EC.
        run_openssl(["pkey", "-in", str(source), "-traditional", "-out", str(target)])
    else:
        raise ValueError(f"unknown key form {form!r}; expected pkcs8, pkcs1 or sec1")
    header = target.read_text().splitlines()[0]
    if header != KEY_FORM_HEADERS[form]:
        raise CertificateError(f"openssl wrote {target} as {header!r}, not as {form}")
    target.chmod(0o600)
    return target


def openssl_time(moment: datetime) -> str:
    """Format MOMENT as the YYMMDDHHMMSSZ that ``openssl ca -startdate`` expects."""
    return moment.astimezone(timezone.utc).strftime("%y%m%d%H%M%SZ")


def message_time(moment: datetime) -> str:
    """Format MOMENT as the binary's messages do, e.g. ``2024-05-01 12:00:00 UTC``."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


@dataclass(frozen=True)
class IssuedCertificate:
    """A leaf certificate, its PKCS#8 key, and the chain a server sends."""

    name: str
    key_type: str
    certificate: Path
    key: Path
    # The leaf followed by every intermediate up to, not including, the root.
    chain: Path
    not_after: datetime

    def key_in_form(self, form: str) -> Path:
        """Write the key in FORM beside the PKCS#8 one (once) and return its path."""
        if form not in KEY_FORMS[self.key_type]:
            raise ValueError(f"a {self.key_type} key has no {form} form; it has {KEY_FORMS[self.key_type]}")
        target = self.key.with_name(f"{self.name}.{form}.key")
        if not target.exists():
            convert_key(self.key, target, form)
        return target


class CertificateAuthority:
    """A root CA, or an intermediate CA under PARENT, kept in DIRECTORY.

    ``certificate`` is the CA's own certificate. ``chain`` is that
    certificate followed by its parents' certificates below the root, which
    is what a leaf's chain file appends.
    """

    def __init__(self, directory: Path, name: str, key_type: str = "rsa",
                 parent: "CertificateAuthority | None" = None):
        self.directory = directory
        self.name = name
        self.key_type = key_type
        self.parent = parent
        self.key = directory / "ca.key"
        self.certificate = directory / "ca.crt"
        self.config = directory / "openssl.cnf"

    @property
    def subject(self) -> str:
        return f"/O={ORGANIZATION}/CN={self.name}"

    @property
    def intermediates(self) -> list[Path]:
        """Certificates a server sends after its leaf: this CA and its parents, without the root."""
        if self.parent is None:
            return []
        return [self.certificate, *self.parent.intermediates]

    def create(self) -> "CertificateAuthority":
        """Generate the key and the certificate: self-signed, or signed by the parent."""
        (self.directory / "issued").mkdir(parents=True, exist_ok=True)
        (self.directory / "index.txt").write_text("")
        self.config.write_text(CA_CONFIG.format(directory=self.directory))
        generate_key(self.key, self.key_type)

        if self.parent is None:
            run_openssl([
                "req", "-x509", "-new", "-key", str(self.key), "-subj", self.subject,
                "-days", str(VALIDITY_DAYS), "-config", str(self.config), "-extensions", "root_ca",
                "-out", str(self.certificate),
            ])
            return self

        request = self.directory / "ca.csr"
        run_openssl(["req", "-new", "-key", str(self.key), "-subj", self.subject,
                     "-config", str(self.config), "-out", str(request)])
        extensions = self.parent.config  # the parent's configuration has the intermediate_ca section
        self.parent.sign(request, self.certificate, extensions, "intermediate_ca")
        return self

    def sign(self, request: Path, output: Path, extension_file: Path, extension_section: str,
             not_before: datetime | None = None, not_after: datetime | None = None) -> None:
        """Sign the certificate request REQUEST into OUTPUT with the given extensions and dates."""
        args = [
            "ca", "-batch", "-notext", "-config", str(self.config),
            "-cert", str(self.certificate), "-keyfile", str(self.key),
            "-in", str(request), "-out", str(output),
            "-extfile", str(extension_file), "-extensions", extension_section,
        ]
        if not_before is not None:
            args += ["-startdate", openssl_time(not_before)]
        if not_after is not None:
            args += ["-enddate", openssl_time(not_after)]
        else:
            args += ["-days", str(VALIDITY_DAYS)]
        run_openssl(args)

    def issue(self, name: str, key_type: str = "rsa", usage: str = "server",
              dns_names: tuple[str, ...] = (), ip_addresses: tuple[str, ...] = (),
              not_before: datetime | None = None, not_after: datetime | None = None) -> IssuedCertificate:
        """Issue a leaf certificate NAME for USAGE ("server" or "client") with the given names and dates.

        Without NOT_AFTER the certificate is valid for VALIDITY_DAYS from now.
        The subject's common name is NAME; verifiers ignore it and match only
        the subject alternative names.
        """
        if usage not in ("server", "client"):
            raise ValueError(f"unknown certificate usage {usage!r}; expected server or client")
        leaf_directory = self.directory / "leaves"
        leaf_directory.mkdir(exist_ok=True)
        key = generate_key(leaf_directory / f"{name}.key", key_type)
        request = leaf_directory / f"{name}.csr"
        certificate = leaf_directory / f"{name}.crt"
        run_openssl(["req", "-new", "-key", str(key), "-subj", f"/O={ORGANIZATION}/CN={name}",
                     "-config", str(self.config), "-out", str(request)])

        # RSA keys may encipher the TLS 1.2 key exchange; ECDSA and Ed25519 keys only sign.
        key_usage = "digitalSignature, keyEncipherment" if key_type == "rsa" else "digitalSignature"
        lines = [
            "[ leaf ]",
            "basicConstraints = critical, CA:FALSE",
            f"keyUsage = critical, {key_usage}",
            f"extendedKeyUsage = {'serverAuth' if usage == 'server' else 'clientAuth'}",
            "subjectKeyIdentifier = hash",
            "authorityKeyIdentifier = keyid:always",
        ]
        alternative_names = [f"DNS:{dns}" for dns in dns_names] + [f"IP:{ip}" for ip in ip_addresses]
        if alternative_names:
            lines.append(f"subjectAltName = {', '.join(alternative_names)}")
        extension_file = leaf_directory / f"{name}.ext"
        extension_file.write_text("\n".join(lines) + "\n")
        self.sign(request, certificate, extension_file, "leaf", not_before, not_after)

        chain = leaf_directory / f"{name}.chain.pem"
        chain.write_text("".join(path.read_text() for path in [certificate, *self.intermediates]))
        return IssuedCertificate(
            name=name,
            key_type=key_type,
            certificate=certificate,
            key=key,
            chain=chain,
            not_after=read_not_after(certificate),
        )


def read_not_after(certificate: Path) -> datetime:
    """Return the notAfter date of CERTIFICATE, as ``openssl x509 -enddate`` prints it."""
    output = run_openssl(["x509", "-in", str(certificate), "-noout", "-enddate", "-dateopt", "iso_8601"])
    # The output is "notAfter=2024-05-01 12:00:00Z".
    value = output.strip().split("=", 1)[1]
    return datetime.strptime(value, "%Y-%m-%d %H:%M:%SZ").replace(tzinfo=timezone.utc)


def expired_window(now: datetime | None = None) -> tuple[datetime, datetime]:
    """Return (not_before, not_after) for a certificate that expired a day ago, to the second."""
    now = (now or datetime.now(timezone.utc)).replace(microsecond=0)
    return now - timedelta(days=3), now - timedelta(days=1)

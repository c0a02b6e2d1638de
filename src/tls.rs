//! TLS to Vault: the trust store, the client certificate, the name to
//! verify, and failures explained in plain words.
//!
//! ureq's own rustls setup cannot verify a name other than the URL's host
//! (`--tls-server-name`) nor report which roots it used, so Vault requests go
//! through the connector here, which builds the rustls configuration
//! itself and wraps the TCP transport that ureq hands it.
//!
//! NOTE: the connector uses ureq's `unversioned` transport API, which may
//! change in any ureq release; Cargo.toml pins ureq to one version.

use std::fmt;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, Connector, Either, LazyBuffers, NextTimeout, Transport,
    TransportAdapter,
};

use crate::error::{Error, Result};
use crate::exit::Status;
use crate::log::Log;
use crate::sigv4::AmzDate;

/// CA bundles of the common distributions, tried in order when neither
/// `SSL_CERT_FILE` nor `SSL_CERT_DIR` is set.
const SYSTEM_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt", // Debian, Ubuntu, Alpine, Gentoo
    "/etc/pki/tls/certs/ca-bundle.crt",   // RHEL, Fedora, Amazon Linux
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem", // RHEL 7 and later
    "/etc/ssl/ca-bundle.pem",             // SUSE
    "/etc/ssl/cert.pem",                  // Alpine, macOS, BSD
];

/// TLS settings from the command line.
#[derive(Clone, Debug, Default)]
pub struct TlsOptions {
    /// `--ca-cert`: PEM bundle that replaces the default roots.
    pub ca_cert: Option<PathBuf>,
    /// `--ca-path`: directory of PEM files that replaces the default roots.
    pub ca_path: Option<PathBuf>,
    /// `--client-cert`: PEM certificate chain to present.
    pub client_cert: Option<PathBuf>,
    /// `--client-key`: PEM private key of the client certificate.
    pub client_key: Option<PathBuf>,
    /// `--tls-server-name`: name to verify and send as SNI.
    pub server_name: Option<String>,
    /// `--tls-skip-verify`: accept any server certificate.
    pub skip_verify: bool,
}

/// Records whether any server asked for a client certificate during this
/// run, so that a connection closed right after the handshake can be
/// explained: a TLS 1.3 server rejects a missing or untrusted certificate
/// only after the client considers the handshake done, and its alert is
/// often lost behind the reset connection.
#[derive(Debug)]
struct RecordingResolver {
    /// The resolver rustls would have used.
    inner: Arc<dyn rustls::client::ResolvesClientCert>,
    /// Set when a server sent a certificate request.
    requested: Arc<AtomicBool>,
}

impl rustls::client::ResolvesClientCert for RecordingResolver {
    fn resolve(
        &self,
        root_hint_subjects: &[&[u8]],
        sigschemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        self.requested.store(true, Ordering::Relaxed);
        self.inner.resolve(root_hint_subjects, sigschemes)
    }

    fn has_certs(&self) -> bool {
        self.inner.has_certs()
    }
}

/// A ready rustls configuration and what it was built from.
pub struct TlsSetup {
    /// Set when a server asked for a client certificate.
    client_cert_requested: Arc<AtomicBool>,
    /// True when a client certificate is configured.
    has_client_cert: bool,
    /// The rustls client configuration shared by all connections.
    config: Arc<ClientConfig>,
    /// The name to verify instead of the URL's host, if any.
    server_name: Option<ServerName<'static>>,
    /// Description of the trusted roots, for messages.
    pub trust: String,
}

impl fmt::Debug for TlsSetup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsSetup")
            .field("trust", &self.trust)
            .finish()
    }
}

/// Builds the TLS configuration for Vault requests.
///
/// # Errors
///
/// A usage error naming the file when a CA bundle contains no certificate, a
/// client certificate or key cannot be read or parsed, or the key does not
/// match the certificate.
pub fn setup(
    options: &TlsOptions,
    env: &dyn Fn(&str) -> Option<String>,
    log: Log,
) -> Result<TlsSetup> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(rustls::ALL_VERSIONS)
        .map_err(|err| Error::new(Status::Internal, format!("TLS setup failed: {err}")))?;

    let (builder, trust) = if options.skip_verify {
        log.warn(
            "--tls-skip-verify is set: the Vault server's certificate is not checked, so anyone on the network path can impersonate Vault and steal the token",
        );
        let verifier = Arc::new(NoVerification(provider.clone()));
        (
            builder
                .dangerous()
                .with_custom_certificate_verifier(verifier),
            "none (--tls-skip-verify)".to_owned(),
        )
    } else {
        let (roots, trust) = load_roots(options, env, log)?;
        let verifier =
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .map_err(|err| {
                    Error::usage(format!("cannot use the trusted roots ({trust}): {err}"))
                })?;
        (builder.with_webpki_verifier(verifier), trust)
    };

    let config = match (&options.client_cert, &options.client_key) {
        (None, None) => builder.with_no_client_auth(),
        (Some(cert_path), Some(key_path)) => {
            let chain = read_certificates(cert_path, "--client-cert")?;
            let key = read_private_key(key_path)?;
            builder.with_client_auth_cert(chain, key).map_err(|err| {
                let why = match err {
                    rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => {
                        "the key does not match the certificate".to_owned()
                    }
                    other => other.to_string(),
                };
                Error::usage(format!(
                    "cannot use client certificate {} with key {}: {why}",
                    cert_path.display(),
                    key_path.display()
                ))
            })?
        }
        (Some(_), None) => {
            return Err(Error::usage(
                "--client-cert needs --client-key (or VAULT_CLIENT_KEY)",
            ))
        }
        (None, Some(_)) => {
            return Err(Error::usage(
                "--client-key needs --client-cert (or VAULT_CLIENT_CERT)",
            ))
        }
    };

    let server_name = match &options.server_name {
        None => None,
        Some(name) => Some(ServerName::try_from(name.clone()).map_err(|_| {
            Error::usage(format!(
                "invalid --tls-server-name {name:?}: not a DNS name or IP address"
            ))
        })?),
    };
    let requested = Arc::new(AtomicBool::new(false));
    let mut config = config;
    config.client_auth_cert_resolver = Arc::new(RecordingResolver {
        inner: config.client_auth_cert_resolver.clone(),
        requested: requested.clone(),
    });
    Ok(TlsSetup {
        config: Arc::new(config),
        server_name,
        trust,
        client_cert_requested: requested,
        has_client_cert: options.client_cert.is_some(),
    })
}

/// Loads the trusted roots and describes them.
fn load_roots(
    options: &TlsOptions,
    env: &dyn Fn(&str) -> Option<String>,
    log: Log,
) -> Result<(RootCertStore, String)> {
    let mut roots = RootCertStore::empty();

    // Explicit roots replace the defaults, as in the Vault CLI.
    if options.ca_cert.is_some() || options.ca_path.is_some() {
        let mut sources = Vec::new();
        if let Some(file) = &options.ca_cert {
            add_all(&mut roots, read_certificates(file, "--ca-cert")?);
            sources.push(format!("--ca-cert {}", file.display()));
        }
        if let Some(dir) = &options.ca_path {
            let certificates = read_directory(dir)?;
            if certificates.is_empty() {
                return Err(Error::usage(format!(
                    "--ca-path {} contains no PEM certificate",
                    dir.display()
                )));
            }
            add_all(&mut roots, certificates);
            sources.push(format!("--ca-path {}", dir.display()));
        }
        return Ok((roots, sources.join(" and ")));
    }

    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let non_empty = |name: &str| env(name).filter(|v| !v.is_empty());
    let system = if let Some(file) = non_empty("SSL_CERT_FILE") {
        let file = PathBuf::from(file);
        add_all(&mut roots, read_certificates(&file, "SSL_CERT_FILE")?);
        Some(format!("SSL_CERT_FILE {}", file.display()))
    } else if let Some(dirs) = non_empty("SSL_CERT_DIR") {
        let mut count = 0;
        for dir in dirs.split(':').filter(|d| !d.is_empty()) {
            let certificates = read_directory(Path::new(dir))?;
            count += certificates.len();
            add_all(&mut roots, certificates);
        }
        if count == 0 {
            return Err(Error::usage(format!(
                "SSL_CERT_DIR {dirs} contains no PEM certificate"
            )));
        }
        Some(format!("SSL_CERT_DIR {dirs}"))
    } else {
        SYSTEM_BUNDLES
            .iter()
            .map(Path::new)
            .filter(|p| p.is_file())
            .find_map(|path| match read_certificates(path, "system bundle") {
                Ok(certificates) => {
                    add_all(&mut roots, certificates);
                    Some(format!("system bundle {}", path.display()))
                }
                Err(err) => {
                    log.step(format!("TLS: skipping {}: {err}", path.display()));
                    None
                }
            })
    };
    let trust = match system {
        Some(system) => format!("{system} and the built-in webpki roots"),
        None => "the built-in webpki roots (no system CA bundle found)".to_owned(),
    };
    Ok((roots, trust))
}

fn add_all(roots: &mut RootCertStore, certificates: Vec<CertificateDer<'static>>) {
    // Entries rustls cannot use (odd extensions, bad encodings) are skipped,
    // as browsers and curl skip them in system bundles.
    let _ = roots.add_parsable_certificates(certificates);
}

/// Reads every PEM certificate in `path`; comments and other blocks are
/// ignored.
///
/// # Errors
///
/// A usage error naming `path` and `source` when it cannot be read or
/// contains no certificate.
fn read_certificates(path: &Path, source: &str) -> Result<Vec<CertificateDer<'static>>> {
    let bytes = std::fs::read(path)
        .map_err(|err| Error::file(format!("cannot read {source} {}: {err}", path.display())))?;
    let certificates: Vec<_> = CertificateDer::pem_slice_iter(&bytes)
        .filter_map(|c| c.ok())
        .collect();
    if certificates.is_empty() {
        return Err(Error::usage(format!(
            "{source} {} contains no PEM certificate",
            path.display()
        )));
    }
    Ok(certificates)
}

/// Reads the PEM certificates of every file in `dir` (OpenSSL's hashed
/// directory layout works, as do plain `.pem` and `.crt` files).
fn read_directory(dir: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let entries = std::fs::read_dir(dir)
        .map_err(|err| Error::file(format!("cannot read directory {}: {err}", dir.display())))?;
    let mut certificates = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if !path.is_file() {
            continue;
        }
        if let Ok(bytes) = std::fs::read(&path) {
            certificates.extend(CertificateDer::pem_slice_iter(&bytes).filter_map(|c| c.ok()));
        }
    }
    Ok(certificates)
}

/// Reads a PEM private key: PKCS#8, PKCS#1 (RSA) or SEC1 (EC).
fn read_private_key(path: &Path) -> Result<PrivateKeyDer<'static>> {
    let bytes = std::fs::read(path).map_err(|err| {
        Error::file(format!(
            "cannot read --client-key {}: {err}",
            path.display()
        ))
    })?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|_| {
        Error::usage(format!(
            "--client-key {} contains no PEM private key (PKCS#8, PKCS#1 or SEC1); is it encrypted?",
            path.display()
        ))
    })
}

/// The connector that adds TLS to Vault connections.
#[derive(Clone)]
pub struct TlsConnector {
    /// Shared configuration.
    setup: Arc<TlsSetup>,
    /// Progress output.
    log: Log,
}

impl fmt::Debug for TlsConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConnector")
            .field("trust", &self.setup.trust)
            .finish()
    }
}

impl TlsConnector {
    /// Creates the connector.
    pub fn new(setup: TlsSetup, log: Log) -> TlsConnector {
        TlsConnector {
            setup: Arc::new(setup),
            log,
        }
    }
}

/// A TLS failure explained for the user; `http::classify` recognises it.
#[derive(Debug)]
pub struct TlsFailure(pub String);

impl fmt::Display for TlsFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TlsFailure {}

impl<In: Transport> Connector<In> for TlsConnector {
    type Out = Either<In, TlsTransport>;

    fn connect(
        &self,
        details: &ConnectionDetails,
        chained: Option<In>,
    ) -> std::result::Result<Option<Self::Out>, ureq::Error> {
        let Some(transport) = chained else {
            return Ok(None);
        };
        if !details.needs_tls() || transport.is_tls() {
            return Ok(Some(Either::A(transport)));
        }

        let host = details
            .uri
            .host()
            .unwrap_or_default()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let name = match &self.setup.server_name {
            Some(name) => name.clone(),
            None => ServerName::try_from(host.clone())
                .map_err(|_| ureq::Error::Tls("the Vault host is not a valid TLS server name"))?,
        };
        let shown_name = name.to_str().into_owned();

        let mut connection =
            ClientConnection::new(self.setup.config.clone(), name).map_err(|err| {
                ureq::Error::Io(std::io::Error::other(TlsFailure(format!(
                    "TLS with {host} failed: {err}"
                ))))
            })?;
        let mut socket = TransportAdapter::new(transport.boxed(), details.current_time.clone());
        socket.set_timeout(details.timeout);
        if let Err(err) = connection.complete_io(&mut socket) {
            return Err(explain_handshake_error(
                err,
                &mut connection,
                &mut socket,
                &host,
                &self.setup.trust,
            ));
        }

        let version = connection
            .protocol_version()
            .map_or("unknown".to_owned(), |v| format!("{v:?}"));
        let subject = connection
            .peer_certificates()
            .and_then(|chain| chain.first())
            .and_then(|leaf| subject_summary(leaf))
            .unwrap_or_else(|| "(unknown)".to_owned());
        self.log.step(format!("TLS: {version} with {host} (verified as {shown_name}), server certificate subject {subject}"));

        let buffers = LazyBuffers::new(
            details.config.input_buffer_size(),
            details.config.output_buffer_size(),
        );
        Ok(Some(Either::B(TlsTransport {
            buffers,
            stream: StreamOwned::new(connection, socket),
            host,
            client_cert_requested: self.setup.client_cert_requested.clone(),
            client_cert_sent: self.setup.has_client_cert,
        })))
    }
}

/// Turns a handshake error into a message that names the server, the
/// reason in plain words and what to do. A connection the server closed or
/// reset mid-handshake is checked for an alert the server sent first,
/// because the alert gives the reason.
fn explain_handshake_error(
    err: std::io::Error,
    connection: &mut ClientConnection,
    socket: &mut TransportAdapter,
    host: &str,
    trust: &str,
) -> ureq::Error {
    if err.kind() == std::io::ErrorKind::TimedOut {
        return ureq::Error::Io(err);
    }
    let tls = err
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .cloned();
    let tls = match tls {
        Some(tls) => tls,
        None => match pending_alert(connection, socket) {
            Some(alert) => alert,
            None => return ureq::Error::Io(err),
        },
    };
    tls_failure(host, &explain(&tls, trust))
}

/// Wraps an explained TLS failure as the I/O error ureq passes on, which
/// `http::classify` recognises.
fn tls_failure(host: &str, why: &str) -> ureq::Error {
    ureq::Error::Io(std::io::Error::other(TlsFailure(format!(
        "TLS with {host} failed: {why}"
    ))))
}

/// Reads what the server sent before closing, returning the TLS error it
/// causes, such as the alert of a server that requires a client
/// certificate. Best effort: a reset connection may have lost the records.
fn pending_alert(
    connection: &mut ClientConnection,
    socket: &mut dyn Read,
) -> Option<rustls::Error> {
    for _ in 0..4 {
        match connection.read_tls(socket) {
            Ok(0) | Err(_) => return None,
            Ok(_) => {}
        }
        if let Err(err) = connection.process_new_packets() {
            return Some(err);
        }
    }
    None
}

/// Tells whether an I/O error means the peer closed or reset the connection.
fn is_closed(err: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    matches!(
        err.kind(),
        ErrorKind::BrokenPipe
            | ErrorKind::ConnectionReset
            | ErrorKind::ConnectionAborted
            | ErrorKind::UnexpectedEof
    )
}

/// Explains a rustls error in plain words, with what to do; `trust`
/// describes the trusted roots.
pub fn explain(tls: &rustls::Error, trust: &str) -> String {
    match tls {
        rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer) => format!(
            "its certificate is not signed by a trusted CA (trusted: {trust}); pass the CA with --ca-cert or VAULT_CACERT"
        ),
        rustls::Error::InvalidCertificate(CertificateError::NotValidForNameContext { expected, presented }) => {
            let names: Vec<String> = presented.iter().map(|name| plain_name(name)).collect();
            format!(
                "its certificate is not valid for the name \"{}\"; it names {}; use a matching --server host or --tls-server-name",
                expected.to_str(),
                if names.is_empty() { "no DNS or IP names".to_owned() } else { names.join(", ") }
            )
        }
        rustls::Error::InvalidCertificate(CertificateError::ExpiredContext { time, not_after }) => format!(
            "its certificate expired at {} (now {}); renew it, or check this machine's clock",
            utc(*not_after),
            utc(*time)
        ),
        rustls::Error::InvalidCertificate(CertificateError::NotValidYetContext { time, not_before }) => format!(
            "its certificate is not valid before {} (now {}); check this machine's clock",
            utc(*not_before),
            utc(*time)
        ),
        rustls::Error::AlertReceived(rustls::AlertDescription::CertificateRequired) => {
            "the server requires a client certificate; pass --client-cert and --client-key".to_owned()
        }
        rustls::Error::AlertReceived(rustls::AlertDescription::UnknownCA | rustls::AlertDescription::BadCertificate) => {
            "the server rejected our client certificate, or requires one; check --client-cert and --client-key".to_owned()
        }
        rustls::Error::AlertReceived(rustls::AlertDescription::HandshakeFailure) => {
            "the server refused the handshake (no common TLS version or cipher suite, or a client certificate is required)".to_owned()
        }
        rustls::Error::InvalidMessage(_) => {
            "the server did not answer with TLS (is it plain HTTP? then use http:// in --server)".to_owned()
        }
        other => other.to_string(),
    }
}

/// Returns a certificate name without debug decoration: rustls presents
/// some names as `DnsName("vault.example.com")` or `IpAddress(127.0.0.1)`.
fn plain_name(name: &str) -> String {
    let inner = match (name.find('('), name.strip_suffix(')')) {
        (Some(open), Some(body)) => &body[open + 1..],
        _ => name,
    };
    inner.trim_matches('"').to_owned()
}

fn utc(time: UnixTime) -> String {
    let stamp = AmzDate::from_unix_seconds(time.as_secs());
    let s = stamp.amz_date();
    format!(
        "{}-{}-{} {}:{}:{} UTC",
        &s[0..4],
        &s[4..6],
        &s[6..8],
        &s[9..11],
        &s[11..13],
        &s[13..15]
    )
}

/// A TLS stream as a ureq transport.
pub struct TlsTransport {
    /// ureq's read and write buffers.
    buffers: LazyBuffers,
    /// The rustls connection over the chained transport.
    stream: StreamOwned<ClientConnection, TransportAdapter>,
    /// The server's host, for messages.
    host: String,
    /// Whether a server asked for a client certificate during this run.
    client_cert_requested: Arc<AtomicBool>,
    /// Whether we have a client certificate to present.
    client_cert_sent: bool,
}

impl fmt::Debug for TlsTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsTransport").finish()
    }
}

impl TlsTransport {
    /// Explains a connection the server closed after asking for a client
    /// certificate; passes any other error on unchanged.
    fn explain_closed(&self, err: std::io::Error) -> ureq::Error {
        if !is_closed(&err) || !self.client_cert_requested.load(Ordering::Relaxed) {
            return err.into();
        }
        let why = if self.client_cert_sent {
            "the server rejected our client certificate (it closed the connection after asking for one); check --client-cert and --client-key"
        } else {
            "the server requires a client certificate (it closed the connection after asking for one); pass --client-cert and --client-key"
        };
        tls_failure(&self.host, why)
    }
}

impl Transport for TlsTransport {
    fn buffers(&mut self) -> &mut dyn Buffers {
        &mut self.buffers
    }

    fn transmit_output(
        &mut self,
        amount: usize,
        timeout: NextTimeout,
    ) -> std::result::Result<(), ureq::Error> {
        self.stream.get_mut().set_timeout(timeout);
        let output = &self.buffers.output()[..amount];
        if let Err(err) = self.stream.write_all(output) {
            // A server that rejects the client certificate after a TLS 1.3
            // handshake sends an alert and closes, and the alert gives the reason.
            let StreamOwned { conn, sock } = &mut self.stream;
            return Err(match pending_alert(conn, sock) {
                Some(alert) => tls_failure(&self.host, &explain(&alert, "the configured roots")),
                None => self.explain_closed(err),
            });
        }
        Ok(())
    }

    fn await_input(&mut self, timeout: NextTimeout) -> std::result::Result<bool, ureq::Error> {
        self.stream.get_mut().set_timeout(timeout);
        let input = self.buffers.input_append_buf();
        let amount = match self.stream.read(input) {
            Ok(amount) => amount,
            Err(err) => return Err(self.explain_closed(err)),
        };
        self.buffers.input_appended(amount);
        Ok(amount > 0)
    }

    fn is_open(&mut self) -> bool {
        self.stream.get_mut().get_mut().is_open()
    }

    fn is_tls(&self) -> bool {
        true
    }
}

/// The verifier behind `--tls-skip-verify`: accepts any certificate but
/// still checks handshake signatures, so the session key belongs to
/// the party that presented the certificate.
#[derive(Debug)]
struct NoVerification(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Summarises a certificate's subject as `CN=..., O=...` for `--verbose`.
///
/// A minimal DER walk: Certificate, then TBSCertificate, then past the
/// optional version, serial number, signature algorithm, issuer and
/// validity to the subject, whose common name and organisation are kept.
pub fn subject_summary(der: &[u8]) -> Option<String> {
    let (_, certificate, _) = read_tlv(der)?;
    let (_, mut tbs, _) = read_tlv(certificate)?;
    let (tag, _, rest) = read_tlv(tbs)?;
    if tag == 0xa0 {
        tbs = rest;
    }
    for _ in 0..4 {
        let (_, _, rest) = read_tlv(tbs)?;
        tbs = rest;
    }
    let (_, mut subject, _) = read_tlv(tbs)?;

    let mut parts = Vec::new();
    while !subject.is_empty() {
        let (_, set, rest) = read_tlv(subject)?;
        subject = rest;
        let (_, attribute, _) = read_tlv(set)?;
        let (_, oid, value) = read_tlv(attribute)?;
        let (_, value, _) = read_tlv(value)?;
        let label = match oid {
            [0x55, 0x04, 0x03] => "CN",
            [0x55, 0x04, 0x0a] => "O",
            [0x55, 0x04, 0x0b] => "OU",
            _ => continue,
        };
        parts.push(format!("{label}={}", String::from_utf8_lossy(value)));
    }
    (!parts.is_empty()).then(|| parts.join(", "))
}

/// Reads one DER tag-length-value; returns the tag, the value and the rest.
fn read_tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, mut rest) = rest.split_first()?;
    let length = if first < 0x80 {
        usize::from(first)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 || rest.len() < count {
            return None;
        }
        let (bytes, after) = rest.split_at(count);
        rest = after;
        bytes.iter().fold(0usize, |n, b| (n << 8) | usize::from(*b))
    };
    if rest.len() < length {
        return None;
    }
    let (value, rest) = rest.split_at(length);
    Some((tag, value, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tlv_reads_short_and_long_lengths() {
        assert_eq!(
            read_tlv(&[0x04, 0x02, 1, 2, 9]),
            Some((0x04, &[1u8, 2][..], &[9u8][..]))
        );
        let long: Vec<u8> = [0x04, 0x81, 0x80]
            .into_iter()
            .chain(std::iter::repeat_n(7u8, 128))
            .collect();
        assert_eq!(read_tlv(&long).map(|(_, v, _)| v.len()), Some(128));
        assert_eq!(read_tlv(&[0x04, 0x05, 1]), None);
        assert_eq!(read_tlv(&[0x04, 0x80]), None);
    }

    #[test]
    fn subject_of_webpki_style_certificate() {
        // A hand-built TBSCertificate: version, serial, algorithm, issuer,
        // validity, subject (CN=vault.test, O=Stork).
        fn tlv(tag: u8, value: &[u8]) -> Vec<u8> {
            let mut out = vec![tag, value.len() as u8];
            out.extend_from_slice(value);
            out
        }
        let attribute = |oid: &[u8], text: &str| {
            tlv(
                0x31,
                &tlv(0x30, &[tlv(0x06, oid), tlv(0x0c, text.as_bytes())].concat()),
            )
        };
        let subject = tlv(
            0x30,
            &[
                attribute(&[0x55, 0x04, 0x03], "vault.test"),
                attribute(&[0x55, 0x04, 0x0a], "Stork"),
            ]
            .concat(),
        );
        let tbs = tlv(
            0x30,
            &[
                tlv(0xa0, &tlv(0x02, &[2])),
                tlv(0x02, &[1]),
                tlv(0x30, &[]),
                tlv(0x30, &[]),
                tlv(0x30, &[]),
                subject,
            ]
            .concat(),
        );
        let certificate = tlv(0x30, &tbs);
        assert_eq!(
            subject_summary(&certificate).as_deref(),
            Some("CN=vault.test, O=Stork")
        );
        assert_eq!(subject_summary(&[0x30, 0x00]), None);
    }

    #[test]
    fn missing_ca_file_names_it() {
        let options = TlsOptions {
            ca_cert: Some(PathBuf::from("/nonexistent/ca.pem")),
            ..TlsOptions::default()
        };
        let err = setup(&options, &|_| None, Log { verbose: false }).unwrap_err();
        assert_eq!(err.status, Status::LocalFile);
        assert!(
            err.message.contains("/nonexistent/ca.pem"),
            "{}",
            err.message
        );
    }

    #[test]
    fn file_without_certificates_is_rejected() {
        let path =
            std::env::temp_dir().join(format!("vault-stork-empty-ca-{}.pem", std::process::id()));
        std::fs::write(&path, "# just a comment\n").unwrap();
        let options = TlsOptions {
            ca_cert: Some(path.clone()),
            ..TlsOptions::default()
        };
        let err = setup(&options, &|_| None, Log { verbose: false }).unwrap_err();
        assert!(
            err.message.contains("contains no PEM certificate"),
            "{}",
            err.message
        );
    }

    #[test]
    fn default_trust_includes_webpki_roots() {
        let setup = setup(&TlsOptions::default(), &|_| None, Log { verbose: false }).unwrap();
        assert!(setup.trust.contains("webpki"), "{}", setup.trust);
    }

    #[test]
    fn client_cert_without_key_is_usage_error() {
        let options = TlsOptions {
            client_cert: Some(PathBuf::from("/c.pem")),
            ..TlsOptions::default()
        };
        assert_eq!(
            setup(&options, &|_| None, Log { verbose: false })
                .unwrap_err()
                .status,
            Status::Usage
        );
    }

    #[test]
    fn names_lose_debug_decoration() {
        assert_eq!(
            plain_name("DnsName(\"vault.internal.test\")"),
            "vault.internal.test"
        );
        assert_eq!(plain_name("127.0.0.1"), "127.0.0.1");
        assert_eq!(plain_name("IpAddress(0::1)"), "0::1");
    }

    #[test]
    fn client_certificate_alert_is_explained() {
        let why = explain(
            &rustls::Error::AlertReceived(rustls::AlertDescription::CertificateRequired),
            "x",
        );
        assert!(why.contains("--client-cert"), "{why}");
    }

    #[test]
    fn utc_formatting() {
        assert_eq!(
            utc(UnixTime::since_unix_epoch(std::time::Duration::from_secs(
                0
            ))),
            "1970-01-01 00:00:00 UTC"
        );
    }
}

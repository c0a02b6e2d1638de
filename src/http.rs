//! HTTP agents for IMDS and Vault, and the translation of transport
//! failures into this tool's errors.

use std::time::Duration;

use ureq::Agent;

use ureq::unversioned::resolver::DefaultResolver;
use ureq::unversioned::transport::{ConnectProxyConnector, Connector, TcpConnector};

use crate::error::Error;
use crate::exit::Status;
use crate::log::Log;
use crate::tls::{TlsConnector, TlsFailure, TlsSetup};

/// Largest response body read from any server. Identity documents, IMDS
/// credentials and Vault login replies are a few KiB; a larger body is a
/// misbehaving server, and reading it whole could exhaust memory.
pub const MAX_BODY_BYTES: u64 = 1024 * 1024;

/// Connect timeout for IMDS, which is link-local and replies in
/// milliseconds when it is there at all.
const IMDS_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Whole-request limit for IMDS.
const IMDS_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// User-Agent sent to both servers, so their logs show who called.
const USER_AGENT: &str = concat!("vault-stork/", env!("CARGO_PKG_VERSION"));

/// Builds the agent for IMDS.
///
/// It never uses a proxy, whatever `HTTP_PROXY` contains: a proxy would see the
/// instance's identity and credentials, and IMDS is only reachable from the
/// instance itself. It follows no redirects, because IMDS sends none.
pub fn imds_agent() -> Agent {
    Agent::config_builder()
        .proxy(None)
        .max_redirects(0)
        .http_status_as_error(false)
        .user_agent(USER_AGENT)
        .timeout_connect(Some(IMDS_CONNECT_TIMEOUT))
        .timeout_global(Some(IMDS_REQUEST_TIMEOUT))
        .build()
        .new_agent()
}

/// Builds the agent for Vault, with `timeout` as the whole-request limit,
/// TLS from `tls` and the proxy at `proxy` (`None` for direct).
///
/// Redirects are not followed here: [`crate::vault`] follows them itself,
/// keeping the method and body and refusing https-to-http downgrades.
///
/// # Errors
///
/// A usage error when ureq rejects the proxy URL.
pub fn vault_agent(
    timeout: Duration,
    tls: TlsSetup,
    proxy: Option<&str>,
    log: Log,
) -> Result<Agent, Error> {
    let proxy = match proxy {
        Some(url) => Some(ureq::Proxy::new(url).map_err(|_| {
            Error::new(
                Status::Usage,
                format!("invalid proxy URL {}", crate::proxy::redact(url)),
            )
        })?),
        None => None,
    };
    let config = Agent::config_builder()
        .proxy(proxy)
        .max_redirects(0)
        .http_status_as_error(false)
        .user_agent(USER_AGENT)
        .timeout_connect(Some(timeout.min(Duration::from_secs(10))))
        .timeout_global(Some(timeout))
        .build();
    let connector =
        ().chain(ConnectProxyConnector::default())
            .chain(TcpConnector::default())
            .chain(TlsConnector::new(tls, log));
    Ok(Agent::with_parts(
        config,
        connector,
        DefaultResolver::default(),
    ))
}

/// A response read in full.
pub struct Reply {
    /// HTTP status code.
    pub status: u16,
    /// Body, decoded as UTF-8 with invalid bytes replaced.
    pub body: String,
    /// `Location` header, for redirect messages.
    pub location: Option<String>,
}

/// Reads a response's status and body, up to [`MAX_BODY_BYTES`].
///
/// # Errors
///
/// The transport error, including `BodyExceedsLimit` for an oversized body.
pub fn read_reply(mut response: ureq::http::Response<ureq::Body>) -> Result<Reply, ureq::Error> {
    let status = response.status().as_u16();
    let location = response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let bytes = response
        .body_mut()
        .with_config()
        .limit(MAX_BODY_BYTES)
        .read_to_vec()?;
    Ok(Reply {
        status,
        body: String::from_utf8_lossy(&bytes).into_owned(),
        location,
    })
}

/// The kind of a transport failure, before any HTTP status was received.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// The TLS handshake or certificate verification failed.
    Tls,
    /// A connect, read or whole-request timeout expired.
    Timeout,
    /// Anything else: refused, reset, unresolvable host, malformed reply.
    Connection,
    /// The request could not be built from the given values (a header
    /// value or URL that HTTP does not allow), so retrying cannot help.
    Invalid,
}

/// Classifies a ureq error and describes it in one line.
pub fn classify(err: &ureq::Error) -> (Failure, String) {
    match err {
        ureq::Error::Tls(what) => (Failure::Tls, (*what).to_owned()),
        ureq::Error::Timeout(which) => (Failure::Timeout, format!("timed out ({which})")),
        ureq::Error::HostNotFound => (Failure::Connection, "host name not found".to_owned()),
        ureq::Error::BodyExceedsLimit(limit) => (
            Failure::Connection,
            format!("response body larger than {limit} bytes"),
        ),
        ureq::Error::Io(io) => {
            // TLS handshake failures arrive as the socket's I/O error: ours,
            // explained by the TLS connector, or rustls's own.
            let explained = io
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<TlsFailure>());
            let tls = io
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<rustls::Error>());
            match (explained, tls) {
                (Some(failure), _) => (Failure::Tls, failure.0.clone()),
                (None, Some(tls)) => (
                    Failure::Tls,
                    format!(
                        "TLS failed: {}",
                        crate::tls::explain(tls, "the configured roots")
                    ),
                ),
                (None, None) if io.kind() == std::io::ErrorKind::TimedOut => {
                    (Failure::Timeout, io.to_string())
                }
                (None, None) => (Failure::Connection, io.to_string()),
            }
        }
        ureq::Error::Http(_) | ureq::Error::BadUri(_) => (Failure::Invalid, err.to_string()),
        other => (Failure::Connection, other.to_string()),
    }
}

/// Maps a transport failure while talking to Vault to an exit status.
pub fn vault_status(failure: Failure) -> Status {
    match failure {
        Failure::Tls => Status::Tls,
        Failure::Timeout | Failure::Connection => Status::VaultUnavailable,
        Failure::Invalid => Status::Usage,
    }
}

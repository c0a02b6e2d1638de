//! The EC2 instance metadata service (IMDS) client.
//!
//! IMDSv2 is tried first: a `PUT /latest/api/token` yields a session token
//! sent with every GET. The fallback to IMDSv1 happens only where the AWS
//! SDKs fall back: the PUT returns 403, 404 or 405, or it times out. A
//! timeout is usually a container behind the instance's default hop limit of
//! 1, where the PUT's reply is dropped one hop short.

use std::time::Duration;

use ureq::Agent;

use crate::error::{Error, Result};
use crate::exit::Status;
use crate::http::{self, Failure};
use crate::log::Log;
use crate::retry::Retry;

/// The IPv4 IMDS address, used when no endpoint is configured.
pub const DEFAULT_ENDPOINT: &str = "http://169.254.169.254";

/// The IPv6 IMDS address (Nitro instances), selected with
/// `AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE=IPv6`.
pub const DEFAULT_ENDPOINT_IPV6: &str = "http://[fd00:ec2::254]";

/// Lifetime asked for the IMDSv2 session token, in seconds. One run needs a
/// few seconds; a short token limits what a leaked one is worth.
const TOKEN_TTL_SECONDS: &str = "300";

/// Limit on the token request. Shorter than other IMDS requests because a
/// timeout here has a usual cause, a hop limit of 1 dropping the reply, and
/// the fallback to IMDSv1 should not wait long.
const TOKEN_REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// The IMDS protocol version to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImdsVersion {
    /// IMDSv2, falling back to IMDSv1 where the AWS SDKs do.
    Auto,
    /// IMDSv1 only: plain GETs.
    V1,
    /// IMDSv2 only: fail if no session token can be had.
    V2,
}

impl ImdsVersion {
    /// Parses `auto`, `v1` or `v2`.
    pub fn parse(value: &str) -> Option<ImdsVersion> {
        match value {
            "auto" => Some(ImdsVersion::Auto),
            "v1" => Some(ImdsVersion::V1),
            "v2" => Some(ImdsVersion::V2),
            _ => None,
        }
    }
}

/// Validates an IMDS endpoint URL and strips its trailing slash.
///
/// # Errors
///
/// A description of what is wrong, for the caller to attach to the flag.
pub fn normalize_endpoint(value: &str) -> std::result::Result<String, String> {
    let trimmed = value.trim_end_matches('/');
    let uri: ureq::http::Uri = trimmed
        .parse()
        .map_err(|_| "expected a URL such as http://169.254.169.254".to_owned())?;
    // IMDS speaks plain HTTP on a link-local address; this build has no TLS
    // for it.
    if uri.scheme_str() != Some("http") {
        return Err("expected a URL starting with http://, as IMDS serves plain HTTP".to_owned());
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err("the URL has no host".to_owned());
    }
    if uri.path() != "/" && !uri.path().is_empty() || uri.query().is_some() {
        return Err("expected only scheme, host and port, without a path".to_owned());
    }
    Ok(trimmed.to_owned())
}

/// A session with IMDS: the endpoint, and the IMDSv2 token when there is one.
pub struct Imds {
    /// Agent that never uses a proxy.
    agent: Agent,
    /// Base URL without a trailing slash.
    endpoint: String,
    /// IMDSv2 session token; `None` when speaking IMDSv1.
    token: Option<String>,
    /// Retry settings and deadline of the run.
    retry: Retry,
    /// Progress output.
    log: Log,
}

/// The result of the IMDSv2 token request.
enum TokenOutcome {
    /// A session token.
    Token(String),
    /// IMDS or the network declined IMDSv2 in a way the AWS SDKs treat as
    /// "use IMDSv1". The string describes how.
    FallBack(String),
}

impl Imds {
    /// Opens a session, fetching an IMDSv2 token unless `version` is v1.
    ///
    /// # Errors
    ///
    /// An IMDS error when `disabled` is set (`AWS_EC2_METADATA_DISABLED`),
    /// when IMDS cannot be reached before the retry deadline, or when
    /// IMDSv2 was required and failed.
    pub fn connect(
        endpoint: &str,
        version: ImdsVersion,
        disabled: bool,
        retry: Retry,
        log: Log,
    ) -> Result<Imds> {
        if disabled {
            return Err(Error::imds(
                "IMDS is disabled by AWS_EC2_METADATA_DISABLED, but this login needs it; unset the variable, or pass --pkcs7 (ec2) or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (iam)",
            ));
        }
        let mut imds = Imds {
            agent: http::imds_agent(),
            endpoint: endpoint.to_owned(),
            token: None,
            retry,
            log,
        };
        if version == ImdsVersion::V1 {
            log.step(format!("IMDS {endpoint}: using IMDSv1 as requested"));
            return Ok(imds);
        }

        match retry.run("IMDS token request", log, || imds.request_token(version))? {
            TokenOutcome::Token(token) => {
                log.step(format!(
                    "IMDS {endpoint}: using IMDSv2 (session token obtained)"
                ));
                imds.token = Some(token);
            }
            TokenOutcome::FallBack(why) => {
                log.step(format!("IMDS {endpoint}: {why}; falling back to IMDSv1"));
            }
        }
        Ok(imds)
    }

    /// Sends one `PUT /latest/api/token`.
    fn request_token(&self, version: ImdsVersion) -> Result<TokenOutcome> {
        let endpoint = &self.endpoint;
        let result = self
            .agent
            .put(format!("{endpoint}/latest/api/token"))
            .header("X-aws-ec2-metadata-token-ttl-seconds", TOKEN_TTL_SECONDS)
            .config()
            .timeout_global(Some(TOKEN_REQUEST_TIMEOUT))
            .build()
            .send_empty()
            .and_then(http::read_reply);
        let reply = match result {
            Ok(reply) => reply,
            Err(err) => {
                let (failure, reason) = http::classify(&err);
                if failure == Failure::Timeout && version == ImdsVersion::Auto {
                    self.log.warn(format!(
                        "IMDS {endpoint}: the IMDSv2 token request {reason}; using IMDSv1 (in a container this usually means the instance's metadata hop limit is 1)"
                    ));
                    return Ok(TokenOutcome::FallBack(format!("token request {reason}")));
                }
                let hint = if failure == Failure::Timeout {
                    "; in a container, raise the instance's metadata hop limit to 2"
                } else {
                    "; check --imds-endpoint, or that this runs on an EC2 instance"
                };
                return Err(Error::transient(
                    Status::ImdsUnavailable,
                    format!("IMDS {endpoint}: PUT /latest/api/token failed: {reason}{hint}"),
                ));
            }
        };

        match reply.status {
            200 if !reply.body.trim().is_empty() => {
                Ok(TokenOutcome::Token(reply.body.trim().to_owned()))
            }
            403..=405 if version == ImdsVersion::Auto => Ok(TokenOutcome::FallBack(format!(
                "token request answered HTTP {}",
                reply.status
            ))),
            status => {
                let v2_only = if version == ImdsVersion::V2 {
                    " and --imds-version v2 forbids falling back to IMDSv1"
                } else {
                    ""
                };
                let message = format!(
                    "IMDS {endpoint}: PUT /latest/api/token answered HTTP {status}{v2_only}"
                );
                Err(imds_status_error(status, message))
            }
        }
    }

    /// Returns which protocol the session speaks, for log lines.
    pub fn version_name(&self) -> &'static str {
        if self.token.is_some() {
            "IMDSv2"
        } else {
            "IMDSv1"
        }
    }

    /// GETs `path` (such as `/latest/meta-data/iam/info`) and returns the body.
    ///
    /// # Errors
    ///
    /// An IMDS error naming the path and the status or transport failure.
    pub fn get(&self, path: &str) -> Result<String> {
        self.get_optional(path)?.ok_or_else(|| {
            Error::imds(format!(
                "IMDS {}: GET {path} answered HTTP 404 (not found)",
                self.endpoint
            ))
        })
    }

    /// GETs `path`, returning `None` for HTTP 404. Transient failures
    /// (refused, timed out, 5xx, 429) are retried until the deadline.
    ///
    /// # Errors
    ///
    /// An IMDS error for any status other than 200 and 404.
    pub fn get_optional(&self, path: &str) -> Result<Option<String>> {
        self.retry.run(&format!("IMDS GET {path}"), self.log, || {
            self.get_once(path)
        })
    }

    fn get_once(&self, path: &str) -> Result<Option<String>> {
        let endpoint = &self.endpoint;
        let mut request = self.agent.get(format!("{endpoint}{path}"));
        if let Some(token) = &self.token {
            request = request.header("X-aws-ec2-metadata-token", token);
        }
        let reply = request.call().and_then(http::read_reply).map_err(|err| {
            let (_, reason) = http::classify(&err);
            Error::transient(
                Status::ImdsUnavailable,
                format!("IMDS {endpoint}: GET {path} failed: {reason}"),
            )
        })?;
        self.log
            .step(format!("IMDS GET {path}: HTTP {}", reply.status));
        match reply.status {
            200 => Ok(Some(reply.body)),
            404 => Ok(None),
            401 => Err(Error::imds(format!(
                "IMDS {endpoint}: GET {path} answered HTTP 401: the instance requires IMDSv2 and the session token was missing or rejected"
            ))),
            status => Err(imds_status_error(status, format!("IMDS {endpoint}: GET {path} answered HTTP {status}"))),
        }
    }
}

/// Returns an IMDS error for an unexpected status: transient for 429 and
/// 5xx (IMDS throttles with 503), permanent otherwise.
fn imds_status_error(status: u16, message: String) -> Error {
    if status == 429 || (500..600).contains(&status) {
        Error::transient(Status::ImdsUnavailable, message)
    } else {
        Error::imds(message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_normalization() {
        assert_eq!(
            normalize_endpoint("http://169.254.169.254/").unwrap(),
            "http://169.254.169.254"
        );
        assert_eq!(
            normalize_endpoint("http://[fd00:ec2::254]").unwrap(),
            "http://[fd00:ec2::254]"
        );
        assert_eq!(
            normalize_endpoint("http://127.0.0.1:8080").unwrap(),
            "http://127.0.0.1:8080"
        );
        assert!(normalize_endpoint("169.254.169.254").is_err());
        assert!(normalize_endpoint("http://host/latest").is_err());
        assert!(normalize_endpoint("ftp://host").is_err());
        assert!(normalize_endpoint("https://host").is_err());
    }

    #[test]
    fn disabled_imds_is_refused_without_a_request() {
        let log = Log { verbose: false };
        let err = Imds::connect(
            "http://127.0.0.1:9",
            ImdsVersion::Auto,
            true,
            Retry::once(),
            log,
        )
        .err()
        .unwrap();
        assert_eq!(err.status, crate::exit::Status::ImdsUnavailable);
        assert!(err.message.contains("AWS_EC2_METADATA_DISABLED"));
    }

    #[test]
    fn version_names_parse() {
        assert_eq!(ImdsVersion::parse("auto"), Some(ImdsVersion::Auto));
        assert_eq!(ImdsVersion::parse("v1"), Some(ImdsVersion::V1));
        assert_eq!(ImdsVersion::parse("v2"), Some(ImdsVersion::V2));
        assert_eq!(ImdsVersion::parse("V2"), None);
    }
}

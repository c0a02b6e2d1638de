//! The Vault side: the login request, and the reading and classification
//! of Vault's reply.

use std::time::Duration;

use miniserde::json::{self, Array, Number, Object, Value};

use crate::error::{Error, Result};
use crate::exit::Status;
use crate::http::{self, Failure};
use crate::log::Log;
use crate::retry::Retry;
use crate::tls::TlsSetup;

/// Validates a server URL (Vault or STS) and strips trailing slashes.
///
/// A path prefix is kept, so a Vault behind a reverse proxy at
/// `https://host/vault` works.
///
/// # Errors
///
/// A description of what is wrong, for the caller to attach to the flag.
pub fn normalize_server(value: &str) -> std::result::Result<String, String> {
    let value = value.trim();
    let Some(rest) = value
        .strip_prefix("https://")
        .or_else(|| value.strip_prefix("http://"))
    else {
        return Err("expected a URL starting with https:// or http://".to_owned());
    };

    let authority = rest.split('/').next().unwrap_or_default();
    if authority.is_empty() {
        return Err("the URL has no host".to_owned());
    }

    // A token or password in the URL would end up in logs and error
    // messages; Vault authenticates with the token this tool obtains.
    if authority.contains('@') {
        return Err("the URL must not contain a user name or password".to_owned());
    }

    let trimmed = value.trim_end_matches('/');
    let uri: ureq::http::Uri = trimmed.parse().map_err(|_| {
        "not a valid URL (check the host, the port and any [IPv6] brackets)".to_owned()
    })?;
    if uri.host().is_none_or(str::is_empty) {
        return Err("the URL has no host".to_owned());
    }

    // The port is what follows the last ':' outside IPv6 brackets.
    let host_end = authority.rfind(']').unwrap_or(0);
    let has_port = authority[host_end..].contains(':');
    if has_port && uri.port_u16().is_none_or(|port| port == 0) {
        return Err("the port is not a number from 1 to 65535".to_owned());
    }

    if uri.query().is_some() || trimmed.contains('#') {
        return Err("the URL must not have a query or fragment".to_owned());
    }
    Ok(trimmed.to_owned())
}

/// Returns the login URL of the auth method mounted at `mount`.
pub fn login_url(server: &str, mount: &str) -> String {
    format!("{server}/v1/auth/{mount}/login")
}

/// Builds a JSON object body from string fields.
pub fn json_body(fields: &[(&str, &str)]) -> String {
    let mut object = Object::new();
    for (name, value) in fields {
        object.insert((*name).to_owned(), Value::String((*value).to_owned()));
    }
    json::to_string(&Value::Object(object))
}

/// A successful login. `Debug` leaves out the token.
pub struct LoginReply {
    /// The Vault token. Secret: never logged.
    pub client_token: String,
    /// The token's accessor, an identifier that is safe to log.
    pub accessor: Option<String>,
    /// Policies attached to the token.
    pub policies: Vec<String>,
    /// Token lifetime in seconds.
    pub lease_duration: u64,
    /// Warnings Vault attached to the reply.
    pub warnings: Vec<String>,
}

impl std::fmt::Debug for LoginReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginReply")
            .field("client_token", &"<redacted>")
            .field("accessor", &self.accessor)
            .field("policies", &self.policies)
            .field("lease_duration", &self.lease_duration)
            .field("warnings", &self.warnings)
            .finish()
    }
}

/// Most redirects followed for one request. Vault sends one (a standby to
/// the active node); more suggests a loop.
const MAX_REDIRECTS: u32 = 3;

/// A Vault server and how to talk to it.
pub struct Vault {
    /// HTTP agent with the run's TLS, proxy and timeout settings.
    agent: ureq::Agent,
    /// Server URL without a trailing slash.
    server: String,
    /// Namespace sent as `X-Vault-Namespace`, if any.
    namespace: Option<String>,
    /// The proxy in use, without credentials, for messages.
    proxy: Option<String>,
    /// Retry settings and deadline of the run.
    retry: Retry,
    /// Progress output.
    log: Log,
}

impl Vault {
    /// Prepares a client for `server`: `timeout` per request, TLS from
    /// `tls`, the proxy at `proxy` (`None` for direct), and `namespace`
    /// sent with every request.
    ///
    /// # Errors
    ///
    /// A usage error for a proxy URL that ureq rejects.
    pub fn new(
        server: &str,
        timeout: Duration,
        tls: TlsSetup,
        proxy: Option<&str>,
        namespace: Option<&str>,
        retry: Retry,
        log: Log,
    ) -> Result<Vault> {
        Ok(Vault {
            agent: http::vault_agent(timeout, tls, proxy, log)?,
            server: server.to_owned(),
            namespace: namespace.map(str::to_owned),
            proxy: proxy.map(crate::proxy::redact),
            retry,
            log,
        })
    }

    /// Logs in at the auth method mounted at `mount` with a JSON `body`.
    ///
    /// Transient failures (refused or reset connections, timeouts, 429,
    /// 5xx including a sealed or standby server, non-JSON pages from a load
    /// balancer) are retried until the run's deadline. Retrying a login is
    /// safe: it sends the same nonce.
    ///
    /// # Errors
    ///
    /// Vault unavailable (exit 75) or TLS failure (79) for transport errors,
    /// and the classes of [`parse_reply`] for Vault's replies.
    pub fn login(&self, mount: &str, body: &str) -> Result<LoginReply> {
        let url = login_url(&self.server, mount);
        self.retry.run("Vault login", self.log, || {
            self.log.step(format!("Vault login: POST {url}"));
            let reply = self.send(&url, Some(body), None)?;
            self.log.step(format!("Vault login: HTTP {}", reply.status));
            parse_reply(reply.status, &reply.body, reply.location.as_deref())
        })
    }

    /// Returns the remaining TTL in seconds of `token`, `Some(0)` for a
    /// token that never expires, and `None` when Vault reports the token as
    /// not valid (HTTP 403).
    ///
    /// # Errors
    ///
    /// Any failure to get a reply; the caller then logs in anyway.
    pub fn token_ttl(&self, token: &str) -> Result<Option<u64>> {
        let url = format!("{}/v1/auth/token/lookup-self", self.server);
        let reply = self.send(&url, None, Some(token))?;
        match reply.status {
            200 => {}
            403 => return Ok(None),
            status => {
                return Err(Error::new(
                    Status::VaultUnavailable,
                    format!("token lookup answered HTTP {status}"),
                ));
            }
        }
        let ttl = match json::from_str::<Value>(&reply.body) {
            Ok(Value::Object(object)) => match object.get("data") {
                Some(Value::Object(data)) => match data.get("ttl") {
                    Some(Value::Number(Number::U64(ttl))) => Some(*ttl),
                    _ => None,
                },
                _ => None,
            },
            _ => None,
        };
        ttl.map(Some)
            .ok_or_else(|| Error::new(Status::VaultProtocol, "token lookup reply has no data.ttl"))
    }

    /// Sends a POST with `body`, or a GET without, following up to
    /// [`MAX_REDIRECTS`] 307/308 redirects with the same method and body.
    /// A redirect from https to http is refused, because it would send the
    /// login in clear text.
    fn send(&self, url: &str, body: Option<&str>, token: Option<&str>) -> Result<http::Reply> {
        let mut url = url.to_owned();
        for _ in 0..=MAX_REDIRECTS {
            let reply = self.send_once(&url, body, token)?;
            let location = match (reply.status, &reply.location) {
                (307 | 308, Some(location)) => location.clone(),
                _ => return Ok(reply),
            };
            let next = resolve_redirect(&url, &location)?;
            self.log
                .step(format!("Vault: HTTP {} redirect to {next}", reply.status));
            url = next;
        }
        Err(Error::new(
            Status::VaultUnavailable,
            format!("Vault: more than {MAX_REDIRECTS} redirects, last to {url}"),
        ))
    }

    fn send_once(&self, url: &str, body: Option<&str>, token: Option<&str>) -> Result<http::Reply> {
        let mut headers: Vec<(&str, &str)> = Vec::new();
        if let Some(token) = token {
            headers.push(("X-Vault-Token", token));
        }
        if let Some(namespace) = &self.namespace {
            headers.push(("X-Vault-Namespace", namespace));
        }

        let result = match body {
            Some(body) => {
                let mut request = self
                    .agent
                    .post(url)
                    .header("Content-Type", "application/json");
                for (name, value) in &headers {
                    request = request.header(*name, *value);
                }
                request.send(body)
            }
            None => {
                let mut request = self.agent.get(url);
                for (name, value) in &headers {
                    request = request.header(*name, *value);
                }
                request.call()
            }
        };

        result.and_then(http::read_reply).map_err(|err| {
            let (failure, reason) = http::classify(&err);
            let via = self
                .proxy
                .as_deref()
                .map(|proxy| format!(" through proxy {proxy}"))
                .unwrap_or_default();
            let message = format!("Vault request to {url}{via} failed: {reason}");
            match failure {
                Failure::Tls => Error::new(Status::Tls, message),
                Failure::Invalid => Error::usage(format!(
                    "{message}; check --server, --mount, --namespace and --role"
                )),
                Failure::Timeout => Error::transient(Status::VaultUnavailable, message),
                Failure::Connection => {
                    let check = if self.proxy.is_some() {
                        "--server and the proxy"
                    } else {
                        "--server"
                    };
                    Error::transient(
                        Status::VaultUnavailable,
                        format!("{message}; check {check}, and that Vault is running"),
                    )
                }
            }
        })
    }
}

/// Resolves a redirect's `Location` against the URL that returned it.
fn resolve_redirect(from: &str, location: &str) -> Result<String> {
    let next = if location.starts_with("https://") || location.starts_with("http://") {
        location.to_owned()
    } else if location.starts_with('/') {
        let scheme_end = from.find("://").map_or(0, |i| i + 3);
        let origin_end = from[scheme_end..]
            .find('/')
            .map_or(from.len(), |i| scheme_end + i);
        format!("{}{location}", &from[..origin_end])
    } else {
        return Err(Error::new(
            Status::VaultUnavailable,
            format!("Vault redirected to an unsupported location {location:?}"),
        ));
    };
    if from.starts_with("https://") && next.starts_with("http://") {
        return Err(Error::new(
            Status::Tls,
            format!(
                "Vault redirected from https to {next}; refusing to send the login without TLS"
            ),
        ));
    }
    Ok(next)
}

/// Interprets a login reply.
///
/// # Errors
///
/// - nonce mismatch (80) when Vault reports "client nonce mismatch";
/// - Vault unavailable (75) for 5xx, 429 and redirects;
/// - login rejected (77) for other 4xx;
/// - Vault protocol (76) for a 2xx without `auth.client_token`.
///
/// Each message quotes Vault's `errors` verbatim, on one line.
pub fn parse_reply(status: u16, body: &str, location: Option<&str>) -> Result<LoginReply> {
    let parsed: Option<Object> = match json::from_str::<Value>(body) {
        Ok(Value::Object(object)) => Some(object),
        _ => None,
    };

    if !(200..300).contains(&status) {
        let errors = parsed
            .as_ref()
            .map(|o| strings(o.get("errors")))
            .unwrap_or_default();
        let detail = if !errors.is_empty() {
            one_line(&errors.join("; "))
        } else if body.trim().is_empty() {
            "empty body".to_owned()
        } else if parsed.is_some() {
            "no error message".to_owned()
        } else {
            format!("non-JSON body: {}", snippet(body))
        };
        // Vault returns 404, or 403 "permission denied", for a path that has
        // no auth method mounted, which is how a wrong --mount shows.
        let hint = if status == 404
            || (status == 403 && errors.iter().any(|e| e == "permission denied"))
        {
            "; check --server and --mount (is the AWS auth method mounted there?)"
        } else {
            ""
        };
        let (status_class, prefix) = match status {
            _ if errors.iter().any(|e| e.contains("client nonce mismatch")) => (
                Status::NonceMismatch,
                "Vault rejected the nonce: the nonce file does not match the one Vault recorded for this instance (another party may have logged in as it)",
            ),
            429 | 500..=599 => (Status::VaultUnavailable, "Vault is unavailable"),
            400..=499 if errors.iter().any(|e| is_upstream_outage(e)) => (
                Status::VaultUnavailable,
                "Vault could not reach AWS to check the login",
            ),
            300..=399 => (Status::VaultUnavailable, "Vault redirected the login"),
            600.. => (Status::VaultProtocol, "Vault answered with an invalid status"),
            _ => (Status::LoginRejected, "Vault rejected the login"),
        };
        let location = location.map(|l| format!(" to {l}")).unwrap_or_default();
        let message = format!("{prefix} (HTTP {status}{location}): {detail}{hint}");
        let upstream = status_class == Status::VaultUnavailable && (400..500).contains(&status);
        return Err(
            if status == 429 || (500..600).contains(&status) || upstream {
                Error::transient(status_class, message)
            } else {
                Error::new(status_class, message)
            },
        );
    }

    // A 2xx page that is not JSON comes from something in front of Vault
    // (a load balancer's maintenance page), so a later attempt may reach Vault.
    let object = parsed.ok_or_else(|| {
        Error::transient(
            Status::VaultProtocol,
            format!(
                "Vault answered HTTP {status} with a body that is not a JSON object: {}",
                snippet(body)
            ),
        )
    })?;
    let warnings = strings(object.get("warnings"));
    let auth = match object.get("auth") {
        Some(Value::Object(auth)) => auth,
        _ => {
            return Err(Error::new(
                Status::VaultProtocol,
                format!(
                    "Vault answered HTTP {status} without a token (\"auth\" is missing or null){}",
                    warning_suffix(&warnings)
                ),
            ))
        }
    };
    let client_token = match auth.get("client_token") {
        Some(Value::String(token)) if !token.is_empty() => token.clone(),
        _ => {
            return Err(Error::new(
                Status::VaultProtocol,
                format!(
                    "Vault answered HTTP {status} without auth.client_token{}",
                    warning_suffix(&warnings)
                ),
            ))
        }
    };
    let accessor = match auth.get("accessor") {
        Some(Value::String(accessor)) => Some(accessor.clone()),
        _ => None,
    };
    let lease_duration = match auth.get("lease_duration") {
        Some(Value::Number(Number::U64(n))) => *n,
        _ => 0,
    };
    Ok(LoginReply {
        client_token,
        accessor,
        policies: strings(auth.get("policies")),
        lease_duration,
        warnings,
    })
}

/// Tells whether a Vault error reports that the AWS auth backend failed to
/// reach AWS, rather than that AWS denied the login. The backend returns
/// HTTP 400 in both cases, but only the first is worth retrying.
///
/// NOTE: this matches the wording of Go's network errors and the AWS SDK's
/// throttling codes, as the Vault and OpenBao backends pass them through;
/// an error worded otherwise is treated as a rejection.
fn is_upstream_outage(error: &str) -> bool {
    const MARKERS: [&str; 8] = [
        "connection refused",
        "connection reset by peer",
        "i/o timeout",
        "no such host",
        "TLS handshake timeout",
        "Throttling",
        "RequestLimitExceeded",
        "ServiceUnavailable",
    ];
    MARKERS.iter().any(|marker| error.contains(marker))
}

/// Collects the strings of a JSON array; anything else gives an empty list.
fn strings(value: Option<&Value>) -> Vec<String> {
    match value {
        Some(Value::Array(items)) => items_as_strings(items),
        _ => Vec::new(),
    }
}

fn items_as_strings(items: &Array) -> Vec<String> {
    items
        .iter()
        .filter_map(|item| match item {
            Value::String(s) => Some(s.clone()),
            _ => None,
        })
        .collect()
}

fn warning_suffix(warnings: &[String]) -> String {
    if warnings.is_empty() {
        String::new()
    } else {
        format!("; Vault warnings: {}", one_line(&warnings.join("; ")))
    }
}

/// Folds a multi-line message onto one line.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Returns the start of a non-JSON body for error messages, enough to
/// recognise a load balancer's error page.
fn snippet(body: &str) -> String {
    let line = one_line(body);
    match line.char_indices().nth(120) {
        Some((cut, _)) => format!("{}...", &line[..cut]),
        None => line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_normalization() {
        assert_eq!(
            normalize_server("https://vault:8200/").unwrap(),
            "https://vault:8200"
        );
        assert_eq!(
            normalize_server("https://host/vault/").unwrap(),
            "https://host/vault"
        );
        assert_eq!(
            normalize_server("http://[::1]:8200").unwrap(),
            "http://[::1]:8200"
        );
        assert!(normalize_server("vault:8200").is_err());
        assert!(normalize_server("https://").is_err());
        assert!(normalize_server("https://v/?a=b").is_err());
        assert_eq!(
            normalize_server("http://").unwrap_err(),
            "the URL has no host"
        );
        assert!(normalize_server("http://user:pw@host:8200")
            .unwrap_err()
            .contains("user name or password"));
        assert!(normalize_server("http://127.0.0.1:99999").is_err());
        assert!(normalize_server("http://127.0.0.1:0").is_err());
        assert_eq!(
            normalize_server("http://[::1]:8200/").unwrap(),
            "http://[::1]:8200"
        );
    }

    #[test]
    fn login_url_with_prefix_and_mount() {
        assert_eq!(
            login_url("https://h/vault", "aws-ec2"),
            "https://h/vault/v1/auth/aws-ec2/login"
        );
    }

    #[test]
    fn json_body_escapes_values() {
        assert_eq!(json_body(&[("role", "a\"b")]), r#"{"role":"a\"b"}"#);
    }

    #[test]
    fn success_reply() {
        let body = r#"{"auth":{"client_token":"s.abc","accessor":"acc","policies":["default","p"],"lease_duration":3600},"warnings":["w"]}"#;
        let reply = parse_reply(200, body, None).unwrap();
        assert_eq!(reply.client_token, "s.abc");
        assert_eq!(reply.accessor.as_deref(), Some("acc"));
        assert_eq!(reply.policies, ["default", "p"]);
        assert_eq!(reply.lease_duration, 3600);
        assert_eq!(reply.warnings, ["w"]);
    }

    #[test]
    fn nonce_mismatch_has_its_own_status() {
        let err = parse_reply(400, r#"{"errors":["client nonce mismatch"]}"#, None).unwrap_err();
        assert_eq!(err.status, Status::NonceMismatch);
        assert!(err.message.contains("client nonce mismatch"));
    }

    #[test]
    fn rejection_quotes_vault_errors_on_one_line() {
        let err = parse_reply(
            400,
            r#"{"errors":["entry for role \"x\" not found","second\nline"]}"#,
            None,
        )
        .unwrap_err();
        assert_eq!(err.status, Status::LoginRejected);
        assert!(
            err.message
                .contains(r#"entry for role "x" not found; second line"#),
            "{}",
            err.message
        );
        assert!(!err.message.contains('\n'));
        assert_eq!(
            parse_reply(403, r#"{"errors":["permission denied"]}"#, None)
                .unwrap_err()
                .status,
            Status::LoginRejected
        );
    }

    #[test]
    fn server_errors_are_unavailable() {
        for status in [429, 500, 502, 503, 504] {
            assert_eq!(
                parse_reply(status, r#"{"errors":["Vault is sealed"]}"#, None)
                    .unwrap_err()
                    .status,
                Status::VaultUnavailable
            );
        }
        let err = parse_reply(502, "<html><h1>502 Bad Gateway</h1></html>", None).unwrap_err();
        assert!(err.message.contains("502 Bad Gateway"), "{}", err.message);
    }

    #[test]
    fn redirect_names_location() {
        let err = parse_reply(307, "", Some("https://active:8200/v1/auth/aws/login")).unwrap_err();
        assert_eq!(err.status, Status::VaultUnavailable);
        assert!(
            err.message.contains("https://active:8200"),
            "{}",
            err.message
        );
    }

    #[test]
    fn success_without_token_is_protocol_error() {
        let err = parse_reply(
            200,
            r#"{"auth":null,"warnings":["role has no policies"]}"#,
            None,
        )
        .unwrap_err();
        assert_eq!(err.status, Status::VaultProtocol);
        assert!(
            err.message.contains("role has no policies"),
            "{}",
            err.message
        );
        assert_eq!(
            parse_reply(200, "not json", None).unwrap_err().status,
            Status::VaultProtocol
        );
        assert_eq!(
            parse_reply(204, "", None).unwrap_err().status,
            Status::VaultProtocol
        );
        assert_eq!(
            parse_reply(200, r#"{"auth":{"client_token":""}}"#, None)
                .unwrap_err()
                .status,
            Status::VaultProtocol
        );
    }

    #[test]
    fn transient_classification() {
        assert!(
            parse_reply(503, r#"{"errors":["Vault is sealed"]}"#, None)
                .unwrap_err()
                .transient
        );
        assert!(parse_reply(429, "", None).unwrap_err().transient);
        assert!(parse_reply(200, "<html>", None).unwrap_err().transient);
        assert!(
            !parse_reply(400, r#"{"errors":["client nonce mismatch"]}"#, None)
                .unwrap_err()
                .transient
        );
        assert!(
            !parse_reply(403, r#"{"errors":["permission denied"]}"#, None)
                .unwrap_err()
                .transient
        );
        assert!(
            !parse_reply(200, r#"{"auth":null}"#, None)
                .unwrap_err()
                .transient
        );
    }

    #[test]
    fn aws_outage_behind_vault_is_transient() {
        let body = r#"{"errors":["failed to verify instance ID: RequestError: send request failed: dial tcp 127.0.0.1:5000: connect: connection refused"]}"#;
        let err = parse_reply(400, body, None).unwrap_err();
        assert_eq!(err.status, Status::VaultUnavailable);
        assert!(err.transient);
        assert!(
            err.message.contains("could not reach AWS"),
            "{}",
            err.message
        );
        let denied = parse_reply(
            400,
            r#"{"errors":["instance is not in 'running' state"]}"#,
            None,
        )
        .unwrap_err();
        assert_eq!(denied.status, Status::LoginRejected);
        assert!(!denied.transient);
    }

    #[test]
    fn missing_mount_gets_a_hint() {
        let err = parse_reply(404, r#"{"errors":[]}"#, None).unwrap_err();
        assert!(err.message.contains("no error message"), "{}", err.message);
        assert!(err.message.contains("--mount"), "{}", err.message);
        let denied = parse_reply(403, r#"{"errors":["permission denied"]}"#, None).unwrap_err();
        assert!(denied.message.contains("--mount"), "{}", denied.message);
    }

    #[test]
    fn invalid_status_is_protocol_error() {
        let err = parse_reply(600, "", None).unwrap_err();
        assert_eq!(err.status, Status::VaultProtocol);
        assert!(!err.transient);
    }

    #[test]
    fn redirects_resolve_and_never_downgrade() {
        assert_eq!(
            resolve_redirect("http://a:1/v1/x", "/v1/y").unwrap(),
            "http://a:1/v1/y"
        );
        assert_eq!(
            resolve_redirect("https://a/v1/x", "https://b:8200/v1/x").unwrap(),
            "https://b:8200/v1/x"
        );
        assert_eq!(
            resolve_redirect("https://a/v1/x", "http://b/v1/x")
                .unwrap_err()
                .status,
            Status::Tls
        );
        assert!(resolve_redirect("http://a/v1/x", "other").is_err());
    }

    #[test]
    fn long_bodies_are_cut() {
        let body = "x".repeat(10_000);
        let err = parse_reply(500, &body, None).unwrap_err();
        assert!(err.message.len() < 400);
    }
}

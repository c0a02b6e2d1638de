//! Command-line and environment parsing.
//!
//! Every login option is described once in [`LOGIN_OPTIONS`]; the parser,
//! the environment fallback and `--help` all read that table, so the help
//! text cannot drift from what is accepted. A flag beats its environment
//! variable; the first variable that is set wins among several.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::exit::Status;
use crate::files;
use crate::identity::{Pkcs7Source, SignatureType};
use crate::imds::{self, ImdsVersion};
use crate::proxy::ProxyFlag;
use crate::sigv4::Credentials;
use crate::tls::TlsOptions;
use crate::vault;

/// One option of `vault-stork login`.
pub struct OptionSpec {
    /// Long flag name without the dashes.
    pub long: &'static str,
    /// Short flag, if any.
    pub short: Option<char>,
    /// Placeholder for the value in help text; `None` for switches.
    pub value_name: Option<&'static str>,
    /// Environment variables read when the flag is absent, in order.
    pub env: &'static [&'static str],
    /// Default shown in help; the typed default lives in [`LoginArgs`].
    pub default: Option<&'static str>,
    /// One-line description for help text.
    pub help: &'static str,
}

const fn opt(
    long: &'static str,
    value_name: Option<&'static str>,
    env: &'static [&'static str],
    default: Option<&'static str>,
    help: &'static str,
) -> OptionSpec {
    OptionSpec {
        long,
        short: None,
        value_name,
        env,
        default,
        help,
    }
}

/// The options of `vault-stork login`, in help order.
pub const LOGIN_OPTIONS: &[OptionSpec] = &[
    opt(
        "server",
        Some("URL"),
        &["VAULT_ADDR"],
        None,
        "Vault address with scheme, e.g. https://vault.example.com:8200 (a path prefix is kept)",
    ),
    opt(
        "token",
        Some("FILE"),
        &["STORK_TOKEN"],
        None,
        "file to write the Vault token to; - writes it to stdout",
    ),
    opt(
        "nonce",
        Some("FILE"),
        &["STORK_NONCE"],
        None,
        "file holding the client nonce, created if missing (ec2 method)",
    ),
    opt(
        "role",
        Some("NAME"),
        &["STORK_ROLE"],
        None,
        "Vault role; default: the instance profile name (ec2) or IAM role name (iam)",
    ),
    opt(
        "method",
        Some("ec2|iam"),
        &["STORK_METHOD"],
        Some("ec2"),
        "AWS auth flavour: signed identity document, or signed sts:GetCallerIdentity",
    ),
    opt(
        "mount",
        Some("PATH"),
        &["STORK_MOUNT"],
        Some("aws"),
        "path the AWS auth method is mounted at (the original stork used aws-ec2)",
    ),
    opt(
        "pkcs7",
        Some("VALUE|@FILE|-"),
        &["STORK_PKCS7"],
        None,
        "use this PKCS7 signature instead of asking IMDS; @FILE reads a file, - reads stdin",
    ),
    opt(
        "signature-type",
        Some("pkcs7|rsa2048|identity"),
        &["STORK_SIGNATURE_TYPE"],
        Some("pkcs7"),
        "which signed identity document to send (ec2 method)",
    ),
    opt(
        "imds-endpoint",
        Some("URL"),
        &["AWS_EC2_METADATA_SERVICE_ENDPOINT"],
        Some(imds::DEFAULT_ENDPOINT),
        "instance metadata service address; never reached through a proxy",
    ),
    opt(
        "imds-version",
        Some("auto|v1|v2"),
        &["STORK_IMDS_VERSION"],
        Some("auto"),
        "IMDS protocol: auto tries IMDSv2 and falls back to v1 as AWS SDKs do",
    ),
    opt(
        "region",
        Some("REGION"),
        &["AWS_REGION", "AWS_DEFAULT_REGION"],
        Some("us-east-1"),
        "region to sign the STS request for (iam method)",
    ),
    opt(
        "sts-endpoint",
        Some("URL"),
        &["AWS_ENDPOINT_URL_STS"],
        None,
        "STS endpoint to sign for (iam method); default: the region's endpoint",
    ),
    opt(
        "header-value",
        Some("VALUE"),
        &["STORK_HEADER_VALUE"],
        None,
        "value for X-Vault-AWS-IAM-Server-ID, when the Vault server requires one (iam method)",
    ),
    opt(
        "token-mode",
        Some("OCTAL"),
        &["STORK_TOKEN_MODE"],
        Some("0640"),
        "file mode of the token file",
    ),
    opt(
        "nonce-mode",
        Some("OCTAL"),
        &["STORK_NONCE_MODE"],
        Some("0600"),
        "file mode of a new nonce file",
    ),
    opt(
        "timeout",
        Some("DURATION"),
        &["VAULT_CLIENT_TIMEOUT"],
        Some("60s"),
        "limit on each request to Vault, in seconds or with a unit (500ms, 30s, 2m)",
    ),
    opt(
        "max-wait",
        Some("DURATION"),
        &["STORK_MAX_WAIT"],
        Some("2m"),
        "keep retrying transient failures for this long in all; 0 means one attempt",
    ),
    opt(
        "min-backoff",
        Some("DURATION"),
        &["STORK_MIN_BACKOFF"],
        Some("1s"),
        "upper bound of the first random delay between attempts; it doubles each retry",
    ),
    opt(
        "max-backoff",
        Some("DURATION"),
        &["STORK_MAX_BACKOFF"],
        Some("20s"),
        "cap on the delay between attempts",
    ),
    opt(
        "min-ttl",
        Some("DURATION"),
        &["STORK_MIN_TTL"],
        None,
        "skip the login when the token file holds a token with more than this TTL left",
    ),
    opt(
        "namespace",
        Some("NAMESPACE"),
        &["VAULT_NAMESPACE"],
        None,
        "Vault Enterprise or OpenBao namespace of the auth mount, sent as X-Vault-Namespace",
    ),
    opt(
        "ca-cert",
        Some("FILE"),
        &["VAULT_CACERT"],
        None,
        "PEM bundle of CAs to trust for Vault, instead of the system bundle and built-in roots",
    ),
    opt(
        "ca-path",
        Some("DIR"),
        &["VAULT_CAPATH"],
        None,
        "directory of PEM CA files to trust for Vault, instead of the defaults",
    ),
    opt(
        "client-cert",
        Some("FILE"),
        &["VAULT_CLIENT_CERT"],
        None,
        "PEM client certificate (chain) to present to Vault",
    ),
    opt(
        "client-key",
        Some("FILE"),
        &["VAULT_CLIENT_KEY"],
        None,
        "PEM private key of --client-cert (PKCS#8, PKCS#1 or SEC1)",
    ),
    opt(
        "tls-server-name",
        Some("NAME"),
        &["VAULT_TLS_SERVER_NAME"],
        None,
        "name to verify in Vault's certificate and send as SNI, instead of the --server host",
    ),
    OptionSpec {
        long: "tls-skip-verify",
        short: None,
        value_name: None,
        env: &["VAULT_SKIP_VERIFY"],
        default: None,
        help: "do not verify Vault's certificate (insecure: the token can be stolen; warns on every run)",
    },
    opt(
        "proxy",
        Some("URL"),
        &["VAULT_PROXY_ADDR"],
        None,
        "HTTP CONNECT proxy for Vault, instead of HTTPS_PROXY, HTTP_PROXY, ALL_PROXY and NO_PROXY",
    ),
    OptionSpec {
        long: "no-proxy",
        short: None,
        value_name: None,
        env: &["STORK_NO_PROXY"],
        default: None,
        help: "connect to Vault directly, whatever the proxy variables say (IMDS never uses a proxy)",
    },
    OptionSpec {
        long: "verbose",
        short: Some('v'),
        value_name: None,
        env: &["STORK_VERBOSE"],
        default: None,
        help: "log each step to stderr (never the token, nonce, signature or credentials)",
    },
];

/// The command the arguments select.
pub enum Command {
    /// Print this text to stdout and exit 0 (help and version output).
    Print(String),
    /// Run a login.
    Login(Box<LoginArgs>),
}

/// The AWS auth flavour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// Signed instance identity document.
    Ec2,
    /// Signed `sts:GetCallerIdentity` request.
    Iam,
}

/// The destination of the token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenOutput {
    /// A file, replaced atomically.
    File(PathBuf),
    /// Standard output, because the user asked for it with `--token -`.
    Stdout,
}

/// The validated settings of one login run.
#[derive(Debug)]
pub struct LoginArgs {
    /// Vault address, without a trailing slash.
    pub server: String,
    /// The token destination.
    pub token: TokenOutput,
    /// The nonce file (required for the ec2 method).
    pub nonce: Option<PathBuf>,
    /// Vault role, when given.
    pub role: Option<String>,
    /// AWS auth flavour.
    pub method: Method,
    /// Mount path of the AWS auth method, without surrounding slashes.
    pub mount: String,
    /// The source of the PKCS7 signature when it does not come from IMDS.
    pub pkcs7: Option<Pkcs7Source>,
    /// The signed document to send.
    pub signature_type: SignatureType,
    /// IMDS base URL, without a trailing slash.
    pub imds_endpoint: String,
    /// IMDS protocol version.
    pub imds_version: ImdsVersion,
    /// True when `AWS_EC2_METADATA_DISABLED=true`: IMDS must not be used.
    pub imds_disabled: bool,
    /// Signing region for STS.
    pub region: String,
    /// STS endpoint to sign for, when set explicitly.
    pub sts_endpoint: Option<String>,
    /// Value of the `X-Vault-AWS-IAM-Server-ID` header.
    pub header_value: Option<String>,
    /// Credentials from `AWS_ACCESS_KEY_ID` and friends, which take the
    /// place of the instance role's (iam method).
    pub aws_credentials: Option<Credentials>,
    /// Mode of the token file.
    pub token_mode: u32,
    /// Mode of a newly created nonce file.
    pub nonce_mode: u32,
    /// Limit on each request to Vault.
    pub timeout: Duration,
    /// Total time transient failures are retried; zero for one attempt.
    pub max_wait: Duration,
    /// Bound of the first retry delay.
    pub min_backoff: Duration,
    /// Cap on retry delays.
    pub max_backoff: Duration,
    /// Skip the login while the current token has more TTL than this.
    pub min_ttl: Option<Duration>,
    /// Namespace sent as `X-Vault-Namespace`.
    pub namespace: Option<String>,
    /// Trust store, client certificate and server name for Vault.
    pub tls: TlsOptions,
    /// How to pick the proxy for Vault.
    pub proxy: ProxyFlag,
    /// Log steps to stderr.
    pub verbose: bool,
}

/// A value together with where it came from (`--flag` or a variable name),
/// so errors can name the source the user has to fix.
struct Given {
    value: String,
    source: String,
}

/// Parses the process arguments, with `env` for environment variables.
///
/// # Errors
///
/// A usage error naming the flag or variable that is missing or malformed.
pub fn parse<I>(args: I, env: &dyn Fn(&str) -> Option<String>) -> Result<Command>
where
    I: IntoIterator<Item = OsString>,
{
    use lexopt::prelude::*;

    let mut parser = lexopt::Parser::from_iter(args);
    match parser.next().map_err(usage_error)? {
        Some(Long("help") | Short('h')) => Ok(Command::Print(main_help())),
        Some(Long("version") | Short('V')) => Ok(Command::Print(version_line())),
        Some(Value(command)) => match command.to_str() {
            Some("login") => parse_login(&mut parser, env),
            Some("help") => Ok(Command::Print(help_for(parser.next().ok().flatten()))),
            Some("version") => Ok(Command::Print(version_line())),
            _ => Err(Error::usage(format!(
                "unknown command {:?}; the command is `vault-stork login` (see vault-stork --help)",
                command.to_string_lossy()
            ))),
        },
        Some(other) => Err(usage_error(other.unexpected())),
        None => Err(Error::usage(
            "missing command; usage: vault-stork login --server URL --token FILE --nonce FILE (see vault-stork --help)",
        )),
    }
}

fn help_for(arg: Option<lexopt::Arg<'_>>) -> String {
    match arg {
        Some(lexopt::Arg::Value(v)) if v == "login" => login_help(),
        _ => main_help(),
    }
}

fn parse_login(
    parser: &mut lexopt::Parser,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Command> {
    use lexopt::prelude::*;

    let mut given: Vec<Option<Given>> = LOGIN_OPTIONS.iter().map(|_| None).collect();
    while let Some(arg) = parser.next().map_err(usage_error)? {
        let index = match arg {
            Long("help") | Short('h') => return Ok(Command::Print(login_help())),
            Long(name) => LOGIN_OPTIONS.iter().position(|o| o.long == name),
            Short(c) => LOGIN_OPTIONS.iter().position(|o| o.short == Some(c)),
            Value(value) => {
                return Err(Error::usage(format!(
                    "unexpected argument {:?}; vault-stork login takes only flags (see vault-stork login --help)",
                    value.to_string_lossy()
                )))
            }
        };
        let Some(index) = index else {
            return Err(usage_error(arg.unexpected()));
        };
        let spec = &LOGIN_OPTIONS[index];
        let source = format!("--{}", spec.long);
        let value = if spec.value_name.is_some() {
            let raw = parser.value().map_err(usage_error)?;
            raw.into_string()
                .map_err(|raw| Error::usage(format!("invalid {source} {raw:?}: not valid UTF-8")))?
        } else {
            "true".to_owned()
        };
        given[index] = Some(Given { value, source });
    }

    // Fill what the flags left open from the environment.
    for (index, spec) in LOGIN_OPTIONS.iter().enumerate() {
        if given[index].is_some() {
            continue;
        }
        for name in spec.env {
            if let Some(value) = env(name).filter(|v| !v.is_empty()) {
                given[index] = Some(Given {
                    value,
                    source: (*name).to_owned(),
                });
                break;
            }
        }
    }

    // The AWS SDKs treat only "true", in any case, as disabling IMDS.
    let imds_disabled =
        env("AWS_EC2_METADATA_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
    let ipv6_imds = match env("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE") {
        Some(mode) if mode.eq_ignore_ascii_case("ipv6") => true,
        Some(mode) if mode.eq_ignore_ascii_case("ipv4") || mode.is_empty() => false,
        Some(mode) => {
            return Err(Error::usage(format!(
                "invalid AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE {mode:?}: expected IPv4 or IPv6"
            )))
        }
        None => false,
    };

    let take = |name: &str| -> Option<Given> {
        let index = LOGIN_OPTIONS.iter().position(|o| o.long == name)?;
        given[index].as_ref().map(|g| Given {
            value: g.value.clone(),
            source: g.source.clone(),
        })
    };
    let mut args = build_login(&take, imds_disabled, ipv6_imds)?;
    if args.method == Method::Iam {
        args.aws_credentials = env_credentials(env)?;
    }
    Ok(Command::Login(Box::new(args)))
}

fn build_login(
    take: &dyn Fn(&str) -> Option<Given>,
    imds_disabled: bool,
    ipv6_imds: bool,
) -> Result<LoginArgs> {
    let method = match take("method") {
        None => Method::Ec2,
        Some(g) => match g.value.as_str() {
            "ec2" => Method::Ec2,
            "iam" => Method::Iam,
            _ => return Err(invalid(&g, "expected ec2 or iam")),
        },
    };

    let server = take("server").ok_or_else(|| missing("--server", "VAULT_ADDR"))?;
    let server = vault::normalize_server(&server.value).map_err(|why| invalid(&server, &why))?;

    let token = take("token").ok_or_else(|| missing("--token", "STORK_TOKEN"))?;
    let token = if token.value == "-" {
        TokenOutput::Stdout
    } else {
        TokenOutput::File(PathBuf::from(token.value))
    };

    let nonce = take("nonce").map(|g| PathBuf::from(g.value));
    if method == Method::Ec2 && nonce.is_none() {
        return Err(missing("--nonce", "STORK_NONCE"));
    }
    if let (TokenOutput::File(token), Some(nonce)) = (&token, &nonce) {
        if same_file(token, nonce) {
            return Err(Error::usage(format!(
                "--token and --nonce name the same file {}; the token would overwrite the nonce and lock the instance out; give them different files",
                token.display()
            )));
        }
    }

    let role = take("role").map(|g| g.value);
    if let Some(role) = &role {
        if role.contains('/') || role.trim() != role || role.chars().any(char::is_control) {
            return Err(Error::usage(format!(
                "invalid --role {role:?}: a Vault role name has no slashes or surrounding spaces"
            )));
        }
    }

    let mount = match take("mount") {
        None => "aws".to_owned(),
        Some(g) => {
            let trimmed = g.value.trim_matches('/').to_owned();
            if !is_mount_path(&trimmed) {
                return Err(invalid(&g, "expected a mount path such as aws or aws-ec2"));
            }
            trimmed
        }
    };

    let pkcs7 = take("pkcs7").map(|g| Pkcs7Source::parse(&g.value));
    let signature_type = match take("signature-type") {
        None => SignatureType::Pkcs7,
        Some(g) => SignatureType::parse(&g.value)
            .ok_or_else(|| invalid(&g, "expected pkcs7, rsa2048 or identity"))?,
    };
    if pkcs7.is_some() && signature_type == SignatureType::Identity {
        return Err(Error::usage(
            "--pkcs7 cannot be combined with --signature-type identity, which sends the document and its signature; use pkcs7 or rsa2048",
        ));
    }
    if method == Method::Iam && pkcs7.is_some() {
        return Err(Error::usage(
            "--pkcs7 applies to the ec2 method only; the iam method signs an STS request instead",
        ));
    }

    let imds_endpoint = match take("imds-endpoint") {
        Some(g) => imds::normalize_endpoint(&g.value).map_err(|why| invalid(&g, &why))?,
        None if ipv6_imds => imds::DEFAULT_ENDPOINT_IPV6.to_owned(),
        None => imds::DEFAULT_ENDPOINT.to_owned(),
    };
    let imds_version = match take("imds-version") {
        None => ImdsVersion::Auto,
        Some(g) => {
            ImdsVersion::parse(&g.value).ok_or_else(|| invalid(&g, "expected auto, v1 or v2"))?
        }
    };

    let region = match take("region") {
        None => "us-east-1".to_owned(),
        Some(g) if is_region_name(&g.value) => g.value,
        Some(g) => return Err(invalid(&g, "expected an AWS region name such as us-east-1")),
    };
    let sts_endpoint = match take("sts-endpoint") {
        None => None,
        Some(g) => Some(vault::normalize_server(&g.value).map_err(|why| invalid(&g, &why))?),
    };
    let header_value = match take("header-value") {
        Some(g) if g.value.chars().any(char::is_control) => {
            return Err(invalid(
                &g,
                "an HTTP header value cannot hold control characters",
            ))
        }
        other => other.map(|g| g.value),
    };

    let token_mode = match take("token-mode") {
        None => 0o640,
        Some(g) => files::parse_mode(&g.source, &g.value)?,
    };
    let nonce_mode = match take("nonce-mode") {
        None => 0o600,
        Some(g) => files::parse_mode(&g.source, &g.value)?,
    };
    let timeout = match take("timeout") {
        None => Duration::from_secs(60),
        Some(g) => parse_duration(&g.value).ok_or_else(|| {
            invalid(
                &g,
                "expected a positive duration such as 30, 30s, 500ms or 2m",
            )
        })?,
    };
    let duration_or = |name: &str, default: Duration, allow_zero: bool| -> Result<Duration> {
        match take(name) {
            None => Ok(default),
            Some(g) if allow_zero && g.value.trim() == "0" => Ok(Duration::ZERO),
            Some(g) => parse_duration(&g.value)
                .ok_or_else(|| invalid(&g, "expected a duration such as 30, 30s, 500ms or 2m")),
        }
    };
    let max_wait = duration_or("max-wait", Duration::from_secs(120), true)?;
    let min_backoff = duration_or("min-backoff", Duration::from_secs(1), false)?;
    let max_backoff = duration_or("max-backoff", Duration::from_secs(20), false)?;
    let min_ttl = match take("min-ttl") {
        None => None,
        Some(g) => Some(
            parse_duration(&g.value)
                .ok_or_else(|| invalid(&g, "expected a duration such as 10m or 1h"))?,
        ),
    };
    let switch = |name: &str| -> Result<bool> {
        match take(name) {
            None => Ok(false),
            Some(g) => parse_bool(&g.source, &g.value),
        }
    };
    let path = |name: &str| take(name).map(|g| PathBuf::from(g.value));
    let tls = TlsOptions {
        ca_cert: path("ca-cert"),
        ca_path: path("ca-path"),
        client_cert: path("client-cert"),
        client_key: path("client-key"),
        server_name: take("tls-server-name").map(|g| g.value),
        skip_verify: switch("tls-skip-verify")?,
    };
    let proxy = match (take("proxy"), switch("no-proxy")?) {
        (Some(g), true) => {
            return Err(Error::usage(format!(
                "{} and --no-proxy contradict each other; give one",
                g.source
            )))
        }
        (Some(g), false) => ProxyFlag::Url {
            url: g.value,
            source: g.source,
        },
        (None, true) => ProxyFlag::Direct,
        (None, false) => ProxyFlag::FromEnvironment,
    };

    // A namespace is a header; a mount given with the namespace in front
    // (ns1/aws) would otherwise address ns1/ns1/aws.
    let namespace = match take("namespace") {
        None => None,
        Some(g) => {
            let namespace = g.value.trim_matches('/').to_owned();
            if !namespace.is_empty() && !is_mount_path(&namespace) {
                return Err(invalid(
                    &g,
                    "expected a namespace path such as team-a or team-a/child",
                ));
            }
            Some(namespace).filter(|ns| !ns.is_empty())
        }
    };
    let mount = match &namespace {
        Some(ns) => mount
            .strip_prefix(&format!("{ns}/"))
            .map(str::to_owned)
            .unwrap_or(mount),
        None => mount,
    };

    let verbose = match take("verbose") {
        None => false,
        Some(g) => parse_bool(&g.source, &g.value)?,
    };

    Ok(LoginArgs {
        server,
        token,
        nonce,
        role,
        method,
        mount,
        pkcs7,
        signature_type,
        imds_endpoint,
        imds_version,
        imds_disabled,
        region,
        sts_endpoint,
        header_value,
        aws_credentials: None,
        token_mode,
        nonce_mode,
        timeout,
        max_wait,
        min_backoff,
        max_backoff,
        min_ttl,
        namespace,
        tls,
        proxy,
        verbose,
    })
}

/// Reads static credentials from the AWS SDKs' variables.
///
/// # Errors
///
/// A credentials error when only one of the key id and the secret is set,
/// since silently falling back to the instance role would log in as
/// someone else than the user meant.
fn env_credentials(env: &dyn Fn(&str) -> Option<String>) -> Result<Option<Credentials>> {
    let non_empty = |name: &str| env(name).filter(|v| !v.is_empty());
    match (non_empty("AWS_ACCESS_KEY_ID"), non_empty("AWS_SECRET_ACCESS_KEY")) {
        (Some(access_key_id), Some(secret_access_key)) => Ok(Some(Credentials {
            access_key_id,
            secret_access_key,
            session_token: non_empty("AWS_SESSION_TOKEN"),
        })),
        (None, None) => Ok(None),
        (Some(_), None) => Err(Error::new(Status::Credentials, "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not; set both, or neither to use the instance role")),
        (None, Some(_)) => Err(Error::new(Status::Credentials, "AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not; set both, or neither to use the instance role")),
    }
}

fn missing(flag: &str, variable: &str) -> Error {
    Error::usage(format!(
        "missing {flag} (or {variable}); see vault-stork login --help"
    ))
}

fn invalid(given: &Given, expected: &str) -> Error {
    Error::usage(format!(
        "invalid {} {:?}: {expected}",
        given.source, given.value
    ))
}

fn usage_error(err: lexopt::Error) -> Error {
    // lexopt prints an unknown option as typed, which may hold a newline or
    // a terminal escape; quoting it keeps the message on one line.
    let reason = match &err {
        lexopt::Error::UnexpectedOption(option) => format!("invalid option {option:?}"),
        _ => err.to_string(),
    };
    Error::new(
        Status::Usage,
        format!("{reason}; see vault-stork login --help"),
    )
}

/// Parses a switch's value from the environment.
fn parse_bool(source: &str, value: &str) -> Result<bool> {
    match value.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" | "" => Ok(false),
        _ => Err(Error::usage(format!(
            "invalid {source} {value:?}: expected true or false"
        ))),
    }
}

/// Parses a duration as the Vault CLI accepts `VAULT_CLIENT_TIMEOUT`: a bare
/// number of seconds, or a number with one of the units ms, s, m, h.
pub fn parse_duration(value: &str) -> Option<Duration> {
    let value = value.trim();
    let split = value
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(value.len());
    let (number, unit) = value.split_at(split);
    let number: u64 = number.parse().ok()?;
    let duration = match unit {
        "" | "s" => Duration::from_secs(number),
        "ms" => Duration::from_millis(number),
        "m" => Duration::from_secs(number.checked_mul(60)?),
        "h" => Duration::from_secs(number.checked_mul(3600)?),
        _ => return None,
    };
    (!duration.is_zero()).then_some(duration)
}

/// Accepts Vault paths such as `aws`, `aws-ec2` or `team-a/aws`: segments of
/// letters, digits, `.`, `_` and `-`, without `.` or `..` segments.
fn is_mount_path(value: &str) -> bool {
    !value.is_empty()
        && value.split('/').all(|part| {
            !part.is_empty()
                && part != "."
                && part != ".."
                && part
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        })
}

/// Tells whether two paths name the same file: equal as written, or with
/// the same canonical parent directory and file name.
fn same_file(a: &std::path::Path, b: &std::path::Path) -> bool {
    if a == b {
        return true;
    }
    let canonical = |p: &std::path::Path| -> Option<PathBuf> {
        let parent = match p.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => std::path::Path::new("."),
        };
        Some(std::fs::canonicalize(parent).ok()?.join(p.file_name()?))
    };
    matches!((canonical(a), canonical(b)), (Some(x), Some(y)) if x == y)
}

/// Accepts names like `us-east-1`, `eu-central-2`, `us-gov-west-1`, `cn-north-1`.
fn is_region_name(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 32
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !value.starts_with('-')
        && !value.ends_with('-')
}

fn version_line() -> String {
    format!("vault-stork {}\n", env!("CARGO_PKG_VERSION"))
}

fn main_help() -> String {
    format!(
        "vault-stork {version}
Log an EC2 instance in to Vault or OpenBao with the AWS auth method, and
write the Vault token and the login nonce to files.

Usage:
  vault-stork login --server URL --token FILE --nonce FILE [options]
  vault-stork login --method iam --server URL --token FILE [options]
  vault-stork login --help      every login option, its variable and default
  vault-stork --version

Commands:
  login    prove the instance's identity to Vault, log in, write the files

{exit_codes}",
        version = env!("CARGO_PKG_VERSION"),
        exit_codes = exit_code_table()
    )
}

/// Builds the help text of `vault-stork login` from [`LOGIN_OPTIONS`].
pub fn login_help() -> String {
    let mut out = String::from(
        "Usage: vault-stork login --server URL --token FILE --nonce FILE [options]
       vault-stork login --method iam --server URL --token FILE [options]

Logs in to the AWS auth method at {server}/v1/auth/{mount}/login and writes
the token.

The ec2 method (default) sends this instance's signed identity document
from IMDS (or from --pkcs7) with the client nonce. The nonce file is
created on first use and must be kept: Vault ties the instance to it, and
a lost nonce locks the instance out.

The iam method sends an sts:GetCallerIdentity request signed with the
instance role's credentials from IMDS (or AWS_ACCESS_KEY_ID and friends);
it needs no nonce.

Options (a flag beats its environment variable):
",
    );
    for spec in LOGIN_OPTIONS {
        let mut flag = String::new();
        if let Some(short) = spec.short {
            flag.push_str(&format!("-{short}, "));
        }
        flag.push_str(&format!("--{}", spec.long));
        if let Some(value) = spec.value_name {
            flag.push(' ');
            flag.push_str(value);
        }
        out.push_str(&format!("  {flag}\n      {}\n", spec.help));
        let mut details = Vec::new();
        if !spec.env.is_empty() {
            details.push(format!("env: {}", spec.env.join(", ")));
        }
        if let Some(default) = spec.default {
            details.push(format!("default: {default}"));
        }
        if !details.is_empty() {
            out.push_str(&format!("      [{}]\n", details.join("; ")));
        }
    }
    out.push_str("  -h, --help\n      print this help\n\n");
    out.push_str("AWS_EC2_METADATA_DISABLED=true forbids any IMDS request, as in the AWS SDKs.\n");
    out.push_str("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE=IPv6 selects the IPv6 IMDS address.\n");
    out.push_str(
        "AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN, when set, replace\n",
    );
    out.push_str("the instance role's credentials for the iam method.\n\n");
    out.push_str(&exit_code_table());
    out
}

fn exit_code_table() -> String {
    let mut out = String::from("Exit codes:\n");
    for status in Status::ALL {
        out.push_str(&format!("  {:>3}  {}\n", status.code(), status.describe()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn parse_with(args: &[&str], env: &[(&str, &str)]) -> Result<Command> {
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let argv = std::iter::once("vault-stork")
            .chain(args.iter().copied())
            .map(OsString::from);
        parse(argv, &|name| env.get(name).cloned())
    }

    fn login(args: &[&str], env: &[(&str, &str)]) -> LoginArgs {
        match parse_with(args, env) {
            Ok(Command::Login(args)) => *args,
            Ok(Command::Print(text)) => panic!("expected a login, got output {text}"),
            Err(err) => panic!("expected a login, got error {err}"),
        }
    }

    fn error(args: &[&str], env: &[(&str, &str)]) -> Error {
        match parse_with(args, env) {
            Err(err) => err,
            Ok(_) => panic!("expected an error for {args:?}"),
        }
    }

    const BASE: [&str; 7] = [
        "login",
        "--server",
        "https://vault:8200/",
        "--token",
        "/t/token",
        "--nonce",
        "/t/nonce",
    ];

    #[test]
    fn login_defaults() {
        let args = login(&BASE, &[]);
        assert_eq!(args.server, "https://vault:8200");
        assert_eq!(args.token, TokenOutput::File(PathBuf::from("/t/token")));
        assert_eq!(args.nonce, Some(PathBuf::from("/t/nonce")));
        assert_eq!(args.mount, "aws");
        assert_eq!(args.method, Method::Ec2);
        assert_eq!(args.signature_type, SignatureType::Pkcs7);
        assert_eq!(args.imds_endpoint, "http://169.254.169.254");
        assert_eq!(args.token_mode, 0o640);
        assert_eq!(args.nonce_mode, 0o600);
        assert_eq!(args.timeout, Duration::from_secs(60));
        assert_eq!(args.max_wait, Duration::from_secs(120));
        assert_eq!(args.min_ttl, None);
        assert_eq!(args.region, "us-east-1");
        assert!(!args.verbose);
        assert!(!args.imds_disabled);
    }

    #[test]
    fn environment_fills_missing_flags() {
        let args = login(
            &["login"],
            &[
                ("VAULT_ADDR", "http://127.0.0.1:8200"),
                ("STORK_TOKEN", "/t/token"),
                ("STORK_NONCE", "/t/nonce"),
                ("STORK_TOKEN_MODE", "600"),
                ("STORK_VERBOSE", "1"),
                ("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://127.0.0.1:9/"),
                ("AWS_DEFAULT_REGION", "eu-west-1"),
            ],
        );
        assert_eq!(args.server, "http://127.0.0.1:8200");
        assert_eq!(args.token_mode, 0o600);
        assert!(args.verbose);
        assert_eq!(args.imds_endpoint, "http://127.0.0.1:9");
        assert_eq!(args.region, "eu-west-1");
    }

    #[test]
    fn flag_beats_environment() {
        let mut argv = BASE.to_vec();
        argv.extend(["--mount", "/aws-ec2/"]);
        let args = login(
            &argv,
            &[("VAULT_ADDR", "http://other:1"), ("STORK_MOUNT", "ignored")],
        );
        assert_eq!(args.server, "https://vault:8200");
        assert_eq!(args.mount, "aws-ec2");
    }

    #[test]
    fn first_region_variable_wins() {
        let args = login(
            &BASE,
            &[
                ("AWS_REGION", "ap-south-1"),
                ("AWS_DEFAULT_REGION", "eu-west-1"),
            ],
        );
        assert_eq!(args.region, "ap-south-1");
    }

    #[test]
    fn missing_server_names_flag_and_variable() {
        let err = error(&["login", "--token", "t", "--nonce", "n"], &[]);
        assert_eq!(err.status, Status::Usage);
        assert!(err.message.contains("--server"), "{}", err.message);
        assert!(err.message.contains("VAULT_ADDR"), "{}", err.message);
    }

    #[test]
    fn nonce_required_for_ec2_only() {
        let err = error(&["login", "--server", "http://v", "--token", "t"], &[]);
        assert!(err.message.contains("--nonce"), "{}", err.message);
        let args = login(
            &[
                "login", "--server", "http://v", "--token", "t", "--method", "iam",
            ],
            &[],
        );
        assert_eq!(args.nonce, None);
    }

    #[test]
    fn malformed_server_is_usage_error_naming_source() {
        for bad in ["vault:8200", "ftp://vault", "https://", "http://v?x=1"] {
            let err = error(
                &["login", "--server", bad, "--token", "t", "--nonce", "n"],
                &[],
            );
            assert_eq!(err.status, Status::Usage, "{bad}");
            assert!(err.message.contains("--server"), "{}", err.message);
        }
        let err = error(
            &["login", "--token", "t", "--nonce", "n"],
            &[("VAULT_ADDR", "vault")],
        );
        assert!(err.message.contains("VAULT_ADDR"), "{}", err.message);
    }

    #[test]
    fn bad_values_are_usage_errors() {
        let cases: &[&[&str]] = &[
            &["--signature-type", "dsa"],
            &["--imds-version", "v3"],
            &["--method", "gcp"],
            &["--token-mode", "999"],
            &["--timeout", "soon"],
            &["--timeout", "0"],
            &["--max-wait", "forever"],
            &["--min-backoff", "0"],
            &["--min-ttl", "1d"],
            &["--region", "US East"],
            &["--mount", "//"],
            &["--mount", "a b"],
            &["--mount", "aws?x=1"],
            &["--namespace", "a\nb"],
            &["--role", "a\nb"],
            &["--header-value", "a\r\nb"],
            &["--nonce", "/t/token"],
            &["--nonce", "/t/./token"],
            &["--role", "a/b"],
            &["--unknown"],
            &["stray"],
        ];
        for extra in cases {
            let mut argv = BASE.to_vec();
            argv.extend_from_slice(extra);
            let err = error(&argv, &[]);
            assert_eq!(err.status, Status::Usage, "{extra:?}: {}", err.message);
        }
    }

    #[test]
    fn pkcs7_with_identity_type_is_rejected() {
        let mut argv = BASE.to_vec();
        argv.extend(["--pkcs7", "-", "--signature-type", "identity"]);
        assert_eq!(error(&argv, &[]).status, Status::Usage);
    }

    #[test]
    fn token_dash_means_stdout() {
        let args = login(
            &[
                "login", "--server", "http://v", "--token", "-", "--nonce", "n",
            ],
            &[],
        );
        assert_eq!(args.token, TokenOutput::Stdout);
    }

    #[test]
    fn imds_disabled_and_ipv6_mode_are_read() {
        let args = login(
            &BASE,
            &[
                ("AWS_EC2_METADATA_DISABLED", "true"),
                ("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE", "IPv6"),
            ],
        );
        assert!(args.imds_disabled);
        assert_eq!(args.imds_endpoint, "http://[fd00:ec2::254]");
    }

    #[test]
    fn help_lists_every_option_and_variable() {
        let Ok(Command::Print(help)) = parse_with(&["login", "--help"], &[]) else {
            panic!("login --help prints help");
        };
        for spec in LOGIN_OPTIONS {
            assert!(
                help.contains(&format!("--{}", spec.long)),
                "help lists --{}",
                spec.long
            );
            for var in spec.env {
                assert!(help.contains(var), "help lists {var}");
            }
        }
        assert!(help.contains("80"), "help has the exit-code table");
    }

    #[test]
    fn version_and_top_level_help() {
        let Ok(Command::Print(version)) = parse_with(&["--version"], &[]) else {
            panic!()
        };
        assert!(version.starts_with("vault-stork "));
        let Ok(Command::Print(help)) = parse_with(&["--help"], &[]) else {
            panic!()
        };
        assert!(help.contains("vault-stork login"));
        assert_eq!(error(&[], &[]).status, Status::Usage);
        assert_eq!(error(&["logout"], &[]).status, Status::Usage);
    }

    #[test]
    fn iam_reads_environment_credentials() {
        let iam = [
            "login", "--server", "http://v", "--token", "t", "--method", "iam",
        ];
        let args = login(
            &iam,
            &[
                ("AWS_ACCESS_KEY_ID", "AKID"),
                ("AWS_SECRET_ACCESS_KEY", "s"),
                ("AWS_SESSION_TOKEN", "t"),
            ],
        );
        let credentials = args.aws_credentials.unwrap();
        assert_eq!(credentials.access_key_id, "AKID");
        assert_eq!(credentials.session_token.as_deref(), Some("t"));
        assert_eq!(
            error(&iam, &[("AWS_ACCESS_KEY_ID", "AKID")]).status,
            Status::Credentials
        );
        assert!(login(&BASE, &[("AWS_ACCESS_KEY_ID", "AKID")])
            .aws_credentials
            .is_none());
    }

    #[test]
    fn max_wait_zero_means_one_attempt() {
        let mut argv = BASE.to_vec();
        argv.extend(["--max-wait", "0", "--min-ttl", "10m"]);
        let args = login(&argv, &[]);
        assert_eq!(args.max_wait, Duration::ZERO);
        assert_eq!(args.min_ttl, Some(Duration::from_secs(600)));
    }

    #[test]
    fn tls_proxy_and_namespace_options() {
        let mut argv = BASE.to_vec();
        argv.extend([
            "--ca-cert",
            "/ca.pem",
            "--tls-server-name",
            "vault.internal",
            "--namespace",
            "ns1/",
            "--mount",
            "ns1/aws",
        ]);
        let args = login(
            &argv,
            &[
                ("VAULT_SKIP_VERIFY", "true"),
                ("VAULT_PROXY_ADDR", "http://p:3128"),
            ],
        );
        assert_eq!(args.tls.ca_cert, Some(PathBuf::from("/ca.pem")));
        assert_eq!(args.tls.server_name.as_deref(), Some("vault.internal"));
        assert!(args.tls.skip_verify);
        assert_eq!(
            args.proxy,
            ProxyFlag::Url {
                url: "http://p:3128".into(),
                source: "VAULT_PROXY_ADDR".into()
            }
        );
        assert_eq!(args.namespace.as_deref(), Some("ns1"));
        assert_eq!(args.mount, "aws", "namespace not doubled in the mount");
        let direct = login(&[&BASE[..], &["--no-proxy"]].concat(), &[]);
        assert_eq!(direct.proxy, ProxyFlag::Direct);
        assert_eq!(
            error(
                &[&BASE[..], &["--no-proxy", "--proxy", "http://p"]].concat(),
                &[]
            )
            .status,
            Status::Usage
        );
    }

    #[test]
    fn unknown_option_message_stays_on_one_line() {
        for arg in ["--server\nhttps://vault.example.com", "-\n", "-\r"] {
            let argv = ["vault-stork", "login", arg].map(OsString::from);
            let err = parse(argv, &|_| None).err().unwrap();
            assert_eq!(err.status, Status::Usage);
            assert!(!err.message.contains('\n'), "{:?}", err.message);
            assert!(!err.message.contains('\r'), "{:?}", err.message);
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1.5s"), None);
        assert_eq!(parse_duration("s"), None);
        assert_eq!(parse_duration("0s"), None);
    }
}

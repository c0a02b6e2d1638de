//! The login run: the straight path from validated flags to written files.
//!
//! Order matters for safety. Local paths and `--pkcs7` input are checked
//! before any network traffic, so bad input fails fast and changes nothing.
//! The nonce is on disk, flushed, before Vault sees it. The token file is
//! replaced only after Vault has issued a token.

use std::io::Write;

use crate::cli::{LoginArgs, Method, TokenOutput};
use crate::error::{Error, Result};
use crate::exit::Status;
use crate::files;
use crate::iam;
use crate::identity::{self, Identity, SignatureType};
use crate::imds::Imds;
use crate::lock;
use crate::log::Log;
use crate::proxy;
use crate::retry::Retry;
use crate::tls;
use crate::vault::{self, LoginReply, Vault};

/// IMDS path of the instance profile description.
const IAM_INFO_PATH: &str = "/latest/meta-data/iam/info";

/// The outcome of a run that did not fail.
#[derive(Debug)]
pub enum Outcome {
    /// Vault issued a token and it was written.
    LoggedIn(LoginReply),
    /// `--min-ttl` was given and the current token has more TTL than that
    /// left, so no login was made.
    StillValid {
        /// Remaining TTL in seconds; 0 for a token that never expires.
        ttl: u64,
    },
}

/// Runs one login as `args` describe and writes the token.
///
/// # Errors
///
/// Any [`Error`]; its status tells which side failed. On error the token
/// file is unchanged, and a nonce written before the failure is kept.
pub fn run(args: &LoginArgs, env: &dyn Fn(&str) -> Option<String>) -> Result<Outcome> {
    let log = Log {
        verbose: args.verbose,
    };
    let retry = Retry::start(args.min_backoff, args.max_backoff, args.max_wait);
    warn_about_weak_settings(args, log);
    warn_about_ignored_settings(args, log);

    if let TokenOutput::File(path) = &args.token {
        files::check_parent_dir("--token", path)?;
    }
    if let Some(path) = &args.nonce {
        files::check_parent_dir("--nonce", path)?;
    }

    let _lock = lock_state(args, &retry, log)?;

    let vault = connect_vault(args, env, retry, log)?;
    if let Some(ttl) = current_token_ttl(args, &vault, log) {
        return Ok(Outcome::StillValid { ttl });
    }

    let mut fields: Vec<(&str, String)> = match args.method {
        Method::Ec2 => ec2_fields(args, retry, log)?,
        Method::Iam => iam::login_fields(args, retry, log)?,
    };

    let mut nonce_created = false;
    if args.method == Method::Ec2 {
        let path = args
            .nonce
            .as_deref()
            .ok_or_else(|| Error::usage("missing --nonce (or STORK_NONCE)"))?;
        let (nonce, created) = ensure_nonce(path, args.nonce_mode, log)?;
        nonce_created = created;
        fields.push(("nonce", nonce));
    }

    let body_fields: Vec<(&str, &str)> = fields
        .iter()
        .map(|(name, value)| (*name, value.as_str()))
        .collect();
    let reply = vault
        .login(&args.mount, &vault::json_body(&body_fields))
        .map_err(|err| explain_nonce_mismatch(err, nonce_created, args.nonce.as_deref()))?;
    for warning in &reply.warnings {
        log.warn(format!("Vault: {warning}"));
    }

    deliver_token(args, &reply.client_token, log)?;
    log.step(format!(
        "logged in: policies [{}], ttl {}s, accessor {}",
        reply.policies.join(", "),
        reply.lease_duration,
        reply.accessor.as_deref().unwrap_or("(none)")
    ));
    Ok(Outcome::LoggedIn(reply))
}

/// Warns about settings that work but weaken the secrets' protection.
fn warn_about_weak_settings(args: &LoginArgs, log: Log) {
    if matches!(args.token, TokenOutput::File(_)) && args.token_mode & 0o137 != 0 {
        log.warn(format!(
            "--token-mode {:04o} makes the token file executable, group-writable or readable by others; 0640 or 0600 is usual",
            args.token_mode
        ));
    }
    if args.nonce.is_some() && args.nonce_mode & 0o077 != 0 {
        log.warn(format!(
            "--nonce-mode {:04o} lets group or others read the nonce, and anyone who reads it can log in as this instance; 0600 is usual",
            args.nonce_mode
        ));
    }
    if let Some(rest) = args.server.strip_prefix("http://") {
        let host = rest.split(['/', ':']).next().unwrap_or_default();
        let loopback = host == "localhost" || host.starts_with("127.") || rest.starts_with("[::1]");
        if !loopback {
            log.warn(format!(
                "--server {} is plain http: the login and the token cross the network unencrypted",
                args.server
            ));
        }
    }
}

/// Warns about options that this run's other options make meaningless, so
/// that a setting the user relies on is never dropped without a word.
fn warn_about_ignored_settings(args: &LoginArgs, log: Log) {
    let ignored = |what: &str, why: &str| log.warn(format!("{what} is ignored: {why}"));
    match args.method {
        Method::Ec2 => {
            if args.sts_endpoint.is_some() {
                ignored("--sts-endpoint", "it applies to the iam method only");
            }
            if args.header_value.is_some() {
                ignored("--header-value", "it applies to the iam method only");
            }
        }
        Method::Iam => {
            if args.signature_type != SignatureType::Pkcs7 {
                ignored("--signature-type", "it applies to the ec2 method only");
            }
            if args.nonce.is_some() {
                log.step("--nonce is not used by the iam method, which has no nonce");
            }
        }
    }
    if args.tls.skip_verify && (args.tls.ca_cert.is_some() || args.tls.ca_path.is_some()) {
        ignored(
            "--ca-cert/--ca-path",
            "--tls-skip-verify turns certificate verification off",
        );
    }
    if args.min_ttl.is_some() && args.token == TokenOutput::Stdout {
        ignored(
            "--min-ttl",
            "with --token - there is no token file to check",
        );
    }
    if args.min_backoff > args.max_backoff {
        log.warn(format!(
            "--min-backoff {:?} is larger than --max-backoff {:?}; delays are capped at {:?}",
            args.min_backoff, args.max_backoff, args.min_backoff
        ));
    }
}

/// Returns the current token's TTL when `--min-ttl` is given and the token
/// file contains a token with more TTL than that (or one that never expires).
///
/// Any doubt (no file, an invalid token, Vault not answering) returns
/// `None`, so the run logs in: a skipped login must never leave the
/// instance without a working token.
fn current_token_ttl(args: &LoginArgs, vault: &Vault, log: Log) -> Option<u64> {
    let min_ttl = args.min_ttl?;
    let TokenOutput::File(path) = &args.token else {
        return None;
    };
    let token = std::fs::read_to_string(path).ok()?;
    let token = token.trim();
    if token.is_empty() {
        return None;
    }
    match vault.token_ttl(token) {
        Ok(Some(ttl)) if ttl == 0 || ttl > min_ttl.as_secs() => {
            let left = if ttl == 0 {
                "never expires".to_owned()
            } else {
                format!("still has {ttl}s to live")
            };
            log.step(format!(
                "token in {} {left} (more than --min-ttl {}s); not logging in",
                path.display(),
                min_ttl.as_secs()
            ));
            Some(ttl)
        }
        Ok(Some(ttl)) => {
            log.step(format!(
                "token in {} has {ttl}s left; logging in",
                path.display()
            ));
            None
        }
        Ok(None) => {
            log.step(format!(
                "token in {} is no longer valid; logging in",
                path.display()
            ));
            None
        }
        Err(err) => {
            log.step(format!(
                "could not check the token in {}: {err}; logging in",
                path.display()
            ));
            None
        }
    }
}

/// Takes the run lock and clears temporary files that killed runs left.
///
/// The lock lives beside the nonce, the state that concurrent runs must
/// not fork; the iam method has none, so it guards the token file.
fn lock_state(args: &LoginArgs, retry: &Retry, log: Log) -> Result<Option<lock::RunLock>> {
    let lock_target = match (&args.nonce, &args.token) {
        (Some(nonce), _) => Some(nonce.as_path()),
        (None, TokenOutput::File(token)) => Some(token.as_path()),
        (None, TokenOutput::Stdout) => None,
    };
    let lock = match lock_target {
        Some(target) => lock::acquire(&lock::lock_path(target), retry, log)?,
        None => None,
    };

    if let Some(path) = &args.nonce {
        files::remove_stale_temps(path);
    }
    if let TokenOutput::File(path) = &args.token {
        files::remove_stale_temps(path);
    }
    Ok(lock)
}

/// Prepares the Vault client. TLS and proxy settings are checked before
/// anything touches the network, so a bad CA file fails fast and changes
/// nothing.
fn connect_vault(
    args: &LoginArgs,
    env: &dyn Fn(&str) -> Option<String>,
    retry: Retry,
    log: Log,
) -> Result<Vault> {
    let tls = tls::setup(&args.tls, env, log)?;
    if args.server.starts_with("https://") {
        log.step(format!("TLS trust: {}", tls.trust));
    }

    let proxy = proxy::choose(&args.server, &args.proxy, env)?;
    log.step(format!("Vault {}: {}", args.server, proxy.reason));
    if let Some(namespace) = &args.namespace {
        log.step(format!("Vault namespace: {namespace}"));
    }

    Vault::new(
        &args.server,
        args.timeout,
        tls,
        proxy.url.as_deref(),
        args.namespace.as_deref(),
        retry,
        log,
    )
}

/// Writes the token to its file, or to stdout for `--token -`.
fn deliver_token(args: &LoginArgs, token: &str, log: Log) -> Result<()> {
    match &args.token {
        TokenOutput::File(path) => {
            files::write_token(path, token, args.token_mode)?;
            log.step(format!(
                "token written to {} (mode {:04o})",
                path.display(),
                args.token_mode
            ));
        }
        TokenOutput::Stdout => {
            let mut stdout = std::io::stdout().lock();
            writeln!(stdout, "{token}")
                .and_then(|()| stdout.flush())
                .map_err(|err| Error::file(format!("cannot write the token to stdout: {err}")))?;
        }
    }
    Ok(())
}

/// Collects the ec2 login fields: `role` (when known) and the signed identity.
///
/// With `--pkcs7` IMDS is not contacted at all, so a rescue shell without
/// IMDS works; the role then comes from `--role` or Vault's default.
fn ec2_fields(args: &LoginArgs, retry: Retry, log: Log) -> Result<Vec<(&'static str, String)>> {
    let mut fields = Vec::new();

    let (identity, imds) = match &args.pkcs7 {
        Some(source) => {
            log.step(format!(
                "identity: from {}; IMDS not used",
                source.describe()
            ));
            (Identity::Pkcs7(source.load()?), None)
        }
        None => {
            let imds = Imds::connect(
                &args.imds_endpoint,
                args.imds_version,
                args.imds_disabled,
                retry,
                log,
            )?;
            log.step(format!(
                "identity: {} signature from {}",
                args.signature_type.name(),
                imds.version_name()
            ));
            (identity::from_imds(&imds, args.signature_type)?, Some(imds))
        }
    };

    let role = match (&args.role, &imds) {
        (Some(role), _) => {
            log.step(format!("role: {role} (from --role)"));
            Some(role.clone())
        }
        (None, Some(imds)) => instance_profile_role(imds, log)?,
        (None, None) => {
            log.step("role: none sent; Vault uses the role named after the AMI ID");
            None
        }
    };

    if let Some(role) = role {
        fields.push(("role", role));
    }
    for (name, value) in identity.login_fields() {
        fields.push((name, value.to_owned()));
    }
    Ok(fields)
}

/// Returns the instance profile's name, the default role of the ec2 method:
/// the last segment of `InstanceProfileArn`, so that profiles with a path
/// (`arn:aws:iam::123:instance-profile/team/web`) give `web`.
fn instance_profile_role(imds: &Imds, log: Log) -> Result<Option<String>> {
    let Some(info) = imds.get_optional(IAM_INFO_PATH)? else {
        log.step("role: none sent, because the instance has no instance profile; Vault uses the role named after the AMI ID");
        return Ok(None);
    };
    let arn = match miniserde::json::from_str::<miniserde::json::Value>(&info) {
        Ok(miniserde::json::Value::Object(object)) => match object.get("InstanceProfileArn") {
            Some(miniserde::json::Value::String(arn)) => Some(arn.clone()),
            _ => None,
        },
        _ => None,
    };
    let name = arn
        .as_deref()
        .and_then(|arn| arn.rsplit('/').next())
        .filter(|name| !name.is_empty() && !name.contains(':'))
        .ok_or_else(|| {
            Error::imds(format!(
                "IMDS {IAM_INFO_PATH} has no usable InstanceProfileArn; pass --role to choose the Vault role"
            ))
        })?;
    log.step(format!("role: {name} (instance profile name from IMDS)"));
    Ok(Some(name.to_owned()))
}

/// Returns the nonce to send: the stored one, or a new one stored first.
/// Returns the nonce to send, and whether this run created it.
fn ensure_nonce(path: &std::path::Path, mode: u32, log: Log) -> Result<(String, bool)> {
    if let Some(nonce) = files::load_nonce(path)? {
        log.step(format!("nonce: reusing {}", path.display()));
        if let Some(extra) = files::mode_of(path)
            .map(|m| m & 0o077)
            .filter(|bits| *bits != 0)
        {
            log.warn(format!(
                "nonce file {} is accessible to group or others (mode bits {extra:03o}); anyone who reads it can log in as this instance; chmod 600 it",
                path.display()
            ));
        }
        return Ok((nonce, false));
    }
    let nonce = files::store_nonce(path, &files::generate_nonce()?, mode)?;
    log.step(format!(
        "nonce: created {} (mode {mode:04o})",
        path.display()
    ));
    Ok((nonce, true))
}

/// Adds what a nonce mismatch means when this run created the nonce: Vault
/// has an older nonce for this instance, so the original file was lost or
/// emptied, unless someone else logged in first.
fn explain_nonce_mismatch(mut err: Error, created: bool, path: Option<&std::path::Path>) -> Error {
    if err.status == Status::NonceMismatch && created {
        let path = path.map(|p| p.display().to_string()).unwrap_or_default();
        err.message = format!(
            "{}; this run created a new nonce in {path} because the file was missing or empty, so the original nonce file was lost (restore it), or another party logged in as this instance first",
            err.message
        );
    }
    err
}

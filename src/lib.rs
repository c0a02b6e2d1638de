//! vault-stork logs an EC2 instance in to HashiCorp Vault or OpenBao with
//! the AWS auth method and writes the Vault token, and the nonce that guards
//! later logins, to files.
//!
//! The binary is the product; this library exists so that the parts can be
//! tested and fuzzed one by one. The data path is short: [`cli::parse`]
//! turns flags and environment into [`cli::LoginArgs`], and [`login::run`]
//! fetches the identity ([`imds`], [`identity`]) or signs an STS request
//! ([`iam`], [`sigv4`]), keeps the nonce ([`files`]), logs in ([`vault`])
//! and writes the token ([`files`]).
//!
//! ```
//! use std::ffi::OsString;
//! use vault_stork::cli::{self, Command};
//!
//! let argv = ["vault-stork", "login", "--token", "/run/stork/token", "--nonce", "/var/lib/stork/nonce"];
//! let env = |name: &str| (name == "VAULT_ADDR").then(|| "https://vault.example.com:8200/".to_owned());
//! let Ok(Command::Login(args)) = cli::parse(argv.map(OsString::from), &env) else {
//!     panic!("valid arguments");
//! };
//! assert_eq!(args.server, "https://vault.example.com:8200");
//! assert_eq!(args.mount, "aws");
//! assert_eq!(args.token_mode, 0o640);
//! ```
//!
//! Known gaps:
//! - NOTE: the proxy is chosen for the `--server` host; a redirect to
//!   another host goes through the same proxy (or none).
//! - NOTE: a host name that does not resolve is retried like any transient
//!   failure, because std cannot tell a misspelt name from a resolver that
//!   is not ready yet. So a typo in `--server` costs `--max-wait`.
//! - NOTE: `Retry-After` on 429 and 503 replies is ignored; the backoff of
//!   [`retry`] applies.
//! - SOCKS proxies are rejected; only HTTP CONNECT proxies are supported.

#![forbid(unsafe_code)]

pub mod base64;
pub mod cli;
pub mod error;
pub mod exit;
pub mod files;
pub mod http;
pub mod iam;
pub mod identity;
pub mod imds;
pub mod lock;
pub mod log;
pub mod login;
pub mod proxy;
pub mod retry;
pub mod sigv4;
pub mod tls;
pub mod vault;

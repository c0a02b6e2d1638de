//! Fuzzes `cli::parse` with the arguments after `vault-stork login` and the
//! environment variables it reads.
//!
//! Input layout: the arguments, separated by NUL bytes, then optionally
//! three NUL bytes and `NAME=VALUE` environment entries separated by NUL
//! bytes. Arguments keep their raw bytes, so non-UTF-8 values are tested.
//! Environment values are decoded as lossy UTF-8, because the `env` callback
//! returns `String`. For a repeated name the last entry wins.
//!
//! Checks, besides the absence of panics:
//! - An error has a non-empty message on one line.
//! - A successful login has the invariants that the rest of the program
//!   relies on (a URL without a trailing slash, modes within 0o777, and so on).

#![no_main]

use std::collections::HashMap;
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

use libfuzzer_sys::fuzz_target;
use vault_stork::cli::{self, Command, Method};
use vault_stork::exit::Status;

fuzz_target!(|data: &[u8]| {
    let (args_part, env_part) = match find(data, b"\0\0\0") {
        Some(at) => (&data[..at], &data[at + 3..]),
        None => (data, &[][..]),
    };

    let mut argv = vec![OsString::from("vault-stork"), OsString::from("login")];
    if !args_part.is_empty() {
        argv.extend(
            args_part
                .split(|&b| b == 0)
                .map(|arg| OsString::from_vec(arg.to_vec())),
        );
    }

    let mut variables = HashMap::new();
    for entry in env_part.split(|&b| b == 0) {
        let entry = String::from_utf8_lossy(entry);
        if let Some((name, value)) = entry.split_once('=') {
            variables.insert(name.to_owned(), value.to_owned());
        }
    }
    let env = |name: &str| variables.get(name).cloned();

    match cli::parse(argv, &env) {
        Ok(Command::Print(text)) => assert!(!text.is_empty()),
        Ok(Command::Login(args)) => {
            assert!(
                args.server.starts_with("https://") || args.server.starts_with("http://"),
                "server {:?}",
                args.server
            );
            assert!(!args.server.ends_with('/'), "server {:?}", args.server);
            assert!(!args.mount.is_empty());
            assert!(
                !args.mount.starts_with('/') && !args.mount.ends_with('/'),
                "mount {:?}",
                args.mount
            );
            assert!(
                !args.imds_endpoint.ends_with('/'),
                "IMDS endpoint {:?}",
                args.imds_endpoint
            );
            assert!(!args.region.is_empty());
            if args.method == Method::Ec2 {
                assert!(args.nonce.is_some(), "ec2 login without a nonce file");
            }
            assert!(args.token_mode <= 0o777, "token mode {:o}", args.token_mode);
            assert!(args.nonce_mode <= 0o777, "nonce mode {:o}", args.nonce_mode);
            assert!(!args.timeout.is_zero());
            assert!(!args.min_backoff.is_zero());
            assert!(!args.max_backoff.is_zero());
        }
        Err(err) => {
            assert!(
                !err.message.is_empty(),
                "empty message, status {:?}",
                err.status
            );
            assert!(
                !err.message.contains('\n'),
                "message has a newline: {:?}",
                err.message
            );
            assert!(
                !err.message.contains('\r'),
                "message has a carriage return: {:?}",
                err.message
            );
            assert!(
                matches!(err.status, Status::Usage | Status::Credentials),
                "status {:?}: {}",
                err.status,
                err.message
            );
        }
    }
});

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

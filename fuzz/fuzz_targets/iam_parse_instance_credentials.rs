//! Fuzzes `iam::parse_instance_credentials`, which reads the credentials
//! JSON that IMDS serves for the instance role.
//!
//! Input layout: line 1 is the current time as an `x-amz-date`
//! (`20261204T120000Z`). When it does not parse, that fixed time is used and
//! the whole input is the body. Otherwise the rest of the input is the body.
//!
//! Checks, besides the absence of panics:
//! - On success, the access key ID and the secret are not empty.
//! - On an error, the status is `Credentials`. The message names the path,
//!   is one line, and contains neither the secret access key nor the session
//!   token (see `check_no_secret` for which secrets are checked).

#![no_main]

use libfuzzer_sys::fuzz_target;
use miniserde::json::{self, Value};
use vault_stork::exit::Status;
use vault_stork::iam::parse_instance_credentials;
use vault_stork::sigv4::AmzDate;

const PATH: &str = "/latest/meta-data/iam/security-credentials/stork-role";
const DEFAULT_NOW: &str = "20261204T120000Z";

fuzz_target!(|data: &[u8]| {
    let (now, body_bytes) = match data.iter().position(|&b| b == b'\n') {
        Some(end) => match std::str::from_utf8(&data[..end])
            .ok()
            .and_then(AmzDate::parse)
        {
            Some(now) => (now, &data[end + 1..]),
            None => (AmzDate::parse(DEFAULT_NOW).unwrap(), data),
        },
        None => (AmzDate::parse(DEFAULT_NOW).unwrap(), data),
    };
    // `imds::Imds::get` decodes the body the same lossy way.
    let body = String::from_utf8_lossy(body_bytes);

    match parse_instance_credentials(&body, PATH, &now) {
        Ok(credentials) => {
            assert!(!credentials.access_key_id.is_empty());
            assert!(!credentials.secret_access_key.is_empty());
            assert_ne!(credentials.session_token.as_deref(), Some(""));
        }
        Err(err) => {
            assert_eq!(err.status, Status::Credentials, "{}", err.message);
            assert!(
                err.message.starts_with(&format!("IMDS {PATH}: ")),
                "{}",
                err.message
            );
            assert!(
                !err.message.contains('\n'),
                "message has a newline: {:?}",
                err.message
            );
            check_no_secret(&err.message, &body, &now);
        }
    }
});

/// Asserts that `message` quotes neither `SecretAccessKey` nor `Token`.
///
/// Only secrets that look real are checked: 16 or more base64 characters,
/// which no word of the message templates reaches. A secret that also
/// occurs in a value the message may quote (`Code`, `Expiration`, the path,
/// the current time) is skipped, because finding it there is no leak.
fn check_no_secret(message: &str, body: &str, now: &AmzDate) {
    let Ok(Value::Object(object)) = json::from_str::<Value>(body) else {
        return;
    };
    let text = |name: &str| match object.get(name) {
        Some(Value::String(value)) => value.clone(),
        _ => String::new(),
    };
    let code = text("Code");
    let expiration = text("Expiration");
    let quotable = [
        PATH.to_owned(),
        now.amz_date().to_owned(),
        format!("{code:?}"),
        code,
        format!("{expiration:?}"),
        expiration,
    ];

    for name in ["SecretAccessKey", "Token"] {
        let secret = text(name);
        let looks_real = secret.len() >= 16
            && secret
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b));
        if !looks_real || quotable.iter().any(|q| q.contains(&secret)) {
            continue;
        }
        assert!(
            !message.contains(&secret),
            "message quotes {name}: {message:?}"
        );
    }
}

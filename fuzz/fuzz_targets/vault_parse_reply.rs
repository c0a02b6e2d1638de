//! Fuzzes `vault::parse_reply`, which classifies Vault's reply to a login.
//!
//! Input layout, so that seeds stay readable text:
//! - line 1: the HTTP status. Decimal digits give that number; any other
//!   byte still folds into some `u16`, so every input reaches the parser.
//! - line 2: the `Location` header, or an empty line for none.
//! - the rest: the body.
//!
//! Checks, besides the absence of panics:
//! - On an error, the message is one line. For codes below 600, the status
//!   class and the retry flag follow the table in `parse_reply`'s docs.
//! - On success, the status is 2xx and the token is not empty.

#![no_main]

use libfuzzer_sys::fuzz_target;
use vault_stork::exit::Status;
use vault_stork::vault::parse_reply;

fuzz_target!(|data: &[u8]| {
    let mut lines = data.splitn(3, |&b| b == b'\n');
    let status_line = lines.next().unwrap_or_default();
    let location_line = lines.next().unwrap_or_default();
    let body_bytes = lines.next().unwrap_or_default();

    let status = status_line.iter().fold(0u16, |n, &b| {
        n.wrapping_mul(10)
            .wrapping_add(u16::from(b.wrapping_sub(b'0')))
    });
    let location = header_value(location_line);
    // `http::read_reply` decodes the body the same lossy way.
    let body = String::from_utf8_lossy(body_bytes);

    match parse_reply(status, &body, location) {
        Ok(reply) => {
            assert!((200..300).contains(&status), "success with HTTP {status}");
            assert!(
                !reply.client_token.is_empty(),
                "success with an empty token"
            );
        }
        Err(err) => {
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
            if (200..300).contains(&status) {
                assert_eq!(err.status, Status::VaultProtocol, "{}", err.message);
            } else if status < 600 {
                // NOTE: the documented table covers codes up to 599 only.
                // Above that, parse_reply marks the error transient but
                // classes it as a rejected login, and this target accepts it.
                let transient = status == 429 || status >= 500;
                assert_eq!(err.transient, transient, "HTTP {status}: {}", err.message);
                let expected: &[Status] = if transient {
                    &[Status::VaultUnavailable, Status::NonceMismatch]
                } else {
                    &[
                        Status::VaultUnavailable,
                        Status::LoginRejected,
                        Status::NonceMismatch,
                    ]
                };
                assert!(
                    expected.contains(&err.status),
                    "HTTP {status} gave {:?}",
                    err.status
                );
            }
        }
    }
});

/// Returns the `Location` value that `http::read_reply` would pass on for a
/// header with these bytes: `HeaderValue::to_str` accepts only visible ASCII,
/// space and tab, and anything else makes the header `None`.
fn header_value(bytes: &[u8]) -> Option<&str> {
    if bytes.is_empty() {
        return None;
    }
    let visible = bytes
        .iter()
        .all(|&b| b == b'\t' || (0x20..0x7f).contains(&b));
    if !visible {
        return None;
    }
    std::str::from_utf8(bytes).ok()
}

//! Fuzzes `identity::clean_pkcs7`, which strips PEM armour and whitespace
//! from a PKCS7 given on the command line, in a file, on stdin or by IMDS.
//!
//! The input bytes, decoded as lossy UTF-8 like an IMDS body, are the raw
//! PKCS7 text.
//!
//! Checks, besides the absence of panics:
//! - On success, the output has no whitespace and decodes with
//!   `base64::decode` to a DER SEQUENCE of at least 16 bytes. It keeps the
//!   input's characters in order, and cleaning it again returns it unchanged.
//! - On an error, the status is `InvalidData`. The message starts with the
//!   origin, is one line, and is too short to quote the input.

#![no_main]

use libfuzzer_sys::fuzz_target;
use vault_stork::base64;
use vault_stork::exit::Status;
use vault_stork::identity::clean_pkcs7;

const ORIGIN: &str = "--pkcs7 value";

/// Maximum message length besides the origin. The longest template, with a
/// one-character quote and a 20-digit offset, is under 200 bytes.
const MAX_MESSAGE_EXTRA: usize = 256;

fuzz_target!(|data: &[u8]| {
    let raw = String::from_utf8_lossy(data);

    match clean_pkcs7(&raw, ORIGIN) {
        Ok(cleaned) => {
            assert!(
                !cleaned.chars().any(char::is_whitespace),
                "whitespace in {cleaned:?}"
            );
            let der = base64::decode(&cleaned).expect("the cleaned PKCS7 decodes as base64");
            assert_eq!(der.first(), Some(&0x30), "not a DER SEQUENCE");
            assert!(der.len() >= 16, "only {} bytes", der.len());
            assert!(
                is_subsequence(&cleaned, &raw),
                "output has characters the input lacks"
            );

            let again = clean_pkcs7(&cleaned, ORIGIN).expect("a cleaned PKCS7 cleans again");
            assert_eq!(again, cleaned);
        }
        Err(err) => {
            assert_eq!(err.status, Status::InvalidData, "{}", err.message);
            assert!(err.message.starts_with(ORIGIN), "{}", err.message);
            assert!(
                !err.message.contains('\n'),
                "message has a newline: {:?}",
                err.message
            );
            assert!(
                err.message.len() <= ORIGIN.len() + MAX_MESSAGE_EXTRA,
                "message of {} bytes may quote the input: {:?}",
                err.message.len(),
                err.message
            );
        }
    }
});

/// Returns true when the characters of `part` occur in `whole` in order.
fn is_subsequence(part: &str, whole: &str) -> bool {
    let mut rest = whole.chars();
    part.chars().all(|wanted| rest.any(|c| c == wanted))
}

//! Fuzzes `files::parse_mode`, which reads `--token-mode` and
//! `--nonce-mode`.
//!
//! Checks, besides the absence of panics:
//! - An accepted mode is at most `0o777` and equals the value's octal digits.
//! - An error message names the flag and is one line.

#![no_main]

use libfuzzer_sys::fuzz_target;
use vault_stork::exit::Status;
use vault_stork::files::parse_mode;

const FLAG: &str = "--token-mode";

fuzz_target!(|data: &[u8]| {
    let value = String::from_utf8_lossy(data);

    match parse_mode(FLAG, &value) {
        Ok(mode) => {
            assert!(mode <= 0o777, "mode {mode:o} from {value:?}");
            let digits = value.strip_prefix("0o").unwrap_or(&value);
            // NOTE: `u32::from_str_radix` also takes one leading '+', so
            // parse_mode accepts "+640" and returns the mode of "640".
            let digits = digits.strip_prefix('+').unwrap_or(digits);
            assert!(!digits.is_empty(), "accepted {value:?}");
            assert!(
                digits.bytes().all(|b| (b'0'..=b'7').contains(&b)),
                "accepted {value:?}"
            );
            let expected = digits.bytes().fold(0u64, |n, b| {
                n.saturating_mul(8).saturating_add(u64::from(b - b'0'))
            });
            assert_eq!(u64::from(mode), expected, "value {value:?}");
        }
        Err(err) => {
            assert_eq!(err.status, Status::Usage);
            assert!(
                err.message.starts_with(&format!("invalid {FLAG} ")),
                "{}",
                err.message
            );
            assert!(
                !err.message.contains('\n'),
                "message has a newline: {:?}",
                err.message
            );
        }
    }
});

//! Fuzzes `cli::parse_duration`, which reads `--timeout`, `--max-wait`,
//! the backoff flags and `--min-ttl`.
//!
//! Checks, besides the absence of panics, that the result matches the
//! documented grammar, which `expected_duration` implements again: optional
//! surrounding whitespace, decimal digits, then no unit or one of `ms`, `s`,
//! `m`, `h`. Zero and overflow give `None`.

#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use vault_stork::cli::parse_duration;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    assert_eq!(
        parse_duration(&text),
        expected_duration(&text),
        "input {text:?}"
    );
});

fn expected_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let digits_end = text.bytes().take_while(u8::is_ascii_digit).count();
    let (digits, unit) = text.split_at(digits_end);
    let number: u64 = digits.parse().ok()?;
    let duration = match unit {
        "" | "s" => Duration::from_secs(number),
        "ms" => Duration::from_millis(number),
        "m" => Duration::from_secs(number.checked_mul(60)?),
        "h" => Duration::from_secs(number.checked_mul(60 * 60)?),
        _ => return None,
    };
    if duration.is_zero() {
        None
    } else {
        Some(duration)
    }
}

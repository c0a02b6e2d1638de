//! Fuzzes `base64::decode` on arbitrary text, and `encode` and
//! `encode_url_safe` on arbitrary bytes.
//!
//! Checks, besides the absence of panics:
//! - `decode(encode(x)) == x` for every non-empty `x`. The same holds for
//!   the URL-safe alphabet once `-_` are mapped back to `+/`.
//! - Encoded lengths are `4 * ceil(n / 3)`.
//! - Whatever `decode` accepts is padded standard base64 that encodes back
//!   to the same text. The exception is the unused low bits of the last
//!   character before the padding, which `decode` does not check.

#![no_main]

use libfuzzer_sys::fuzz_target;
use vault_stork::base64::{decode, encode, encode_url_safe};

fuzz_target!(|data: &[u8]| {
    check_round_trip(data);
    check_decode(&String::from_utf8_lossy(data));
});

fn check_round_trip(data: &[u8]) {
    let expected_len = data.len().div_ceil(3) * 4;

    let standard = encode(data);
    assert_eq!(standard.len(), expected_len);
    let url_safe = encode_url_safe(data);
    assert_eq!(url_safe.len(), expected_len);
    assert!(
        !url_safe.contains(['+', '/']),
        "URL-safe output {url_safe:?}"
    );

    if data.is_empty() {
        assert_eq!(standard, "");
        assert!(decode(&standard).is_err(), "decode accepts empty input");
        return;
    }
    assert_eq!(decode(&standard).as_deref(), Ok(data));
    let mapped: String = url_safe
        .chars()
        .map(|c| match c {
            '-' => '+',
            '_' => '/',
            other => other,
        })
        .collect();
    assert_eq!(mapped, standard);
    if url_safe.contains(['-', '_']) {
        assert!(
            decode(&url_safe).is_err(),
            "decode accepts URL-safe {url_safe:?}"
        );
    }
}

fn check_decode(text: &str) {
    let decoded = match decode(text) {
        Ok(decoded) => decoded,
        Err(err) => {
            let message = err.to_string();
            assert!(!message.is_empty());
            assert!(!message.contains('\n'), "{message:?}");
            return;
        }
    };

    assert!(!text.is_empty());
    assert_eq!(text.len() % 4, 0, "accepted length {}", text.len());
    let padding = text.len() - text.trim_end_matches('=').len();
    assert!(padding <= 2, "accepted {padding} padding characters");
    assert_eq!(decoded.len(), text.len() / 4 * 3 - padding);

    let encoded = encode(&decoded);
    assert_eq!(encoded.len(), text.len());
    if padding == 0 {
        assert_eq!(encoded, text);
    } else {
        // The last character before the padding carries 2 or 4 unused bits,
        // so only the characters around it must match.
        let last = text.len() - padding - 1;
        assert_eq!(encoded[..last], text[..last]);
        assert_eq!(encoded[last + 1..], text[last + 1..]);
    }
    assert_eq!(decode(&encoded).as_deref(), Ok(&decoded[..]));
}

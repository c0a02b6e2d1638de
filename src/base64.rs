//! Base64 (RFC 4648) encoding and strict decoding.
//!
//! Written here instead of pulling a crate because the tool needs only the
//! padded standard and URL-safe alphabets, and strict decoding is what lets
//! it reject a `--pkcs7` value that is not base64 before it is sent to Vault.

const STANDARD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const URL_SAFE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Encodes `data` with the standard alphabet and `=` padding.
pub fn encode(data: &[u8]) -> String {
    encode_with(data, STANDARD)
}

/// Encodes `data` with the URL-safe alphabet and `=` padding.
pub fn encode_url_safe(data: &[u8]) -> String {
    encode_with(data, URL_SAFE)
}

fn encode_with(data: &[u8], alphabet: &[u8; 64]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let sextets = [(n >> 18) & 63, (n >> 12) & 63, (n >> 6) & 63, n & 63];
        for (i, sextet) in sextets.iter().enumerate() {
            if i <= chunk.len() {
                out.push(char::from(alphabet[*sextet as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The reason a string is not valid padded standard base64.
#[derive(Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// The input is empty.
    Empty,
    /// The length is not a multiple of 4.
    Length(usize),
    /// A byte outside the alphabet, at this offset.
    InvalidByte(usize, u8),
    /// `=` appears somewhere other than the last one or two positions.
    Padding,
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::Empty => write!(f, "it is empty"),
            DecodeError::Length(n) => write!(f, "its length {n} is not a multiple of 4"),
            DecodeError::InvalidByte(at, b) if b.is_ascii_graphic() => {
                write!(
                    f,
                    "character {:?} at offset {at} is not in the base64 alphabet",
                    char::from(*b)
                )
            }
            DecodeError::InvalidByte(at, b) => {
                write!(
                    f,
                    "byte 0x{b:02x} at offset {at} is not in the base64 alphabet"
                )
            }
            DecodeError::Padding => write!(f, "'=' padding appears before the end"),
        }
    }
}

/// Decodes padded standard base64, rejecting anything else (no whitespace,
/// no URL-safe characters, no missing padding).
///
/// # Errors
///
/// Returns the first [`DecodeError`] found.
pub fn decode(input: &str) -> Result<Vec<u8>, DecodeError> {
    let bytes = input.as_bytes();
    if bytes.is_empty() {
        return Err(DecodeError::Empty);
    }
    if !bytes.len().is_multiple_of(4) {
        return Err(DecodeError::Length(bytes.len()));
    }

    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    let last_chunk = bytes.len() / 4 - 1;
    for (index, chunk) in bytes.chunks(4).enumerate() {
        let mut n: u32 = 0;
        let mut padding = 0;
        for (i, &b) in chunk.iter().enumerate() {
            let offset = index * 4 + i;
            let value = if b == b'=' {
                // Padding is legal only in the last chunk's last two places,
                // and once it starts nothing else may follow.
                if index != last_chunk || i < 2 {
                    return Err(DecodeError::Padding);
                }
                padding += 1;
                0
            } else {
                if padding > 0 {
                    return Err(DecodeError::Padding);
                }
                sextet(b).ok_or(DecodeError::InvalidByte(offset, b))?
            };
            n = (n << 6) | value;
        }
        out.push((n >> 16) as u8);
        if padding < 2 {
            out.push((n >> 8) as u8);
        }
        if padding < 1 {
            out.push(n as u8);
        }
    }
    Ok(out)
}

fn sextet(b: u8) -> Option<u32> {
    match b {
        b'A'..=b'Z' => Some(u32::from(b - b'A')),
        b'a'..=b'z' => Some(u32::from(b - b'a') + 26),
        b'0'..=b'9' => Some(u32::from(b - b'0') + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Test vectors from RFC 4648, section 10.
    const RFC4648: [(&str, &str); 7] = [
        ("", ""),
        ("f", "Zg=="),
        ("fo", "Zm8="),
        ("foo", "Zm9v"),
        ("foob", "Zm9vYg=="),
        ("fooba", "Zm9vYmE="),
        ("foobar", "Zm9vYmFy"),
    ];

    #[test]
    fn encode_rfc4648_vectors() {
        for (plain, encoded) in RFC4648 {
            assert_eq!(encode(plain.as_bytes()), encoded, "encoding {plain:?}");
        }
    }

    #[test]
    fn decode_rfc4648_vectors() {
        for (plain, encoded) in RFC4648.iter().skip(1) {
            assert_eq!(
                decode(encoded).unwrap(),
                plain.as_bytes(),
                "decoding {encoded:?}"
            );
        }
    }

    #[test]
    fn url_safe_uses_dash_and_underscore() {
        assert_eq!(encode_url_safe(&[0xfb, 0xff]), "-_8=");
        assert_eq!(encode(&[0xfb, 0xff]), "+/8=");
    }

    #[test]
    fn sixty_four_bytes_encode_to_88_chars() {
        assert_eq!(encode_url_safe(&[7u8; 64]).len(), 88);
    }

    #[test]
    fn decode_rejects_malformed_input() {
        assert_eq!(decode(""), Err(DecodeError::Empty));
        assert_eq!(decode("Zm9"), Err(DecodeError::Length(3)));
        assert_eq!(decode("Zm9<"), Err(DecodeError::InvalidByte(3, b'<')));
        assert_eq!(decode("Zg==Zm9v"), Err(DecodeError::Padding));
        assert_eq!(decode("Z==="), Err(DecodeError::Padding));
        assert_eq!(decode("Zm=v"), Err(DecodeError::Padding));
        assert_eq!(decode("-_8="), Err(DecodeError::InvalidByte(0, b'-')));
    }

    #[test]
    fn round_trip_all_lengths() {
        let data: Vec<u8> = (0..=255u8).collect();
        for len in 0..data.len() {
            let encoded = encode(&data[..len]);
            if len > 0 {
                assert_eq!(decode(&encoded).unwrap(), &data[..len]);
            }
        }
    }
}

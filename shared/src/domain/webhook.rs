//! A project's webhook: where its events are delivered, which ones, and the rules a delivery
//! keeps (docs/API.md v1.1, "Events and webhooks"): who may be called, and when a failed
//! delivery is tried again.

use std::collections::BTreeSet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Serialize, Serializer};
use time::OffsetDateTime;

use crate::domain::event::EventType;

pub const MAX_URL_CHARS: usize = 2048;

/// Where deliveries go: an absolute `https` URL without credentials, whose host is not a
/// literal address nobody outside the service's own network should be reached at. A host name
/// is checked again when a delivery resolves it ([`is_reachable`]): names can point anywhere.
///
/// Its path and query may carry a secret of the receiver's (`?token=…`), so logs name its host
/// only ([`WebhookUrl::host_for_logs`]; `Debug` shows no more) and it has no `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookUrl(url::Url);

impl WebhookUrl {
    /// `allow_loopback` (local development only) also accepts `http` and loopback hosts.
    pub fn parse(text: &str, allow_loopback: bool) -> Result<Self, String> {
        if text.chars().count() > MAX_URL_CHARS {
            return Err(format!("must be at most {MAX_URL_CHARS} characters"));
        }
        let url =
            url::Url::parse(text).map_err(|err| format!("must be an absolute URL ({err})"))?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err("must not carry credentials".into());
        }
        let loopback = match url.host() {
            None => return Err("must name a host".into()),
            Some(url::Host::Domain(name)) => is_loopback_name(name),
            Some(url::Host::Ipv4(ip)) => check_literal(IpAddr::V4(ip), allow_loopback)?,
            Some(url::Host::Ipv6(ip)) => check_literal(IpAddr::V6(ip), allow_loopback)?,
        };
        match url.scheme() {
            "https" if !loopback || allow_loopback => Ok(Self(url)),
            "http" if loopback && allow_loopback => Ok(Self(url)),
            _ if loopback => Err("must not be a private, loopback or link-local address".into()),
            _ => Err("must be an https URL".into()),
        }
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    pub fn host(&self) -> Option<url::Host<&str>> {
        self.0.host()
    }

    pub fn port(&self) -> u16 {
        self.0.port_or_known_default().unwrap_or(443)
    }

    /// What a log line may say of the URL: its host, and its port when not the scheme's own.
    pub fn host_for_logs(&self) -> String {
        let host = self.0.host_str().unwrap_or_default();
        match self.0.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        }
    }
}

impl fmt::Debug for WebhookUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "WebhookUrl({}://{}/…)",
            self.0.scheme(),
            self.host_for_logs()
        )
    }
}

impl Serialize for WebhookUrl {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

fn is_loopback_name(name: &str) -> bool {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    name == "localhost" || name.ends_with(".localhost")
}

/// Whether a literal address is loopback; an error if it may not be called at all.
fn check_literal(ip: IpAddr, allow_loopback: bool) -> Result<bool, String> {
    if ip.to_canonical().is_loopback() {
        Ok(true)
    } else if is_reachable(ip, allow_loopback) {
        Ok(false)
    } else {
        Err("must not be a private, loopback or link-local address".into())
    }
}

/// Whether a delivery may connect to `ip`: only addresses of the public internet, so that a
/// webhook cannot make the service call its own network, the instance metadata service
/// (169.254.169.254, fd00:ec2::254) or anything else a stranger should not reach through it.
/// `allow_loopback` (local development) lets loopback through too.
pub fn is_reachable(ip: IpAddr, allow_loopback: bool) -> bool {
    let ip = ip.to_canonical();
    if ip.is_loopback() {
        return allow_loopback;
    }
    match ip {
        IpAddr::V4(ip) => is_public_v4(ip),
        IpAddr::V6(ip) => is_public_v6(ip),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_unspecified()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0 // "this network"
        || (a == 100 && (64..128).contains(&b)) // carrier-grade NAT, 100.64.0.0/10
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments, 192.0.0.0/24
        || (a == 198 && (b == 18 || b == 19)) // benchmarking, 198.18.0.0/15
        || a >= 240) // reserved
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let segments = ip.segments();
    // NAT64 (64:ff9b::/96) reaches the IPv4 address in its last 32 bits.
    if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        let [.., high, low] = segments;
        return is_public_v4(Ipv4Addr::from((u32::from(high) << 16) | u32::from(low)));
    }
    // The ranges below carry or reach an IPv4 address whose own range a relay or translator on
    // the path would not check, or reach nothing public at all: none is ever a webhook's.
    !(ip.is_unspecified()
        || ip.is_multicast()
        || ip.is_unique_local() // fc00::/7, which holds fd00:ec2::254
        || ip.is_unicast_link_local() // fe80::/10
        || (segments[0] & 0xffc0) == 0xfec0 // deprecated site-local, fec0::/10
        || (segments[0] == 0x2001 && segments[1] == 0xdb8) // documentation
        || segments[..6] == [0; 6] // IPv4-compatible, ::a.b.c.d (deprecated)
        || segments[0] == 0x2002 // 6to4, 2002::/16: the IPv4 address in its next 32 bits
        || (segments[0] == 0x2001 && segments[1] == 0) // Teredo, 2001::/32
        || segments[..3] == [0x64, 0xff9b, 1] // local-use NAT64, 64:ff9b:1::/48
        || segments[..4] == [0x100, 0, 0, 0]) // discard-only, 100::/64
}

/// A `PUT …/webhook` body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookRequest {
    pub url: WebhookUrl,
    /// The events to deliver; every type when the body names none.
    pub events: BTreeSet<EventType>,
    /// A new signing secret, replacing the current one.
    pub rotate_secret: bool,
}

/// The key that signs a project's deliveries: `whsec_` and the base64 of 32 random bytes, as
/// Standard Webhooks writes secrets. It is shown once, when created or rotated; `Debug` hides it
/// so that no log line can carry it.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningSecret(String);

pub const SECRET_PREFIX: &str = "whsec_";

impl SigningSecret {
    pub fn from_random(bytes: [u8; 32]) -> Self {
        Self(format!("{SECRET_PREFIX}{}", STANDARD.encode(bytes)))
    }

    /// A secret as stored; `None` if it is not one this service made.
    pub fn from_stored(text: &str) -> Option<Self> {
        let raw = STANDARD.decode(text.strip_prefix(SECRET_PREFIX)?).ok()?;
        (raw.len() == 32).then(|| Self(text.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningSecret(…)")
    }
}

/// A project's webhook, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookConfig {
    pub project_id: String,
    pub url: WebhookUrl,
    pub events: BTreeSet<EventType>,
    pub secret: SigningSecret,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

impl WebhookConfig {
    /// The webhook after `request`: a new one gets `fresh_secret`, and so does a rotation; the
    /// secret is to be shown (the second value) exactly then.
    pub fn set(
        existing: Option<&WebhookConfig>,
        project_id: &str,
        request: WebhookRequest,
        fresh_secret: SigningSecret,
        now: OffsetDateTime,
    ) -> (Self, bool) {
        let (secret, created_at, show) = match existing {
            Some(current) if !request.rotate_secret => {
                (current.secret.clone(), current.created_at, false)
            }
            Some(current) => (fresh_secret, current.created_at, true),
            None => (fresh_secret, now, true),
        };
        let config = Self {
            project_id: project_id.to_owned(),
            url: request.url,
            events: request.events,
            secret,
            created_at,
            updated_at: now,
        };
        (config, show)
    }

    pub fn wants(&self, kind: EventType) -> bool {
        self.events.contains(&kind)
    }
}

/// Delays between a failed delivery and its next attempt double from `base`, up to this.
pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(3 * 3600);

/// How long to wait after failed attempt `attempt` (1 for the first) before the next one.
pub fn retry_delay(base: Duration, attempt: u32) -> Duration {
    let doublings = attempt.saturating_sub(1).min(20);
    base.saturating_mul(1 << doublings).min(MAX_RETRY_DELAY)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn deliveries_reach_only_the_public_internet() {
        for public in [
            "93.184.215.14",
            "8.8.8.8",
            "2606:4700::1111",
            "64:ff9b::808:808",
            "2001:4860:4860::8888", // 2001::/23 beyond Teredo's /32 is public
            "64:ff9b:2::1",         // past local-use NAT64's /48
            "100:0:0:1::1",         // past the discard-only /64
        ] {
            assert!(is_reachable(ip(public), false), "{public}");
        }
        for private in [
            "127.0.0.1",
            "127.8.9.10",
            "10.0.0.1",
            "172.16.5.4",
            "192.168.1.1",
            "169.254.169.254", // instance metadata
            "100.64.0.1",
            "0.0.0.0",
            "0.1.2.3",
            "255.255.255.255",
            "224.0.0.1",
            "192.0.0.170",
            "198.18.0.1",
            "240.0.0.1",
            "::1",
            "::",
            "fd00:ec2::254", // instance metadata over IPv6
            "fe80::1",
            "fec0::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe", // NAT64 to 169.254.169.254
            "2001:db8::1",
            "::a9fe:a9fe",       // IPv4-compatible 169.254.169.254
            "::808:808",         // IPv4-compatible, even of a public address
            "2002:a9fe:a9fe::1", // 6to4 of 169.254.169.254
            "2002:808:808::1",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2", // Teredo
            "2001::a9fe:a9fe",
            "64:ff9b:1::a9fe:a9fe", // local-use NAT64
            "64:ff9b:1:ffff::808:808",
            "100::1", // discard-only
            "100::ffff:ffff:ffff:ffff",
        ] {
            assert!(!is_reachable(ip(private), false), "{private}");
        }
        assert!(is_reachable(ip("127.0.0.1"), true));
        assert!(is_reachable(ip("::ffff:127.0.0.1"), true));
        assert!(!is_reachable(ip("10.0.0.1"), true));
    }

    #[test]
    fn urls_must_be_https_without_credentials_or_private_literals() {
        assert!(WebhookUrl::parse("https://hooks.example.com/upload?x=1", false).is_ok());
        let refused = [
            ("http://hooks.example.com/", "https"),
            ("ftp://hooks.example.com/", "https"),
            ("hooks.example.com/x", "absolute URL"),
            ("https://user:pw@hooks.example.com/", "credentials"),
            ("https://user@hooks.example.com/", "credentials"),
            ("https://10.1.2.3/hook", "private"),
            ("https://[::1]/hook", "private"),
            ("https://169.254.169.254/latest/meta-data", "private"),
            ("https://localhost/hook", "private"),
            ("https://api.localhost./hook", "private"),
            ("https://[::ffff:192.168.0.1]/", "private"),
            ("https://[::a9fe:a9fe]/", "private"),
            ("https://[2002:a9fe:a9fe::]/", "private"),
            ("https://[2001::1]/", "private"),
            ("https://[64:ff9b:1::a00:1]/", "private"),
            ("https://[100::1]/", "private"),
        ];
        for (url, why) in refused {
            let message = WebhookUrl::parse(url, false).unwrap_err();
            assert!(message.contains(why), "{url}: {message}");
        }
        let secret =
            WebhookUrl::parse("https://hooks.example.com:8443/u/s3cret?token=t0k", false).unwrap();
        assert_eq!(secret.host_for_logs(), "hooks.example.com:8443");
        let shown = format!("{secret:?}");
        assert!(
            !shown.contains("s3cret") && !shown.contains("t0k"),
            "{shown}"
        );
        let long = format!("https://example.com/{}", "a".repeat(MAX_URL_CHARS));
        assert!(
            WebhookUrl::parse(&long, false)
                .unwrap_err()
                .contains("2048")
        );
    }

    #[test]
    fn local_development_may_call_loopback_over_http() {
        for url in [
            "http://127.0.0.1:8787/hook",
            "http://localhost:9/",
            "https://[::1]/",
        ] {
            assert!(WebhookUrl::parse(url, true).is_ok(), "{url}");
        }
        assert!(WebhookUrl::parse("http://example.com/", true).is_err());
        assert!(WebhookUrl::parse("http://10.0.0.1/", true).is_err());
    }

    #[test]
    fn secrets_are_shown_when_made_and_hidden_from_logs() {
        let secret = SigningSecret::from_random([7; 32]);
        assert!(secret.expose().starts_with("whsec_"));
        assert_eq!(
            SigningSecret::from_stored(secret.expose()),
            Some(secret.clone())
        );
        assert_eq!(SigningSecret::from_stored("whsec_short"), None);
        assert!(!format!("{secret:?}").contains(&secret.expose()[6..]));

        let request = |rotate| WebhookRequest {
            url: WebhookUrl::parse("https://example.com/a", false).unwrap(),
            events: BTreeSet::from([EventType::FileVerified]),
            rotate_secret: rotate,
        };
        let (t0, t1) = (
            crate::domain::timestamp::now(),
            crate::domain::timestamp::now(),
        );
        let first = SigningSecret::from_random([1; 32]);
        let (created, shown) = WebhookConfig::set(None, "p1", request(false), first.clone(), t0);
        assert!(shown && created.secret == first && created.created_at == t0);
        let other = SigningSecret::from_random([2; 32]);
        let (updated, shown) =
            WebhookConfig::set(Some(&created), "p1", request(false), other.clone(), t1);
        assert!(!shown && updated.secret == first && updated.created_at == t0);
        let (rotated, shown) =
            WebhookConfig::set(Some(&created), "p1", request(true), other.clone(), t1);
        assert!(shown && rotated.secret == other && rotated.updated_at == t1);
    }

    #[test]
    fn retries_back_off_and_span_a_day_with_the_template_defaults() {
        let base = Duration::from_secs(30);
        assert_eq!(retry_delay(base, 1), base);
        assert_eq!(retry_delay(base, 2), base * 2);
        assert_eq!(retry_delay(base, 100), MAX_RETRY_DELAY);
        // template.yaml's WebhookMaxAttempts: its retries must span at least 24 hours.
        let template = include_str!("../../../template.yaml");
        let max_attempts: u32 = template
            .split("WebhookMaxAttempts:")
            .nth(1)
            .and_then(|rest| rest.split("Default:").nth(1))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|default| default.parse().ok())
            .expect("WebhookMaxAttempts' default in template.yaml");
        let waited: Duration = (1..max_attempts).map(|n| retry_delay(base, n)).sum();
        assert!(waited >= Duration::from_secs(24 * 3600), "{waited:?}");
    }
}

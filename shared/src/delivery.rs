//! The webhook adapter (feature `delivery`, which only the deliver function enables): one signed
//! POST of an event to a project's webhook, as Standard Webhooks specifies (`webhook-id`,
//! `webhook-timestamp`, `webhook-signature: v1,…`), over a client that follows no redirect,
//! goes through no proxy, and connects only where [`is_reachable`] allows.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

pub use reqwest::Error as SenderError;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use crate::config::Config;
use crate::contract::EventMessage;
use crate::domain::webhook::{WebhookConfig, is_reachable};

#[derive(Debug, Clone)]
pub struct Sender {
    http: reqwest::Client,
    allow_loopback: bool,
}

impl Sender {
    pub fn new(config: &Config) -> Result<Self, SenderError> {
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls())
            .redirect(reqwest::redirect::Policy::none())
            // A proxy (HTTPS_PROXY in the environment) would resolve and connect in our stead,
            // past CheckedResolver.
            .no_proxy()
            .timeout(config.webhook_timeout)
            .connect_timeout(config.webhook_timeout)
            .dns_resolver(Arc::new(CheckedResolver {
                allow_loopback: config.webhook_allow_loopback,
            }))
            .user_agent("upload-service-webhooks/1")
            .build()?;
        Ok(Self {
            http,
            allow_loopback: config.webhook_allow_loopback,
        })
    }

    /// One signed POST of `event` to `webhook`: delivered on a 2xx, or why not (a redirect, a
    /// timeout, an address the service may not call, …).
    pub async fn post(&self, webhook: &WebhookConfig, event: &EventMessage) -> Result<(), String> {
        // Names are checked where they resolve (CheckedResolver); literals never resolve.
        let literal = match webhook.url.host() {
            Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
            _ => None,
        };
        if literal.is_some_and(|ip| !is_reachable(ip, self.allow_loopback)) {
            return Err("the webhook's address may not be called".into());
        }
        let body = event.to_json().to_string();
        let timestamp = time::OffsetDateTime::now_utc().unix_timestamp();
        let signature = standardwebhooks::Webhook::new(webhook.secret.expose())
            .and_then(|signer| signer.sign(&event.id, timestamp, body.as_bytes()))
            .map_err(|err| format!("signing: {err}"))?;
        let result = self
            .http
            .post(webhook.url.as_str())
            .header("content-type", "application/json")
            .header(standardwebhooks::HEADER_WEBHOOK_ID, &event.id)
            .header(
                standardwebhooks::HEADER_WEBHOOK_TIMESTAMP,
                timestamp.to_string(),
            )
            .header(standardwebhooks::HEADER_WEBHOOK_SIGNATURE, signature)
            .body(body)
            .send()
            .await;
        match result {
            Ok(response) if response.status().is_success() => Ok(()),
            Ok(response) => Err(format!("the receiver answered {}", response.status())),
            // The error's chain names the cause (timeout, refused address, TLS), never the signing
            // secret; reqwest's errors name the URL, whose path and query may hold the receiver's.
            Err(err) => Err(format!("{:?}", ErrorChain(&err.without_url()))),
        }
    }
}

/// TLS 1.2 and 1.3 on aws-lc (the SDK's provider), trusting the Mozilla roots built in.
fn tls() -> rustls::ClientConfig {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_or_else(
        |_| unreachable!("aws-lc supports the default protocol versions"),
        |builder| builder.with_root_certificates(roots).with_no_client_auth(),
    )
}

/// Resolves a webhook's host, and refuses it when any of its addresses is one the service may
/// not call: the check and the connection use the same answer, so a name cannot pass the check
/// and then point the connection elsewhere (DNS rebinding).
#[derive(Debug)]
struct CheckedResolver {
    allow_loopback: bool,
}

impl Resolve for CheckedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_loopback = self.allow_loopback;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addresses: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if addresses.is_empty() {
                return Err(format!("{host} has no address").into());
            }
            if let Some(refused) = addresses
                .iter()
                .find(|address| !is_reachable(address.ip(), allow_loopback))
            {
                return Err(format!(
                    "{host} resolves to {}, a private, loopback or link-local address",
                    refused.ip()
                )
                .into());
            }
            Ok(Box::new(addresses.into_iter()) as Addrs)
        })
    }
}

/// An error and its sources, on one line.
struct ErrorChain<'a>(&'a (dyn std::error::Error + 'static));

impl std::fmt::Debug for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(err) = source {
            write!(f, ": {err}")?;
            source = err.source();
        }
        Ok(())
    }
}

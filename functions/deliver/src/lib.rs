//! The webhook queue's trigger: delivers each event to its project's webhook, signed as Standard
//! Webhooks specifies (`webhook-id`, `webhook-timestamp`, `webhook-signature: v1,…`).
//!
//! A delivery that fails (no 2xx within `WEBHOOK_TIMEOUT_MS`, a redirect, an address the service
//! may not call) is reported as a failure of its message, which the queue hands back after a
//! delay that doubles with each attempt; past the queue's `maxReceiveCount` the message moves to
//! the dead-letter queue. The webhook is read at delivery time (once per project in a batch), so
//! a changed URL, a rotated secret or a removed webhook applies to deliveries still queued.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::eventbridge::EventBridgeEvent;
use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use shared::config::Config;
use shared::contract::EventMessage;
use shared::domain::webhook::{WebhookConfig, is_reachable, retry_delay};
use shared::dynamo::Webhooks;

/// What a delivery needs: the webhooks, the queue (to put a failed message back later) and an
/// HTTP client that follows no redirect and connects only where [`is_reachable`] allows.
#[derive(Debug, Clone)]
pub struct Deliverer {
    webhooks: Webhooks,
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    http: reqwest::Client,
    retry_base: Duration,
    allow_loopback: bool,
}

/// Each project's webhook as a batch read it (`None`: the project has none), or why the read
/// failed.
type ProjectWebhooks<'a> = HashMap<&'a str, Result<Option<WebhookConfig>, String>>;

const NOT_AN_EVENT: &str = "not an event";

/// What became of one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Delivered,
    /// Not for anyone: the project has no webhook, or it does not want this type, or the
    /// message is not an event.
    Dropped(&'static str),
    /// To be tried again later.
    Failed(String),
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

impl Deliverer {
    pub fn new(
        config: &Config,
        webhooks: Webhooks,
        sqs: aws_sdk_sqs::Client,
        queue_url: String,
    ) -> Result<Self, reqwest::Error> {
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
            webhooks,
            sqs,
            queue_url,
            http,
            retry_base: config.webhook_retry_base,
            allow_loopback: config.webhook_allow_loopback,
        })
    }

    /// Delivers every message of `event` at once; the response names those to try again.
    pub async fn handle(&self, event: SqsEvent) -> SqsBatchResponse {
        let events: Vec<Option<EventMessage>> = event
            .records
            .iter()
            .map(|message| message.body.as_deref().and_then(event_of_envelope))
            .collect();
        let webhooks = self.webhooks_of(&events).await;
        let outcomes = futures_util::future::join_all(
            event
                .records
                .iter()
                .zip(&events)
                .map(|(message, event)| self.deliver(message, event.as_ref(), &webhooks)),
        )
        .await;
        let mut response = SqsBatchResponse::default();
        for (message, outcome) in event.records.iter().zip(outcomes) {
            if let Outcome::Failed(_) = outcome {
                let mut failure = BatchItemFailure::default();
                failure.item_identifier = message.message_id.clone().unwrap_or_default();
                response.batch_item_failures.push(failure);
            }
        }
        response
    }

    /// The webhook of each project the batch's events belong to, each read once, all at once:
    /// a burst of one project's events costs one read per batch, not one per event.
    async fn webhooks_of<'a>(&self, events: &'a [Option<EventMessage>]) -> ProjectWebhooks<'a> {
        let projects: HashSet<&str> = events
            .iter()
            .flatten()
            .filter_map(EventMessage::project_id)
            .collect();
        let reads = projects.into_iter().map(|project_id| async move {
            let webhook = self
                .webhooks
                .get(project_id)
                .await
                .map_err(|err| format!("reading the webhook: {err:?}"));
            (project_id, webhook)
        });
        futures_util::future::join_all(reads)
            .await
            .into_iter()
            .collect()
    }

    /// Delivers one message; a failure also sets when the queue hands it back.
    async fn deliver(
        &self,
        message: &SqsMessage,
        event: Option<&EventMessage>,
        webhooks: &ProjectWebhooks<'_>,
    ) -> Outcome {
        let outcome = self.attempt(event, webhooks).await;
        match &outcome {
            Outcome::Failed(why) => {
                let attempt = message
                    .attributes
                    .get("ApproximateReceiveCount")
                    .and_then(|count| count.parse().ok())
                    .unwrap_or(1);
                let delay = retry_delay(self.retry_base, attempt);
                tracing::warn!(message_id = ?message.message_id, attempt, retry_in_secs = delay.as_secs(), reason = %why, "delivery failed");
                self.retry_later(message, delay).await;
            }
            Outcome::Dropped(why) => {
                if *why == NOT_AN_EVENT {
                    tracing::error!(message_id = ?message.message_id, "not an event of this service");
                } else {
                    tracing::info!(message_id = ?message.message_id, reason = why, "nothing to deliver");
                }
            }
            Outcome::Delivered => {}
        }
        outcome
    }

    async fn attempt(
        &self,
        event: Option<&EventMessage>,
        webhooks: &ProjectWebhooks<'_>,
    ) -> Outcome {
        let Some((event, project_id)) = event.and_then(|event| Some((event, event.project_id()?)))
        else {
            return Outcome::Dropped(NOT_AN_EVENT);
        };
        let webhook = match webhooks.get(project_id) {
            Some(Ok(Some(webhook))) => webhook,
            Some(Ok(None)) => return Outcome::Dropped("the project has no webhook"),
            Some(Err(why)) => return Outcome::Failed(why.clone()),
            None => return Outcome::Failed("the webhook was not read".into()),
        };
        if !webhook.wants(event.kind) {
            return Outcome::Dropped("the webhook does not want this type");
        }
        let outcome = self.post(webhook, event).await;
        if outcome == Outcome::Delivered {
            tracing::info!(event_id = %event.id, kind = event.kind.as_str(), "delivered");
        }
        outcome
    }

    /// One signed POST of `event` to `webhook`.
    async fn post(&self, webhook: &WebhookConfig, event: &EventMessage) -> Outcome {
        // Names are checked where they resolve (CheckedResolver); literals never resolve.
        let literal = match webhook.url.host() {
            Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
            _ => None,
        };
        if literal.is_some_and(|ip| !is_reachable(ip, self.allow_loopback)) {
            return Outcome::Failed("the webhook's address may not be called".into());
        }
        let body = event.to_json().to_string();
        let timestamp = time::OffsetDateTime::now_utc().unix_timestamp();
        let signature = match standardwebhooks::Webhook::new(webhook.secret.expose())
            .and_then(|signer| signer.sign(&event.id, timestamp, body.as_bytes()))
        {
            Ok(signature) => signature,
            Err(err) => return Outcome::Failed(format!("signing: {err}")),
        };
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
            Ok(response) if response.status().is_success() => Outcome::Delivered,
            Ok(response) => Outcome::Failed(format!("the receiver answered {}", response.status())),
            // The error's chain names the cause (timeout, refused address, TLS), never the signing
            // secret; reqwest's errors name the URL, whose path and query may hold the receiver's.
            Err(err) => Outcome::Failed(format!("{:?}", ErrorChain(&err.without_url()))),
        }
    }

    /// Asks the queue to hand `message` back after `delay` (the queue's own visibility timeout
    /// applies if this fails).
    async fn retry_later(&self, message: &SqsMessage, delay: Duration) {
        let Some(receipt) = &message.receipt_handle else {
            return;
        };
        let result = self
            .sqs
            .change_message_visibility()
            .queue_url(&self.queue_url)
            .receipt_handle(receipt)
            .visibility_timeout(i32::try_from(delay.as_secs()).unwrap_or(i32::MAX))
            .send()
            .await;
        if let Err(err) = result {
            tracing::warn!(error = %aws_sdk_sqs::error::DisplayErrorContext(&err), "could not delay the retry");
        }
    }
}

/// The event inside an SQS message that EventBridge's rule put there.
fn event_of_envelope(body: &str) -> Option<EventMessage> {
    let envelope: EventBridgeEvent<serde_json::Value> = serde_json::from_str(body).ok()?;
    if envelope.source != shared::events::SOURCE {
        return None;
    }
    EventMessage::from_json(&envelope.detail)
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

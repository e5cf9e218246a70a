//! The webhook queue's trigger: delivers each event to its project's webhook, signed
//! (`shared::delivery::Sender`).
//!
//! A delivery that fails (no 2xx within `WEBHOOK_TIMEOUT_MS`, a redirect, an address the service
//! may not call) is reported as a failure of its message, which the queue hands back after a
//! delay that doubles with each attempt; past the queue's `maxReceiveCount` the message moves to
//! the dead-letter queue. The webhook is read at delivery time (once per project in a batch), so
//! a changed URL, a rotated secret or a removed webhook applies to deliveries still queued.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use shared::config::Config;
use shared::contract::EventMessage;
use shared::delivery::{Sender, SenderError};
use shared::domain::webhook::WebhookConfig;
use shared::dynamo::Webhooks;
use shared::error::Error;
use shared::events;
use shared::sqs::Queue;

/// What a delivery needs: the webhooks, the queue (to put a failed message back later) and the
/// sender.
#[derive(Debug, Clone)]
pub struct Deliverer {
    webhooks: Webhooks,
    queue: Queue,
    sender: Sender,
    retry_base: Duration,
}

/// Each project's webhook as a batch read it (`None`: the project has none).
type ProjectWebhooks<'a> = HashMap<&'a str, Result<Option<WebhookConfig>, Error>>;

/// What became of one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    Delivered,
    /// Not for anyone: the project has no webhook, or it does not want this type, or the
    /// message is not an event.
    Dropped(&'static str),
    /// To be tried again later.
    Failed(String),
}

impl Deliverer {
    pub fn new(config: &Config, webhooks: Webhooks, queue: Queue) -> Result<Self, SenderError> {
        Ok(Self {
            webhooks,
            queue,
            sender: Sender::new(config)?,
            retry_base: config.webhook_retry_base,
        })
    }

    /// Delivers every message of `event` at once; the response names those to try again. A
    /// burst of one project's events costs one read of its webhook per batch, not one per event.
    pub async fn handle(&self, event: SqsEvent) -> SqsBatchResponse {
        let events: Vec<Option<EventMessage>> = event
            .records
            .iter()
            .map(|message| message.body.as_deref().and_then(events::delivered_event))
            .collect();
        let projects: HashSet<&str> = events
            .iter()
            .flatten()
            .filter_map(EventMessage::project_id)
            .collect();
        let webhooks = self.webhooks.get_each(projects).await;
        let deliveries = (event.records.iter().zip(&events))
            .map(|(message, event)| self.deliver(message, event.as_ref(), &webhooks));
        let outcomes = futures_util::future::join_all(deliveries).await;
        let mut response = SqsBatchResponse::default();
        for (message, outcome) in event.records.iter().zip(outcomes) {
            if let Delivery::Failed(why) = outcome {
                tracing::warn!(message_id = ?message.message_id, reason = %why, "delivery failed");
                let failure = self
                    .queue
                    .retry_with_backoff(message, self.retry_base)
                    .await;
                response.batch_item_failures.push(failure);
            }
        }
        response
    }

    /// Delivers one message's event, if its project's webhook wants it.
    async fn deliver(
        &self,
        message: &SqsMessage,
        event: Option<&EventMessage>,
        webhooks: &ProjectWebhooks<'_>,
    ) -> Delivery {
        let Some((event, project_id)) = event.and_then(|event| Some((event, event.project_id()?)))
        else {
            tracing::error!(message_id = ?message.message_id, "not an event of this service");
            return Delivery::Dropped("not an event");
        };
        let webhook = match webhooks.get(project_id) {
            Some(Ok(Some(webhook))) if webhook.wants(event.kind) => webhook,
            Some(Ok(Some(_))) => return dropped(message, "the webhook does not want this type"),
            Some(Ok(None)) => return dropped(message, "the project has no webhook"),
            Some(Err(err)) => return Delivery::Failed(format!("reading the webhook: {err:?}")),
            None => return Delivery::Failed("the webhook was not read".into()),
        };
        match self.sender.post(webhook, event).await {
            Ok(()) => {
                tracing::info!(event_id = %event.id, kind = event.kind.as_str(), "delivered");
                Delivery::Delivered
            }
            Err(why) => Delivery::Failed(why),
        }
    }
}

fn dropped(message: &SqsMessage, why: &'static str) -> Delivery {
    tracing::info!(message_id = ?message.message_id, reason = why, "nothing to deliver");
    Delivery::Dropped(why)
}

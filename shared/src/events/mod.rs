//! The events adapter: the EventBridge bus `notify` publishes to, for AWS-native consumers and,
//! through a rule and a queue, for `deliver` (docs/API.md v1.1, "Events and webhooks").

pub mod provision;

use aws_lambda_events::eventbridge::EventBridgeEvent;
use aws_sdk_eventbridge::Client;
use aws_sdk_eventbridge::primitives::DateTime;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;

use crate::aws;
use crate::contract::EventMessage;
use crate::error::Failure;

/// The `source` of every event this service publishes.
pub const SOURCE: &str = "upload-service";

/// The event in a message that the bus's rule delivered to a queue (EventBridge's envelope,
/// its `detail` the event); `None` for anything else.
pub fn delivered_event(body: &str) -> Option<EventMessage> {
    let envelope: EventBridgeEvent<serde_json::Value> = serde_json::from_str(body).ok()?;
    if envelope.source != SOURCE {
        return None;
    }
    EventMessage::from_json(&envelope.detail)
}

/// Entries PutEvents takes at once.
const BATCH: usize = 10;

#[derive(Clone, Debug)]
pub struct EventBus {
    client: Client,
    bus: String,
}

impl EventBus {
    pub fn new(client: Client, bus: impl Into<String>) -> Self {
        Self {
            client,
            bus: bus.into(),
        }
    }

    /// Publishes `events` in order, each with its type as `detail-type`, in calls of up to ten.
    /// On failure, says how many were published before the first that was not: the caller tries
    /// those after again, not the calls that succeeded. Entries after a refused one may have been
    /// published too: consumers tell a repeat by the event's `id`.
    pub async fn publish(&self, events: &[EventMessage]) -> Result<(), Unpublished> {
        let mut published = 0;
        for batch in events.chunks(BATCH) {
            let entries = batch
                .iter()
                .map(|event| {
                    PutEventsRequestEntry::builder()
                        .event_bus_name(&self.bus)
                        .source(SOURCE)
                        .detail_type(event.kind.as_str())
                        .detail(event.to_json().to_string())
                        .time(
                            DateTime::from_nanos(event.at.unix_timestamp_nanos())
                                .unwrap_or(DateTime::from_secs(event.at.unix_timestamp())),
                        )
                        .build()
                })
                .collect();
            let unpublished = |accepted: usize, reason: Failure| Unpublished {
                published: published + accepted,
                reason,
            };
            let output = self
                .client
                .put_events()
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|err| unpublished(0, aws::failure("PutEvents", err)))?;
            let first_refused = output
                .entries()
                .iter()
                .position(|entry| entry.error_code().is_some());
            if output.failed_entry_count() > 0 || first_refused.is_some() {
                let refused = first_refused.unwrap_or(0);
                let entry = output.entries().get(refused);
                return Err(unpublished(
                    refused,
                    Failure::Unavailable(format!(
                        "PutEvents refused an entry: {}: {}",
                        entry
                            .and_then(|entry| entry.error_code())
                            .unwrap_or_default(),
                        entry
                            .and_then(|entry| entry.error_message())
                            .unwrap_or_default(),
                    )),
                ));
            }
            published += batch.len();
        }
        Ok(())
    }
}

/// Why [`EventBus::publish`] stopped: the events before `published` are on the bus.
#[derive(Debug)]
pub struct Unpublished {
    pub published: usize,
    pub reason: Failure,
}

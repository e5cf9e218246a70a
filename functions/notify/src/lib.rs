//! The table's stream trigger: derives the events of the files' changes (`file.verified`,
//! `file.rejected`, `file.deleted`, `upload.aborted`) and publishes them to the event bus, in
//! the stream's order. The stream is the outbox: a change is in it once it is written, so a
//! crash between a write and its event loses nothing, and a write refused or never made is not
//! in it at all. A record whose events cannot be published is reported as the batch's first
//! failure, and Lambda hands it (and those after it) to the next invocation.
//!
//! A record that cannot be read as a file's change (an item written by hand, or by a version of
//! the service that this one cannot read) is logged with its sequence number and set aside: no
//! retry would ever read it, and failing on it would hold back every later change of its shard
//! until the stream drops the record. Publishing failures alone are retried, up to the mapping's
//! `MaximumRetryAttempts`, after which its failure destination keeps the records' position.
//!
//! A file the table's TTL removed (an upload abandoned, never verified) publishes nothing, but
//! gives back what it held of its project's usage: no request did it, so no write of the
//! service's did. The release is written once however often the record comes (`Usages`).

use aws_lambda_events::dynamodb::{Event, EventRecord};
use aws_lambda_events::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use shared::contract::EventMessage;
use shared::domain::event::RemovalCause;
use shared::dynamo::Usages;
use shared::dynamo::stream::{event_message, file_of_image, removal_cause};
use shared::events::{EventBus, Unpublished};

/// Gives back the usage of the files the TTL removed, and publishes the events of `event`'s
/// records, in order; the response names the first record not done.
pub async fn handle(bus: &EventBus, usages: &Usages, event: Event) -> DynamoDbEventResponse {
    let release_failed = release_expired(usages, &event.records).await;
    let done = release_failed.unwrap_or(event.records.len());
    let mut messages = Vec::new();
    let mut sources = Vec::new();
    for (index, record) in event.records[..done].iter().enumerate() {
        match event_message(record) {
            Ok(Some(message)) => {
                tracing::info!(event_id = %message.id, kind = message.kind.as_str(), file_id = %message.data["file_id"], "event");
                messages.push(message);
                sources.push(index);
            }
            Ok(None) => {}
            Err(err) => {
                // Findable: the shard's sequence number locates the record in the stream (for
                // 24 hours), and the item in the table is what to repair.
                tracing::error!(
                    error = ?err,
                    event_id = %record.event_id,
                    sequence_number = record.change.sequence_number.as_deref().unwrap_or_default(),
                    keys = ?record.change.keys,
                    "unreadable stream record set aside: its change publishes no event"
                );
            }
        }
    }
    let published = publish(bus, &messages).await;
    match sources.get(published).copied().or(release_failed) {
        Some(first_failed) => failures(&event.records, first_failed),
        None => DynamoDbEventResponse::default(),
    }
}

/// Gives back, in order, what each file removed by the TTL held; the index of the first record
/// whose release failed (it and those after it are handed over again).
async fn release_expired(usages: &Usages, records: &[EventRecord]) -> Option<usize> {
    for (index, record) in records.iter().enumerate() {
        if removal_cause(record) != RemovalCause::Expired {
            continue;
        }
        // An image notify cannot read publishes nothing either: the loop below logs it.
        let Ok(Some(file)) = file_of_image(&record.change.old_image) else {
            continue;
        };
        if let Err(err) = usages.release_expired(&file).await {
            tracing::warn!(error = ?err, file_id = %file.file_id, "could not give back an expired file's usage; it will be retried");
            return Some(index);
        }
    }
    None
}

/// How many of `messages` were published, in order.
async fn publish(bus: &EventBus, messages: &[EventMessage]) -> usize {
    match bus.publish(messages).await {
        Ok(()) => messages.len(),
        Err(Unpublished { published, reason }) => {
            tracing::warn!(error = ?reason, published, "could not publish every event; the rest will be retried");
            published
        }
    }
}

/// The response asking Lambda to hand `records[first_failed..]` over again.
fn failures(records: &[EventRecord], first_failed: usize) -> DynamoDbEventResponse {
    let mut response = DynamoDbEventResponse::default();
    if let Some(sequence_number) = records
        .get(first_failed)
        .and_then(|record| record.change.sequence_number.clone())
    {
        let mut failure = DynamoDbBatchItemFailure::default();
        failure.item_identifier = Some(sequence_number);
        response.batch_item_failures.push(failure);
    }
    response
}

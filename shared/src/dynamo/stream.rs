//! The table's stream, as Lambda hands it to `notify`: images of items before and after each
//! change, read through the same mapping as the table's items.

use aws_lambda_events::dynamodb::EventRecord;

use crate::contract::EventMessage;
use crate::domain::FileRecord;
use crate::domain::event::{EventType, RemovalCause, event_of};
use crate::dynamo::item::{self, Item};
use crate::error::Failure;

/// The file in `image`; `None` for an empty image (before an insert, after a removal) and for
/// items that are not files.
pub fn file_of_image(image: &serde_dynamo::Item) -> Result<Option<FileRecord>, Failure> {
    let item: Item = image.clone().into();
    if item::optional_string(&item, item::SK) != Some(item::FILE_SK) {
        return Ok(None);
    }
    FileRecord::try_from(&item)
        .map(Some)
        .map_err(|err| Failure::Internal(format!("stream image: {err}")))
}

/// Who removed an item: the table's TTL deletes as the DynamoDB service principal; anyone else
/// is a caller of the API.
pub fn removal_cause(record: &EventRecord) -> RemovalCause {
    let by_ttl = record.user_identity.as_ref().is_some_and(|identity| {
        identity.type_ == "Service" && identity.principal_id == "dynamodb.amazonaws.com"
    });
    if by_ttl {
        RemovalCause::Expired
    } else {
        RemovalCause::Deleted
    }
}

/// The event of one stream record, if its change is one.
pub fn event_message(record: &EventRecord) -> Result<Option<EventMessage>, Failure> {
    let before = file_of_image(&record.change.old_image)?;
    let after = file_of_image(&record.change.new_image)?;
    let Some(kind) = event_of(before.as_ref(), after.as_ref(), removal_cause(record)) else {
        return Ok(None);
    };
    let message = match (kind, &before, &after) {
        (EventType::FileDeleted, Some(file), _) => {
            // A deletion leaves no `updated_at` behind: it happened when the stream saw it.
            let at = record.change.approximate_creation_date_time;
            let at = time::OffsetDateTime::from_unix_timestamp_nanos(
                at.timestamp_nanos_opt().unwrap_or_default().into(),
            )
            .map_err(|err| Failure::Internal(format!("stream time: {err}")))?;
            EventMessage::new(kind, file, file.updated_at, at)
        }
        (_, _, Some(file)) => EventMessage::new(kind, file, file.updated_at, file.updated_at),
        _ => return Ok(None),
    };
    Ok(Some(message))
}

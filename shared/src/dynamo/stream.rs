//! The table's stream, as Lambda hands it to `notify`: images of items before and after each
//! change, read through the same mapping as the table's items.

use aws_lambda_events::dynamodb::EventRecord;

use crate::domain::FileRecord;
use crate::domain::error::ApiError;
use crate::domain::event::Removal;
use crate::dynamo::item::{self, Item};

/// The file in `image`; `None` for an empty image (before an insert, after a removal) and for
/// items that are not files.
pub fn file_of_image(image: &serde_dynamo::Item) -> Result<Option<FileRecord>, ApiError> {
    let item: Item = image.clone().into();
    if item::optional_string(&item, item::SK) != Some(item::FILE_SK) {
        return Ok(None);
    }
    FileRecord::try_from(&item)
        .map(Some)
        .map_err(|err| ApiError::Internal(format!("stream image: {err}")))
}

/// Who removed an item: the table's TTL deletes as the DynamoDB service principal; anyone else
/// is a caller of the API.
pub fn removal(record: &EventRecord) -> Removal {
    let by_ttl = record.user_identity.as_ref().is_some_and(|identity| {
        identity.type_ == "Service" && identity.principal_id == "dynamodb.amazonaws.com"
    });
    if by_ttl {
        Removal::Expired
    } else {
        Removal::Deleted
    }
}

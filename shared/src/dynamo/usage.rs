//! Each project's usage and quota: one item per project (`item` has the layout). A change of a
//! file that takes or gives back (`Usage::change`) adds it to the item in the same transaction
//! as the file's own write ([`apply`], used by `FileStore`), so the item is the sum over the
//! project's files whatever the races and retries.
//!
//! The item also keeps the room left under each bound (`files_left`, `bytes_left`: the bound
//! less what is used, or [`UNBOUNDED`] less it without one), changed with the counters. A change
//! that takes more is conditional on the room it needs, so a quota costs no read and no write
//! of its own: the same single transaction admits a create with or without one.

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};

use crate::aws;
use crate::domain::FileRecord;
use crate::domain::error::ApiError;
use crate::domain::timestamp;
use crate::domain::usage::{ProjectUsage, Quota, Usage};
use crate::dynamo::item::{self, Item, n, s};
use crate::dynamo::{Transacted, UPDATE_ATTEMPTS};

/// A counter of the usage item: its attribute, and what of a [`Usage`] it adds up.
type Counter = (&'static str, fn(&Usage) -> i64);

/// The counters of the usage item.
const COUNTERS: [Counter; 6] = [
    ("files_verified", |u| u.files_verified),
    ("files_uploading", |u| u.files_uploading),
    ("files", |u| u.files),
    ("bytes_verified", |u| u.bytes_verified),
    ("bytes_reserved", |u| u.bytes_reserved),
    // Kept so that a condition can bound it: DynamoDB conditions cannot add.
    ("bytes", Usage::bytes),
];
const MAX_FILES: &str = "max_files";
const MAX_BYTES: &str = "max_bytes";
const FILES_LEFT: &str = "files_left";
const BYTES_LEFT: &str = "bytes_left";

/// The room of a project without a bound: more than any project holds (2^62 bytes is 4 EiB),
/// small enough that no sum overflows DynamoDB's numbers.
const UNBOUNDED: i64 = 1 << 62;

/// How long the marker of a released expiry is kept: past the stream's 24 hours, so that a
/// record handed over again finds it.
const RELEASE_MARKER_SECS: i64 = 3 * 24 * 3600;

#[derive(Clone, Debug)]
pub struct Usages {
    client: Client,
    table: String,
}

impl Usages {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    /// The project's usage and quota, read consistently (zero and none for a new project).
    pub async fn get(&self, project_id: &str) -> Result<ProjectUsage, ApiError> {
        read(&self.client, &self.table, project_id).await
    }

    /// Sets the project's quota; `None` for a bound removes it. Usage above a new bound stays:
    /// only what would take more is refused. The room left is computed from the usage read, so
    /// the write holds only while the usage is still that; a change meanwhile makes it read again.
    pub async fn set_quota(&self, project_id: &str, quota: Quota) -> Result<(), ApiError> {
        for _ in 0..UPDATE_ATTEMPTS {
            let seen = read(&self.client, &self.table, project_id).await?;
            let (files, bytes) = (seen.usage.files, seen.usage.bytes());
            let left = |max: Option<u64>, used: i64| {
                max.map_or(UNBOUNDED, |max| i64::try_from(max).unwrap_or(UNBOUNDED)) - used
            };
            let mut set = vec![
                "#project = :project",
                "#files_left = :files_left",
                "#bytes_left = :bytes_left",
            ];
            let mut remove = Vec::new();
            let mut values = HashMap::from([
                (":project".to_owned(), s(project_id)),
                (":files_left".to_owned(), n(left(quota.max_files, files))),
                (":bytes_left".to_owned(), n(left(quota.max_bytes, bytes))),
                (":files".to_owned(), n(files)),
                (":bytes".to_owned(), n(bytes)),
            ]);
            match quota.max_files {
                Some(max) => {
                    set.push("#max_files = :max_files");
                    values.insert(":max_files".to_owned(), n(max));
                }
                None => remove.push("#max_files"),
            }
            match quota.max_bytes {
                Some(max) => {
                    set.push("#max_bytes = :max_bytes");
                    values.insert(":max_bytes".to_owned(), n(max));
                }
                None => remove.push("#max_bytes"),
            }
            let mut expression = format!("SET {}", set.join(", "));
            if !remove.is_empty() {
                expression.push_str(&format!(" REMOVE {}", remove.join(", ")));
            }
            let result = self
                .client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(item::usage_key(project_id)))
                .update_expression(expression)
                .condition_expression(
                    "(attribute_not_exists(#files) OR #files = :files) \
                     AND (attribute_not_exists(#bytes) OR #bytes = :bytes)",
                )
                .set_expression_attribute_names(Some(HashMap::from(
                    [
                        ("#project", "project_id"),
                        ("#max_files", MAX_FILES),
                        ("#max_bytes", MAX_BYTES),
                        ("#files_left", FILES_LEFT),
                        ("#bytes_left", BYTES_LEFT),
                        ("#files", "files"),
                        ("#bytes", "bytes"),
                    ]
                    .map(|(name, attribute)| (name.to_owned(), attribute.to_owned())),
                )))
                .set_expression_attribute_values(Some(values))
                .send()
                .await;
            match result {
                Ok(_) => return Ok(()),
                Err(err)
                    if err
                        .as_service_error()
                        .is_some_and(|err| err.is_conditional_check_failed_exception()) => {}
                Err(err) => return Err(aws::failure("UpdateItem quota", err)),
            }
        }
        Err(ApiError::concurrent_update(
            "the project's usage kept changing while its quota was being set; retry",
        ))
    }

    /// Gives back what `file`, removed by the table's TTL, held: once, however often the
    /// stream hands the removal over (a marker next to the file, written in the same
    /// transaction, refuses a second release).
    pub async fn release_expired(&self, file: &FileRecord) -> Result<(), ApiError> {
        let change = Usage::change(Some(file), None);
        if change.is_zero() {
            return Ok(());
        }
        let mut marker = item::release_marker_key(file.file_id);
        let forget_at = timestamp::now().unix_timestamp() + RELEASE_MARKER_SECS;
        marker.insert(item::TTL.into(), n(forget_at));
        let mark = Put::builder()
            .table_name(&self.table)
            .set_item(Some(marker))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(|err| ApiError::Internal(format!("release marker: {err}")))?;
        let items = vec![
            TransactWriteItem::builder().put(mark).build(),
            TransactWriteItem::builder()
                .update(apply(&self.table, &file.project_id, &change)?)
                .build(),
        ];
        match super::transact(&self.client, items, "release").await? {
            // Refused by the marker: an earlier hand-over of the record released it.
            Transacted::Applied | Transacted::Refused { .. } => Ok(()),
            Transacted::Contended | Transacted::Unknown(_) => Err(ApiError::Unavailable(format!(
                "the usage of expired file {} was not given back",
                file.file_id
            ))),
        }
    }
}

/// The project's usage and quota, read consistently.
pub(crate) async fn read(
    client: &Client,
    table: &str,
    project_id: &str,
) -> Result<ProjectUsage, ApiError> {
    let output = client
        .get_item()
        .table_name(table)
        .set_key(Some(item::usage_key(project_id)))
        .consistent_read(true)
        .send()
        .await
        .map_err(|err| aws::failure("GetItem usage", err))?;
    let Some(found) = output.item else {
        return Ok(ProjectUsage::default());
    };
    let number = |name: &str| match found.get(name) {
        Some(AttributeValue::N(text)) => text
            .parse::<i64>()
            .map(Some)
            .map_err(|_| ApiError::Internal(format!("usage item: {name} {text:?}"))),
        None => Ok(None),
        Some(_) => Err(ApiError::Internal(format!(
            "usage item: {name} is not a number"
        ))),
    };
    let counter = |name: &str| number(name).map(Option::unwrap_or_default);
    let bound = |name: &str| number(name).map(|max| max.map(|max| max.max(0) as u64));
    Ok(ProjectUsage {
        usage: Usage {
            files_verified: counter("files_verified")?,
            files_uploading: counter("files_uploading")?,
            files: counter("files")?,
            bytes_verified: counter("bytes_verified")?,
            bytes_reserved: counter("bytes_reserved")?,
        },
        quota: Quota {
            max_files: bound(MAX_FILES)?,
            max_bytes: bound(MAX_BYTES)?,
        },
    })
}

/// The write adding `change` to the project's usage, for a transaction with the file's own.
/// A change that takes more holds only while the project has room for it under each bound it
/// takes from; else the transaction is cancelled with this item's `ConditionalCheckFailed`.
pub(crate) fn apply(table: &str, project_id: &str, change: &Usage) -> Result<Update, ApiError> {
    let mut names = HashMap::from([
        ("#project".to_owned(), "project_id".to_owned()),
        ("#files_left".to_owned(), FILES_LEFT.to_owned()),
        ("#bytes_left".to_owned(), BYTES_LEFT.to_owned()),
    ]);
    let mut values: Item = HashMap::from([
        (":project".to_owned(), s(project_id)),
        (":unbounded".to_owned(), n(UNBOUNDED)),
        (":files_taken".to_owned(), n(change.files)),
        (":bytes_taken".to_owned(), n(change.bytes())),
    ]);
    let mut adds = Vec::new();
    for (index, (name, field)) in COUNTERS.iter().enumerate() {
        names.insert(format!("#c{index}"), (*name).to_owned());
        values.insert(format!(":c{index}"), n(field(change)));
        adds.push(format!("#c{index} :c{index}"));
    }
    // Only the bounds it takes from: usage may already be above a bound lowered since.
    let mut room = Vec::new();
    if change.files > 0 {
        room.push("(attribute_not_exists(#files_left) OR #files_left >= :files_taken)");
    }
    if change.bytes() > 0 {
        room.push("(attribute_not_exists(#bytes_left) OR #bytes_left >= :bytes_taken)");
    }
    Update::builder()
        .table_name(table)
        .set_key(Some(item::usage_key(project_id)))
        .update_expression(format!(
            "SET #project = :project, \
             #files_left = if_not_exists(#files_left, :unbounded) - :files_taken, \
             #bytes_left = if_not_exists(#bytes_left, :unbounded) - :bytes_taken \
             ADD {}",
            adds.join(", ")
        ))
        .set_condition_expression((!room.is_empty()).then(|| room.join(" AND ")))
        .set_expression_attribute_names(Some(names))
        .set_expression_attribute_values(Some(values))
        .build()
        .map_err(|err| ApiError::Internal(format!("usage update: {err}")))
}

//! The file table: reads, listing, and each change of a file as one conditional write.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, Delete, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem,
};
use time::OffsetDateTime;

use crate::aws;
use crate::domain::error::Refusal;
use crate::domain::file::TransitionRefusal;
use crate::domain::timestamp;
use crate::domain::usage::Usage;
use crate::domain::values::Sha256;
use crate::domain::{FileId, FileRecord, FileStatus, JobId};
use crate::dynamo::item::{self, Item, n, s};
use crate::dynamo::listing::{self, FilePage, ListCursor};
use crate::dynamo::usage;
use crate::dynamo::{AnswerWrite, Transacted};
use crate::error::{Error, Failure};

/// What became of a change of a file.
// Returned once per request and matched at once: boxing the records would only add allocations.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Update {
    /// Written: the file as it was (`before`) and as it now is (`after`).
    Applied {
        before: FileRecord,
        after: FileRecord,
    },
    /// Nothing to do: the file as it is.
    Unchanged(FileRecord),
    /// The change does not apply to the file as it now is.
    Refused(TransitionRefusal, FileRecord),
}

/// A new file's write was refused with `existing` under its id: fine if that is this very
/// record (written by an earlier attempt of the same write), a broken invariant otherwise.
fn own_write(
    record: &FileRecord,
    existing: Option<&HashMap<String, AttributeValue>>,
) -> Result<(), Error> {
    let existing = existing.map(decode).transpose()?;
    if existing.as_ref() == Some(record) {
        Ok(())
    } else {
        Err(Failure::Internal(format!("file {} exists already", record.file_id)).into())
    }
}

/// The outcome of one conditional write: applied, or refused because the file is not in the
/// expected state (with the file as it is, if it exists).
#[allow(clippy::large_enum_variant)]
enum Replaced {
    Applied,
    Refused(Option<FileRecord>),
    /// The project's usage item refused the write (no room, which was freed since) or another
    /// transaction was writing it: nothing written, worth writing again.
    UsageMoved,
}

/// A change given up after [`UPDATE_ATTEMPTS`] writes, each refused by another one.
pub fn kept_changing() -> Error {
    Refusal::concurrent_update("the file kept changing while this request was changing it; retry")
        .into()
}

/// What became of a removal of a file (as [`Update`] is of a change).
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Remove {
    Applied,
    /// The file changed since it was read (the file as it is), or is gone already (`None`).
    Refused(Option<FileRecord>),
}

/// The condition of every write of a file read before: its job, status and verification
/// checkpoint are still those it was read with. Every transition changes one of them, so no
/// other write can be lost.
struct Unchanged {
    condition: String,
    names: HashMap<String, String>,
    values: HashMap<String, AttributeValue>,
}

impl Unchanged {
    fn since(expected: &FileRecord) -> Self {
        let names = HashMap::from([("#status".to_owned(), "status".to_owned())]);
        let mut values = HashMap::from([(":status".to_owned(), s(expected.status.as_str()))]);
        let condition = match &expected.job {
            None => "#status = :status AND attribute_not_exists(job)".to_owned(),
            Some(job) => {
                values.insert(":job".to_owned(), s(job.job_id.to_string()));
                let checkpoint = match &job.checkpoint {
                    None => "attribute_not_exists(job.checkpoint)",
                    Some(checkpoint) => {
                        values.insert(":step".to_owned(), s(checkpoint.step_id.to_string()));
                        "job.checkpoint.step_id = :step"
                    }
                };
                format!("#status = :status AND job.job_id = :job AND {checkpoint}")
            }
        };
        Self {
            condition,
            names,
            values,
        }
    }
}

/// A request's claim on assembling a job's multipart upload ([`FileStore::claim_assembly`]).
#[derive(Debug)]
pub struct AssemblyClaim {
    file_id: FileId,
    job_id: JobId,
    id: uuid::Uuid,
}

/// The attribute naming who holds an assembly claim.
const CLAIM: &str = "claim";

/// Writes of one change before giving up on a file that keeps changing under it.
pub const UPDATE_ATTEMPTS: usize = 3;

#[derive(Clone, Debug)]
pub struct FileStore {
    client: Client,
    table: String,
    counting: usage::Counting,
}

impl FileStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        let table = table.into();
        Self {
            counting: usage::Counting::new(client.clone(), table.clone()),
            client,
            table,
        }
    }

    /// The project usages of this store's table, remembering what they find of projects'
    /// shards with it: one memory per container.
    pub fn usages(&self) -> usage::Usages {
        usage::Usages::sharing(
            self.counting.clone(),
            self.client.clone(),
            self.table.clone(),
        )
    }

    /// The raw client, for tests and benchmarks that look at the table directly.
    #[cfg(feature = "testing")]
    pub fn client(&self) -> &Client {
        &self.client
    }

    #[cfg(feature = "testing")]
    pub fn table(&self) -> &str {
        &self.table
    }

    /// Writes a new file, with what it takes from its project's usage, in one transaction;
    /// with `answer`, the answer of the request's `Idempotency-Key` too, so that a write applied
    /// after its request gave up (a paused table, a lost answer) is found by the retry as its
    /// answer, and a write of a request that lost its key applies not at all. A file the
    /// project's quota has no room for is refused with [`Refusal::QuotaExceeded`]; racing
    /// writes are admitted one at a time, so none passes the quota.
    /// A refusal that returns exactly this record is our own write, applied by an attempt whose
    /// answer was lost (the SDK retried it); anything else under a fresh id is a broken invariant.
    /// A write whose outcome stays unknown fails with [`Refusal::MayHaveApplied`]: the file may
    /// exist, or appear, holding what the record refers to. Any other failure wrote nothing.
    pub async fn insert_new(
        &self,
        record: &FileRecord,
        answer: Option<&AnswerWrite>,
    ) -> Result<(), Error> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(Item::from(record)))
            .condition_expression("attribute_not_exists(pk)")
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(|err| Failure::Internal(format!("file put: {err}")))?;
        let change = Usage::of(Some(record));
        for _ in 0..UPDATE_ATTEMPTS {
            let mut items = vec![TransactWriteItem::builder().put(put.clone()).build()];
            if let Some(answer) = answer {
                items.push(TransactWriteItem::builder().put(answer.put()).build());
            }
            let usage_index = items.len();
            let counted = self
                .counting
                .transact(items, &record.project_id, record.file_id, &change, "file")
                .await?;
            match counted {
                Transacted::Applied => {}
                // Transactions apply whole: if the file is ours, so is the rest.
                Transacted::Refused { index: 0, item } => own_write(record, item.as_ref())?,
                Transacted::Refused { index, .. } if index == usage_index => {
                    self.refuse_unless_room(&record.project_id, &change).await?;
                    continue;
                }
                Transacted::Contended => continue,
                Transacted::Refused { .. } => return Err(Refusal::IdempotencyKeyInUse.into()),
                Transacted::Unknown(lost) => match answer {
                    Some(answer) => return self.settle(answer, lost).await,
                    // Applied if the file now reads as written; else it may still be on its way.
                    None => match self.get(record.file_id).await {
                        Ok(Some(found)) if found == *record => {}
                        _ => return Err(Failure::MayHaveApplied(lost).into()),
                    },
                },
            }
            if let Some(answer) = answer {
                answer.applied();
            }
            return Ok(());
        }
        Err(kept_changing())
    }

    /// After a write refused for want of room in the project's quota: 403 `quota_exceeded`,
    /// naming each bound, if the quota, read now, still has no room for `change`; else (room
    /// was freed meanwhile, or the bound removed) `Ok`, to write again.
    async fn refuse_unless_room(&self, project_id: &str, change: &Usage) -> Result<(), Error> {
        let seen = usage::read_bounded(&self.client, &self.table, project_id).await?;
        seen.quota.admit(&seen.usage, change).map_err(Error::from)
    }

    /// Finds out whether the transaction carrying `answer`, which failed as `lost`, applied: it
    /// did if the key holds its answer. If the key is still held, takes it back, so that the
    /// transaction, if still on its way, can never apply. Applied: `Ok`; provably not:
    /// [`Refusal::Unavailable`]; still unknown: [`Refusal::MayHaveApplied`].
    async fn settle(&self, answer: &AnswerWrite, lost: String) -> Result<(), Error> {
        let result = super::delete_alone(&self.client, answer.take_back()?)
            .send()
            .await;
        match result {
            Ok(_) => Err(Failure::Unavailable(lost).into()),
            Err(err) => match err.as_service_error() {
                Some(DeleteItemError::ConditionalCheckFailedException(failed)) => {
                    if answer.kept_in(failed.item.as_ref()) {
                        answer.applied();
                        Ok(())
                    } else {
                        // Taken back by an earlier attempt of this delete, or claimed by
                        // another request after the lease: the transaction can no longer apply.
                        Err(Failure::Unavailable(lost).into())
                    }
                }
                _ => Err(Failure::MayHaveApplied(lost).into()),
            },
        }
    }

    pub async fn get(&self, file_id: FileId) -> Result<Option<FileRecord>, Error> {
        self.read(file_id).await?.as_ref().map(decode).transpose()
    }

    /// The file's item as stored, read consistently.
    async fn read(&self, file_id: FileId) -> Result<Option<Item>, Error> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(item::file_key(file_id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|err| aws::failure("GetItem file", err))?;
        Ok(output.item)
    }

    /// The files in `status` whose last change is older than `changed_before`, oldest first.
    /// Scans the whole table: for operators' commands (`upload-admin stuck`), never a route.
    pub async fn scan_by_status(
        &self,
        status: FileStatus,
        changed_before: OffsetDateTime,
    ) -> Result<Vec<FileRecord>, Error> {
        let mut pages = self
            .client
            .scan()
            .table_name(&self.table)
            .filter_expression("sk = :file AND #status = :status AND updated_at < :before")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":file", s("FILE"))
            .expression_attribute_values(":status", s(status.as_str()))
            .expression_attribute_values(":before", s(timestamp::format(changed_before)))
            .into_paginator()
            .send();
        let mut records = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|err| aws::failure("Scan files", err))?;
            for found in page.items() {
                records.push(decode(found)?);
            }
        }
        records.sort_by_key(|record| record.updated_at);
        Ok(records)
    }

    /// The file's item as stored, as JSON (`upload-admin inspect`): what no route shows.
    pub async fn item_json(&self, file_id: FileId) -> Result<Option<serde_json::Value>, Error> {
        self.read(file_id)
            .await?
            .map(|found| {
                serde_dynamo::from_item(found)
                    .map_err(|err| Failure::Internal(format!("file item as JSON: {err}")))
            })
            .transpose()
            .map_err(Error::from)
    }

    /// The file of `project_id` with this id; other projects' files do not exist for the caller.
    pub async fn get_in_project(
        &self,
        project_id: &str,
        file_id: FileId,
    ) -> Result<FileRecord, Error> {
        match self.get(file_id).await? {
            Some(record) if record.project_id == project_id => Ok(record),
            _ => Err(Refusal::NotFound.into()),
        }
    }

    /// A file of the project whose verified content has this SHA-256 and size.
    pub async fn find_verified_by_content(
        &self,
        project_id: &str,
        sha256: &Sha256,
        file_size: u64,
    ) -> Result<Option<FileRecord>, Error> {
        let output = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(item::BY_CONTENT_INDEX)
            .key_condition_expression("dedup_key = :key")
            .expression_attribute_values(":key", s(item::dedup_key(project_id, sha256, file_size)))
            .limit(1)
            .send()
            .await
            .map_err(|err| aws::failure("Query by_content", err))?;
        let Some(file_id) = output
            .items()
            .first()
            .and_then(|key| item::optional_string(key, item::PK))
            .and_then(|pk| pk.strip_prefix("FILE#"))
            .and_then(|id| id.parse::<FileId>().ok())
        else {
            return Ok(None);
        };
        // The index is eventually consistent: confirm against the item itself.
        Ok(self.get(file_id).await?.filter(|record| {
            record.project_id == project_id
                && record.verified.as_ref().is_some_and(|v| {
                    v.content.sha256.as_ref() == Some(sha256) && v.content.file_size == file_size
                })
        }))
    }

    /// Applies `change` to the file, as one conditional write: `current` is the file as last
    /// read. When another write got there first, `change` is applied again to the file as that
    /// write left it (returned by the refused write itself), a few times at most. `change`
    /// answers `Ok(None)` when there is nothing to do. A write whose answer was lost is applied
    /// if the file then reads as written; if it does not, the change fails with
    /// [`Refusal::MayHaveApplied`].
    pub async fn update(
        &self,
        current: FileRecord,
        change: impl Fn(&FileRecord) -> Result<Option<FileRecord>, TransitionRefusal>,
    ) -> Result<Update, Error> {
        let mut current = current;
        for _ in 0..UPDATE_ATTEMPTS {
            let updated = match change(&current) {
                Ok(Some(updated)) => updated,
                Ok(None) => return Ok(Update::Unchanged(current)),
                Err(refusal) => return Ok(Update::Refused(refusal, current)),
            };
            match self.replace(&updated, &current).await? {
                Replaced::Applied => {
                    return Ok(Update::Applied {
                        before: current,
                        after: updated,
                    });
                }
                // Our own write, applied by an attempt whose answer was lost (the SDK retried it).
                Replaced::Refused(Some(latest)) if latest == updated => {
                    return Ok(Update::Applied {
                        before: current,
                        after: updated,
                    });
                }
                Replaced::Refused(Some(latest)) => current = latest,
                Replaced::Refused(None) => return Err(Refusal::NotFound.into()),
                // Room was freed in the project's quota since the write was refused: again.
                Replaced::UsageMoved => {}
            }
        }
        Err(kept_changing())
    }

    /// Writes `updated` in place of `expected`, only if the file is still as `expected` left it
    /// ([`Unchanged`]); with what the change takes from or gives back to the project's usage, in
    /// one transaction, when it does either.
    async fn replace(
        &self,
        updated: &FileRecord,
        expected: &FileRecord,
    ) -> Result<Replaced, Error> {
        let unchanged = Unchanged::since(expected);
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(Item::from(updated)))
            .condition_expression(unchanged.condition)
            .set_expression_attribute_names(Some(unchanged.names))
            .set_expression_attribute_values(Some(unchanged.values))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(|err| Failure::Internal(format!("file put: {err}")))?;
        let change = Usage::change(Some(expected), Some(updated));
        let lost = if change.is_zero() {
            let result = super::put_alone(&self.client, put).send().await;
            match result {
                Ok(_) => return Ok(Replaced::Applied),
                Err(err) => match err.as_service_error() {
                    Some(PutItemError::ConditionalCheckFailedException(failed)) => {
                        return Ok(Replaced::Refused(
                            failed.item.as_ref().map(decode).transpose()?,
                        ));
                    }
                    _ if aws::may_have_applied(&err) => {
                        format!("PutItem replace file: {}", DisplayErrorContext(&err))
                    }
                    _ => return Err(aws::failure("PutItem replace file", err).into()),
                },
            }
        } else {
            let items = vec![TransactWriteItem::builder().put(put).build()];
            let counted = self
                .counting
                .transact(
                    items,
                    &updated.project_id,
                    updated.file_id,
                    &change,
                    "replace file",
                )
                .await?;
            match counted {
                Transacted::Applied => return Ok(Replaced::Applied),
                Transacted::Refused { index: 0, item } => {
                    return Ok(Replaced::Refused(item.as_ref().map(decode).transpose()?));
                }
                Transacted::Refused { .. } => {
                    self.refuse_unless_room(&updated.project_id, &change)
                        .await?;
                    return Ok(Replaced::UsageMoved);
                }
                Transacted::Contended => return Ok(Replaced::UsageMoved),
                Transacted::Unknown(lost) => lost,
            }
        };
        // Applied if the file now reads as written; else the write may still be on its way, or
        // may have applied before another write changed the file.
        match self.get(updated.file_id).await {
            Ok(Some(found)) if found == *updated => Ok(Replaced::Applied),
            _ => Err(Failure::MayHaveApplied(lost).into()),
        }
    }

    /// Removes the file, only if it is still as `expected` left it ([`Unchanged`]), giving back
    /// what it held of the project's usage in the same transaction; refused, with the file as it
    /// now is (`None`: it is gone already).
    pub async fn remove(&self, expected: &FileRecord) -> Result<Remove, Error> {
        let unchanged = Unchanged::since(expected);
        let delete = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(item::file_key(expected.file_id)))
            .condition_expression(unchanged.condition)
            .set_expression_attribute_names(Some(unchanged.names))
            .set_expression_attribute_values(Some(unchanged.values))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(|err| Failure::Internal(format!("file delete: {err}")))?;
        let change = Usage::change(Some(expected), None);
        if change.is_zero() {
            let result = super::delete_alone(&self.client, delete).send().await;
            return match result {
                Ok(_) => Ok(Remove::Applied),
                Err(err) => match err.as_service_error() {
                    Some(DeleteItemError::ConditionalCheckFailedException(failed)) => Ok(
                        Remove::Refused(failed.item.as_ref().map(decode).transpose()?),
                    ),
                    _ => Err(aws::failure("DeleteItem file", err).into()),
                },
            };
        }
        for _ in 0..UPDATE_ATTEMPTS {
            let items = vec![TransactWriteItem::builder().delete(delete.clone()).build()];
            let counted = self
                .counting
                .transact(
                    items,
                    &expected.project_id,
                    expected.file_id,
                    &change,
                    "delete file",
                )
                .await?;
            return match counted {
                Transacted::Applied => Ok(Remove::Applied),
                Transacted::Refused { item, .. } => {
                    Ok(Remove::Refused(item.as_ref().map(decode).transpose()?))
                }
                Transacted::Contended => continue,
                Transacted::Unknown(lost) => match self.get(expected.file_id).await {
                    Ok(None) => Ok(Remove::Applied),
                    _ => Err(Failure::MayHaveApplied(lost).into()),
                },
            };
        }
        Err(kept_changing())
    }

    /// Claims the assembly of job `job_id`'s multipart upload for `lease` from `now`, so that
    /// storage is asked to assemble an upload by one request at a time: `None` while another
    /// request's claim is live. A claim that lapses (its holder crashed or gave up) may be taken.
    ///
    /// S3 itself takes racing `CompleteMultipartUpload`s of one upload (one assembles, the others
    /// find it gone), but each racer is a request and a possible second `ObjectCreated` event,
    /// and LocalStack, racing them, stores an object shorter than its recorded size.
    pub async fn claim_assembly(
        &self,
        file_id: FileId,
        job_id: JobId,
        now: OffsetDateTime,
        lease: Duration,
    ) -> Result<Option<AssemblyClaim>, Error> {
        let claim = AssemblyClaim {
            file_id,
            job_id,
            id: uuid::Uuid::new_v4(),
        };
        let mut claim_item = item::assembly_claim_key(file_id, job_id);
        let lapses = now + lease + Duration::from_secs(1);
        claim_item.insert(item::TTL.into(), n(lapses.unix_timestamp()));
        claim_item.insert(CLAIM.into(), s(claim.id.to_string()));
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(claim_item))
            .condition_expression("attribute_not_exists(pk) OR #ttl <= :now")
            .expression_attribute_names("#ttl", item::TTL)
            .expression_attribute_values(":now", n(now.unix_timestamp()))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(Some(claim)),
            Err(err) => match err.as_service_error() {
                // Ours, when an attempt whose answer was lost (the SDK retried it) applied it.
                Some(PutItemError::ConditionalCheckFailedException(failed)) => Ok(failed
                    .item
                    .as_ref()
                    .and_then(|held| held.get(CLAIM))
                    .filter(|held| **held == s(claim.id.to_string()))
                    .map(|_| claim)),
                _ => Err(aws::failure("PutItem assembly claim", err).into()),
            },
        }
    }

    /// Gives up `claim` before it lapses (its assembly failed), so that a retry need not wait.
    /// Best effort: a claim left behind lapses by itself.
    pub async fn release_assembly(&self, claim: &AssemblyClaim) {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(item::assembly_claim_key(claim.file_id, claim.job_id)))
            .condition_expression("#claim = :claim")
            .expression_attribute_names("#claim", CLAIM)
            .expression_attribute_values(":claim", s(claim.id.to_string()))
            .send()
            .await;
        if let Err(err) = result {
            tracing::warn!(error = %DisplayErrorContext(&err), "assembly claim left to lapse");
        }
    }

    /// The project's files, newest first, optionally only those in `status` (`listing` says how).
    pub async fn list(
        &self,
        project_id: &str,
        status: Option<FileStatus>,
        limit: usize,
        cursor: Option<&ListCursor>,
    ) -> Result<FilePage, Error> {
        listing::list(&self.client, &self.table, project_id, status, limit, cursor)
            .await
            .map_err(Error::from)
    }

    /// Moves the files written before the listing index was sharded into it (`listing` says how).
    pub async fn move_listing_to_shards(&self) -> Result<usize, Error> {
        listing::move_to_shards(&self.client, &self.table)
            .await
            .map_err(Error::from)
    }
}

fn decode(item: &Item) -> Result<FileRecord, Error> {
    FileRecord::try_from(item).map_err(|err| Failure::Internal(err.to_string()).into())
}

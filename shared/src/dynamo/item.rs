//! The single-table layout and the mapping between DynamoDB items and the model.
//!
//! | item | `pk` | `sk` | other keys |
//! |---|---|---|---|
//! | file | `FILE#<file_id>` | `FILE` | `gsi2pk = PROJECT#<project_id>#<shard>`, `gsi1sk = <created_at>#<file_id>` (listing index `by_project_shard`, keys only: a project's files in [`LISTING_SHARDS`] shards, newest first in each; files written before it carry `gsi1pk = PROJECT#<project_id>` instead, index `by_project`); `dedup_key = <project_id>#<sha256>#<size>` while a verified version with a SHA-256 exists (sparse index `by_content`) |
//! | API key | `APIKEY#<hex sha256 of the key>` | `APIKEY` | none |
//! | webhook | `PROJECT#<project_id>` | `WEBHOOK` | none |
//! | upload token | `UPLOADTOKEN#<hex sha256 of the token>` | `UPLOADTOKEN` | none; `ttl` is its expiry, `files` the set of files it created |
//! | assembly claim | `FILE#<file_id>` | `ASSEMBLY#<job_id>` | none; `ttl` is when the claim lapses, `claim` who holds it |
//! | project usage | `PROJECT#<project_id>` | `USAGE` | none; counters (`files`, `bytes`, …), the quota (`max_files`, `max_bytes`) and the room left under it |
//! | project usage shard | `USAGE#<project_id>#<nn>` ([`usage_shard_key`]) | `USAGE` | none; counters as the project usage's, `closed` while the project has a quota |
//! | released expiry | `FILE#<file_id>` | `RELEASED` | none; `ttl`: kept past the stream's 24 hours |
//!
//! A file's current upload job and its verified version are maps inside the file item, so that
//! every status change is one conditional write on one item. Files never verified carry `ttl`.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_dynamodb::types::AttributeValue;

use crate::domain::event::EventType;
use crate::domain::timestamp;
use crate::domain::token::{MediaRange, UploadToken};
use crate::domain::values::{FileName, Md5, MediaType, Metadata, Sha256};
use crate::domain::webhook::{SigningSecret, WebhookConfig, WebhookUrl};
use crate::domain::{
    Checkpoint, ContentDeclaration, FileId, FileRecord, FileStatus, JobId, RejectionReason,
    UploadJob, VerifiedVersion,
};

pub type Item = HashMap<String, AttributeValue>;

pub const PK: &str = "pk";
pub const SK: &str = "sk";
/// The listing index's partition before it was sharded: files not written since carry it.
pub const GSI1PK: &str = "gsi1pk";
pub const GSI1SK: &str = "gsi1sk";
pub const GSI2PK: &str = "gsi2pk";
pub const DEDUP_KEY: &str = "dedup_key";
pub const TTL: &str = "ttl";
pub const BY_PROJECT_INDEX: &str = "by_project";
pub const BY_PROJECT_SHARD_INDEX: &str = "by_project_shard";
pub const BY_CONTENT_INDEX: &str = "by_content";

pub const FILE_SK: &str = "FILE";
pub const API_KEY_SK: &str = "APIKEY";
pub const WEBHOOK_SK: &str = "WEBHOOK";
pub const UPLOAD_TOKEN_SK: &str = "UPLOADTOKEN";
/// The files an upload token created: a string set, absent while empty.
pub const TOKEN_FILES: &str = "files";

pub fn file_pk(file_id: FileId) -> String {
    format!("FILE#{file_id}")
}

pub fn project_pk(project_id: &str) -> String {
    format!("PROJECT#{project_id}")
}

pub fn api_key_pk(key_hash_hex: &str) -> String {
    format!("APIKEY#{key_hash_hex}")
}

pub fn upload_token_pk(token_hash_hex: &str) -> String {
    format!("UPLOADTOKEN#{token_hash_hex}")
}

pub fn upload_token_key(token_hash_hex: &str) -> Item {
    HashMap::from([
        (PK.to_owned(), s(upload_token_pk(token_hash_hex))),
        (SK.to_owned(), s(UPLOAD_TOKEN_SK)),
    ])
}

pub fn dedup_key(project_id: &str, sha256: &Sha256, file_size: u64) -> String {
    format!("{project_id}#{sha256}#{file_size}")
}

/// The listing sort key: creation time first, so a descending query is newest first.
pub fn listing_sort_key(record: &FileRecord) -> String {
    format!(
        "{}#{}",
        timestamp::format(record.created_at),
        record.file_id
    )
}

pub fn webhook_key(project_id: &str) -> Item {
    HashMap::from([
        (PK.into(), s(project_pk(project_id))),
        (SK.into(), s(WEBHOOK_SK)),
    ])
}

pub fn file_key(file_id: FileId) -> Item {
    HashMap::from([(PK.into(), s(file_pk(file_id))), (SK.into(), s(FILE_SK))])
}

/// The keys each of a project's files writes to its project on: the listing index's partition
/// and the usage counters. One key per project would take the project's whole write rate (a
/// partition takes 1,000 write units a second), so each is split into shards and a file writes to
/// the one its id picks ([`shard_of`]); readers gather all of them (README, "Scale").
pub const LISTING_SHARDS: u8 = 16;
pub const USAGE_SHARDS: u8 = 16;

/// The shard of `shards` that `file_id` writes to: its id's last byte, random in a v4 UUID, so a
/// project's files spread evenly; fixed for the file's life.
pub fn shard_of(file_id: FileId, shards: u8) -> u8 {
    file_id.as_uuid().as_bytes()[15] % shards
}

/// The listing index's partition for the files of `project_id` in `shard`.
pub fn listing_pk(project_id: &str, shard: u8) -> String {
    format!("PROJECT#{project_id}#{shard:02}")
}

/// The usage counters of `project_id` that the files in `shard` add to.
pub fn usage_shard_key(project_id: &str, shard: u8) -> Item {
    HashMap::from([
        (PK.into(), s(format!("USAGE#{project_id}#{shard:02}"))),
        (SK.into(), s("USAGE")),
    ])
}

pub fn usage_key(project_id: &str) -> Item {
    HashMap::from([
        (PK.into(), s(project_pk(project_id))),
        (SK.into(), s("USAGE")),
    ])
}

/// The marker that a file's expiry gave back its usage, next to where the file was.
pub fn release_marker_key(file_id: FileId) -> Item {
    HashMap::from([(PK.into(), s(file_pk(file_id))), (SK.into(), s("RELEASED"))])
}

/// The claim on assembling a job's multipart upload, next to its file.
pub fn assembly_claim_key(file_id: FileId, job_id: JobId) -> Item {
    HashMap::from([
        (PK.into(), s(file_pk(file_id))),
        (SK.into(), s(format!("ASSEMBLY#{job_id}"))),
    ])
}

pub fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

#[derive(Debug, thiserror::Error)]
#[error("malformed item: {0}")]
pub struct MalformedItem(String);

impl From<&FileRecord> for Item {
    fn from(record: &FileRecord) -> Item {
        let mut item = file_key(record.file_id);
        let shard = shard_of(record.file_id, LISTING_SHARDS);
        item.insert(GSI2PK.into(), s(listing_pk(&record.project_id, shard)));
        item.insert(GSI1SK.into(), s(listing_sort_key(record)));
        item.insert("file_id".into(), s(record.file_id.to_string()));
        item.insert("project_id".into(), s(&record.project_id));
        put_content(&mut item, &record.content);
        put_string_map(&mut item, "metadata", record.metadata.as_map());
        item.insert("status".into(), s(record.status.as_str()));
        if let Some(reason) = record.rejection_reason {
            item.insert("rejection_reason".into(), s(reason.as_str()));
        }
        item.insert("created_at".into(), s(timestamp::format(record.created_at)));
        item.insert("updated_at".into(), s(timestamp::format(record.updated_at)));
        if let Some(job) = &record.job {
            item.insert("job".into(), job_value(job));
        }
        if let Some(expires_at) = record.expires_at {
            item.insert(TTL.into(), n(expires_at.unix_timestamp()));
        }
        if let Some(verified) = &record.verified {
            item.insert("verified".into(), verified_value(verified));
            if let Some(sha256) = &verified.content.sha256 {
                item.insert(
                    DEDUP_KEY.into(),
                    s(dedup_key(
                        &record.project_id,
                        sha256,
                        verified.content.file_size,
                    )),
                );
            }
        }
        item
    }
}

/// A job's `part_checksums`, when its parts are signed for their SHA-256.
const PART_CHECKSUMS_SHA256: &str = "sha256";

pub fn job_value(job: &UploadJob) -> AttributeValue {
    let mut map = HashMap::from([
        ("job_id".to_owned(), s(job.job_id.to_string())),
        ("s3_key".to_owned(), s(&job.s3_key)),
        ("part_size".to_owned(), n(job.part_size)),
        ("part_count".to_owned(), n(job.part_count)),
        (
            "expires_at".to_owned(),
            s(timestamp::format(job.expires_at)),
        ),
    ]);
    put_string_map(&mut map, "headers", &job.headers);
    if job.part_checksums {
        map.insert("part_checksums".into(), s(PART_CHECKSUMS_SHA256));
    }
    if let Some(upload_id) = &job.upload_id {
        map.insert("upload_id".into(), s(upload_id));
    }
    if let Some(checkpoint) = &job.checkpoint {
        map.insert("checkpoint".into(), checkpoint_value(checkpoint));
    }
    AttributeValue::M(map)
}

fn checkpoint_value(checkpoint: &Checkpoint) -> AttributeValue {
    let mut map = HashMap::from([
        ("step_id".to_owned(), s(checkpoint.step_id.to_string())),
        ("etag".to_owned(), s(&checkpoint.etag)),
        ("bytes_checked".to_owned(), n(checkpoint.bytes_checked)),
    ]);
    for (name, state) in [
        ("sha256_state", &checkpoint.sha256_state),
        ("md5_state", &checkpoint.md5_state),
    ] {
        if let Some(state) = state {
            map.insert(name.to_owned(), AttributeValue::B(state.clone().into()));
        }
    }
    AttributeValue::M(map)
}

fn checkpoint(item: &Item) -> Result<Checkpoint, MalformedItem> {
    let state = |name: &str| match item.get(name) {
        Some(AttributeValue::B(bytes)) => Some(bytes.as_ref().to_vec()),
        _ => None,
    };
    Ok(Checkpoint {
        step_id: parsed(item, "step_id")?,
        etag: string(item, "etag")?.to_owned(),
        bytes_checked: number(item, "bytes_checked")?,
        sha256_state: state("sha256_state"),
        md5_state: state("md5_state"),
    })
}

pub fn verified_value(verified: &VerifiedVersion) -> AttributeValue {
    let mut map = HashMap::from([
        ("job_id".to_owned(), s(verified.job_id.to_string())),
        ("s3_key".to_owned(), s(&verified.s3_key)),
        (
            "verified_at".to_owned(),
            s(timestamp::format(verified.verified_at)),
        ),
    ]);
    put_content(&mut map, &verified.content);
    AttributeValue::M(map)
}

fn put_content(item: &mut Item, content: &ContentDeclaration) {
    item.insert("file_name".into(), s(content.file_name.as_str()));
    item.insert("content_type".into(), s(content.content_type.as_str()));
    item.insert("file_size".into(), n(content.file_size));
    if let Some(sha256) = &content.sha256 {
        item.insert("sha256".into(), s(sha256.to_base64()));
    }
    if let Some(md5) = &content.md5 {
        item.insert("md5".into(), s(md5.to_base64()));
    }
}

impl TryFrom<&Item> for FileRecord {
    type Error = MalformedItem;

    fn try_from(item: &Item) -> Result<Self, MalformedItem> {
        let status = string(item, "status")?;
        Ok(FileRecord {
            file_id: parsed(item, "file_id")?,
            project_id: string(item, "project_id")?.to_owned(),
            content: content(item)?,
            metadata: Metadata::from_stored(read_string_map(item, "metadata")?),
            status: FileStatus::parse(status)
                .ok_or_else(|| MalformedItem(format!("status {status:?}")))?,
            rejection_reason: optional_string(item, "rejection_reason")
                .map(|r| {
                    RejectionReason::parse(r)
                        .ok_or_else(|| MalformedItem(format!("rejection_reason {r:?}")))
                })
                .transpose()?,
            created_at: time(item, "created_at")?,
            updated_at: time(item, "updated_at")?,
            job: match item.get("job") {
                Some(AttributeValue::M(job)) => Some(UploadJob {
                    job_id: parsed(job, "job_id")?,
                    s3_key: string(job, "s3_key")?.to_owned(),
                    upload_id: optional_string(job, "upload_id").map(str::to_owned),
                    part_size: number(job, "part_size")?,
                    part_count: number(job, "part_count")?,
                    expires_at: time(job, "expires_at")?,
                    headers: read_string_map(job, "headers")?,
                    part_checksums: optional_string(job, "part_checksums")
                        == Some(PART_CHECKSUMS_SHA256),
                    checkpoint: match job.get("checkpoint") {
                        Some(AttributeValue::M(checkpoint_item)) => {
                            Some(checkpoint(checkpoint_item)?)
                        }
                        _ => None,
                    },
                }),
                _ => None,
            },
            verified: match item.get("verified") {
                Some(AttributeValue::M(verified)) => Some(VerifiedVersion {
                    job_id: parsed::<JobId>(verified, "job_id")?,
                    s3_key: string(verified, "s3_key")?.to_owned(),
                    content: content(verified)?,
                    verified_at: time(verified, "verified_at")?,
                }),
                _ => None,
            },
            expires_at: match item.get(TTL) {
                Some(AttributeValue::N(_)) => {
                    let seconds: i64 = number(item, TTL)?;
                    Some(
                        time::OffsetDateTime::from_unix_timestamp(seconds)
                            .map_err(|_| MalformedItem(format!("{TTL} {seconds}")))?,
                    )
                }
                _ => None,
            },
        })
    }
}

impl From<&UploadToken> for Item {
    /// A token as minted: it has created no file yet.
    fn from(token: &UploadToken) -> Item {
        let mut item = upload_token_key(&token.hash);
        item.insert("project_id".into(), s(&token.project_id));
        item.insert("expires_at".into(), s(timestamp::format(token.expires_at)));
        // Also what the claims compare against: the table forgets the token some time after.
        item.insert(TTL.into(), n(token.expires_at.unix_timestamp()));
        if let Some(max) = token.max_file_size {
            item.insert("max_file_size".into(), n(max));
        }
        if !token.content_types.is_empty() {
            let ranges = token.content_types.iter().map(|range| s(range.as_str()));
            item.insert("content_types".into(), AttributeValue::L(ranges.collect()));
        }
        item.insert("max_files".into(), n(token.max_files));
        put_string_map(&mut item, "metadata", token.metadata.as_map());
        if let Some(minted_by) = &token.minted_by {
            item.insert("minted_by".into(), s(minted_by));
        }
        item
    }
}

impl TryFrom<&Item> for UploadToken {
    type Error = MalformedItem;

    fn try_from(item: &Item) -> Result<Self, MalformedItem> {
        let hash = string(item, PK)?
            .strip_prefix("UPLOADTOKEN#")
            .ok_or_else(|| MalformedItem("pk of an upload token".into()))?
            .to_owned();
        let content_types = match item.get("content_types") {
            Some(AttributeValue::L(ranges)) => ranges
                .iter()
                .map(|range| match range {
                    AttributeValue::S(text) => MediaRange::parse(text)
                        .map_err(|message| MalformedItem(format!("content_types: {message}"))),
                    _ => Err(MalformedItem("content_types".into())),
                })
                .collect::<Result<_, _>>()?,
            _ => Vec::new(),
        };
        let files = match item.get(TOKEN_FILES) {
            Some(AttributeValue::Ss(ids)) => ids
                .iter()
                .map(|id| {
                    id.parse()
                        .map_err(|_| MalformedItem(format!("files {id:?}")))
                })
                .collect::<Result<_, _>>()?,
            _ => Default::default(),
        };
        Ok(UploadToken {
            hash,
            project_id: string(item, "project_id")?.to_owned(),
            expires_at: time(item, "expires_at")?,
            max_file_size: item
                .contains_key("max_file_size")
                .then(|| number(item, "max_file_size"))
                .transpose()?,
            content_types,
            max_files: number(item, "max_files")?,
            metadata: Metadata::from_stored(read_string_map(item, "metadata")?),
            files,
            minted_by: optional_string(item, "minted_by").map(str::to_owned),
        })
    }
}

/// Writes `map` as the map attribute `name`; an empty one is no attribute (read back as empty):
/// DynamoDB Local's stream writes an empty map as `{}`, which no reader of stream records accepts.
fn put_string_map(item: &mut Item, name: &str, map: &BTreeMap<String, String>) {
    if !map.is_empty() {
        let value = map.iter().map(|(k, v)| (k.clone(), s(v))).collect();
        item.insert(name.to_owned(), AttributeValue::M(value));
    }
}

fn read_string_map(item: &Item, name: &str) -> Result<BTreeMap<String, String>, MalformedItem> {
    match item.get(name) {
        Some(AttributeValue::M(map)) => map
            .iter()
            .map(|(k, v)| match v {
                AttributeValue::S(v) => Ok((k.clone(), v.clone())),
                _ => Err(MalformedItem(format!("{name}.{k} is not a string"))),
            })
            .collect(),
        _ => Ok(BTreeMap::new()),
    }
}

fn content(item: &Item) -> Result<ContentDeclaration, MalformedItem> {
    Ok(ContentDeclaration {
        file_name: value(item, "file_name", FileName::parse)?,
        content_type: value(item, "content_type", MediaType::parse)?,
        file_size: number(item, "file_size")?,
        sha256: optional_string(item, "sha256")
            .map(|_| value(item, "sha256", Sha256::parse))
            .transpose()?,
        md5: optional_string(item, "md5")
            .map(|_| value(item, "md5", Md5::parse))
            .transpose()?,
    })
}

impl From<&WebhookConfig> for Item {
    fn from(config: &WebhookConfig) -> Item {
        let mut item = webhook_key(&config.project_id);
        item.insert("project_id".into(), s(&config.project_id));
        item.insert("url".into(), s(config.url.as_str()));
        let events = config.events.iter().map(|kind| kind.as_str().to_owned());
        item.insert("events".into(), AttributeValue::Ss(events.collect()));
        item.insert("secret".into(), s(config.secret.expose()));
        item.insert("created_at".into(), s(timestamp::format(config.created_at)));
        item.insert("updated_at".into(), s(timestamp::format(config.updated_at)));
        item
    }
}

impl TryFrom<&Item> for WebhookConfig {
    type Error = MalformedItem;

    fn try_from(item: &Item) -> Result<Self, MalformedItem> {
        // Stored by this service, which checked it: loopback URLs only exist where allowed. The
        // error names no part of it, which may carry a secret (WebhookUrl).
        let url = WebhookUrl::parse(string(item, "url")?, true)
            .map_err(|message| MalformedItem(format!("url: {message}")))?;
        let events = match item.get("events") {
            Some(AttributeValue::Ss(names)) => names
                .iter()
                .map(|name| {
                    EventType::parse(name).ok_or_else(|| MalformedItem(format!("event {name:?}")))
                })
                .collect::<Result<_, _>>()?,
            _ => return Err(MalformedItem("events is missing".into())),
        };
        Ok(Self {
            project_id: string(item, "project_id")?.to_owned(),
            url,
            events,
            secret: value(item, "secret", |text| {
                SigningSecret::from_stored(text).ok_or_else(|| "not a signing secret".to_owned())
            })?,
            created_at: time(item, "created_at")?,
            updated_at: time(item, "updated_at")?,
        })
    }
}

/// The attribute `name`, parsed as the value type it was written from.
fn value<T>(
    item: &Item,
    name: &str,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Result<T, MalformedItem> {
    let text = string(item, name)?;
    parse(text).map_err(|message| MalformedItem(format!("{name} {text:?}: {message}")))
}

pub fn optional_string<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    match item.get(name) {
        Some(AttributeValue::S(value)) => Some(value),
        _ => None,
    }
}

pub fn string<'a>(item: &'a Item, name: &str) -> Result<&'a str, MalformedItem> {
    optional_string(item, name).ok_or_else(|| MalformedItem(format!("{name} is missing")))
}

fn parsed<T: std::str::FromStr>(item: &Item, name: &str) -> Result<T, MalformedItem> {
    let text = string(item, name)?;
    text.parse()
        .map_err(|_| MalformedItem(format!("{name} {text:?}")))
}

fn number<T: std::str::FromStr>(item: &Item, name: &str) -> Result<T, MalformedItem> {
    match item.get(name) {
        Some(AttributeValue::N(text)) => text
            .parse()
            .map_err(|_| MalformedItem(format!("{name} {text:?}"))),
        _ => Err(MalformedItem(format!("{name} is missing"))),
    }
}

fn time(item: &Item, name: &str) -> Result<time::OffsetDateTime, MalformedItem> {
    let text = string(item, name)?;
    timestamp::parse(text).ok_or_else(|| MalformedItem(format!("{name} {text:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::file::Verdict;
    use crate::domain::fixtures;

    /// A verified file with a new upload in progress.
    fn record() -> FileRecord {
        let file = fixtures::declared();
        let job_id = file.job.as_ref().unwrap().job_id;
        let verified = file
            .settle(
                job_id,
                Verdict::Verified { s3_key: "k".into() },
                timestamp::now(),
                fixtures::PENDING_TTL,
            )
            .unwrap();
        let job = fixtures::job(file.file_id, timestamp::now());
        let mut reupload = verified.clone();
        reupload.job = Some(job);
        reupload
    }

    #[test]
    fn an_unverified_record_and_its_expiry_survive_the_round_trip() {
        let record = fixtures::declared();
        assert!(record.expires_at.is_some());
        let item = Item::from(&record);
        assert!(item.contains_key(TTL));
        assert_eq!(FileRecord::try_from(&item).unwrap(), record);
    }

    #[test]
    fn empty_maps_are_not_written_and_read_back_empty() {
        let mut record = fixtures::declared();
        record.metadata = Metadata::default();
        record.job.as_mut().unwrap().headers.clear();
        let item = Item::from(&record);
        assert!(!item.contains_key("metadata"));
        let Some(AttributeValue::M(job)) = item.get("job") else {
            panic!("a job map")
        };
        assert!(!job.contains_key("headers"));
        assert_eq!(FileRecord::try_from(&item).unwrap(), record);
    }

    #[test]
    fn a_record_survives_the_round_trip() {
        let record = record();
        let item = Item::from(&record);
        assert_eq!(FileRecord::try_from(&item).unwrap(), record);
        assert_eq!(
            optional_string(&item, DEDUP_KEY),
            Some(format!("p1#{}#1048576", fixtures::SHA256).as_str())
        );
    }

    #[test]
    fn a_verification_checkpoint_survives_the_round_trip() {
        let mut record = record();
        record.job.as_mut().unwrap().checkpoint = Some(Checkpoint {
            step_id: uuid::Uuid::new_v4(),
            etag: "\"abc-4\"".into(),
            bytes_checked: 64 << 20,
            sha256_state: Some(vec![1; 41]),
            md5_state: None,
        });
        let item = Item::from(&record);
        assert_eq!(FileRecord::try_from(&item).unwrap(), record);
    }

    #[test]
    fn only_verified_content_with_a_sha256_is_indexed_for_dedup() {
        let mut record = record();
        record.verified = None;
        assert!(!Item::from(&record).contains_key(DEDUP_KEY));
    }

    #[test]
    fn a_malformed_item_is_an_error_not_a_panic() {
        let mut item = Item::from(&record());
        item.insert("status".into(), s("exploded"));
        assert!(FileRecord::try_from(&item).is_err());
        item.remove("file_id");
        assert!(FileRecord::try_from(&item).is_err());
    }
}

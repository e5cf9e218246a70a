//! Listing a project's files, newest first, behind an opaque cursor.
//!
//! The listing index (`by_project_shard`) holds each file under one of [`item::LISTING_SHARDS`]
//! partitions of its project, picked by its id, so that a busy project's creates spread over as
//! many partitions instead of taking one (README, "Scale"). It projects keys only: an index entry
//! is written when a file is created or deleted, never when its status or metadata changes.
//! Files written before the index was sharded are under one partition of the older index
//! (`by_project`) until their next write moves them; a listing reads both.
//!
//! A listing merges the partitions: each is read newest first, a few keys at a time, and the next
//! key of the listing is the newest of the partitions' next keys, taken only once every partition
//! not yet read to its end has one in hand. So keys come in the exact order of their sort key
//! (`<created_at>#<file_id>`, unique and fixed for a file's life), whatever the number of
//! partitions, and a cursor is the sort key of the last key taken: the next page is everything
//! older, so a page neither skips nor repeats a file however files are created, changed or
//! deleted between pages. The files themselves are read by key in batches; the `status` filter
//! applies to them, as read.
//!
//! The cost, next to one query of the unsharded index: one query per partition (17, six at a
//! time) and one batch read, so about four round trips instead of one for a page.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::KeysAndAttributes;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures_util::{StreamExt, TryStreamExt, stream};

use crate::aws;
use crate::domain::timestamp;
use crate::domain::{FileId, FileRecord, FileStatus};
use crate::dynamo::item::{self, Item, s};
use crate::error::Failure;

#[derive(Debug)]
pub struct FilePage {
    pub files: Vec<FileRecord>,
    pub next_cursor: Option<String>,
}

/// Files read by key per batch: BatchGetItem's limit, and the largest page.
const BATCH_ITEMS: usize = 100;
/// Batches read per listing at most, so that a sparse `status` filter cannot turn one request
/// into a read of the whole project: past it the page holds what was found, and its cursor
/// goes on from there.
const MAX_BATCHES: usize = 10;
/// Rounds of partition queries per listing at most: a guard, as every round takes at least one
/// key from each partition it reads or finds the partition's end.
const MAX_QUERY_ROUNDS: usize = 4 * MAX_BATCHES;
/// Partition queries in flight at once: parallel enough for a page in about one round trip,
/// few enough connections (DynamoDB answers HTTP/1.1, one request per connection at a time).
const QUERIES_IN_FLIGHT: usize = 6;
/// Reads of a batch's unprocessed keys (throttled) before the listing gives up.
const BATCH_ATTEMPTS: u32 = 5;

/// Where a listing resumes: the sort key of the last file it took, and the project it lists.
/// Opaque to clients; one from another project is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListCursor {
    /// `None` for a cursor handed out before cursors named their project: still honoured.
    project_id: Option<String>,
    sort_key: String,
}

impl ListCursor {
    fn at(project_id: &str, sort_key: &str) -> Self {
        Self {
            project_id: Some(project_id.to_owned()),
            sort_key: sort_key.to_owned(),
        }
    }

    pub fn encode(&self) -> String {
        let text = match &self.project_id {
            Some(project_id) => format!("{project_id}#{}", self.sort_key),
            None => self.sort_key.clone(),
        };
        URL_SAFE_NO_PAD.encode(text)
    }

    /// The cursor in `text` if it is one this service handed out for listing `project_id`.
    pub fn decode(text: &str, project_id: &str) -> Option<Self> {
        let bytes = URL_SAFE_NO_PAD.decode(text).ok()?;
        let text = std::str::from_utf8(&bytes).ok()?;
        let parts: Vec<&str> = text.split('#').collect();
        let (project, created_at, file_id) = match parts[..] {
            [project, created_at, file_id] => (Some(project), created_at, file_id),
            [created_at, file_id] => (None, created_at, file_id),
            _ => return None,
        };
        timestamp::parse(created_at)?;
        file_id.parse::<FileId>().ok()?;
        if project.is_some_and(|project| project != project_id) {
            return None;
        }
        Some(Self {
            project_id: project.map(str::to_owned),
            sort_key: format!("{created_at}#{file_id}"),
        })
    }
}

/// One key of the listing: the file's table key and its place in the listing.
struct Entry {
    sort_key: String,
    key: Item,
}

/// One partition of a project's listing, read newest first, older than the cursor.
struct Partition {
    index: &'static str,
    attribute: &'static str,
    value: String,
    /// Keys per query: a partition's share of a page and some, so that one round of queries
    /// usually serves a page.
    limit: i32,
    /// Where the next query starts; `None` with `done` when the partition is read to its end.
    start: Option<Item>,
    done: bool,
    keys: VecDeque<Entry>,
}

impl Partition {
    /// The sort key of the partition's next key in hand.
    fn head(&self) -> Option<&String> {
        self.keys.front().map(|key| &key.sort_key)
    }

    fn is_waiting(&self) -> bool {
        self.keys.is_empty() && !self.done
    }
}

/// The keys of a project's listing in order, from every partition it has.
struct Merge<'a> {
    client: &'a Client,
    table: &'a str,
    before: Option<String>,
    partitions: Vec<Partition>,
    /// Files already taken, by table key: a file moving from the older index to the sharded one
    /// while the listing reads can be found in both.
    taken: HashSet<String>,
    rounds: usize,
}

impl<'a> Merge<'a> {
    fn new(
        client: &'a Client,
        table: &'a str,
        project_id: &str,
        before: Option<String>,
        page: usize,
    ) -> Self {
        let shards = usize::from(item::LISTING_SHARDS);
        let share = i32::try_from(2 * page.div_ceil(shards) + 2).unwrap_or(i32::MAX);
        let partition = |index, attribute, value, limit| Partition {
            index,
            attribute,
            value,
            limit,
            start: None,
            done: false,
            keys: VecDeque::new(),
        };
        let mut partitions: Vec<Partition> = (0..item::LISTING_SHARDS)
            .map(|shard| {
                partition(
                    item::BY_PROJECT_SHARD_INDEX,
                    item::GSI2PK,
                    item::listing_pk(project_id, shard),
                    share,
                )
            })
            .collect();
        partitions.push(partition(
            item::BY_PROJECT_INDEX,
            item::GSI1PK,
            item::project_pk(project_id),
            i32::try_from(page + 1).unwrap_or(i32::MAX),
        ));
        Self {
            client,
            table,
            before,
            partitions,
            taken: HashSet::new(),
            rounds: 0,
        }
    }

    /// Up to `count` next keys of the listing, in order; fewer only at its end or when the
    /// listing's query rounds are spent.
    async fn next(&mut self, count: usize) -> Result<Vec<Entry>, Failure> {
        let mut keys = Vec::with_capacity(count);
        while keys.len() < count {
            if self.partitions.iter().any(Partition::is_waiting) {
                if self.rounds == MAX_QUERY_ROUNDS {
                    break;
                }
                self.rounds += 1;
                self.read_waiting().await?;
                continue;
            }
            // The partition whose next key is the newest (`None` sorts below any key).
            let Some(entry) = self
                .partitions
                .iter_mut()
                .max_by(|a, b| a.head().cmp(&b.head()))
                .and_then(|partition| partition.keys.pop_front())
            else {
                break;
            };
            if self.taken.insert(text(&entry.key, item::PK)) {
                keys.push(entry);
            }
        }
        Ok(keys)
    }

    /// Whether the listing may have more keys than those taken.
    fn has_more(&self) -> bool {
        self.partitions
            .iter()
            .any(|partition| !partition.done || !partition.keys.is_empty())
    }

    /// Reads, in parallel, the next keys of every partition that has none in hand.
    async fn read_waiting(&mut self) -> Result<(), Failure> {
        let (client, table, before) = (self.client, self.table, self.before.as_deref());
        // Collected first: a stream of the lazy iterator is a type too subtle for `Send`.
        let queries: Vec<_> = self
            .partitions
            .iter_mut()
            .filter(|partition| partition.is_waiting())
            .map(|partition| async move {
                let mut query = client
                    .query()
                    .table_name(table)
                    .index_name(partition.index)
                    .key_condition_expression(match before {
                        Some(_) => "#pk = :pk AND #sk < :before",
                        None => "#pk = :pk",
                    })
                    .expression_attribute_names("#pk", partition.attribute)
                    .expression_attribute_names("#sk", item::GSI1SK)
                    .expression_attribute_names("#tpk", item::PK)
                    .expression_attribute_names("#tsk", item::SK)
                    .expression_attribute_values(":pk", s(&partition.value))
                    .projection_expression("#tpk, #tsk, #sk")
                    .scan_index_forward(false)
                    .limit(partition.limit)
                    .set_exclusive_start_key(partition.start.take());
                if let Some(before) = before {
                    query = query.expression_attribute_values(":before", s(before));
                }
                let output = query
                    .send()
                    .await
                    .map_err(|err| aws::failure("Query listing", err))?;
                for found in output.items() {
                    partition.keys.push_back(Entry {
                        sort_key: text(found, item::GSI1SK),
                        key: table_key(found),
                    });
                }
                partition.done = output.last_evaluated_key.is_none();
                partition.start = output.last_evaluated_key;
                Ok::<_, Failure>(())
            })
            .collect();
        stream::iter(queries)
            .buffer_unordered(QUERIES_IN_FLIGHT)
            .try_collect::<()>()
            .await
    }
}

/// The project's files, newest first, optionally only those in `status`, older than `cursor`.
pub(crate) async fn list(
    client: &Client,
    table: &str,
    project_id: &str,
    status: Option<FileStatus>,
    limit: usize,
    cursor: Option<&ListCursor>,
) -> Result<FilePage, Failure> {
    let limit = limit.clamp(1, BATCH_ITEMS);
    let before = cursor.map(|cursor| cursor.sort_key.clone());
    let mut merge = Merge::new(client, table, project_id, before, limit);
    let mut files = Vec::with_capacity(limit);
    let mut last_taken: Option<String> = None;
    let mut unread_left = false;
    for batch in 0..MAX_BATCHES {
        // The first batch is what the page needs; a filter that skipped some reads full batches.
        let count = if batch == 0 { limit } else { BATCH_ITEMS };
        let keys = merge.next(count).await?;
        if keys.is_empty() {
            break;
        }
        let mut found = read_files(client, table, &keys).await?;
        for (at, entry) in keys.iter().enumerate() {
            last_taken = Some(entry.sort_key.clone());
            let record = found.remove(&text(&entry.key, item::PK));
            // Gone since the index was read: deleted, so not listed.
            if let Some(record) = record
                && status.is_none_or(|status| record.status == status)
            {
                files.push(record);
                if files.len() == limit {
                    unread_left = at + 1 < keys.len();
                    break;
                }
            }
        }
        if files.len() == limit {
            break;
        }
    }
    let more = unread_left || merge.has_more();
    let next_cursor = match (&last_taken, more) {
        (Some(sort_key), true) => Some(ListCursor::at(project_id, sort_key).encode()),
        // Query rounds spent before a single key: no page to answer with.
        (None, true) => {
            return Err(Failure::Unavailable(
                "the listing found no files in the time it had; retry".into(),
            ));
        }
        (_, false) => None,
    };
    Ok(FilePage { files, next_cursor })
}

/// The files under `keys`, by table partition key; files deleted since are absent.
async fn read_files(
    client: &Client,
    table: &str,
    keys: &[Entry],
) -> Result<HashMap<String, FileRecord>, Failure> {
    let mut wanted: Vec<Item> = keys.iter().map(|entry| entry.key.clone()).collect();
    let mut found = HashMap::with_capacity(keys.len());
    for attempt in 0..BATCH_ATTEMPTS {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(25 << attempt)).await;
        }
        let request = KeysAndAttributes::builder()
            .set_keys(Some(wanted))
            .build()
            .map_err(|err| Failure::Internal(format!("batch read: {err}")))?;
        let mut output = client
            .batch_get_item()
            .request_items(table, request)
            .send()
            .await
            .map_err(|err| aws::failure("BatchGetItem files", err))?;
        for read in output
            .responses
            .as_mut()
            .and_then(|responses| responses.remove(table))
            .unwrap_or_default()
        {
            let record =
                FileRecord::try_from(&read).map_err(|err| Failure::Internal(err.to_string()))?;
            found.insert(text(&read, item::PK), record);
        }
        wanted = output
            .unprocessed_keys
            .and_then(|mut unprocessed| unprocessed.remove(table))
            .map(|left| left.keys)
            .unwrap_or_default();
        if wanted.is_empty() {
            return Ok(found);
        }
    }
    Err(Failure::Unavailable(
        "the table kept refusing to read the listed files; retry".into(),
    ))
}

/// Moves every file still in the older listing index into the sharded one (`upload-admin
/// move-listing`), so that the older index, then empty, can be dropped; returns how many moved.
/// It reads the older index itself, which holds only such files. Each move is conditional on
/// the file still being there: a file rewritten meanwhile moved with its write. The move
/// changes no field of the file, so no event comes of it.
pub(crate) async fn move_to_shards(client: &Client, table: &str) -> Result<usize, Failure> {
    let mut pages = client
        .scan()
        .table_name(table)
        .index_name(item::BY_PROJECT_INDEX)
        .projection_expression("pk, sk, file_id, project_id")
        .into_paginator()
        .send();
    let mut moved = 0;
    while let Some(page) = pages.next().await {
        let page = page.map_err(|err| aws::failure("Scan by_project", err))?;
        for found in page.items() {
            let file_id: FileId = text(found, "file_id")
                .parse()
                .map_err(|()| Failure::Internal(format!("file item without an id: {found:?}")))?;
            let shard = item::shard_of(file_id, item::LISTING_SHARDS);
            let result = client
                .update_item()
                .table_name(table)
                .set_key(Some(table_key(found)))
                .update_expression("SET #new = :partition REMOVE #old")
                .condition_expression("attribute_exists(#old)")
                .expression_attribute_names("#new", item::GSI2PK)
                .expression_attribute_names("#old", item::GSI1PK)
                .expression_attribute_values(
                    ":partition",
                    s(item::listing_pk(&text(found, "project_id"), shard)),
                )
                .send()
                .await;
            match result {
                Ok(_) => moved += 1,
                Err(err)
                    if err
                        .as_service_error()
                        .is_some_and(|err| err.is_conditional_check_failed_exception()) => {}
                Err(err) => return Err(aws::failure("UpdateItem move listing", err)),
            }
        }
    }
    Ok(moved)
}

fn text(item: &Item, name: &str) -> String {
    item::optional_string(item, name)
        .unwrap_or_default()
        .to_owned()
}

/// The table key (`pk`, `sk`) of an index entry.
fn table_key(entry: &Item) -> Item {
    entry
        .iter()
        .filter(|(name, _)| *name == item::PK || *name == item::SK)
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_name_their_project_and_reject_garbage() {
        let file_id = FileId::random();
        let sort_key = format!("2026-11-21T21:52:30.123456Z#{file_id}");
        let cursor = ListCursor::at("p1", &sort_key);
        assert_eq!(ListCursor::decode(&cursor.encode(), "p1"), Some(cursor));
        // One from another project, or tampered with, is no cursor of this listing.
        let other = ListCursor::at("p2", &sort_key).encode();
        assert_eq!(ListCursor::decode(&other, "p1"), None);
        assert_eq!(ListCursor::decode("not base64!", "p1"), None);
        for text in [
            "x#y".to_owned(),
            format!("yesterday#{file_id}"),
            format!("p1#2026-11-21T21:52:30.123456Z#{file_id}#x"),
            format!(
                "p1#2026-11-21T21:52:30.123456Z#{}",
                file_id.to_string().to_uppercase()
            ),
        ] {
            assert_eq!(
                ListCursor::decode(&URL_SAFE_NO_PAD.encode(text), "p1"),
                None
            );
        }
        // A cursor from before cursors named their project still goes on where it was.
        let unnamed = URL_SAFE_NO_PAD.encode(&sort_key);
        assert_eq!(
            ListCursor::decode(&unnamed, "p1").map(|cursor| cursor.sort_key),
            Some(sort_key)
        );
    }
}

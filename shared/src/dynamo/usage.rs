//! Each project's usage and quota: counters spread over a project item and [`USAGE_SHARDS`]
//! shard items (`item` has the layout). A change of a file that takes or gives back
//! (`Usage::change`) is added, in the same transaction as the file's own write
//! ([`Counting::transact`], used by `FileStore`), to one of them, so their sum is the usage of
//! the project's files whatever the races and retries.
//!
//! **The rule** ([`Counting`]): a change goes to its file's shard (`item::shard_of`) while that
//! shard is open, else to the project item. Spread over the shards, a project without a quota
//! takes its writes at 16 times one key's rate. A project with a quota has its shards closed
//! ([`Usages::set_quota`]): admitting exactly needs one item, the project item, which keeps the
//! room left under each bound (`files_left`, `bytes_left`: the bound less what is used, or
//! [`UNBOUNDED`] less it without one), changed with the counters. A change that takes more is
//! conditional on the room it needs there, so a quota costs no read and no write of its own.
//! Readers sum the project item and every shard ([`read`]); a project item written before the
//! shards existed is simply a project whose shards are all zero.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, KeysAndAttributes, Put, TransactWriteItem, Update,
};

use crate::aws;
use crate::domain::error::Refusal;
use crate::domain::timestamp;
use crate::domain::usage::{ProjectUsage, Quota, Usage};
use crate::domain::{FileId, FileRecord};
use crate::dynamo::Transacted;
use crate::dynamo::item::{self, Item, USAGE_SHARDS, n, s};
use crate::error::{Error, Failure};

/// A counter of the usage items: its attribute, and what of a [`Usage`] it adds up.
type Field = (&'static str, fn(&Usage) -> i64);

/// The counters of the usage items.
const COUNTERS: [Field; 6] = [
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
/// Set on a shard item while its project has a quota: no change may be added to it then.
const CLOSED: &str = "closed";

/// The room of a project without a bound: more than any project holds (2^62 bytes is 4 EiB),
/// small enough that no sum overflows DynamoDB's numbers.
const UNBOUNDED: i64 = 1 << 62;

/// How long a [`Counting`] trusts what it found of a project's shards. Found closed, it sends
/// the project's changes to the project item without trying the shard first; a memory gone
/// stale either way costs one refused transaction at most, never a wrong count (the shard's
/// own condition decides).
const REMEMBERED: Duration = Duration::from_secs(300);

/// Attempts of a write or read that a busy project's traffic gets in the way of, with a
/// doubling pause between them ([`backoff`]): a consistent batch read whose keys DynamoDB leaves
/// unprocessed (it does under load), closing a shard that transactions are writing, and the
/// quota's transaction, which the project's changes make read again. About 5 s in all.
const ATTEMPTS: u32 = 8;
const FIRST_PAUSE: Duration = Duration::from_millis(20);

/// Waits before attempt `attempt` (from 0) of [`ATTEMPTS`]: not before the first.
async fn backoff(attempt: u32) {
    if attempt > 0 {
        tokio::time::sleep(FIRST_PAUSE * 2u32.pow(attempt - 1)).await;
    }
}

/// How long the marker of a released expiry is kept: past the stream's 24 hours, so that a
/// record handed over again finds it.
const RELEASE_MARKER_SECS: i64 = 3 * 24 * 3600;

#[derive(Clone, Debug)]
pub struct Usages {
    client: Client,
    table: String,
    counting: Counting,
}

impl Usages {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        let table = table.into();
        Self::sharing(Counting::new(client.clone(), table.clone()), client, table)
    }

    /// Usages that remember what they find of projects' shards with `counting` (a file store's,
    /// so that a container that sets a quota sends its own next changes to the project item).
    pub(crate) fn sharing(counting: Counting, client: Client, table: String) -> Self {
        Self {
            counting,
            client,
            table,
        }
    }

    /// The project's usage and quota, read consistently (zero and none for a new project).
    pub async fn get(&self, project_id: &str) -> Result<ProjectUsage, Error> {
        read(&self.client, &self.table, project_id).await
    }

    /// Sets the project's quota; `None` for a bound removes it. Usage above a new bound stays:
    /// only what would take more is refused.
    ///
    /// With a bound, the shards are closed first, so that nothing is added to them any more;
    /// then one transaction moves what they hold into the project item and sets the bounds and
    /// the room left there. The moves hold only while every shard is still as read (and still
    /// closed: a removal of the quota meanwhile reopens them; another quota being set may have
    /// moved them), else it reads again; the room is the bound less the project item's counters
    /// as the transaction finds them, plus what it moves (`quota_set`), so the creates
    /// that keep coming to the project item meanwhile need no read again. Without a bound, the
    /// same transaction reopens the shards. A call that fails may leave the shards closed
    /// without a quota: counted right, on the project item alone, until it is run again.
    pub async fn set_quota(&self, project_id: &str, quota: Quota) -> Result<(), Error> {
        let bounded = quota.max_files.is_some() || quota.max_bytes.is_some();
        for attempt in 0..ATTEMPTS {
            backoff(attempt).await;
            if bounded {
                self.close_shards(project_id).await?;
            }
            let seen = read_items(&self.client, &self.table, project_id).await?;
            let mut items = Vec::with_capacity(1 + usize::from(USAGE_SHARDS));
            let mut moved = Usage::default();
            for shard in 0..USAGE_SHARDS {
                let found = seen.shard(shard);
                let update = if bounded {
                    let held = counters(found)?;
                    moved = moved + held;
                    self.emptied(project_id, shard, &held)?
                } else {
                    self.reopened(project_id, shard)?
                };
                items.push(TransactWriteItem::builder().update(update).build());
            }
            let bounds = self.quota_set(project_id, quota, &moved)?;
            items.insert(0, TransactWriteItem::builder().update(bounds).build());
            match super::transact(&self.client, items, "set quota").await? {
                Transacted::Applied => {
                    self.counting.remember(project_id, bounded);
                    return Ok(());
                }
                // Read again: whether or not it applied, the next attempt computes from what is.
                Transacted::Refused { .. } | Transacted::Contended | Transacted::Unknown(_) => {}
            }
        }
        Err(Refusal::concurrent_update(
            "the project's usage kept changing while its quota was being set; retry",
        )
        .into())
    }

    /// Closes every shard of the project, so that the changes of its files go to the project
    /// item from now on ([`Counting`]): all 16 at once.
    async fn close_shards(&self, project_id: &str) -> Result<(), Error> {
        futures_util::future::try_join_all(
            (0..USAGE_SHARDS).map(|shard| self.close_shard(project_id, shard)),
        )
        .await?;
        Ok(())
    }

    /// Closes one shard. A write racing a transaction on the shard is refused by DynamoDB
    /// (`TransactionConflict`), and closing twice is closing once: tried again after either or
    /// a write whose answer was lost.
    async fn close_shard(&self, project_id: &str, shard: u8) -> Result<(), Error> {
        let mut attempt = 0;
        loop {
            backoff(attempt).await;
            attempt += 1;
            let result = self
                .client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(item::usage_shard_key(project_id, shard)))
                .update_expression("SET #project = :project, #closed = :closed")
                .expression_attribute_names("#project", "project_id")
                .expression_attribute_names("#closed", CLOSED)
                .expression_attribute_values(":project", s(project_id))
                .expression_attribute_values(":closed", AttributeValue::Bool(true))
                .send()
                .await;
            match result {
                Ok(_) => return Ok(()),
                Err(err)
                    if attempt < ATTEMPTS
                        && (aws::may_have_applied(&err)
                            || err
                                .as_service_error()
                                .is_some_and(|err| err.is_transaction_conflict_exception())) => {}
                Err(err) => return Err(aws::failure("UpdateItem close usage shard", err).into()),
            }
        }
    }

    /// The write setting the quota on the project item, with `moved` (what the shards held)
    /// added to its counters, and the room left under each bound computed by DynamoDB from the
    /// counters the item holds as the write applies: no condition on them, so that the project's
    /// changes, which keep coming to the project item once the shards are closed, cannot keep a
    /// quota from being set on a busy project.
    fn quota_set(&self, project_id: &str, quota: Quota, moved: &Usage) -> Result<Update, Error> {
        // The room is the bound less what the item holds before this write, less what it adds.
        let room = |max: Option<u64>, moved: i64| {
            max.map_or(UNBOUNDED, |max| i64::try_from(max).unwrap_or(UNBOUNDED)) - moved
        };
        let mut set = vec![
            "#project = :project".to_owned(),
            "#files_left = :files_room - if_not_exists(#files, :zero)".to_owned(),
            "#bytes_left = :bytes_room - if_not_exists(#bytes, :zero)".to_owned(),
        ];
        let mut remove = Vec::new();
        let mut names = HashMap::from(
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
        );
        let mut values = HashMap::from([
            (":project".to_owned(), s(project_id)),
            (":zero".to_owned(), n(0)),
            (
                ":files_room".to_owned(),
                n(room(quota.max_files, moved.files)),
            ),
            (
                ":bytes_room".to_owned(),
                n(room(quota.max_bytes, moved.bytes())),
            ),
        ]);
        match quota.max_files {
            Some(max) => {
                set.push("#max_files = :max_files".to_owned());
                values.insert(":max_files".to_owned(), n(max));
            }
            None => remove.push("#max_files"),
        }
        match quota.max_bytes {
            Some(max) => {
                set.push("#max_bytes = :max_bytes".to_owned());
                values.insert(":max_bytes".to_owned(), n(max));
            }
            None => remove.push("#max_bytes"),
        }
        let mut expression = format!("SET {}", set.join(", "));
        if !remove.is_empty() {
            expression.push_str(&format!(" REMOVE {}", remove.join(", ")));
        }
        if !moved.is_zero() {
            let mut adds = Vec::new();
            for (index, (name, field)) in COUNTERS.iter().enumerate() {
                names.insert(format!("#c{index}"), (*name).to_owned());
                values.insert(format!(":c{index}"), n(field(moved)));
                adds.push(format!("#c{index} :c{index}"));
            }
            expression.push_str(&format!(" ADD {}", adds.join(", ")));
        }
        Update::builder()
            .table_name(&self.table)
            .set_key(Some(item::usage_key(project_id)))
            .update_expression(expression)
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .build()
            .map_err(|err| Failure::Internal(format!("quota update: {err}")).into())
    }

    /// The write emptying a closed shard that holds `held` (moved to the project item by the
    /// same transaction): only while it is still closed and holds exactly that.
    fn emptied(&self, project_id: &str, shard: u8, held: &Usage) -> Result<Update, Error> {
        let mut names = HashMap::from([("#closed".to_owned(), CLOSED.to_owned())]);
        let mut values: Item = HashMap::from([(":zero".to_owned(), n(0))]);
        let mut set = Vec::new();
        let mut unchanged = vec!["attribute_exists(#closed)".to_owned()];
        for (index, (name, field)) in COUNTERS.iter().enumerate() {
            names.insert(format!("#c{index}"), (*name).to_owned());
            set.push(format!("#c{index} = :zero"));
            match field(held) {
                0 => unchanged.push(format!(
                    "(attribute_not_exists(#c{index}) OR #c{index} = :zero)"
                )),
                value => {
                    values.insert(format!(":c{index}"), n(value));
                    unchanged.push(format!("#c{index} = :c{index}"));
                }
            }
        }
        Update::builder()
            .table_name(&self.table)
            .set_key(Some(item::usage_shard_key(project_id, shard)))
            .update_expression(format!("SET {}", set.join(", ")))
            .condition_expression(unchanged.join(" AND "))
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .build()
            .map_err(|err| Failure::Internal(format!("usage shard move: {err}")).into())
    }

    /// The write reopening a shard: changes of its files go to it again.
    fn reopened(&self, project_id: &str, shard: u8) -> Result<Update, Error> {
        Update::builder()
            .table_name(&self.table)
            .set_key(Some(item::usage_shard_key(project_id, shard)))
            .update_expression("REMOVE #closed")
            .expression_attribute_names("#closed", CLOSED)
            .build()
            .map_err(|err| Failure::Internal(format!("usage shard reopen: {err}")).into())
    }

    /// Gives back what `file`, removed by the table's TTL, held: once, however often the
    /// stream hands the removal over (a marker next to the file, written in the same
    /// transaction, refuses a second release).
    pub async fn release_expired(&self, file: &FileRecord) -> Result<(), Error> {
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
            .map_err(|err| Failure::Internal(format!("release marker: {err}")))?;
        let items = vec![TransactWriteItem::builder().put(mark).build()];
        let counted = self
            .counting
            .transact(items, &file.project_id, file.file_id, &change, "release")
            .await?;
        match counted {
            // Refused by the marker: an earlier hand-over of the record released it. A give-back
            // is refused by no usage item.
            Transacted::Applied | Transacted::Refused { .. } => Ok(()),
            Transacted::Contended | Transacted::Unknown(_) => Err(Failure::Unavailable(format!(
                "the usage of expired file {} was not given back",
                file.file_id
            ))
            .into()),
        }
    }
}

/// Where a change of a file's usage is added (the rule of the module's doc).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Place {
    /// The file's shard, while open. `checked`: the project item was found without a quota
    /// lately; unchecked, the transaction checks it too, since a quota set before the shards
    /// existed left them open.
    Shard { checked: bool },
    /// The project item: its shards are closed.
    Project,
}

/// What a [`Counting`] found of a project's shards, and when.
#[derive(Clone, Copy, Debug)]
struct Found {
    closed: bool,
    at: Instant,
}

/// Adds the usage changes of files to their project by the rule (module doc), remembering for
/// [`REMEMBERED`] which projects it found closed: held by a store that lives as long as the
/// Lambda container, so a busy project with a quota pays one refused transaction per container
/// every few minutes, not one per change.
#[derive(Clone, Debug)]
pub(crate) struct Counting {
    client: Client,
    table: String,
    found: Arc<Mutex<HashMap<String, Found>>>,
}

impl Counting {
    pub(crate) fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
            found: Arc::default(),
        }
    }

    /// Sends `items` (the file's own writes) as one transaction with the write adding `change`
    /// of file `file_id` to the usage of `project_id`, appended after them: to the file's shard,
    /// or, when that is closed, at once again to the project item. What it answers is the
    /// transaction that counted on the project item, or on an open shard: a refusal at index
    /// `items.len()` is the project item's, for want of room.
    pub(crate) async fn transact(
        &self,
        items: Vec<TransactWriteItem>,
        project_id: &str,
        file_id: FileId,
        change: &Usage,
        what: &str,
    ) -> Result<Transacted, Error> {
        let own = items.len();
        let mut place = self.place(project_id, Instant::now());
        loop {
            let mut all = items.clone();
            all.extend(self.writes(place, project_id, file_id, change)?);
            let outcome = super::transact(&self.client, all, what).await?;
            match (place, &outcome) {
                (Place::Shard { .. }, Transacted::Refused { index, .. }) if *index >= own => {
                    self.remember(project_id, true);
                    place = Place::Project;
                }
                (Place::Shard { checked: false }, Transacted::Applied) => {
                    self.remember(project_id, false);
                    return Ok(outcome);
                }
                _ => return Ok(outcome),
            }
        }
    }

    /// Where the next change of the project goes, by what was found of it lately.
    fn place(&self, project_id: &str, now: Instant) -> Place {
        let found = self
            .found
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        place(found.get(project_id).copied(), now)
    }

    fn remember(&self, project_id: &str, closed: bool) {
        let mut found = self
            .found
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let now = Instant::now();
        // Forget the stale, so that a container serving many projects keeps a small map.
        found.retain(|_, found| now.duration_since(found.at) < REMEMBERED);
        found.insert(project_id.to_owned(), Found { closed, at: now });
    }

    /// The writes adding `change` at `place`.
    fn writes(
        &self,
        place: Place,
        project_id: &str,
        file_id: FileId,
        change: &Usage,
    ) -> Result<Vec<TransactWriteItem>, Error> {
        let shard = item::shard_of(file_id, USAGE_SHARDS);
        Ok(match place {
            Place::Project => vec![
                TransactWriteItem::builder()
                    .update(apply(&self.table, project_id, change)?)
                    .build(),
            ],
            Place::Shard { checked } => {
                let mut writes = vec![
                    TransactWriteItem::builder()
                        .update(add_to_shard(&self.table, project_id, shard, change)?)
                        .build(),
                ];
                if !checked {
                    let unbounded = ConditionCheck::builder()
                        .table_name(&self.table)
                        .set_key(Some(item::usage_key(project_id)))
                        .condition_expression(
                            "attribute_not_exists(#max_files) AND attribute_not_exists(#max_bytes)",
                        )
                        .expression_attribute_names("#max_files", MAX_FILES)
                        .expression_attribute_names("#max_bytes", MAX_BYTES)
                        .build()
                        .map_err(|err| Failure::Internal(format!("quota check: {err}")))?;
                    writes.push(
                        TransactWriteItem::builder()
                            .condition_check(unbounded)
                            .build(),
                    );
                }
                writes
            }
        })
    }
}

/// Where a project's next change goes, given what was `found` of its shards (if anything) and
/// the time: found within [`REMEMBERED`], as found; else its shard, checking the project item.
fn place(found: Option<Found>, now: Instant) -> Place {
    match found {
        Some(found) if now.duration_since(found.at) < REMEMBERED => {
            if found.closed {
                Place::Project
            } else {
                Place::Shard { checked: true }
            }
        }
        _ => Place::Shard { checked: false },
    }
}

/// The project item and shard items of a project as one consistent read found them, by `pk`.
struct Items {
    project_id: String,
    by_pk: HashMap<String, Item>,
}

impl Items {
    fn project(&self) -> Option<&Item> {
        self.get(&item::usage_key(&self.project_id))
    }

    fn shard(&self, shard: u8) -> Option<&Item> {
        self.get(&item::usage_shard_key(&self.project_id, shard))
    }

    fn get(&self, key: &Item) -> Option<&Item> {
        match key.get(item::PK) {
            Some(AttributeValue::S(pk)) => self.by_pk.get(pk),
            _ => None,
        }
    }
}

/// Reads the project item and every shard, each consistently, in one batch (17 keys, under
/// BatchGetItem's 100), asking again for the keys DynamoDB leaves unprocessed.
async fn read_items(client: &Client, table: &str, project_id: &str) -> Result<Items, Error> {
    let mut keys: Vec<Item> = (0..USAGE_SHARDS)
        .map(|shard| item::usage_shard_key(project_id, shard))
        .collect();
    keys.push(item::usage_key(project_id));
    let mut by_pk = HashMap::new();
    for attempt in 0..ATTEMPTS {
        backoff(attempt).await;
        let request = KeysAndAttributes::builder()
            .set_keys(Some(keys))
            .consistent_read(true)
            .build()
            .map_err(|err| Failure::Internal(format!("usage batch read: {err}")))?;
        let output = client
            .batch_get_item()
            .request_items(table, request)
            .send()
            .await
            .map_err(|err| aws::failure("BatchGetItem usage", err))?;
        let found = output
            .responses
            .and_then(|mut responses| responses.remove(table))
            .unwrap_or_default();
        for found in found {
            if let Some(AttributeValue::S(pk)) = found.get(item::PK) {
                by_pk.insert(pk.clone(), found);
            }
        }
        keys = output
            .unprocessed_keys
            .and_then(|mut unprocessed| unprocessed.remove(table))
            .map(|left| left.keys)
            .unwrap_or_default();
        if keys.is_empty() {
            return Ok(Items {
                project_id: project_id.to_owned(),
                by_pk,
            });
        }
    }
    Err(Failure::Unavailable(format!(
        "the usage of project {project_id} could not be read whole"
    ))
    .into())
}

/// The project's usage and quota, read consistently: the project item and its shards summed.
pub(crate) async fn read(
    client: &Client,
    table: &str,
    project_id: &str,
) -> Result<ProjectUsage, Error> {
    let items = read_items(client, table, project_id).await?;
    let mut usage = counters(items.project())?;
    for shard in 0..USAGE_SHARDS {
        usage = usage + counters(items.shard(shard))?;
    }
    Ok(ProjectUsage {
        usage,
        quota: quota(items.project())?,
    })
}

/// The usage and quota as the project item alone holds them, read consistently: the project's
/// whole usage whenever it has a quota, since the transaction that sets a bound empties and
/// closes the shards, and only the one that removes every bound reopens them. What a refusal
/// for want of room needs, at the cost of one item, not all of them.
pub(crate) async fn read_bounded(
    client: &Client,
    table: &str,
    project_id: &str,
) -> Result<ProjectUsage, Error> {
    let output = client
        .get_item()
        .table_name(table)
        .set_key(Some(item::usage_key(project_id)))
        .consistent_read(true)
        .send()
        .await
        .map_err(|err| aws::failure("GetItem usage", err))?;
    let found = output.item.as_ref();
    Ok(ProjectUsage {
        usage: counters(found)?,
        quota: quota(found)?,
    })
}

/// The bounds a project item holds (none for one not written yet).
fn quota(found: Option<&Item>) -> Result<Quota, Error> {
    let bound = |name: &str| {
        found
            .map_or(Ok(None), |found| number(found, name))
            .map(|max| max.map(|max| max.max(0) as u64))
    };
    Ok(Quota {
        max_files: bound(MAX_FILES)?,
        max_bytes: bound(MAX_BYTES)?,
    })
}

/// The counters of a usage item (zero for one not written yet).
fn counters(found: Option<&Item>) -> Result<Usage, Error> {
    let Some(found) = found else {
        return Ok(Usage::default());
    };
    let counter = |name: &str| number(found, name).map(Option::unwrap_or_default);
    Ok(Usage {
        files_verified: counter("files_verified")?,
        files_uploading: counter("files_uploading")?,
        files: counter("files")?,
        bytes_verified: counter("bytes_verified")?,
        bytes_reserved: counter("bytes_reserved")?,
    })
}

fn number(found: &Item, name: &str) -> Result<Option<i64>, Error> {
    match found.get(name) {
        Some(AttributeValue::N(text)) => text
            .parse::<i64>()
            .map(Some)
            .map_err(|_| Failure::Internal(format!("usage item: {name} {text:?}")).into()),
        None => Ok(None),
        Some(_) => Err(Failure::Internal(format!("usage item: {name} is not a number")).into()),
    }
}

/// The counters' part of a usage write: `ADD` of each, with its names and values.
fn adds(change: &Usage, names: &mut HashMap<String, String>, values: &mut Item) -> String {
    let mut adds = Vec::new();
    for (index, (name, field)) in COUNTERS.iter().enumerate() {
        names.insert(format!("#c{index}"), (*name).to_owned());
        values.insert(format!(":c{index}"), n(field(change)));
        adds.push(format!("#c{index} :c{index}"));
    }
    format!("ADD {}", adds.join(", "))
}

/// The write adding `change` to an open shard of the project; refused once it is closed.
fn add_to_shard(table: &str, project_id: &str, shard: u8, change: &Usage) -> Result<Update, Error> {
    let mut names = HashMap::from([
        ("#project".to_owned(), "project_id".to_owned()),
        ("#closed".to_owned(), CLOSED.to_owned()),
    ]);
    let mut values: Item = HashMap::from([(":project".to_owned(), s(project_id))]);
    let adds = adds(change, &mut names, &mut values);
    Update::builder()
        .table_name(table)
        .set_key(Some(item::usage_shard_key(project_id, shard)))
        .update_expression(format!("SET #project = :project {adds}"))
        .condition_expression("attribute_not_exists(#closed)")
        .set_expression_attribute_names(Some(names))
        .set_expression_attribute_values(Some(values))
        .build()
        .map_err(|err| Failure::Internal(format!("usage shard update: {err}")).into())
}

/// The write adding `change` to the project item. A change that takes more holds only while
/// the project has room for it under each bound it takes from; else the transaction is
/// cancelled with this item's `ConditionalCheckFailed`.
fn apply(table: &str, project_id: &str, change: &Usage) -> Result<Update, Error> {
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
    let adds = adds(change, &mut names, &mut values);
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
             {adds}"
        ))
        .set_condition_expression((!room.is_empty()).then(|| room.join(" AND ")))
        .set_expression_attribute_names(Some(names))
        .set_expression_attribute_values(Some(values))
        .build()
        .map_err(|err| Failure::Internal(format!("usage update: {err}")).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_goes_where_its_project_was_found_lately_else_to_its_shard_checked() {
        let long_ago = Instant::now();
        let now = long_ago + REMEMBERED * 2;
        let lately = now - REMEMBERED / 2;
        let found = |closed, at| Some(Found { closed, at });
        let table = [
            ("never found", None, Place::Shard { checked: false }),
            (
                "found open lately",
                found(false, lately),
                Place::Shard { checked: true },
            ),
            ("found closed lately", found(true, lately), Place::Project),
            (
                "found open long ago",
                found(false, long_ago),
                Place::Shard { checked: false },
            ),
            (
                "found closed long ago",
                found(true, long_ago),
                Place::Shard { checked: false },
            ),
        ];
        for (case, found, expected) in table {
            assert_eq!(place(found, now), expected, "{case}");
        }
    }
}

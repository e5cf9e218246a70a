//! A capacity model of the table: each write the functions make while [`record`]ed, with the
//! partitions it lands on (the table's and each index's) and the write units it costs there,
//! so that the bench and the tests can say how many uploads a second one project sustains
//! before its hottest key reaches DynamoDB's limit per partition, and which key that is.
//! DynamoDB Local never throttles, so nothing else here can see that limit.
//!
//! The units follow DynamoDB's rules: an item's size is the lengths of its attribute names and
//! values; a write costs its larger image in units of 1 KiB, at least one; an index is written
//! when an item enters, leaves or moves in it, or when an attribute the index projects changes,
//! at the size of the index entry (the table's and the index's keys, and what it projects);
//! inside a transaction every one of these counts twice (a condition check too). `tests/api/capacity.rs` holds the
//! model to what DynamoDB Local reports as consumed for the same writes.
//!
//! Each write is costed twice: as the service writes it ([`Layout::Sharded`]) and as it would
//! have been written before issue 24 ([`Layout::Unsharded`]: the file item in the listing index
//! `by_project` under its project, projected whole; one usage item per project), so a run
//! compares the two. A key split in shards is reported as one key of the family, taking its
//! share of the family's writes: files' ids are random, so their writes spread evenly.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;

use aws_sdk_dynamodb::operation::delete_item::DeleteItemInput;
use aws_sdk_dynamodb::operation::put_item::PutItemInput;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsInput;
use aws_sdk_dynamodb::operation::update_item::UpdateItemInput;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_smithy_runtime_api::client::interceptors::context::Input;
use shared::dynamo::item::{self, Item};

/// DynamoDB's write limit per partition, table or index.
pub const PARTITION_UNITS_PER_SECOND: f64 = 1000.0;

/// What an index holds of an item beside the keys.
#[derive(Debug, Clone, Copy)]
pub enum Projection {
    All,
    KeysOnly,
}

/// An index of the table, as `template.yaml` declares it.
#[derive(Debug, Clone, Copy)]
pub struct Index {
    pub name: &'static str,
    pub partition: &'static str,
    pub sort: Option<&'static str>,
    pub projection: Projection,
}

/// The table's indexes.
pub const INDEXES: [Index; 3] = [
    Index {
        name: item::BY_PROJECT_SHARD_INDEX,
        partition: item::GSI2PK,
        sort: Some(item::GSI1SK),
        projection: Projection::KeysOnly,
    },
    Index {
        name: item::BY_PROJECT_INDEX,
        partition: item::GSI1PK,
        sort: Some(item::GSI1SK),
        projection: Projection::All,
    },
    Index {
        name: item::BY_CONTENT_INDEX,
        partition: item::DEDUP_KEY,
        sort: None,
        projection: Projection::KeysOnly,
    },
];

/// How the table is laid out for a write's cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// As the service writes it.
    Sharded,
    /// As it was before issue 24: the listing index keyed by project alone, projecting whole
    /// items, and one usage item per project.
    Unsharded,
}

impl Layout {
    /// An item as this layout holds it (the service writes [`Layout::Sharded`]).
    fn image(self, item: &Item) -> Item {
        let mut item = item.clone();
        if self == Layout::Unsharded {
            if item.remove(item::GSI2PK).is_some() {
                let project = string(&item, "project_id");
                item.insert(item::GSI1PK.into(), item::s(item::project_pk(&project)));
            }
            if let Some(project) = usage_shard_project(&item) {
                item.extend(item::usage_key(&project));
            }
        }
        item
    }
}

/// The project of a usage shard's key (`USAGE#<project>#<shard>`).
fn usage_shard_project(key: &Item) -> Option<String> {
    let pk = string(key, item::PK);
    let (project, _shard) = pk.strip_prefix("USAGE#")?.rsplit_once('#')?;
    Some(project.to_owned())
}

/// One write's cost on one partition (`table PROJECT#p` or `by_project PROJECT#p`), in a layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    pub layout: Layout,
    pub partition: String,
    pub units: u64,
}

#[derive(Default)]
struct Recording {
    writes: Vec<Write>,
    /// The items as the recorded writes left them, by (pk, sk): a later write's old image.
    items: HashMap<(String, String), Item>,
}

tokio::task_local! {
    static RECORDING: RefCell<Recording>;
}

/// Runs `task`, returning what it wrote to the table: each write's partitions and units.
pub async fn record<F: Future>(task: F) -> (F::Output, Vec<Write>) {
    RECORDING
        .scope(RefCell::new(Recording::default()), async {
            let output = task.await;
            let writes =
                RECORDING.with(|recording| std::mem::take(&mut recording.borrow_mut().writes));
            (output, writes)
        })
        .await
}

/// How many writes the current [`record`] holds: those of a set-up before its measured part.
pub fn mark() -> usize {
    RECORDING
        .try_with(|recording| recording.borrow().writes.len())
        .unwrap_or(0)
}

/// Notes the writes of one DynamoDB request made inside [`record`] (the kit's interceptor
/// hands every request here).
pub(crate) fn observe(input: &Input) {
    let _ = RECORDING.try_with(|recording| {
        let mut recording = recording.borrow_mut();
        if let Some(put) = input.downcast_ref::<PutItemInput>() {
            let item = put.item().cloned().unwrap_or_default();
            recording.put(item, 1);
        } else if let Some(update) = input.downcast_ref::<UpdateItemInput>() {
            recording.update(
                update.key().cloned().unwrap_or_default(),
                update.update_expression().unwrap_or_default(),
                update.expression_attribute_names(),
                update.expression_attribute_values(),
                1,
            );
        } else if let Some(delete) = input.downcast_ref::<DeleteItemInput>() {
            recording.delete(delete.key().cloned().unwrap_or_default(), 1);
        } else if let Some(transaction) = input.downcast_ref::<TransactWriteItemsInput>() {
            for write in transaction.transact_items() {
                if let Some(put) = write.put() {
                    recording.put(put.item().clone(), 2);
                } else if let Some(update) = write.update() {
                    recording.update(
                        update.key().clone(),
                        update.update_expression(),
                        update.expression_attribute_names(),
                        update.expression_attribute_values(),
                        2,
                    );
                } else if let Some(delete) = write.delete() {
                    recording.delete(delete.key().clone(), 2);
                } else if let Some(check) = write.condition_check() {
                    let key = check.key().clone();
                    let size = recording.known(&key).map_or(0, item_size);
                    recording.table_write(&key, size, 2);
                }
            }
        }
    });
}

impl Recording {
    fn known(&self, key: &Item) -> Option<&Item> {
        self.items.get(&key_of(key))
    }

    fn put(&mut self, item: Item, factor: u64) {
        let old = self.items.get(&key_of(&item)).cloned();
        self.change(old.as_ref(), Some(&item), factor, &item);
        self.items.insert(key_of(&item), item);
    }

    fn update(
        &mut self,
        key: Item,
        expression: &str,
        names: Option<&HashMap<String, String>>,
        values: Option<&HashMap<String, AttributeValue>>,
        factor: u64,
    ) {
        let old = self.known(&key).cloned();
        let mut new = old.clone().unwrap_or_else(|| key.clone());
        apply_update(&mut new, expression, names, values);
        self.change(old.as_ref(), Some(&new), factor, &key);
        self.items.insert(key_of(&key), new);
    }

    fn delete(&mut self, key: Item, factor: u64) {
        let old = self.items.remove(&key_of(&key));
        self.change(old.as_ref(), None, factor, &key);
    }

    fn table_write(&mut self, key: &Item, size: u64, factor: u64) {
        for layout in [Layout::Sharded, Layout::Unsharded] {
            self.writes.push(Write {
                layout,
                partition: format!("table {}", string(&layout.image(key), item::PK)),
                units: units(size) * factor,
            });
        }
    }

    /// The writes of one item going from `old` to `new` (`None`: absent), in each layout.
    fn change(&mut self, old: Option<&Item>, new: Option<&Item>, factor: u64, key: &Item) {
        for layout in [Layout::Sharded, Layout::Unsharded] {
            let old = old.map(|item| layout.image(item));
            let new = new.map(|item| layout.image(item));
            let size = old
                .as_ref()
                .map_or(0, item_size)
                .max(new.as_ref().map_or(0, item_size));
            self.writes.push(Write {
                layout,
                partition: format!("table {}", string(&layout.image(key), item::PK)),
                units: units(size) * factor,
            });
            for index in INDEXES {
                let (before, after) = (
                    old.as_ref().and_then(|item| entry(&index, item)),
                    new.as_ref().and_then(|item| entry(&index, item)),
                );
                let mut write = |(partition, entry): &(String, Item)| {
                    self.writes.push(Write {
                        layout,
                        partition: format!("{} {partition}", index.name),
                        units: units(item_size(entry)) * factor,
                    });
                };
                match (&before, &after) {
                    (Some(before), Some(after))
                        if before.0 == after.0
                            && index_key(&index, &before.1) == index_key(&index, &after.1) =>
                    {
                        if before.1 != after.1 {
                            write(after);
                        }
                    }
                    _ => {
                        before.iter().for_each(&mut write);
                        after.iter().for_each(&mut write);
                    }
                }
            }
        }
    }
}

/// The item's entry in `index` and its partition, if the item is in it.
fn entry(index: &Index, item: &Item) -> Option<(String, Item)> {
    let partition = match item.get(index.partition)? {
        AttributeValue::S(value) => value.clone(),
        _ => return None,
    };
    if let Some(sort) = index.sort {
        item.get(sort)?;
    }
    let entry = match index.projection {
        Projection::All => item.clone(),
        Projection::KeysOnly => item
            .iter()
            .filter(|(name, _)| {
                [item::PK, item::SK, index.partition].contains(&name.as_str())
                    || Some(name.as_str()) == index.sort
            })
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect(),
    };
    Some((partition, entry))
}

fn index_key(index: &Index, entry: &Item) -> (Option<AttributeValue>, Option<AttributeValue>) {
    (
        entry.get(index.partition).cloned(),
        index.sort.and_then(|sort| entry.get(sort).cloned()),
    )
}

fn key_of(item: &Item) -> (String, String) {
    (string(item, item::PK), string(item, item::SK))
}

fn string(item: &Item, name: &str) -> String {
    match item.get(name) {
        Some(AttributeValue::S(value)) => value.clone(),
        _ => String::new(),
    }
}

/// Write units for an item (or entry) of `size` bytes.
pub fn units(size: u64) -> u64 {
    size.div_ceil(1024).max(1)
}

/// An item's size as DynamoDB counts it: each attribute's name and value.
pub fn item_size(item: &Item) -> u64 {
    item.iter()
        .map(|(name, value)| name.len() as u64 + value_size(value))
        .sum()
}

fn value_size(value: &AttributeValue) -> u64 {
    match value {
        AttributeValue::S(text) => text.len() as u64,
        // About one byte per two significant digits, and one more.
        AttributeValue::N(number) => {
            let digits = number.chars().filter(char::is_ascii_digit).count() as u64;
            digits.div_ceil(2) + 1
        }
        AttributeValue::B(bytes) => bytes.as_ref().len() as u64,
        AttributeValue::Ss(items) => items.iter().map(|s| s.len() as u64).sum(),
        AttributeValue::Ns(items) => items
            .iter()
            .map(|n| value_size(&AttributeValue::N(n.clone())))
            .sum(),
        AttributeValue::Bs(items) => items.iter().map(|b| b.as_ref().len() as u64).sum(),
        AttributeValue::M(map) => {
            3 + map
                .iter()
                .map(|(name, value)| 1 + name.len() as u64 + value_size(value))
                .sum::<u64>()
        }
        AttributeValue::L(list) => 3 + list.iter().map(|value| 1 + value_size(value)).sum::<u64>(),
        _ => 1,
    }
}

/// Applies `SET a = :v, b = if_not_exists(b, :z) + :n` and `REMOVE c` to `item`, well enough for
/// sizes: a value computed from others takes the first value the expression names.
fn apply_update(
    item: &mut Item,
    expression: &str,
    names: Option<&HashMap<String, String>>,
    values: Option<&HashMap<String, AttributeValue>>,
) {
    let name = |token: &str| {
        let token = token.trim();
        names
            .and_then(|names| names.get(token))
            .cloned()
            .unwrap_or_else(|| token.to_owned())
    };
    let first_value = |expression: &str| {
        expression
            .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
            .find(|token| token.starts_with(':'))
            .and_then(|token| values?.get(token).cloned())
    };
    let mut clauses: Vec<(&str, String)> = Vec::new();
    for word in expression.split_whitespace() {
        match word {
            "SET" | "REMOVE" | "ADD" | "DELETE" => clauses.push((word, String::new())),
            _ => {
                if let Some((_, text)) = clauses.last_mut() {
                    text.push(' ');
                    text.push_str(word);
                }
            }
        }
    }
    for (clause, text) in clauses {
        for action in split_top_level(&text) {
            match clause {
                "SET" => {
                    if let Some((path, value)) = action.split_once('=') {
                        let path = name(path);
                        if (!item.contains_key(&path) || !value.contains('('))
                            && let Some(value) = first_value(value)
                        {
                            item.insert(path, value);
                        }
                    }
                }
                "REMOVE" => {
                    item.remove(&name(action));
                }
                "ADD" => {
                    let mut parts = action.split_whitespace();
                    if let (Some(path), Some(value)) = (parts.next(), parts.next()) {
                        let path = name(path);
                        if let (false, Some(value)) = (item.contains_key(&path), first_value(value))
                        {
                            item.insert(path, value);
                        }
                    }
                }
                _ => {}
            }
        }
    }
}

/// `a = :v, b = f(c, :z)` → the actions, split at the commas outside parentheses.
fn split_top_level(text: &str) -> Vec<&str> {
    let (mut actions, mut depth, mut start) = (Vec::new(), 0, 0);
    for (at, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                actions.push(text[start..at].trim());
                start = at + 1;
            }
            _ => {}
        }
    }
    actions.push(text[start..].trim());
    actions.retain(|action| !action.is_empty());
    actions
}

/// The writes of `uploads` uploads of one project in `layout`, summed by partition: for each
/// partition that two or more uploads wrote to (a key of the project's, not of one file or one
/// request), the units and writes it took per upload, hottest first. The shards of a key count
/// as one key (`…#<shard>`) taking an even share of them.
pub fn shared_partitions(uploads: &[Vec<Write>], layout: Layout) -> Vec<(String, f64, f64)> {
    let mut by_partition: BTreeMap<String, (u64, u64, BTreeSet<usize>)> = BTreeMap::new();
    for (upload, writes) in uploads.iter().enumerate() {
        for write in writes.iter().filter(|write| write.layout == layout) {
            let entry = by_partition
                .entry(shard_family(&write.partition))
                .or_default();
            entry.0 += write.units;
            entry.1 += 1;
            entry.2.insert(upload);
        }
    }
    let count = uploads.len().max(1) as f64;
    let mut shared: Vec<(String, f64, f64)> = by_partition
        .into_iter()
        .filter(|(_, (_, _, by))| by.len() >= 2)
        .map(|(partition, (units, writes, _))| {
            let shards = f64::from(shards(&partition));
            (
                partition,
                units as f64 / count / shards,
                writes as f64 / count / shards,
            )
        })
        .collect();
    shared.sort_by(|a, b| b.1.total_cmp(&a.1));
    shared
}

/// The write units one of `uploads` takes in `layout`, over every partition: what it costs
/// against the table's account quota (40,000 write units a second by default), not one key's.
pub fn units_per_upload(uploads: &[Vec<Write>], layout: Layout) -> f64 {
    let units: u64 = uploads
        .iter()
        .flatten()
        .filter(|write| write.layout == layout)
        .map(|write| write.units)
        .sum();
    units as f64 / uploads.len().max(1) as f64
}

/// A sharded partition's family (`by_project_shard PROJECT#p#<shard>`); any other as it is.
fn shard_family(partition: &str) -> String {
    let sharded = partition.starts_with(&format!("{} ", item::BY_PROJECT_SHARD_INDEX))
        || partition.starts_with("table USAGE#");
    match partition.rsplit_once('#') {
        Some((family, shard)) if sharded && shard.bytes().all(|b| b.is_ascii_digit()) => {
            format!("{family}#<shard>")
        }
        _ => partition.to_owned(),
    }
}

/// How many shards a family (from [`shard_family`]) has: one for a key not split.
fn shards(family: &str) -> u8 {
    if !family.ends_with("#<shard>") {
        1
    } else if family.starts_with("table USAGE#") {
        item::USAGE_SHARDS
    } else {
        item::LISTING_SHARDS
    }
}

/// The ways a file is uploaded (or removed), each driven through the API as a client does, with
/// verify run on what it stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadPath {
    /// create, one PUT, complete, verify
    Single,
    /// create, parts, complete (assembled inline), verify
    Multipart,
    /// one form through the direct upload, verify
    Direct,
    /// a reupload of a verified file: reupload, one PUT, complete, verify
    Reupload,
    /// the delete of a verified file
    Delete,
}

impl UploadPath {
    pub const ALL: [UploadPath; 5] = [
        UploadPath::Single,
        UploadPath::Multipart,
        UploadPath::Direct,
        UploadPath::Reupload,
        UploadPath::Delete,
    ];

    pub fn name(self) -> &'static str {
        match self {
            UploadPath::Single => "single",
            UploadPath::Multipart => "multipart",
            UploadPath::Direct => "direct",
            UploadPath::Reupload => "reupload",
            UploadPath::Delete => "delete",
        }
    }

    /// Uploads (or deletes) one file of `api`'s project with `metadata_bytes` of metadata, and
    /// returns the writes of that alone. `api` must plan parts of 5 MiB above 5 MiB
    /// ([`UploadPath::api`]).
    pub async fn run(self, api: &crate::TestApi, metadata_bytes: usize, seed: u64) -> Vec<Write> {
        use serde_json::json;
        let metadata = metadata(metadata_bytes);
        let small = format!("capacity model, upload {seed}").into_bytes();
        let declare = |bytes: &[u8]| json!({"file_name": "f.txt", "file_size": bytes.len(), "content_type": "text/plain", "metadata": metadata});
        match self {
            UploadPath::Single => {
                record(async {
                    let plan = api.create(declare(&small)).await.plan();
                    api.upload_whole(&plan, small.clone()).await;
                    api.complete(&plan.file_id).await.file();
                    api.deliver(&plan.s3_key).await;
                })
                .await
                .1
            }
            UploadPath::Multipart => {
                let large: Vec<u8> = (0..(5 << 20) + 100)
                    .map(|i: u64| (i.wrapping_mul(31).wrapping_add(seed)) as u8)
                    .collect();
                let mut declared = declare(&large);
                declared["content_type"] = json!("application/octet-stream");
                record(async {
                    let plan = api.create(declared).await.plan();
                    api.upload_parts(&plan, &large).await;
                    api.complete(&plan.file_id).await.file();
                    api.deliver(&plan.s3_key).await;
                })
                .await
                .1
            }
            UploadPath::Direct => {
                let form = crate::FormBody::new()
                    .file("f.txt", "text/plain", &small)
                    .text("meta", &metadata.to_string());
                record(async {
                    let reply = api.direct_upload(&form).await;
                    assert_eq!(reply.status, 201, "{:#}", reply.body);
                    let file_id = reply.body["files"][0]["file_id"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned();
                    let key = api
                        .record(&file_id)
                        .await
                        .job
                        .map(|job| job.s3_key)
                        .unwrap_or_default();
                    api.deliver(&key).await;
                })
                .await
                .1
            }
            // The file is uploaded inside the recording, so that its items are known as they
            // were; only the writes after the mark are the path's.
            UploadPath::Reupload => {
                let new = format!("capacity model, new content {seed}").into_bytes();
                let (mark, mut writes) = record(async {
                    let file_id = verified_file(api, declare(&small), &small).await;
                    let mark = mark();
                    let plan = api.reupload(&file_id, declare(&new)).await.plan();
                    api.upload_whole(&plan, new.clone()).await;
                    api.complete(&file_id).await.file();
                    api.deliver(&plan.s3_key).await;
                    mark
                })
                .await;
                writes.split_off(mark)
            }
            UploadPath::Delete => {
                let (mark, mut writes) = record(async {
                    let file_id = verified_file(api, declare(&small), &small).await;
                    let mark = mark();
                    let reply = api.delete(&file_id).await;
                    assert_eq!(reply.status, 204, "{:#}", reply.body);
                    mark
                })
                .await;
                writes.split_off(mark)
            }
        }
    }

    /// A project whose files above 5 MiB go up in parts of 5 MiB, completed inline.
    pub async fn api() -> crate::TestApi {
        crate::TestApi::with_config(|config| {
            config.multipart_threshold = 5 << 20;
            config.part_size = 5 << 20;
        })
        .await
    }
}

/// A verified file of the project.
async fn verified_file(
    api: &crate::TestApi,
    declaration: serde_json::Value,
    bytes: &[u8],
) -> String {
    let plan = api.create(declaration).await.plan();
    api.upload_whole(&plan, bytes.to_vec()).await;
    api.complete(&plan.file_id).await.file();
    api.deliver(&plan.s3_key).await;
    plan.file_id
}

/// Metadata of about `bytes` bytes: entries of up to 1,000 characters.
pub fn metadata(bytes: usize) -> serde_json::Value {
    let mut map = serde_json::Map::new();
    let mut left = bytes;
    let mut index = 0;
    while left > 0 {
        let name = format!("m{index}");
        let value = "v".repeat(left.saturating_sub(name.len()).clamp(1, 1000));
        left = left.saturating_sub(name.len() + value.len());
        map.insert(name, serde_json::Value::String(value));
        index += 1;
    }
    serde_json::Value::Object(map)
}

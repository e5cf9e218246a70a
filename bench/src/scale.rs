//! Issue 24: one busy project against the table's partitions. Each upload path runs through the
//! API in one project, its writes recorded by the capacity model (`integration_tests::capacity`,
//! held to DynamoDB Local's own counts by `tests/api/capacity.rs`); from the units each upload
//! puts on the keys the project's uploads share, the uploads a second the project sustains
//! before its hottest key takes DynamoDB's 1,000 write units a second, and which key that is.

use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
use futures_util::{StreamExt, TryStreamExt, stream};
use integration_tests::TestApi;
use integration_tests::capacity::{
    self, Layout, PARTITION_UNITS_PER_SECOND, UploadPath, shared_partitions, units_per_upload,
};
use integration_tests::serde_json::json;
use shared::domain::{FileId, FileRecord, timestamp};
use shared::dynamo::ListCursor;
use shared::dynamo::item::{self, Item};

use crate::stats::{median, millis, percentile};

/// S3's PUT rate per prefix: what storage would let one project do.
const S3_PUTS_PER_PREFIX: f64 = 3500.0;
/// DynamoDB's default write units a second per table (on demand, per account and region).
const TABLE_UNITS_PER_SECOND: f64 = 40_000.0;
/// Uploads per path and metadata size: enough for every key a share of uploads writes to
/// (a listing shard, say) to be written by several.
const UPLOADS: u64 = 48;

pub async fn rows() -> Result<(), String> {
    for (label, metadata) in [("1 KiB", 1000), ("8 KiB", 8000)] {
        for path in UploadPath::ALL {
            let api = UploadPath::api().await;
            let mut uploads = Vec::new();
            for seed in 0..UPLOADS {
                uploads.push(path.run(&api, metadata, seed).await);
            }
            let hottest = |layout| {
                let shared = shared_partitions(&uploads, layout);
                shared.into_iter().next().map(|(key, units, writes)| {
                    (key.replace(&api.project, "<project>"), units, writes)
                })
            };
            let (Some((key, units, writes)), Some((before_key, before_units, _))) =
                (hottest(Layout::Sharded), hottest(Layout::Unsharded))
            else {
                return Err(format!("{}: no key shared by two uploads", path.name()));
            };
            let rate = PARTITION_UNITS_PER_SECOND / units;
            let before = PARTITION_UNITS_PER_SECOND / before_units;
            crate::row(
                &format!(
                    "24a. one project's {} uploads/s before a key takes 1,000 WCU/s ({label} of metadata)",
                    path.name()
                ),
                format!(
                    "{rate:.0}/s; hottest `{key}`: {units:.2} WCU, {writes:.2} writes per upload"
                ),
                format!("unsharded {before:.0}/s (`{before_key}`: {before_units:.1} WCU)"),
                format!(
                    "{:.1}×; {:.2}× S3's {S3_PUTS_PER_PREFIX:.0}/s",
                    rate / before,
                    rate / S3_PUTS_PER_PREFIX
                ),
                "≥ 3,500/s",
            );
            let all = units_per_upload(&uploads, Layout::Sharded);
            eprintln!(
                "    {}: {all:.1} WCU per upload over every key: the table's default {TABLE_UNITS_PER_SECOND:.0} WCU/s at {:.0} uploads/s (unsharded {:.1} WCU)",
                path.name(),
                TABLE_UNITS_PER_SECOND / all,
                units_per_upload(&uploads, Layout::Unsharded)
            );
            for (partition, units, writes) in shared_partitions(&uploads, Layout::Sharded)
                .iter()
                .skip(1)
                .take(2)
            {
                eprintln!(
                    "    {}: then `{}`: {units:.2} WCU, {writes:.2} writes per upload",
                    path.name(),
                    partition.replace(&api.project, "<project>")
                );
            }
        }
    }
    Ok(())
}

/// Files in the project whose listing is timed, in each layout.
const LISTED_FILES: usize = 100_000;
/// Pages of 100 timed in each layout, from the newest down.
const PAGES: usize = 200;
/// Batch writes in flight while filling the projects.
const WRITES_IN_FLIGHT: usize = 8;

/// Row 24b: a page of 100 of a project of 100,000 files, listed as the service does (the sharded
/// index, merged) and as it did before (one query of the unsharded index, whole items).
pub async fn listing_rows() -> Result<(), String> {
    let api = TestApi::new().await;
    let plan = api
        .create(
            json!({"file_name": "f.txt", "file_size": 10, "metadata": capacity::metadata(1000)}),
        )
        .await
        .plan();
    let template = api
        .raw_item(&plan.file_id)
        .await
        .ok_or("the created file has no item")?;
    let unsharded = format!("{}-unsharded", api.project);
    let started = Instant::now();
    fill(&api, &template, &api.project, Layout::Sharded).await?;
    fill(&api, &template, &unsharded, Layout::Unsharded).await?;
    eprintln!(
        "    listing: {} files written in each layout in {:.0} s",
        LISTED_FILES,
        started.elapsed().as_secs_f64()
    );

    let mut sharded_ms = Vec::with_capacity(PAGES);
    let mut cursor = None;
    for _ in 0..PAGES {
        let started = Instant::now();
        let page = api
            .services
            .table
            .files
            .list(&api.project, None, 100, cursor.as_ref())
            .await
            .map_err(|err| format!("sharded listing: {err}"))?;
        sharded_ms.push(millis(started.elapsed()));
        if page.files.len() != 100 {
            return Err(format!("a sharded page held {} files", page.files.len()));
        }
        cursor = page
            .next_cursor
            .and_then(|next| ListCursor::decode(&next, &api.project));
    }
    let mut unsharded_ms = Vec::with_capacity(PAGES);
    let mut start = None;
    for _ in 0..PAGES {
        let started = Instant::now();
        let output = api
            .services
            .table
            .files
            .client()
            .query()
            .table_name(api.services.table.files.table())
            .index_name(item::BY_PROJECT_INDEX)
            .key_condition_expression("gsi1pk = :project")
            .expression_attribute_values(":project", item::s(item::project_pk(&unsharded)))
            .scan_index_forward(false)
            .limit(100)
            .set_exclusive_start_key(start.take())
            .send()
            .await
            .map_err(|err| format!("unsharded listing: {err}"))?;
        let files: Vec<FileRecord> = output
            .items()
            .iter()
            .map(FileRecord::try_from)
            .collect::<Result<_, _>>()
            .map_err(|err| format!("unsharded listing: {err}"))?;
        unsharded_ms.push(millis(started.elapsed()));
        if files.len() != 100 {
            return Err(format!("an unsharded page held {} files", files.len()));
        }
        start = output.last_evaluated_key;
    }
    let (p50, p99) = (median(&sharded_ms), percentile(&sharded_ms, 99.0));
    let (before_p50, before_p99) = (median(&unsharded_ms), percentile(&unsharded_ms, 99.0));
    crate::row(
        &format!(
            "24b. a page of 100 of a project of {LISTED_FILES} files ({PAGES} pages from the newest)"
        ),
        format!("sharded: p50 {p50:.1} ms, p99 {p99:.1} ms"),
        format!("unsharded: p50 {before_p50:.1} ms, p99 {before_p99:.1} ms"),
        format!("{:.2}× p50, {:.2}× p99", p50 / before_p50, p99 / before_p99),
        "the cost of no hot key: reported",
    );
    Ok(())
}

/// Writes [`LISTED_FILES`] copies of `template` into `project`, as `layout` lays them out, one
/// microsecond apart in creation time.
async fn fill(api: &TestApi, template: &Item, project: &str, layout: Layout) -> Result<(), String> {
    // A client of its own: the kit's has the service's short deadlines, for requests of one item.
    let client = &aws_sdk_dynamodb::Client::new(&integration_tests::sdk_config().await);
    let table = api.services.table.files.table();
    let newest = timestamp::now();
    let items: Vec<Item> = (0..LISTED_FILES)
        .map(|age| {
            let file_id = FileId::random();
            let created_at = timestamp::format(newest - Duration::from_micros(age as u64));
            let mut file = template.clone();
            file.remove(item::GSI1PK);
            file.remove(item::GSI2PK);
            file.insert(item::PK.into(), item::s(item::file_pk(file_id)));
            file.insert("file_id".into(), item::s(file_id.to_string()));
            file.insert("project_id".into(), item::s(project));
            file.insert("created_at".into(), item::s(&created_at));
            file.insert(
                item::GSI1SK.into(),
                item::s(format!("{created_at}#{file_id}")),
            );
            match layout {
                Layout::Sharded => {
                    let shard = item::shard_of(file_id, item::LISTING_SHARDS);
                    file.insert(
                        item::GSI2PK.into(),
                        item::s(item::listing_pk(project, shard)),
                    );
                }
                Layout::Unsharded => {
                    file.insert(item::GSI1PK.into(), item::s(item::project_pk(project)));
                }
            }
            file
        })
        .collect();
    stream::iter(items.chunks(25).map(|chunk| async move {
        let mut requests: Vec<WriteRequest> = chunk
            .iter()
            .map(|file| {
                Ok::<_, aws_sdk_dynamodb::error::BuildError>(
                    WriteRequest::builder()
                        .put_request(PutRequest::builder().set_item(Some(file.clone())).build()?)
                        .build(),
                )
            })
            .collect::<Result<_, _>>()
            .map_err(|err| err.to_string())?;
        while !requests.is_empty() {
            let output = client
                .batch_write_item()
                .request_items(table, requests)
                .send()
                .await
                .map_err(|err| format!("BatchWriteItem: {err}"))?;
            requests = output
                .unprocessed_items
                .and_then(|mut left| left.remove(table))
                .unwrap_or_default();
        }
        Ok::<_, String>(())
    }))
    .buffer_unordered(WRITES_IN_FLIGHT)
    .try_collect::<()>()
    .await
}

//! v1.2 "Usage and quotas" through the routes: a project's usage is what its files hold, a
//! quota bounds what a create, a direct upload or a reupload may take (racing requests never
//! pass it), and what deletes, rejections, aborts and expiries free is given back, once.

use std::time::Duration;

use integration_tests::operations::as_function;
use integration_tests::serde_json::{Value, json};
use integration_tests::{ApiReply, Event, FormBody, Plan, Status, TestApi, declaration};
use shared::domain::usage::Quota;
use shared::dynamo::item;

const TEXT: &str = "text/plain";

async fn usage(api: &TestApi) -> Value {
    let reply = api.call(Event::Usage).send().await;
    assert_eq!(reply.status, 200, "{:#}", reply.body);
    reply.body
}

/// `usage`'s files and bytes: (verified, uploading) and (verified, reserved).
async fn held(api: &TestApi) -> ((u64, u64), (u64, u64)) {
    let body = usage(api).await;
    let n = |pointer: &str| body.pointer(pointer).and_then(Value::as_u64).unwrap();
    (
        (n("/files/verified"), n("/files/uploading")),
        (n("/bytes/verified"), n("/bytes/reserved")),
    )
}

async fn declared(api: &TestApi, name: &str, bytes: &[u8]) -> ApiReply {
    api.create(declaration(name, TEXT, bytes, true, false))
        .await
}

/// A file whose bytes are stored and whose upload is completed: its plan.
async fn completed(api: &TestApi, name: &str, bytes: &[u8]) -> Plan {
    let plan = declared(api, name, bytes).await.plan();
    api.upload_whole(&plan, bytes.to_vec()).await;
    assert_eq!(api.complete(&plan.file_id).await.status, 200);
    plan
}

async fn verified(api: &TestApi, name: &str, bytes: &[u8]) -> Plan {
    let plan = completed(api, name, bytes).await;
    api.deliver(&plan.s3_key).await;
    assert_eq!(api.get(&plan.file_id).await.file().status, Status::Verified);
    plan
}

async fn set_quota(api: &TestApi, max_files: Option<u64>, max_bytes: Option<u64>) {
    let quota = Quota {
        max_files,
        max_bytes,
    };
    api.services
        .table
        .usages
        .set_quota(&api.project, quota)
        .await
        .unwrap();
}

fn assert_quota_exceeded(reply: &ApiReply, field: &str) {
    assert_eq!(reply.status, 403, "{:#}", reply.body);
    assert_eq!(
        reply.body["error"]["code"], "quota_exceeded",
        "{:#}",
        reply.body
    );
    let details = reply.body["error"]["details"].as_array().unwrap();
    assert!(
        details.iter().any(|detail| detail["field"] == field),
        "{:#}",
        reply.body
    );
}

#[tokio::test]
async fn usage_is_what_the_files_hold_as_the_listing_shows_them() {
    // GIVEN files at every step: verified, declared, completed awaiting a verdict, rejected,
    // deleted
    let api = TestApi::new().await;
    assert_eq!(
        usage(&api).await,
        json!({
            "project_id": api.project,
            "files": {"verified": 0, "uploading": 0},
            "bytes": {"verified": 0, "reserved": 0},
            "quota": {"max_files": null, "max_bytes": null},
        })
    );
    verified(&api, "a.txt", b"hello").await;
    verified(&api, "b.txt", b"goodbye").await;
    declared(&api, "c.txt", &[b'c'; 11]).await.plan();
    completed(&api, "d.txt", b"abc").await;
    let spoofed = api
        .create(declaration("e.png", "image/png", b"not a png", true, false))
        .await
        .plan();
    api.upload_whole(&spoofed, b"not a png".to_vec()).await;
    api.complete(&spoofed.file_id).await;
    api.deliver(&spoofed.s3_key).await;
    let gone = verified(&api, "f.txt", b"soon gone").await;
    assert_eq!(api.delete(&gone.file_id).await.status, 204);

    // WHEN the project's usage is read
    let ((files_verified, uploading), (bytes_verified, reserved)) = held(&api).await;

    // THEN it counts what each file holds, as the listing shows them
    assert_eq!((files_verified, uploading), (2, 2));
    assert_eq!((bytes_verified, reserved), (5 + 7, 11 + 3));
    let listed = api.list(&[("limit", "100")]).await;
    let files = listed.body["files"].as_array().unwrap();
    let sum = |statuses: &[&str]| {
        let of = files
            .iter()
            .filter(|f| statuses.contains(&f["status"].as_str().unwrap()));
        let sizes: Vec<u64> = of.map(|f| f["file_size"].as_u64().unwrap()).collect();
        (sizes.len() as u64, sizes.iter().sum::<u64>())
    };
    assert_eq!(sum(&["verified"]), (files_verified, bytes_verified));
    assert_eq!(sum(&["pending_upload", "uploaded"]), (uploading, reserved));
}

#[tokio::test]
async fn a_reupload_reserves_its_new_content_while_the_verified_one_stays_counted() {
    // GIVEN a verified file of 11 bytes
    let api = TestApi::new().await;
    let plan = verified(&api, "a.txt", b"version one").await;

    // WHEN it is reuploaded with 4 bytes of new content
    let reply = api
        .reupload(&plan.file_id, json!({"file_size": 4, "content_type": TEXT}))
        .await;

    // THEN the new content is reserved while the verified one stays counted
    assert_eq!(reply.status, 201, "{:#}", reply.body);
    assert_eq!(held(&api).await, ((1, 1), (11, 4)));
    // AND the file counts once, verified and uploading: at max_files 2, one more fits, not two
    set_quota(&api, Some(2), None).await;
    assert_eq!(declared(&api, "b.txt", b"b").await.status, 201);
    assert_quota_exceeded(&declared(&api, "c.txt", b"c").await, "max_files");
}

#[tokio::test]
async fn racing_creates_against_a_quota_make_exactly_what_it_allows() {
    // GIVEN a project that may hold 10 files
    let api = TestApi::new().await;
    set_quota(&api, Some(10), None).await;

    // WHEN 32 creates race, each under its own Idempotency-Key, sent again with it as long as
    // the answer says to retry (409 `concurrent_update`, 503)
    let replies = futures_util::future::join_all((0..32).map(|i| {
        let api = &api;
        async move {
            let body = declaration(
                &format!("{i}.txt"),
                TEXT,
                format!("file {i}").as_bytes(),
                true,
                false,
            );
            let key = format!("race-{i}");
            let mut attempts = 0;
            loop {
                attempts += 1;
                let reply = api
                    .call(Event::Create)
                    .header("idempotency-key", &key)
                    .json(body.clone())
                    .send()
                    .await;
                match reply.status {
                    _ if attempts == 100 => break reply,
                    409 => assert_eq!(
                        reply.body["error"]["details"][0]["reason"], "concurrent_update",
                        "{:#}",
                        reply.body
                    ),
                    503 => {}
                    _ => break reply,
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }))
    .await;

    // THEN exactly 10 are created; the others are refused naming the bound
    let created = replies.iter().filter(|reply| reply.status == 201).count();
    assert_eq!(
        created,
        10,
        "{:?}",
        replies.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    for reply in replies.iter().filter(|reply| reply.status != 201) {
        assert_quota_exceeded(reply, "max_files");
    }
    assert_eq!(held(&api).await.0, (0, 10));
    assert_eq!(api.file_count().await, 10);
    let body = usage(&api).await;
    assert_eq!(body["quota"], json!({"max_files": 10, "max_bytes": null}));
}

#[tokio::test]
async fn a_byte_quota_refuses_a_create_a_direct_upload_and_a_reupload_that_would_pass_it() {
    // GIVEN a verified file of 10 bytes, in a project bounded to 15 bytes
    let api = TestApi::new().await;
    let plan = verified(&api, "a.txt", b"0123456789").await;
    set_quota(&api, None, Some(15)).await;

    // WHEN a create, a direct upload and a reupload would each take the project past the bound
    let create = declared(&api, "b.txt", b"0123456").await;
    let form = FormBody::new().file("c.txt", TEXT, b"0123456");
    let direct = api.call(Event::DirectUpload).form(&form).send().await;
    let reupload = api
        .reupload(&plan.file_id, json!({"file_size": 6, "content_type": TEXT}))
        .await;

    // THEN each is refused naming the bound, and nothing is taken or written
    for reply in [&create, &direct, &reupload] {
        assert_quota_exceeded(reply, "max_bytes");
    }
    assert_eq!(
        create.body["error"]["details"][0]["message"],
        "10 bytes used of 15; this needs 7 more"
    );
    assert_eq!(held(&api).await, ((1, 0), (10, 0)), "nothing taken");
    assert_eq!(api.file_count().await, 1, "nothing written");
    assert_eq!(api.get(&plan.file_id).await.file().status, Status::Verified);
    // AND a create exactly at the bound is admitted
    assert_eq!(
        declared(&api, "d.txt", b"01234").await.status,
        201,
        "exactly at the bound"
    );
}

#[tokio::test]
async fn deletes_rejections_and_aborts_give_back_what_they_held() {
    // GIVEN a project at its quota of 3 files
    let api = TestApi::new().await;
    set_quota(&api, Some(3), None).await;
    let kept = verified(&api, "kept.txt", b"kept").await;
    let aborted = declared(&api, "aborted.txt", b"aborted").await.plan();
    let spoofed = api
        .create(declaration(
            "spoofed.png",
            "image/png",
            b"not a png",
            true,
            false,
        ))
        .await
        .plan();
    assert_quota_exceeded(&declared(&api, "x.txt", b"x").await, "max_files");

    // WHEN an upload is aborted
    assert_eq!(api.abort(&aborted.file_id).await.status, 200);

    // THEN one more file fits
    assert_eq!(held(&api).await.0, (1, 1));
    let next = declared(&api, "next.txt", b"next").await.plan();

    // WHEN a file is rejected
    api.upload_whole(&spoofed, b"not a png".to_vec()).await;
    api.complete(&spoofed.file_id).await;
    api.deliver(&spoofed.s3_key).await;
    assert_eq!(
        api.get(&spoofed.file_id).await.file().status,
        Status::Rejected
    );

    // THEN one more fits
    assert_eq!(held(&api).await.0, (1, 1));
    let last = declared(&api, "last.txt", b"last").await;
    assert_eq!(last.status, 201, "{:#}", last.body);

    // WHEN files are deleted
    assert_eq!(api.delete(&kept.file_id).await.status, 204);
    assert_eq!(api.delete(&next.file_id).await.status, 204);

    // THEN what they held is given back
    assert_eq!(held(&api).await, ((0, 1), (0, 4)));
}

#[tokio::test]
async fn an_expired_upload_gives_back_what_it_held_once_however_often_its_removal_comes() {
    // GIVEN a declared file the table's TTL removes (an abandoned upload)
    let api = TestApi::new().await;
    let plan = declared(&api, "abandoned.txt", b"never sent").await.plan();
    let item = api.raw_item(&plan.file_id).await.expect("the file's item");
    api.services
        .table
        .files
        .client()
        .delete_item()
        .table_name(api.services.table.files.table())
        .set_key(Some(shared::dynamo::item::file_key(
            plan.file_id.parse().unwrap(),
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(
        held(&api).await,
        ((0, 1), (0, 10)),
        "the TTL wrote no usage"
    );

    // WHEN the stream hands notify its removal, twice (records repeat)
    let mut path = api.event_path(5).await;
    let removal = ttl_removal(&item);
    for _ in 0..2 {
        let response = as_function(
            "notify",
            notify::handle(path.bus(), path.usages(), removal.clone()),
        )
        .await;
        assert!(response.batch_item_failures.is_empty(), "{response:?}");
    }

    // THEN what it held is given back once, and no event is published
    assert_eq!(held(&api).await, ((0, 0), (0, 0)));
    path.drain(std::time::Duration::from_millis(500)).await;
    assert!(path.envelopes.is_empty());
}

/// The stream record of the TTL removing `item`, as `events/notify-stream.json`'s second record.
fn ttl_removal(
    item: &std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>,
) -> aws_lambda_events::dynamodb::Event {
    let mut removal = integration_tests::sample_stream_record("REMOVE");
    let image: serde_dynamo::Item = item.clone().into();
    let image = integration_tests::serde_json::to_value(image).unwrap();
    removal["dynamodb"]["Keys"] = json!({"pk": image["pk"], "sk": image["sk"]});
    removal["dynamodb"]["OldImage"] = image;
    integration_tests::serde_json::from_value(json!({ "Records": [removal] })).unwrap()
}

/// A quota refusal is a final answer: kept under its `Idempotency-Key` like any other, so a
/// retry with the key replays it even once there is room; a new request (a new key) is admitted.
#[tokio::test]
async fn a_quota_refusal_is_replayed_under_its_key_and_a_new_key_is_admitted() {
    // GIVEN a project with room for no file, whose create under a key was refused
    let api = TestApi::new().await;
    set_quota(&api, Some(0), None).await;
    let body = declaration("a.txt", TEXT, b"a", true, false);
    let send = |key: &'static str| {
        api.call(Event::Create)
            .header("Idempotency-Key", key)
            .json(body.clone())
            .send()
    };
    assert_quota_exceeded(&send("q-1").await, "max_files");

    // WHEN there is room for one, and the create is sent again with its key
    set_quota(&api, Some(1), None).await;
    let retried = send("q-1").await;

    // THEN the refusal is replayed
    assert_quota_exceeded(&retried, "max_files");
    assert!(retried.replayed);
    // AND a new key is admitted
    assert_eq!(send("q-2").await.status, 201);
    assert_eq!(held(&api).await.0, (0, 1));
}

// The usage counters spread over shards (shared/src/dynamo/usage.rs): a project without a quota
// adds each file's changes to the shard its id picks; a quota closes the shards and moves what
// they hold into the project item, which alone admits; reads sum them all.

type RawItem = std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>;

/// The project's usage items as they are: the project item, and each shard.
async fn usage_items(api: &TestApi) -> (Option<RawItem>, Vec<Option<RawItem>>) {
    let read = |key: RawItem| async move {
        api.services
            .table
            .files
            .client()
            .get_item()
            .table_name(api.services.table.files.table())
            .set_key(Some(key))
            .consistent_read(true)
            .send()
            .await
            .unwrap()
            .item
    };
    let project = read(item::usage_key(&api.project)).await;
    let mut shards = Vec::new();
    for shard in 0..item::USAGE_SHARDS {
        shards.push(read(item::usage_shard_key(&api.project, shard)).await);
    }
    (project, shards)
}

/// A usage item's number `name` (0 when absent).
fn number(found: Option<&RawItem>, name: &str) -> i64 {
    match found.and_then(|found| found.get(name)) {
        Some(aws_sdk_dynamodb::types::AttributeValue::N(text)) => text.parse().unwrap(),
        None => 0,
        Some(other) => panic!("{name}: {other:?}"),
    }
}

fn is_closed(found: Option<&RawItem>) -> bool {
    found.is_some_and(|found| found.contains_key("closed"))
}

/// The shard each file of `plans` counts in, as many times as it holds one there.
fn shards_of(plans: &[Plan]) -> Vec<i64> {
    let mut files = vec![0; usize::from(item::USAGE_SHARDS)];
    for plan in plans {
        let file_id = plan.file_id.parse().unwrap();
        files[usize::from(item::shard_of(file_id, item::USAGE_SHARDS))] += 1;
    }
    files
}

/// The `files` counter of each shard.
fn shard_files(shards: &[Option<RawItem>]) -> Vec<i64> {
    shards
        .iter()
        .map(|shard| number(shard.as_ref(), "files"))
        .collect()
}

async fn declared_many(api: &TestApi, count: usize) -> Vec<Plan> {
    let mut plans = Vec::new();
    for i in 0..count {
        plans.push(declared(api, &format!("{i}.txt"), b"12345").await.plan());
    }
    plans
}

/// A store as a new Lambda container has it: nothing remembered of any project's shards.
fn fresh_container(api: &mut TestApi) {
    let client = api.services.table.files.client().clone();
    let table = api.services.table.files.table().to_owned();
    api.services.table.files = shared::dynamo::FileStore::new(client, table);
}

#[tokio::test]
async fn a_project_without_a_quota_spreads_its_usage_over_shards_that_reads_sum() {
    // GIVEN a project without a quota
    let api = TestApi::new().await;

    // WHEN 24 files are declared and one of them verified
    let plans = declared_many(&api, 24).await;
    let bytes = b"verified";
    let verified = verified(&api, "v.txt", bytes).await;

    // THEN each file counts in the shard its id picks, the project item holds nothing, and the
    // usage read is their sum
    let (project, shards) = usage_items(&api).await;
    let mut all = plans.clone();
    all.push(verified.clone());
    assert_eq!(shard_files(&shards), shards_of(&all));
    assert!(
        shards_of(&all).iter().filter(|&&files| files > 0).count() > 1,
        "spread over several shards"
    );
    assert_eq!(number(project.as_ref(), "files"), 0, "{project:?}");
    assert_eq!(held(&api).await, ((1, 24), (8, 24 * 5)));
}

#[tokio::test]
async fn a_quota_moves_what_the_shards_hold_into_the_project_item_and_admits_up_to_its_bound() {
    // GIVEN a project whose 8 files count in its shards
    let api = TestApi::new().await;
    declared_many(&api, 8).await;

    // WHEN it is bounded to 10 files
    set_quota(&api, Some(10), None).await;

    // THEN every shard is closed and empty, the project item holds the 8
    let (project, shards) = usage_items(&api).await;
    assert!(shards.iter().all(|shard| is_closed(shard.as_ref())));
    assert_eq!(
        shard_files(&shards),
        vec![0; usize::from(item::USAGE_SHARDS)]
    );
    assert_eq!(number(project.as_ref(), "files"), 8);
    assert_eq!(number(project.as_ref(), "bytes_reserved"), 8 * 5);
    // AND exactly two more are admitted, counted in the project item
    assert_eq!(declared(&api, "a.txt", b"a").await.status, 201);
    assert_eq!(declared(&api, "b.txt", b"b").await.status, 201);
    assert_quota_exceeded(&declared(&api, "c.txt", b"c").await, "max_files");
    let (project, shards) = usage_items(&api).await;
    assert_eq!(number(project.as_ref(), "files"), 10);
    assert_eq!(
        shard_files(&shards),
        vec![0; usize::from(item::USAGE_SHARDS)]
    );
    assert_eq!(held(&api).await, ((0, 10), (0, 8 * 5 + 2)));
}

/// 12 creates at once, named from `from`: their statuses.
async fn race(api: &TestApi, from: usize) -> Vec<u16> {
    futures_util::future::join_all((from..from + 12).map(|i| async move {
        let bytes = format!("file {i}");
        declared(api, &format!("r{i}.txt"), bytes.as_bytes())
            .await
            .status
    }))
    .await
}

/// Two streams of creates, each one after another until one is refused (at most 100), named
/// from `from`: their statuses.
async fn streams(api: &TestApi, from: usize) -> Vec<u16> {
    let stream = |from: usize| async move {
        let mut statuses = Vec::new();
        for i in from..from + 100 {
            let bytes = format!("file {i}");
            let status = declared(api, &format!("r{i}.txt"), bytes.as_bytes())
                .await
                .status;
            statuses.push(status);
            if status == 403 {
                break;
            }
        }
        statuses
    };
    let (one, two) = futures_util::future::join(stream(from), stream(from + 100)).await;
    one.into_iter().chain(two).collect()
}

#[tokio::test]
async fn creates_racing_a_quota_being_set_are_all_counted_once_and_none_passes_it() {
    // GIVEN a project whose 8 files count in its shards
    let api = TestApi::new().await;
    declared_many(&api, 8).await;

    // WHEN two streams of creates, one after another until refused, race the quota being set to
    // 20 files (the project item changing all along), then 12 creates race at once, then more
    // come until one is refused
    let (first, ()) =
        futures_util::future::join(streams(&api, 0), set_quota(&api, Some(20), None)).await;
    let counted_when_set = held(&api).await.0.1;
    assert_eq!(
        first.iter().filter(|&&status| status == 403).count(),
        2,
        "the quota was set while the streams went on, and stopped both: {first:?}"
    );
    let second = race(&api, 100).await;
    // (those of the race told to retry, 409, leave room: filled one at a time up to a refusal)
    for i in 200..224 {
        if declared(&api, &format!("s{i}.txt"), b"s").await.status == 403 {
            break;
        }
    }

    // THEN every file is counted once, all in the project item
    let files = api.file_count().await as u64;
    assert_eq!(held(&api).await.0, (0, files));
    let (project, shards) = usage_items(&api).await;
    assert_eq!(number(project.as_ref(), "files") as u64, files);
    assert!(shards.iter().all(|shard| is_closed(shard.as_ref())));
    assert_eq!(
        shard_files(&shards),
        vec![0; usize::from(item::USAGE_SHARDS)]
    );
    // AND none passed the bound: what the race took before the quota held stays, and after it
    // the project holds exactly the bound, or what it already held above it
    assert_eq!(files, counted_when_set.max(20), "{first:?} {second:?}");
    for status in first.iter().chain(&second) {
        assert!([201, 403, 409].contains(status), "{first:?} {second:?}");
    }
}

#[tokio::test]
async fn removing_a_quota_reopens_the_shards_and_the_counts_stay_exact() {
    // GIVEN a project bounded to 4 files, holding 3
    let mut api = TestApi::new().await;
    declared_many(&api, 2).await;
    set_quota(&api, Some(4), None).await;
    declared(&api, "third.txt", b"3").await.plan();

    // WHEN its quota is removed, and a new container declares 16 more
    set_quota(&api, None, None).await;
    let (project, shards) = usage_items(&api).await;
    assert!(shards.iter().all(|shard| !is_closed(shard.as_ref())));
    assert_eq!(number(project.as_ref(), "files"), 3);
    fresh_container(&mut api);
    let plans = declared_many(&api, 16).await;

    // THEN they count in their shards again, nothing bounds them, and the sum is exact
    let (project, shards) = usage_items(&api).await;
    assert_eq!(number(project.as_ref(), "files"), 3);
    assert_eq!(shard_files(&shards), shards_of(&plans));
    assert_eq!(held(&api).await.0, (0, 19));
    assert_eq!(
        usage(&api).await["quota"],
        json!({"max_files": null, "max_bytes": null})
    );
}

/// Writes the project's usage item as the code before the shards did: `files` verified files
/// of 5 bytes each, and a bound of `max_files`, if any, with the room it left.
async fn legacy_usage_item(api: &TestApi, files: i64, max_files: Option<i64>) {
    const UNBOUNDED: i64 = 1 << 62;
    let n = |value: i64| aws_sdk_dynamodb::types::AttributeValue::N(value.to_string());
    let mut legacy = item::usage_key(&api.project);
    legacy.insert(
        "project_id".into(),
        aws_sdk_dynamodb::types::AttributeValue::S(api.project.clone()),
    );
    for (name, value) in [
        ("files_verified", files),
        ("files_uploading", 0),
        ("files", files),
        ("bytes_verified", files * 5),
        ("bytes_reserved", 0),
        ("bytes", files * 5),
        ("files_left", max_files.unwrap_or(UNBOUNDED) - files),
        ("bytes_left", UNBOUNDED - files * 5),
    ] {
        legacy.insert(name.into(), n(value));
    }
    if let Some(max) = max_files {
        legacy.insert("max_files".into(), n(max));
    }
    api.services
        .table
        .files
        .client()
        .put_item()
        .table_name(api.services.table.files.table())
        .set_item(Some(legacy))
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn a_usage_item_written_before_the_shards_is_counted_with_them() {
    // GIVEN a project item as the code before the shards wrote it: 2 verified files
    let api = TestApi::new().await;
    legacy_usage_item(&api, 2, None).await;

    // WHEN 6 files are declared
    let plans = declared_many(&api, 6).await;

    // THEN they count in their shards, and the usage read is the item's and theirs
    let (_, shards) = usage_items(&api).await;
    assert_eq!(shard_files(&shards), shards_of(&plans));
    assert_eq!(held(&api).await, ((2, 6), (10, 30)));
}

#[tokio::test]
async fn a_quota_set_before_the_shards_existed_still_bounds_every_create() {
    // GIVEN a project item as the code before the shards wrote it, with a quota: 2 files of 4, and
    // no shard item (none was ever closed)
    let api = TestApi::new().await;
    legacy_usage_item(&api, 2, Some(4)).await;

    // WHEN 8 creates race
    let replies = futures_util::future::join_all((0..8).map(|i| {
        let api = &api;
        async move { declared(api, &format!("{i}.txt"), b"12345").await }
    }))
    .await;

    // THEN exactly 2 are admitted, counted in the project item
    let created = replies.iter().filter(|reply| reply.status == 201).count();
    assert_eq!(
        created,
        2,
        "{:?}",
        replies.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    assert_eq!(held(&api).await.0, (2, 2));
    let (project, shards) = usage_items(&api).await;
    assert_eq!(number(project.as_ref(), "files"), 4);
    assert_eq!(
        shard_files(&shards),
        vec![0; usize::from(item::USAGE_SHARDS)]
    );
}

/// Removes the file of `plan` as the table's TTL does, and hands notify the removal.
async fn expire(api: &TestApi, plan: &Plan) {
    let item = api.raw_item(&plan.file_id).await.expect("the file's item");
    api.services
        .table
        .files
        .client()
        .delete_item()
        .table_name(api.services.table.files.table())
        .set_key(Some(item::file_key(plan.file_id.parse().unwrap())))
        .send()
        .await
        .unwrap();
    let path = api.event_path(5).await;
    let response = as_function(
        "notify",
        notify::handle(path.bus(), path.usages(), ttl_removal(&item)),
    )
    .await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
}

#[tokio::test]
async fn deletes_and_expiries_give_back_where_their_files_count_with_or_without_a_quota() {
    // GIVEN four verified files counted in their shards
    let api = TestApi::new().await;
    let mut plans = Vec::new();
    for name in ["a.txt", "b.txt", "c.txt", "d.txt"] {
        // Each its own content of 5 bytes: the same content would be deduplicated.
        plans.push(verified(&api, name, name[..1].repeat(5).as_bytes()).await);
    }

    // WHEN one is deleted and one expires without a quota
    assert_eq!(api.delete(&plans[0].file_id).await.status, 204);
    expire(&api, &plans[1]).await;

    // THEN their shards give them back
    let (_, shards) = usage_items(&api).await;
    assert_eq!(shard_files(&shards), shards_of(&plans[2..]));
    assert_eq!(held(&api).await, ((2, 0), (10, 0)));

    // WHEN a quota set elsewhere (the admin tool) moves the other two into the project item, and
    // each goes the same ways (the stores still remember the shards open)
    let admin = shared::dynamo::Usages::new(
        api.services.table.files.client().clone(),
        api.services.table.files.table(),
    );
    let quota = Quota {
        max_files: Some(10),
        max_bytes: None,
    };
    admin.set_quota(&api.project, quota).await.unwrap();
    assert_eq!(api.delete(&plans[2].file_id).await.status, 204);
    expire(&api, &plans[3]).await;

    // THEN the project item gives them back, and the shards stay closed and empty
    let (project, shards) = usage_items(&api).await;
    assert_eq!(number(project.as_ref(), "files"), 0);
    assert_eq!(number(project.as_ref(), "bytes"), 0);
    assert!(shards.iter().all(|shard| is_closed(shard.as_ref())));
    assert_eq!(
        shard_files(&shards),
        vec![0; usize::from(item::USAGE_SHARDS)]
    );
    assert_eq!(held(&api).await, ((0, 0), (0, 0)));
}

/// Each function's store is a Lambda container's: the first change it makes to a project whose
/// quota was set before the shards finds the quota, however the change comes.
#[tokio::test]
async fn every_function_finds_a_quota_set_before_the_shards_on_its_first_change() {
    // GIVEN a project item as the code before the shards wrote it, bounded to 3 files
    let mut api = TestApi::new().await;
    legacy_usage_item(&api, 0, Some(3)).await;

    // WHEN each function changes the project's usage first in a new container: a create, a
    // verdict, a direct upload, a reupload, a create past the bound, a delete, an expiry
    fresh_container(&mut api);
    let a = declared(&api, "a.txt", b"aaaaa").await.plan();
    api.upload_whole(&a, b"aaaaa".to_vec()).await;
    assert_eq!(api.complete(&a.file_id).await.status, 200);
    fresh_container(&mut api);
    api.deliver(&a.s3_key).await;
    assert_eq!(api.get(&a.file_id).await.file().status, Status::Verified);
    fresh_container(&mut api);
    let form = FormBody::new().file("b.txt", TEXT, b"bbbbb");
    let direct = api.call(Event::DirectUpload).form(&form).send().await;
    assert_eq!(direct.status, 201, "{:#}", direct.body);
    let b = direct.body["files"][0]["file_id"]
        .as_str()
        .unwrap()
        .to_owned();
    fresh_container(&mut api);
    let reupload = api
        .reupload(&a.file_id, json!({"file_size": 4, "content_type": TEXT}))
        .await;
    assert_eq!(reupload.status, 201, "{:#}", reupload.body);
    fresh_container(&mut api);
    let c = declared(&api, "c.txt", b"ccccc").await.plan();
    fresh_container(&mut api);
    assert_quota_exceeded(&declared(&api, "d.txt", b"d").await, "max_files");
    fresh_container(&mut api);
    assert_eq!(api.delete(&b).await.status, 204);
    expire(&api, &c).await;

    // THEN each was counted in the project item, none in a shard
    assert_eq!(held(&api).await, ((1, 1), (5, 4)));
    let (project, shards) = usage_items(&api).await;
    assert_eq!(number(project.as_ref(), "files"), 1);
    assert_eq!(
        shard_files(&shards),
        vec![0; usize::from(item::USAGE_SHARDS)]
    );
}

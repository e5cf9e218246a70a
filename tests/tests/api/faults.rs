//! Every route against DynamoDB Local and LocalStack behind fault proxies (`faults` in the kit):
//! for each dependency a route calls and each fault (never answering, answering too late after
//! acting, resetting, cutting an answer short), the route answers 503 `unavailable` with the
//! contract's body within the documented bound, changes nothing the client can see, and after
//! recovery the same request with its `Idempotency-Key` succeeds exactly once.

use std::time::{Duration, Instant};

use integration_tests::faults::{Fault, FaultProxy};
use integration_tests::serde_json::{Value, json};
use integration_tests::{ApiReply, Dependencies, Event, Plan, Status, TestApi, declaration};

/// `DEPENDENCY_TIMEOUT_MS` of these tests: short, so that forty faults take seconds.
const DEADLINE: Duration = Duration::from_millis(500);

/// README, "Deadlines": a request whose dependency fails answers within three deadlines (the
/// failing call, then releasing its key and discarding storage it opened). Plus slack for a
/// busy machine.
const BOUND: Duration = Duration::from_millis(3 * 500 + 700);

const FAULTS: [Fault; 4] = [
    Fault::Blackhole,
    // Each answer held past an attempt's deadline: the server acts, the function gives up.
    Fault::Delay(Duration::from_millis(2 * 500)),
    Fault::Reset,
    Fault::CutAfter(30),
];

#[derive(Debug, Clone, Copy)]
enum Dependency {
    DynamoDb,
    S3,
}

impl Dependency {
    fn proxy(self, dependencies: &Dependencies) -> &FaultProxy {
        match self {
            Dependency::DynamoDb => &dependencies.dynamodb,
            Dependency::S3 => &dependencies.s3,
        }
    }
}

/// Sends `request` while `dependency` misbehaves as `fault` says; checks the 503, its body and
/// its time; then lets the dependency recover.
async fn under_fault<F>(
    dependencies: &Dependencies,
    dependency: Dependency,
    fault: Fault,
    request: F,
) -> ApiReply
where
    F: AsyncFnOnce() -> ApiReply,
{
    let proxy = dependency.proxy(dependencies);
    proxy.set(fault);
    let started = Instant::now();
    let reply = request().await;
    let took = started.elapsed();
    proxy.set(Fault::None);
    let case = format!("{dependency:?} {fault:?}");
    assert_eq!(reply.status, 503, "{case}: {:#}", reply.body);
    let error = reply.error();
    assert_eq!(error.error.code, "unavailable", "{case}");
    assert_eq!(reply.retry_after.as_deref(), Some("1"), "{case}");
    assert!(took < BOUND, "{case}: answered after {took:?}");
    reply
}

fn small_file() -> Value {
    declaration("a.txt", "text/plain", b"hello", true, false)
}

/// A file uploaded in parts (above the default threshold of 100 MiB).
fn large_file() -> Value {
    json!({"file_name": "big.bin", "file_size": 200 * 1024 * 1024})
}

async fn created(api: &TestApi, body: Value) -> Plan {
    api.create(body).await.plan()
}

#[tokio::test]
async fn create_fails_cleanly_and_its_retry_makes_one_file() {
    for (dependency, body) in [
        (Dependency::DynamoDb, small_file()),
        (Dependency::S3, large_file()),
    ] {
        for fault in FAULTS {
            // GIVEN a project with no file, whose dependency fails
            let (api, dependencies) = TestApi::behind_proxies(DEADLINE).await;
            let create = || {
                api.call(Event::Create)
                    .header("Idempotency-Key", "create-1")
                    .json(body.clone())
                    .send()
            };

            // WHEN a file is declared
            // THEN 503 in time
            under_fault(&dependencies, dependency, fault, create).await;

            // AND no file exists; after recovery, the retry creates exactly one
            assert_eq!(api.file_count().await, 0, "{dependency:?} {fault:?}");
            let retried = create().await;
            assert_eq!(retried.status, 201, "{dependency:?} {fault:?}");
            assert_eq!(
                create().await.body,
                retried.body,
                "{dependency:?} {fault:?}"
            );
            assert_eq!(api.file_count().await, 1, "{dependency:?} {fault:?}");
        }
    }
}

#[tokio::test]
async fn reads_fail_cleanly_while_the_table_fails() {
    for fault in FAULTS {
        // GIVEN a file
        let (api, dependencies) = TestApi::behind_proxies(DEADLINE).await;
        let plan = created(&api, small_file()).await;
        let file_id = plan.file_id.to_string();

        // WHEN it is read, or the files listed, while the table fails
        // THEN 503 in time
        under_fault(&dependencies, Dependency::DynamoDb, fault, || {
            api.get(&file_id)
        })
        .await;
        under_fault(&dependencies, Dependency::DynamoDb, fault, || api.list(&[])).await;

        // AND once the table recovers, the file reads as it was
        assert_eq!(api.get(&file_id).await.file().status, Status::PendingUpload);
    }
}

#[tokio::test]
async fn complete_fails_cleanly_and_its_retry_completes_once() {
    for dependency in [Dependency::DynamoDb, Dependency::S3] {
        for fault in FAULTS {
            // GIVEN a file whose bytes are in storage
            let (api, dependencies) = TestApi::behind_proxies(DEADLINE).await;
            let plan = created(&api, small_file()).await;
            api.upload_whole(&plan, b"hello".to_vec()).await;
            let file_id = plan.file_id.to_string();
            let complete = || {
                api.call(Event::Complete)
                    .file(&file_id)
                    .header("Idempotency-Key", "complete-1")
                    .send()
            };

            // WHEN it is completed while a dependency fails
            // THEN 503 in time
            under_fault(&dependencies, dependency, fault, complete).await;

            // AND the file still waits for its upload; the retry completes it
            let case = format!("{dependency:?} {fault:?}");
            assert_eq!(
                api.get(&file_id).await.file().status,
                Status::PendingUpload,
                "{case}"
            );
            let retried = complete().await;
            assert_eq!(retried.status, 200, "{case}: {:#}", retried.body);
            assert_eq!(retried.file().status, Status::Uploaded, "{case}");
        }
    }
}

#[tokio::test]
async fn reupload_fails_cleanly_and_its_retry_starts_one_upload() {
    for fault in FAULTS {
        // GIVEN a file
        let (api, dependencies) = TestApi::behind_proxies(DEADLINE).await;
        let plan = created(&api, small_file()).await;
        let file_id = plan.file_id.to_string();
        let before = api.record(&file_id).await;
        let reupload = || {
            api.call(Event::Reupload)
                .file(&file_id)
                .header("Idempotency-Key", "reupload-1")
                .json(small_file())
                .send()
        };

        // WHEN new content is announced while the table fails
        // THEN 503 in time
        under_fault(&dependencies, Dependency::DynamoDb, fault, reupload).await;

        // AND the file is as it was; the retry starts one new upload, replayed on a second retry
        assert_eq!(api.record(&file_id).await, before, "{fault:?}");
        let retried = reupload().await;
        assert_eq!(retried.status, 201, "{fault:?}: {:#}", retried.body);
        assert_eq!(reupload().await.body, retried.body, "{fault:?}");
        assert_eq!(api.file_count().await, 1, "{fault:?}");
    }
}

#[tokio::test]
async fn multipart_routes_fail_cleanly() {
    for fault in FAULTS {
        // GIVEN a multipart upload in progress
        let (api, dependencies) = TestApi::behind_proxies(DEADLINE).await;
        let plan = created(&api, large_file()).await;
        let file_id = plan.file_id.to_string();
        let before = api.record(&file_id).await;

        // WHEN parts are signed or listed, or the upload aborted, while a dependency fails
        under_fault(&dependencies, Dependency::DynamoDb, fault, || {
            api.sign_parts(&file_id, &[1])
        })
        .await;
        under_fault(&dependencies, Dependency::S3, fault, || {
            api.list_parts(&file_id)
        })
        .await;
        under_fault(&dependencies, Dependency::DynamoDb, fault, || {
            api.abort(&file_id)
        })
        .await;

        // THEN the upload is as it was, and goes on once the dependencies recover
        assert_eq!(api.record(&file_id).await, before, "{fault:?}");
        assert_eq!(api.list_parts(&file_id).await.status, 200, "{fault:?}");
        assert_eq!(api.abort(&file_id).await.status, 200, "{fault:?}");
    }
}

/// DynamoDB's operations, as their requests' `X-Amz-Target` names them.
const TRANSACT_WRITE_ITEMS: &str = "DynamoDB_20120810.TransactWriteItems";
const PUT_ITEM: &str = "DynamoDB_20120810.PutItem";

/// An answer held past the whole deadline of a call, its retries included: the write applies,
/// and the function never learns it.
const LATE: Fault = Fault::Delay(Duration::from_millis(2 * 500));

/// The size of a file uploaded in parts whose last part is small (4 MiB and a byte at the
/// default part size), for a test to PUT.
const PARTED_SIZE: u64 = 100 * 1024 * 1024 + 1;

fn parted_file() -> Value {
    json!({"file_name": "parts.bin", "file_size": PARTED_SIZE})
}

/// PUTs the last part of `plan` (of a [`PARTED_SIZE`] file), which storage must take: its
/// upload exists.
async fn put_last_part(api: &TestApi, plan: &Plan) {
    let parts = u32::try_from(plan.urls.len()).expect("a part count");
    let size = PARTED_SIZE - u64::from(parts - 1) * plan.part_size;
    let bytes = vec![1u8; usize::try_from(size).expect("a part size")];
    api.put_part(plan.url(parts), bytes).await;
}

/// The key of the multipart upload the route opened through `s3`, from its CreateMultipartUpload.
fn opened_upload(api: &TestApi, s3: &FaultProxy) -> String {
    let requests = s3.requests();
    let line = requests
        .iter()
        .find(|line| line.starts_with("POST ") && line.contains("?uploads"))
        .unwrap_or_else(|| panic!("no CreateMultipartUpload among {requests:#?}"));
    let path = line.split(' ').nth(1).expect("a request target");
    let path = path.split('?').next().expect("a path");
    let bucket = format!("/{}/", api.services.storage.objects.bucket());
    path.strip_prefix(&bucket)
        .expect("a path-style key")
        .to_owned()
}

/// Whether storage has a multipart upload of `key` in progress.
async fn upload_open(api: &TestApi, key: &str) -> bool {
    let listed = api
        .services
        .storage
        .objects
        .client()
        .list_multipart_uploads()
        .bucket(api.services.storage.objects.bucket())
        .prefix(key)
        .send()
        .await
        .expect("ListMultipartUploads");
    !listed.uploads().is_empty()
}

#[tokio::test]
async fn a_create_whose_write_applied_unanswered_keeps_its_upload_and_slot() {
    // GIVEN an upload token for one file, and a table that applies the insert of a file but
    // answers too late
    let (api, dependencies) = TestApi::behind_proxies(DEADLINE).await;
    let token = api.token(json!({"max_files": 1})).await;
    let create = |key: &'static str| {
        api.call(Event::Create)
            .key(Some(&token))
            .header("Idempotency-Key", key)
            .json(parted_file())
            .send()
    };
    dependencies.dynamodb.set_for(TRANSACT_WRITE_ITEMS, LATE);

    // WHEN a file in parts is declared with a key
    let reply = create("create-1").await;
    dependencies.dynamodb.set(Fault::None);

    // THEN it is created after all: its retry gets the same plan, whose part URLs work
    assert_eq!(reply.status, 201, "{:#}", reply.body);
    let retried = create("create-1").await;
    assert_eq!(retried.body, reply.body);
    put_last_part(&api, &retried.plan()).await;

    // AND the file holds the token's one slot
    assert_eq!(api.file_count().await, 1);
    assert_eq!(create("create-2").await.status, 403);
}

#[tokio::test]
async fn a_create_whose_write_never_reached_the_table_leaves_nothing() {
    // GIVEN an upload token for one file, and a table the insert of a file never reaches
    let (api, dependencies) = TestApi::behind_proxies(DEADLINE).await;
    let token = api.token(json!({"max_files": 1})).await;
    let create = || {
        api.call(Event::Create)
            .key(Some(&token))
            .header("Idempotency-Key", "create-1")
            .json(parted_file())
            .send()
    };
    dependencies
        .dynamodb
        .set_for(TRANSACT_WRITE_ITEMS, Fault::Blackhole);

    // WHEN a file in parts is declared with a key
    let started = Instant::now();
    let reply = create().await;
    let took = started.elapsed();
    dependencies.dynamodb.set(Fault::None);

    // THEN 503 in time
    assert_eq!(reply.status, 503, "{:#}", reply.body);
    assert!(took < BOUND, "answered after {took:?}");

    // AND no file exists, the upload it opened is aborted, and its retry takes the token's slot
    assert_eq!(api.file_count().await, 0);
    let opened = opened_upload(&api, &dependencies.s3);
    assert!(!upload_open(&api, &opened).await, "{opened} is still open");
    let retried = create().await;
    assert_eq!(retried.status, 201, "{:#}", retried.body);
    assert_eq!(api.file_count().await, 1);
}

#[tokio::test]
async fn a_create_without_a_key_whose_write_applied_unanswered_is_created() {
    // GIVEN a table that applies the insert of a file but answers too late
    let (api, dependencies) = TestApi::behind_proxies(DEADLINE).await;
    dependencies.dynamodb.set_for(PUT_ITEM, LATE);

    // WHEN a file in parts is declared without a key
    let reply = api.create(parted_file()).await;
    dependencies.dynamodb.set(Fault::None);

    // THEN it is created, and its part URLs work
    assert_eq!(reply.status, 201, "{:#}", reply.body);
    put_last_part(&api, &reply.plan()).await;
    assert_eq!(api.file_count().await, 1);
}

#[tokio::test]
async fn a_reupload_whose_write_applied_unanswered_keeps_its_upload() {
    // GIVEN a file, and a table that applies a change of it but answers too late
    let (api, dependencies) = TestApi::behind_proxies(DEADLINE).await;
    let file_id = created(&api, small_file()).await.file_id;
    dependencies.dynamodb.set_for(PUT_ITEM, LATE);

    // WHEN new content in parts is announced
    let reply = api
        .reupload(&file_id, json!({"file_size": PARTED_SIZE}))
        .await;
    dependencies.dynamodb.set(Fault::None);

    // THEN its upload started: the file holds it, and its part URLs work
    assert_eq!(reply.status, 201, "{:#}", reply.body);
    let plan = reply.plan();
    let job = api
        .record(&file_id)
        .await
        .job
        .expect("an upload in progress");
    assert_eq!(job.job_id.to_string(), plan.job_id);
    put_last_part(&api, &plan).await;
}

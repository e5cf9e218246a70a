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

            // WHEN a file is declared: THEN 503 in time
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
        let (api, dependencies) = TestApi::behind_proxies(DEADLINE).await;
        let plan = created(&api, small_file()).await;
        let file_id = plan.file_id.to_string();

        under_fault(&dependencies, Dependency::DynamoDb, fault, || {
            api.get(&file_id)
        })
        .await;
        under_fault(&dependencies, Dependency::DynamoDb, fault, || api.list(&[])).await;

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

            // WHEN it is completed while a dependency fails: THEN 503 in time
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

        // WHEN new content is announced while the table fails: THEN 503 in time
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

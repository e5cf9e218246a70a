//! `Idempotency-Key` on create, complete and reupload, against the real servers: a retry gets
//! the first answer and does not act twice; another request under the key, or the same one while
//! the first runs, is refused.

use integration_tests::serde_json::json;
use integration_tests::{Event, TestApi, declaration};
use shared::domain::idempotency::{IdempotencyKey, fingerprint};

const KEY: &str = "order-42/attempt";

#[tokio::test]
async fn a_retried_create_gets_the_first_answer_and_makes_one_file() {
    // GIVEN a create sent with a key
    let api = TestApi::new().await;
    let body = declaration("a.txt", "text/plain", b"hello", true, false);
    let create = || {
        api.call(Event::Create)
            .header("Idempotency-Key", KEY)
            .json(body.clone())
            .send()
    };
    let first = create().await;
    assert_eq!(first.status, 201, "{:#}", first.body);
    assert!(!first.replayed);

    // WHEN it is sent again, as after a lost answer
    let again = create().await;

    // THEN the first answer comes back, marked as replayed, and there is one file
    assert_eq!((again.status, &again.body), (201, &first.body));
    assert!(again.replayed);
    assert_eq!(api.file_count().await, 1);
}

#[tokio::test]
async fn another_request_under_the_same_key_is_refused_and_changes_nothing() {
    let api = TestApi::new().await;
    let send = |name: &str| {
        api.call(Event::Create)
            .header("Idempotency-Key", KEY)
            .json(declaration(name, "text/plain", b"hello", false, false))
            .send()
    };
    assert_eq!(send("a.txt").await.status, 201);

    let other = send("b.txt").await;

    assert_eq!(other.status, 422, "{:#}", other.body);
    assert_eq!(other.error_code(), "idempotency_key_reused");
    assert_eq!(api.file_count().await, 1);
}

#[tokio::test]
async fn the_same_request_while_the_first_runs_is_told_the_key_is_in_use() {
    // GIVEN a key claimed by a request still running
    let api = TestApi::new().await;
    let body = json!({"file_name": "a.txt", "file_size": 5});
    let call = api
        .call(Event::Create)
        .header("Idempotency-Key", KEY)
        .json(body.clone());
    let request = call.request();
    let running = fingerprint(
        "POST",
        lambda_http::RequestExt::raw_http_path(&request),
        body.to_string().as_bytes(),
    );
    let key = IdempotencyKey::parse(KEY).unwrap();
    let claim = shared::dynamo::Claim::new(&api.project, &key, &running);
    let claimed = api
        .services
        .idempotency
        .claim(&claim, shared::domain::timestamp::now())
        .await
        .unwrap();
    assert_eq!(claimed, None);

    // WHEN the same request arrives
    let reply = call.send().await;

    // THEN it is told to wait, and does nothing
    assert_eq!(reply.status, 409, "{:#}", reply.body);
    assert_eq!(reply.error_code(), "idempotency_key_in_use");
    assert_eq!(api.file_count().await, 0);
}

#[tokio::test]
async fn keys_are_per_project_and_checked() {
    let api = TestApi::new().await;
    let other = TestApi::new().await;
    let body = declaration("a.txt", "text/plain", b"hello", false, false);
    for api in [&api, &other] {
        let reply = api
            .call(Event::Create)
            .header("Idempotency-Key", KEY)
            .json(body.clone())
            .send()
            .await;
        assert_eq!((reply.status, reply.replayed), (201, false));
    }
    for bad_key in ["k".repeat(256), "clé".to_owned(), String::new()] {
        let bad = api
            .call(Event::Create)
            .header("Idempotency-Key", &bad_key)
            .json(body.clone())
            .send()
            .await;
        assert_eq!(bad.status, 422, "{bad_key:?}");
        assert_eq!(bad.error_fields(), ["Idempotency-Key"]);
    }
}

#[tokio::test]
async fn a_retried_complete_and_reupload_get_their_first_answers() {
    let api = TestApi::new().await;
    let bytes = b"hello".to_vec();
    let plan = api
        .create(declaration("a.txt", "text/plain", &bytes, false, false))
        .await
        .plan();
    let file_id = plan.file_id.clone();
    api.upload_whole(&plan, bytes).await;
    let complete = || {
        api.call(Event::Complete)
            .file(&file_id)
            .header("Idempotency-Key", "complete-1")
            .send()
    };
    let first = complete().await;
    assert_eq!(first.status, 200, "{:#}", first.body);
    let again = complete().await;
    assert_eq!(
        (again.status, &again.body, again.replayed),
        (200, &first.body, true)
    );

    let reupload = || {
        api.call(Event::Reupload)
            .file(&file_id)
            .header("Idempotency-Key", "reupload-1")
            .json(json!({"file_size": 3}))
            .send()
    };
    let first = reupload().await;
    assert_eq!(first.status, 201, "{:#}", first.body);
    let again = reupload().await;
    assert_eq!(
        (again.status, &again.body, again.replayed),
        (201, &first.body, true)
    );
    // one reupload happened: the file's job is the first answer's
    let file = api.get(&file_id).await.file();
    assert_eq!(file.upload.expect("an upload").job_id, first.plan().job_id);
}

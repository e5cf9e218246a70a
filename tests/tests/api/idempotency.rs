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
    // GIVEN a create answered under a key
    let api = TestApi::new().await;
    let send = |name: &str| {
        api.call(Event::Create)
            .header("Idempotency-Key", KEY)
            .json(declaration(name, "text/plain", b"hello", false, false))
            .send()
    };
    assert_eq!(send("a.txt").await.status, 201);

    // WHEN another create, for another file, is sent under the same key
    let other = send("b.txt").await;

    // THEN it is refused as reusing the key, and makes no file
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
        .table
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
    // GIVEN two projects, and a create body
    let api = TestApi::new().await;
    let other = TestApi::new().await;
    let body = declaration("a.txt", "text/plain", b"hello", false, false);
    for api in [&api, &other] {
        // WHEN each project sends it under the same key
        let reply = api
            .call(Event::Create)
            .header("Idempotency-Key", KEY)
            .json(body.clone())
            .send()
            .await;

        // THEN each gets an answer of its own, not a replay
        assert_eq!((reply.status, reply.replayed), (201, false));
    }
    for bad_key in ["k".repeat(256), "clé".to_owned(), String::new()] {
        // WHEN it is sent under a key too long, not ASCII, or empty
        let bad = api
            .call(Event::Create)
            .header("Idempotency-Key", &bad_key)
            .json(body.clone())
            .send()
            .await;

        // THEN it is refused, naming the header
        assert_eq!(bad.status, 422, "{bad_key:?}");
        assert_eq!(bad.error_fields(), ["Idempotency-Key"]);
    }
}

#[tokio::test]
async fn a_retried_complete_and_reupload_get_their_first_answers() {
    // GIVEN a file whose bytes the client has PUT
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

    // WHEN it is completed under a key, and then again under the same key
    let first = complete().await;
    assert_eq!(first.status, 200, "{:#}", first.body);
    let again = complete().await;

    // THEN the second gets the first answer, replayed
    assert_eq!(
        (again.status, &again.body, again.replayed),
        (200, &first.body, true)
    );

    // WHEN a reupload of it is sent under another key, and then again
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

    // THEN the second gets the first answer, replayed
    assert_eq!(
        (again.status, &again.body, again.replayed),
        (201, &first.body, true)
    );

    // AND one reupload happened: the file's job is the first answer's
    let file = api.get(&file_id).await.file();
    assert_eq!(file.upload.expect("an upload").job_id, first.plan().job_id);
}

/// The table item that keeps `key` for `scope` (a project, or a token of it).
fn key_item(scope: &str, key: &str) -> shared::dynamo::item::Item {
    use sha2::Digest;
    let hash = hex::encode(sha2::Sha256::digest(key.as_bytes()));
    let s = |text: String| aws_sdk_dynamodb::types::AttributeValue::S(text);
    [
        ("pk".to_owned(), s(format!("IDEMPOTENCY#{scope}#{hash}"))),
        ("sk".to_owned(), s("IDEMPOTENCY".to_owned())),
    ]
    .into()
}

#[tokio::test]
async fn a_retriable_conflict_is_not_kept_and_its_retry_runs_afresh() {
    // GIVEN an uploaded multipart file whose assembly another request holds for 4 more seconds
    let api = TestApi::with_config(|config| {
        config.multipart_threshold = 5 << 20;
        config.part_size = 5 << 20;
    })
    .await;
    let bytes: Vec<u8> = (0..(11 << 20)).map(|i: u32| (i % 251) as u8).collect();
    let plan = api
        .create(json!({"file_name": "big.bin", "file_size": bytes.len()}))
        .await
        .plan();
    api.upload_parts(&plan, &bytes).await;
    let lease = std::time::Duration::from_secs(60);
    let lapses_in = std::time::Duration::from_secs(4);
    let claim = api
        .services
        .table
        .files
        .claim_assembly(
            plan.file_id.parse().unwrap(),
            plan.job_id.parse().unwrap(),
            shared::domain::timestamp::now() - (lease - lapses_in),
            lease,
        )
        .await
        .unwrap();
    assert!(claim.is_some());
    let complete = || {
        api.call(Event::Complete)
            .file(&plan.file_id)
            .header("Idempotency-Key", "complete-1")
            .send()
    };

    // WHEN a complete with a key is told to retry
    let first = complete().await;
    assert_eq!(first.conflict().reason(), Some("concurrent_update"));

    // THEN its retry with the same key, once the other request is gone, runs and completes
    tokio::time::sleep(lapses_in).await;
    let retried = complete().await;
    assert!(!retried.replayed, "{retried:?}");
    assert_eq!(retried.file().status, integration_tests::Status::Uploaded);

    // AND that final answer is the one kept
    let again = complete().await;
    assert_eq!((again.replayed, &again.body), (true, &retried.body));
}

#[tokio::test]
async fn an_answer_past_its_lifetime_is_not_replayed_though_the_table_still_holds_it() {
    // GIVEN a create answered under a key whose lifetime has ended, its item not yet deleted
    // (DynamoDB's TTL deletes expired items within days, not at once)
    let api = TestApi::new().await;
    let body = declaration("a.txt", "text/plain", b"hello", false, false);
    let create = || {
        api.call(Event::Create)
            .header("Idempotency-Key", KEY)
            .json(body.clone())
            .send()
    };
    let first = create().await;
    assert_eq!(first.status, 201);
    let files = &api.services.table.files;
    files
        .client()
        .update_item()
        .table_name(files.table())
        .set_key(Some(key_item(&api.project, KEY)))
        .update_expression("SET #ttl = :past")
        .expression_attribute_names("#ttl", "ttl")
        .expression_attribute_values(
            ":past",
            aws_sdk_dynamodb::types::AttributeValue::N(
                (shared::domain::timestamp::now().unix_timestamp() - 1).to_string(),
            ),
        )
        .condition_expression("attribute_exists(pk)")
        .send()
        .await
        .unwrap();

    // WHEN the request is sent again with the key
    let again = create().await;

    // THEN it runs afresh: a new file, not the old answer
    assert_eq!((again.status, again.replayed), (201, false), "{again:?}");
    assert_ne!(again.plan().file_id, first.plan().file_id);
    assert_eq!(api.file_count().await, 2);
}

#[tokio::test]
async fn a_retried_mint_returns_the_same_token_kept_no_longer_than_it_lives() {
    // GIVEN a token minted under a key
    let api = TestApi::new().await;
    let mint = || {
        api.call(Event::MintToken)
            .header("Idempotency-Key", "mint-1")
            .json(json!({"expires_in": 120, "max_files": 2}))
            .send()
    };
    let first = mint().await;
    assert_eq!(first.status, 201, "{:#}", first.body);
    let minted: integration_tests::MintedToken = first.json();

    // WHEN the mint is sent again under the key
    let again = mint().await;

    // THEN the first answer comes back, replayed
    assert_eq!((again.replayed, &again.body), (true, &first.body));

    // AND one live token: the replay is the same one, and the answer goes with it.
    let files = &api.services.table.files;
    let kept = files
        .client()
        .get_item()
        .table_name(files.table())
        .set_key(Some(key_item(&api.project, "mint-1")))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .expect("the kept answer");
    let ttl: i64 = kept["ttl"].as_n().unwrap().parse().unwrap();
    let expires_at = shared::domain::timestamp::parse(&minted.expires_at).unwrap();
    assert_eq!(ttl, expires_at.unix_timestamp());
}

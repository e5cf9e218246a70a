//! Client upload tokens (docs/API.md v1.1): minted only with an API key, bounded on every use,
//! `max_files` counted atomically, and good for nothing but creating files and finishing them.

use std::collections::BTreeMap;

use integration_tests::serde_json::{Value, json};
use integration_tests::{ApiReply, Event, MintedToken, Status, TestApi, digests};
use shared::domain::timestamp;
use shared::dynamo::key_hash;
use shared::http::parse;

fn text_file(bytes: &[u8]) -> Value {
    let (sha256, _) = digests(bytes);
    json!({"file_name": "a.txt", "file_size": bytes.len(), "content_type": "text/plain", "sha256": sha256})
}

async fn create_with(api: &TestApi, token: &str, body: Value) -> ApiReply {
    api.call(Event::Create)
        .key(Some(token))
        .json(body)
        .send()
        .await
}

#[tokio::test]
async fn an_api_key_mints_a_token_that_shows_its_bounds_once() {
    // GIVEN a project and its API key
    let api = TestApi::new().await;

    // WHEN a token is minted with bounds
    let reply = api
        .mint_token(json!({
            "expires_in": 600, "max_file_size": 1000, "content_types": ["image/*", "text/plain"],
            "max_files": 3, "metadata": {"user": "u-42"}
        }))
        .await;

    // THEN the answer shows the token, once, with its bounds
    assert_eq!(reply.status, 201, "{:#}", reply.body);
    let minted: MintedToken = reply.json();
    assert!(minted.token.starts_with("upt_") && minted.token.len() == 47);
    assert_eq!(minted.project_id, api.project);
    assert_eq!(minted.max_file_size, Some(1000));
    assert_eq!(minted.content_types, ["image/*", "text/plain"]);
    assert_eq!(minted.max_files, 3);
    assert_eq!(minted.metadata["user"], "u-42");
    let expires_at = timestamp::parse(&minted.expires_at).unwrap();
    let left = expires_at - timestamp::now();
    assert!(
        left.whole_seconds() > 590 && left.whole_seconds() <= 600,
        "{left}"
    );

    // WHEN a token is minted without bounds
    let minted: MintedToken = api.mint_token(json!({})).await.json();

    // THEN it has the defaults: one file of any type and size, for 15 minutes
    assert_eq!((minted.max_files, minted.max_file_size), (1, None));
    assert!(minted.content_types.is_empty());
}

#[tokio::test]
async fn bad_mint_bodies_are_422_naming_each_field() {
    // GIVEN a project and its API key
    let api = TestApi::new().await;

    // WHEN a token is asked for with every field out of range or malformed
    let reply = api
        .mint_token(json!({
            "expires_in": 30, "max_file_size": -1, "content_types": "image/png",
            "max_files": 0, "metadata": [{"name": "k"}]
        }))
        .await;

    // THEN the request is refused, naming each field
    reply.expect_error(422, "validation_error");
    assert_eq!(
        reply.error_fields(),
        [
            "content_types",
            "expires_in",
            "max_file_size",
            "max_files",
            "metadata[0].value"
        ]
    );

    // WHEN the body is not a JSON object
    let reply = api.call(Event::MintToken).raw_body("[1]").send().await;

    // THEN it is a bad request
    reply.expect_error(400, "bad_request");
}

#[tokio::test]
async fn a_token_creates_files_within_its_bounds_with_its_metadata_over_the_clients() {
    // GIVEN a token for two text files of at most 10 bytes, with metadata
    let api = TestApi::new().await;
    let token = api
        .token(json!({
            "max_file_size": 10, "content_types": ["text/*"], "max_files": 2,
            "metadata": {"user": "u-42"}
        }))
        .await;

    // WHEN a file over the size is created with it
    let mut too_big = text_file(b"eleven bytes");
    too_big["file_size"] = json!(11);
    let reply = create_with(&api, &token, too_big).await;

    // THEN it is refused: 422 naming the field
    reply.expect_error(422, "validation_error");
    assert_eq!(reply.error_fields(), ["file_size"]);

    // WHEN a file outside the types is created with it
    let mut image = text_file(b"png");
    image["content_type"] = json!("image/png");
    let reply = create_with(&api, &token, image).await;

    // THEN it is refused too, naming the field, and nothing was counted
    assert_eq!(reply.error_fields(), ["content_type"]);
    assert_eq!(api.file_count().await, 0);

    // WHEN a file within them is created, with metadata of the client's
    let mut body = text_file(b"hello");
    body["metadata"] = json!({"user": "forged", "note": "mine"});
    let plan = create_with(&api, &token, body).await.plan();

    // THEN it is created, with the token's metadata winning over the client's
    let file = api.get(&plan.file_id).await.file();
    assert_eq!(
        file.metadata,
        BTreeMap::from([
            ("note".to_owned(), "mine".to_owned()),
            ("user".to_owned(), "u-42".to_owned())
        ])
    );

    // WHEN a second file takes the last slot, and a third is created
    create_with(&api, &token, text_file(b"again")).await.plan();
    let reply = create_with(&api, &token, text_file(b"third")).await;

    // THEN the third is 403 and creates nothing
    reply.expect_error(403, "forbidden");
    assert_eq!(api.file_count().await, 2);
}

#[tokio::test]
async fn two_racing_creates_cannot_both_take_the_last_slot() {
    // GIVEN a project
    let api = TestApi::new().await;
    for _ in 0..3 {
        // WHEN two creates race for the one file of a token
        let token = api.token(json!({"max_files": 1})).await;
        let (a, b) = tokio::join!(
            create_with(&api, &token, text_file(b"one")),
            create_with(&api, &token, text_file(b"two")),
        );

        // THEN one is created and the other is refused
        let mut statuses = [a.status, b.status];
        statuses.sort_unstable();
        assert_eq!(statuses, [201, 403], "{:#} {:#}", a.body, b.body);
    }

    // AND one file was made per token
    assert_eq!(api.file_count().await, 3);
}

#[tokio::test]
async fn expired_unknown_and_foreign_tokens_are_refused() {
    // GIVEN a project, and another one
    let api = TestApi::new().await;
    let other = TestApi::new().await;

    // WHEN a file is created with a token that has expired: minted 20 minutes ago for 15
    let grant = parse::token_grant(&serde_json::Map::new(), u64::MAX).unwrap();
    let past = timestamp::now() - std::time::Duration::from_secs(1200);
    let (expired, _) = api
        .services
        .table
        .tokens
        .mint(&api.project, &key_hash(&api.key), &grant, past)
        .await
        .unwrap();
    let reply = create_with(&api, &expired, text_file(b"late")).await;

    // THEN it is unauthorized
    reply.expect_error(401, "unauthorized");

    // AND so is an unknown, well-formed token
    let unknown = "upt_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    create_with(&api, unknown, text_file(b"x"))
        .await
        .expect_error(401, "unauthorized");

    // AND another project's token on this project is forbidden, and no file was made
    let foreign = other.token(json!({})).await;
    create_with(&api, &foreign, text_file(b"x"))
        .await
        .expect_error(403, "forbidden");
    assert_eq!(api.file_count().await, 0);
}

#[tokio::test]
async fn a_token_finishes_and_reads_only_the_files_it_created_and_does_nothing_else() {
    // GIVEN a token, a file it created, and a file of the app's own
    let api = TestApi::new().await;
    let token = api.token(json!({"max_files": 2})).await;
    let bytes = b"uploaded through a token".to_vec();
    let plan = create_with(&api, &token, text_file(&bytes)).await.plan();
    let mine = plan.file_id.clone();
    let theirs = api.create(text_file(b"the app's own")).await.plan().file_id;
    let call = |event: Event, file: &str| api.call(event).key(Some(&token)).file(file);

    // WHEN it works on its own file: upload, complete, read, sign and list parts
    api.upload_whole(&plan, bytes.clone()).await;
    let completed = call(Event::Complete, &mine).send().await.file();
    assert_eq!(completed.status, Status::Uploaded);
    api.deliver(&plan.s3_key).await;
    let file = call(Event::GetFile, &mine).send().await.file();

    // THEN it may: the file is verified and downloads as uploaded
    assert_eq!(file.status, Status::Verified);
    assert_eq!(api.download(&mine).await, bytes);

    // WHEN it tries anything else: the app's file, or any other route
    let before = api.raw_item(&theirs).await;
    for event in [
        Event::GetFile,
        Event::Complete,
        Event::SignParts,
        Event::ListParts,
        Event::AbortUpload,
    ] {
        let reply = call(event, &theirs)
            .json(json!({"part_numbers": [1]}))
            .send()
            .await;

        // THEN it is forbidden
        reply.expect_error(403, "forbidden");
    }
    for (event, file) in [
        (Event::Reupload, Some(&mine)),
        (Event::DeleteFile, Some(&mine)),
        (Event::ListFiles, None),
        (Event::SetWebhook, None),
        (Event::GetWebhook, None),
        (Event::DeleteWebhook, None),
        (Event::MintToken, None),
        (Event::Usage, None),
    ] {
        let mut request = api.call(event).key(Some(&token)).json(json!({
            "file_name": "b.txt", "file_size": 1, "url": "https://example.com/hook"
        }));
        if let Some(file) = file {
            request = request.file(file);
        }
        let reply = request.send().await;

        // THEN it is forbidden
        reply.expect_error(403, "forbidden");
    }

    // AND nothing changes
    assert_eq!(api.raw_item(&theirs).await, before);
    assert_eq!(api.get(&mine).await.file().status, Status::Verified);
}

#[tokio::test]
async fn a_tokens_create_uploads_content_the_project_already_has_instead_of_deduplicating() {
    // GIVEN content the project already has, verified
    let api = TestApi::new().await;
    let bytes = b"shared content".to_vec();
    let plan = api.create(text_file(&bytes)).await.plan();
    api.upload_whole(&plan, bytes.clone()).await;
    api.deliver(&plan.s3_key).await;
    assert_eq!(
        api.create(text_file(&bytes)).await.status,
        200,
        "deduplicated for the key"
    );

    // WHEN a token's client declares the same content
    let token = api.token(json!({})).await;
    let reply = create_with(&api, &token, text_file(&bytes)).await;

    // THEN it gets an upload of a new file, not the existing one: a token's client has
    // only declared the SHA-256, and answering with the existing file would hand it a download
    // URL for content it never showed
    let fresh = reply.plan();
    assert_ne!(fresh.file_id, plan.file_id);
    assert!(reply.body.get("download_url").is_none());
}

#[tokio::test]
async fn a_token_ends_when_the_api_key_that_minted_it_is_revoked() {
    // GIVEN a token minted with a second key of the project, which has created one file
    let api = TestApi::new().await;
    let keys = &api.services.table.keys;
    let minting_key = keys
        .mint(std::slice::from_ref(&api.project), "browser tokens")
        .await
        .unwrap();
    let minted: MintedToken = api
        .call(Event::MintToken)
        .key(Some(&minting_key))
        .json(json!({"max_files": 3}))
        .send()
        .await
        .json();
    let token = minted.token;
    let plan = create_with(&api, &token, text_file(b"one")).await.plan();

    // WHEN that key is revoked
    keys.revoke(&minting_key).await.unwrap();

    // THEN the token is refused on every route, its own file included
    let reply = create_with(&api, &token, text_file(b"two")).await;
    reply.expect_error(401, "unauthorized");
    let reply = api
        .call(Event::GetFile)
        .key(Some(&token))
        .file(&plan.file_id)
        .send()
        .await;
    reply.expect_error(401, "unauthorized");
    assert_eq!(api.file_count().await, 1);

    // AND the project's other key, and tokens it mints, go on
    let other = api.token(json!({})).await;
    assert_eq!(
        create_with(&api, &other, text_file(b"three")).await.status,
        201
    );
}

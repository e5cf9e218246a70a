//! The direct upload (`POST …/uploads`, docs/API.md v1.1): small files in a form, stored with
//! the digests the service computed, settled by the verify trigger, all or nothing.

use std::collections::BTreeMap;

use integration_tests::serde_json::{Value, json};
use integration_tests::{ApiReply, Event, File, FormBody, Status, TestApi, digests};

const PNG: &[u8] =
    b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89";

fn files_of(reply: &ApiReply) -> Vec<File> {
    assert_eq!(reply.status, 201, "{:#}", reply.body);
    let files: Vec<Value> = reply.body["files"].as_array().expect("files").clone();
    files
        .into_iter()
        .map(|file| integration_tests::serde_json::from_value(file).expect("a file resource"))
        .collect()
}

fn assert_refused(reply: &ApiReply, status: u16, code: &str, fields: &[&str]) {
    assert_eq!(reply.status, status, "{:#}", reply.body);
    assert_eq!(reply.error_code(), code);
    assert_eq!(reply.error_fields(), fields, "{:#}", reply.body);
}

#[tokio::test]
async fn two_files_in_one_form_are_stored_in_order_with_their_digests_and_verified() {
    // GIVEN a form with a text file, a PNG, and metadata
    let api = TestApi::new().await;
    let text = b"hello, direct upload\n".to_vec();
    let form = FormBody::new()
        .file("hello.txt", "text/plain", &text)
        .file("dot.png", "image/png", PNG)
        .text("meta", r#"[{"name": "album", "value": "tests"}]"#);

    // WHEN it is uploaded directly
    let files = files_of(&api.direct_upload(&form).await);

    // THEN both are stored, in the order sent, with their digests and the metadata
    assert_eq!(files.len(), 2);
    let names: Vec<&str> = files.iter().map(|f| f.file_name.as_str()).collect();
    assert_eq!(names, ["hello.txt", "dot.png"], "in the order sent");
    for (file, bytes) in files.iter().zip([&text[..], PNG]) {
        let (sha256, md5) = digests(bytes);
        assert_eq!(file.status, Status::Uploaded);
        assert_eq!(
            (file.sha256.clone(), file.md5.clone()),
            (Some(sha256), Some(md5))
        );
        assert_eq!(file.file_size, bytes.len() as u64);
        assert_eq!(
            file.metadata,
            BTreeMap::from([("album".to_owned(), "tests".to_owned())])
        );
    }

    // AND the verify trigger settles them as it settles any upload
    for (file, bytes) in files.iter().zip([&text[..], PNG]) {
        let key = api.record(&file.file_id).await.job.expect("its job").s3_key;
        api.deliver(&key).await;
        assert_eq!(api.get(&file.file_id).await.file().status, Status::Verified);
        assert_eq!(api.download(&file.file_id).await, bytes);
    }
}

#[tokio::test]
async fn name_names_the_only_file_and_verified_content_comes_back_deduplicated() {
    // GIVEN a form whose `name` names its only file
    let api = TestApi::new().await;
    let form = FormBody::new()
        .file("upload.bin", "text/plain", b"same bytes")
        .text("name", "notes.txt");

    // WHEN it is uploaded directly
    let first = files_of(&api.direct_upload(&form).await).remove(0);

    // THEN the file has that name
    assert_eq!(first.file_name, "notes.txt");

    // WHEN the file is verified, and the same form is uploaded again
    let key = api
        .record(&first.file_id)
        .await
        .job
        .expect("its job")
        .s3_key;
    api.deliver(&key).await;

    let again = files_of(&api.direct_upload(&form).await).remove(0);

    // THEN the verified file comes back, deduplicated, and no other is made
    assert_eq!(again.file_id, first.file_id);
    assert_eq!(again.deduplicated, Some(true));
    assert_eq!(api.file_count().await, 1);
}

#[tokio::test]
async fn bad_forms_are_refused_naming_the_part_and_store_nothing() {
    // GIVEN a project that takes direct uploads of up to 64 KiB
    let api = TestApi::with_config(|c| c.direct_upload_max_bytes = 64 * 1024).await;

    // AND forms each wrong in one way: no file, 21 files, bad meta, one name for two
    // files, bad files, a field of no use, too many bytes
    let twenty_one = (0..21).fold(FormBody::new(), |form, i| {
        form.file(&format!("{i}.txt"), "text/plain", b"x")
    });
    let cases: Vec<(FormBody, u16, &str, Vec<&str>)> = vec![
        (
            FormBody::new().text("meta", "{}"),
            422,
            "validation_error",
            vec!["file"],
        ),
        (twenty_one, 422, "validation_error", vec!["file"]),
        (
            FormBody::new()
                .file("a.txt", "text/plain", b"a")
                .text("meta", "{not json"),
            422,
            "validation_error",
            vec!["meta"],
        ),
        (
            FormBody::new()
                .file("a.txt", "text/plain", b"a")
                .text("meta", r#"{"k": 1}"#),
            422,
            "validation_error",
            vec!["meta.k"],
        ),
        (
            FormBody::new()
                .file("a.txt", "text/plain", b"a")
                .file("b.txt", "text/plain", b"b")
                .text("name", "both.txt"),
            422,
            "validation_error",
            vec!["name"],
        ),
        (
            FormBody::new()
                .file("a.txt", "text/plain", b"a")
                .file("b.txt", "not a type", b"b")
                .file("", "text/plain", b""),
            422,
            "validation_error",
            vec![
                "files[1].content_type",
                "files[2].file_name",
                "files[2].file_size",
            ],
        ),
        (
            FormBody::new()
                .file("a.txt", "text/plain", b"a")
                .text("extra", "x"),
            422,
            "validation_error",
            vec!["extra"],
        ),
        (
            FormBody::new().file("big.bin", "application/octet-stream", &vec![7; 64 * 1024]),
            413,
            "payload_too_large",
            vec!["body"],
        ),
    ];
    for (form, status, code, fields) in cases {
        // WHEN one of them is uploaded
        let reply = api.direct_upload(&form).await;

        // THEN it is refused, naming the part
        assert_refused(&reply, status, code, &fields);
    }

    // WHEN a body that is no form at all is sent
    let reply = api
        .call(Event::DirectUpload)
        .json(json!({"file": "a"}))
        .send()
        .await;

    // THEN it is a bad request, and no file was stored
    assert_eq!(reply.status, 400, "{:#}", reply.body);
    assert_eq!(api.file_count().await, 0);
}

#[tokio::test]
async fn a_token_uploads_directly_within_its_bounds_and_its_count() {
    // GIVEN a token for two images, with metadata
    let api = TestApi::new().await;
    let token = api
        .token(json!({"content_types": ["image/*"], "max_files": 2, "metadata": {"user": "u-1"}}))
        .await;
    let upload = |form: FormBody| {
        let token = token.clone();
        let api = &api;
        async move {
            api.call(Event::DirectUpload)
                .key(Some(&token))
                .form(&form)
                .send()
                .await
        }
    };

    // WHEN a form with a file outside its types is uploaded with it
    let reply = upload(FormBody::new().file("a.png", "image/png", PNG).file(
        "b.txt",
        "text/plain",
        b"text",
    ))
    .await;

    // THEN 422 naming the file's part, nothing stored, nothing counted
    assert_refused(&reply, 422, "validation_error", &["files[1].content_type"]);
    assert_eq!(api.file_count().await, 0);

    // WHEN a form within them is uploaded
    let reply = upload(FormBody::new().file("a.png", "image/png", PNG)).await;

    // THEN it is stored, with the token's metadata; the token may read it
    let file = files_of(&reply).remove(0);
    assert_eq!(file.metadata["user"], "u-1");
    let read = api
        .call(Event::GetFile)
        .key(Some(&token))
        .file(&file.file_id)
        .send()
        .await;
    assert_eq!(read.file().file_id, file.file_id);

    // WHEN two more are uploaded, which would pass max_files
    let reply = upload(FormBody::new().file("b.png", "image/png", PNG).file(
        "c.png",
        "image/png",
        PNG,
    ))
    .await;

    // THEN 403, and nothing more is stored
    assert_refused(&reply, 403, "forbidden", &[]);
    assert_eq!(api.file_count().await, 1);
}

#[tokio::test]
async fn a_tokens_form_never_reaches_a_file_it_did_not_create() {
    // GIVEN a file the application's user uploaded, verified, and started replacing
    let api = TestApi::new().await;
    let bytes = b"the application's user's file".to_vec();
    let form = FormBody::new()
        .file("report.txt", "text/plain", &bytes)
        .text("meta", r#"{"user": "u-41"}"#);
    let theirs = files_of(&api.direct_upload(&form).await).remove(0);
    let key = api.record(&theirs.file_id).await.job.unwrap().s3_key;
    api.deliver(&key).await;
    let (sha256, _) = digests(b"new content");
    let reupload = api
        .reupload(
            &theirs.file_id,
            json!({"file_size": 11, "content_type": "text/plain", "sha256": sha256}),
        )
        .await;
    assert_eq!(reupload.status, 201, "{:#}", reupload.body);
    let before = api.raw_item(&theirs.file_id).await;

    // WHEN a token sends the same bytes
    let token = api.token(json!({"max_files": 3})).await;
    let reply = api
        .call(Event::DirectUpload)
        .key(Some(&token))
        .form(&FormBody::new().file("mine.txt", "text/plain", &bytes))
        .send()
        .await;

    // THEN it gets a file of its own, as if nobody had them
    let mine = files_of(&reply).remove(0);
    assert_ne!(mine.file_id, theirs.file_id);
    assert_eq!(mine.deduplicated, None);
    assert_eq!(mine.file_name, "mine.txt");
    assert!(mine.metadata.is_empty(), "{:?}", mine.metadata);
    assert_eq!(mine.status, Status::Uploaded);

    // AND it has no right on the other file: not to read it, nor to touch its upload in progress
    for event in [
        Event::GetFile,
        Event::SignParts,
        Event::ListParts,
        Event::AbortUpload,
        Event::Complete,
    ] {
        let reply = api
            .call(event)
            .key(Some(&token))
            .file(&theirs.file_id)
            .json(json!({"part_numbers": [1]}))
            .send()
            .await;
        assert_refused(&reply, 403, "forbidden", &[]);
    }
    assert_eq!(api.raw_item(&theirs.file_id).await, before);

    // AND its own file settles as any other
    let key = api.record(&mine.file_id).await.job.unwrap().s3_key;
    api.deliver(&key).await;
    assert_eq!(api.get(&mine.file_id).await.file().status, Status::Verified);
}

#[tokio::test]
async fn the_same_bytes_twice_in_a_tokens_form_are_two_files() {
    // GIVEN content the project has verified already
    let api = TestApi::new().await;
    let form = FormBody::new().file("a.txt", "text/plain", b"twice");
    let verified = files_of(&api.direct_upload(&form).await).remove(0);
    let key = api.record(&verified.file_id).await.job.unwrap().s3_key;
    api.deliver(&key).await;

    // WHEN a token sends it twice in one form
    let token = api.token(json!({"max_files": 2})).await;
    let form =
        FormBody::new()
            .file("a.txt", "text/plain", b"twice")
            .file("b.txt", "text/plain", b"twice");
    let reply = api
        .call(Event::DirectUpload)
        .key(Some(&token))
        .form(&form)
        .send()
        .await;

    // THEN it is two new files, with the content's digest
    let files = files_of(&reply);
    assert_eq!(files.len(), 2);
    assert_ne!(files[0].file_id, files[1].file_id);
    assert!(files.iter().all(|file| file.file_id != verified.file_id));
    assert_eq!(files[0].sha256, verified.sha256);
    assert_eq!(files[1].sha256, verified.sha256);
    assert_eq!(api.file_count().await, 3);

    // AND both slots are taken
    let reply = api
        .call(Event::DirectUpload)
        .key(Some(&token))
        .form(&FormBody::new().file("c.txt", "text/plain", b"third"))
        .send()
        .await;
    assert_refused(&reply, 403, "forbidden", &[]);
}

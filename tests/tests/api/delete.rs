//! `DELETE …/files/{file_id}` against real storage: nothing of the file is left, and the changes
//! racing it (a late PUT, its S3 event) end consistent.

use integration_tests::serde_json::json;
use integration_tests::{Event, TestApi, declaration, digests};

const MIB: usize = 1 << 20;

#[tokio::test]
async fn delete_removes_the_record_the_content_and_the_upload_in_progress() {
    // GIVEN a verified file whose reupload (multipart, one part stored) is in progress
    let api = TestApi::with_config(|config| {
        config.multipart_threshold = 5 * MIB as u64;
        config.part_size = 5 * MIB as u64;
    })
    .await;
    let first = b"first version".to_vec();
    let plan = api
        .create(declaration("f.txt", "text/plain", &first, true, false))
        .await
        .plan();
    api.upload_whole(&plan, first.clone()).await;
    api.deliver(&plan.s3_key).await;
    let file_id = plan.file_id.clone();
    let download_url = api.get(&file_id).await.file().download_url.unwrap();
    let big = vec![7u8; 6 * MIB];
    let (sha256, _) = digests(&big);
    let reupload = api
        .reupload(&file_id, json!({"file_size": big.len(), "sha256": sha256}))
        .await
        .plan();
    api.put_part(reupload.url(1), big[..5 * MIB].to_vec()).await;
    assert_eq!(
        api.stored_objects(&file_id).await.len(),
        1,
        "the verified object"
    );

    // WHEN it is deleted
    let reply = api.delete(&file_id).await;

    // THEN it is gone: record, objects, the multipart upload, the old download URL, the dedup
    assert_eq!(reply.status, 204, "{:#}", reply.body);
    assert!(api.raw_item(&file_id).await.is_none());
    assert!(api.stored_objects(&file_id).await.is_empty());
    let uploads = api
        .services
        .storage
        .objects
        .client()
        .list_multipart_uploads()
        .bucket(api.services.storage.objects.bucket())
        .prefix(shared::domain::ids::file_prefix(file_id.parse().unwrap()))
        .send()
        .await
        .unwrap();
    assert!(uploads.uploads().is_empty(), "{uploads:?}");
    let old_url = api.http.get(download_url).send().await.unwrap();
    assert!(old_url.status().is_client_error(), "{}", old_url.status());
    assert_eq!(api.get(&file_id).await.status, 404);
    let again = api
        .create(declaration("f.txt", "text/plain", &first, true, false))
        .await;
    assert_eq!(again.status, 201, "deleted content is not deduplicated");

    // AND a second delete finds nothing
    assert_eq!(api.delete(&file_id).await.error_code(), "not_found");
}

#[tokio::test]
async fn an_upload_arriving_after_the_delete_is_removed_by_verify() {
    // GIVEN a file deleted before its client uploaded it
    let api = TestApi::new().await;
    let bytes = b"late bytes".to_vec();
    let plan = api
        .create(declaration("late.txt", "text/plain", &bytes, true, false))
        .await
        .plan();
    assert_eq!(api.delete(&plan.file_id).await.status, 204);

    // WHEN the client, unaware, PUTs with the URL it holds, and S3 tells verify
    api.upload_whole(&plan, bytes).await;
    assert_eq!(api.stored_objects(&plan.file_id).await.len(), 1);
    assert_eq!(
        api.deliver(&plan.s3_key).await,
        verify::Outcome::Ignored("unknown file")
    );

    // THEN nothing of the file is left
    assert!(api.stored_objects(&plan.file_id).await.is_empty());
    assert!(api.raw_item(&plan.file_id).await.is_none());
}

#[tokio::test]
async fn a_delete_with_an_idempotency_key_is_answered_again_and_other_files_stay() {
    // GIVEN two files of a project
    let api = TestApi::new().await;
    let keep = api
        .create(declaration("keep.txt", "text/plain", b"keep", false, false))
        .await
        .plan();
    let gone = api
        .create(declaration("gone.txt", "text/plain", b"gone", false, false))
        .await
        .plan();

    // WHEN one of them is deleted under an idempotency key, and the delete is retried
    let delete = || {
        api.call(Event::DeleteFile)
            .file(&gone.file_id)
            .header("Idempotency-Key", "delete-gone-1")
            .send()
    };
    let first = delete().await;
    let retry = delete().await;

    // THEN the retry gets the first answer, replayed, and only that file is gone
    assert_eq!((first.status, first.replayed), (204, false));
    assert_eq!((retry.status, retry.replayed), (204, true));
    assert_eq!(api.get(&keep.file_id).await.status, 200);
    assert_eq!(api.get(&gone.file_id).await.status, 404);

    // AND another project cannot delete the file that stays
    let other_project = api
        .call(Event::DeleteFile)
        .project("someone-else")
        .file(&keep.file_id)
        .send()
        .await;
    assert_eq!(other_project.status, 403);
    assert_eq!(api.get(&keep.file_id).await.status, 200);
}

#[tokio::test]
async fn a_delete_that_read_the_file_before_a_reupload_removes_the_reupload_too() {
    // GIVEN a verified file, read by a delete, and then reuploaded (a multipart upload opened)
    let api = TestApi::with_config(|config| {
        config.multipart_threshold = 5 * MIB as u64;
        config.part_size = 5 * MIB as u64;
    })
    .await;
    let first = b"first".to_vec();
    let plan = api
        .create(declaration("f.txt", "text/plain", &first, true, false))
        .await
        .plan();
    api.upload_whole(&plan, first).await;
    api.deliver(&plan.s3_key).await;
    let read_by_the_delete = api.record(&plan.file_id).await;
    let big = vec![1u8; 6 * MIB];
    let reupload = api
        .reupload(&plan.file_id, json!({"file_size": big.len()}))
        .await
        .plan();
    api.put_part(reupload.url(1), big[..5 * MIB].to_vec()).await;

    // WHEN the delete goes on with what it read
    shared::app::delete::delete_file(&api.services, read_by_the_delete)
        .await
        .unwrap();

    // THEN its conditional removal was refused, and it went round again: nothing is left
    assert!(api.raw_item(&plan.file_id).await.is_none());
    assert!(api.stored_objects(&plan.file_id).await.is_empty());
    let uploads = api
        .services
        .storage
        .objects
        .client()
        .list_multipart_uploads()
        .bucket(api.services.storage.objects.bucket())
        .prefix(format!("uploads/{}/", plan.file_id))
        .send()
        .await
        .unwrap();
    assert!(uploads.uploads().is_empty(), "{uploads:?}");
}

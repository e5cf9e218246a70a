//! Verify and the bucket's lifecycle rules: objects are written pending and retagged as their
//! check starts and once verified; an object gone before its check rejects the file, and the
//! object of a job replaced during its check is removed.

use super::*;

#[tokio::test]
async fn objects_are_written_pending_and_retagged_once_verified_for_the_lifecycle_rule() {
    // GIVEN uploads in parts of 5 MiB above 5 MiB
    let api = TestApi::with_config(|c| {
        c.multipart_threshold = 5 * MIB;
        c.part_size = 5 * MIB;
    })
    .await;

    // WHEN a single PUT and a multipart upload are written by clients
    let single = upload(&api, &png(12), "image/png", true, false).await;
    let bytes: Vec<u8> = (0..5 * MIB + 9).map(|i| (i % 233) as u8).collect();
    let multipart = upload_in_parts(&api, &bytes, false).await;

    // THEN both are tagged pending (the lifecycle rule expires them unless verified)
    for plan in [&single, &multipart] {
        assert_eq!(api.object_tags(&plan.s3_key).await, ["state=pending"]);
    }

    // WHEN they are verified
    assert_eq!(api.deliver(&single.s3_key).await, Outcome::Verified);
    let event = api.s3_event("s3-complete-multipart", &multipart.s3_key);
    assert_eq!(
        verify::handle(&api.services, event).await.unwrap(),
        [Outcome::Verified]
    );

    // THEN they are tagged verified, which the rule keeps
    for plan in [&single, &multipart] {
        assert_eq!(api.object_tags(&plan.s3_key).await, ["state=verified"]);
    }
}

#[tokio::test]
async fn complete_content_leaves_the_pending_rule_as_its_check_starts() {
    // GIVEN a completed upload of parts (which S3 dates by the upload's start: the pending
    // rule may expire it at once), checked in steps of 1 MiB
    let api = TestApi::with_config(step_api_config).await;

    // WHEN its check starts (S3's event handed to verify)
    let (plan, _, first) = upload_large(&api, 6 * MIB, None).await;

    // THEN from its first step on, it is tagged checking, which no lifecycle rule expires
    assert!(matches!(first, Outcome::Unfinished(_)), "{first:?}");
    assert_eq!(api.object_tags(&plan.s3_key).await, ["state=checking"]);

    // AND verified once the check ends
    assert_eq!(check_on(&api, first).await.last(), Some(&Outcome::Verified));
    assert_eq!(api.object_tags(&plan.s3_key).await, ["state=verified"]);
}

#[tokio::test]
async fn a_completed_upload_whose_object_is_gone_is_rejected_with_its_event() {
    // GIVEN a completed single PUT whose object is removed before verify looks (the lifecycle
    // rule, or a hand)
    let api = TestApi::with_config(step_api_config).await;
    let mut path = api.event_path(18).await;
    let missing = Outcome::Rejected(RejectionReason::ContentMissing);
    let single = upload(&api, &png(20), "image/png", true, false).await;
    api.complete(&single.file_id).await.file();
    api.services
        .storage
        .objects
        .delete(&single.s3_key)
        .await
        .unwrap();

    // WHEN its event arrives
    assert_eq!(api.deliver(&single.s3_key).await, missing);

    // THEN the file is rejected content_missing
    let file = api.get(&single.file_id).await.file();
    assert_eq!(file.status, Status::Rejected);
    assert_eq!(file.rejection_reason.as_deref(), Some("content_missing"));

    // AND so is a large one whose object goes between two steps of its check
    let (large, _, first) = upload_large(&api, 6 * MIB, None).await;
    api.services
        .storage
        .objects
        .delete(&large.s3_key)
        .await
        .unwrap();
    assert_eq!(check_on(&api, first).await.last(), Some(&missing));

    // AND no verdict for a PUT not yet completed, which may still come (the file expires with
    // its TTL)
    let pending = upload(&api, &png(21), "image/png", true, false).await;
    api.services
        .storage
        .objects
        .delete(&pending.s3_key)
        .await
        .unwrap();
    assert_eq!(
        api.deliver(&pending.s3_key).await,
        Outcome::Ignored("object no longer exists")
    );
    assert_eq!(
        api.get(&pending.file_id).await.file().status,
        Status::PendingUpload
    );

    // AND each rejection is a file.rejected event
    path.until("both rejections", |path| path.envelopes.len() == 2)
        .await;
    path.drain(Duration::from_secs(1)).await;
    assert_eq!(path.published_types(), ["file.rejected", "file.rejected"]);
    for envelope in &path.envelopes {
        assert_eq!(
            envelope["detail"]["data"]["rejection_reason"],
            "content_missing"
        );
    }
}

#[tokio::test]
async fn the_object_of_a_job_replaced_during_its_check_is_removed() {
    // GIVEN a check under way, its object tagged checking, when the file's job is replaced and
    // the object left behind (a reupload whose deletion of the old job's storage failed)
    let api = TestApi::with_config(step_api_config).await;
    let (plan, _, first) = upload_large(&api, 6 * MIB, None).await;
    let record = api.record(&plan.file_id).await;
    let job = record.job.clone().expect("a job");
    let newer = JobId::random();
    let replaced = UploadJob {
        job_id: newer,
        s3_key: shared::domain::ids::ObjectKey::new(record.file_id, newer).to_string(),
        checkpoint: None,
        ..job
    };
    let update = api
        .services
        .table
        .files
        .update(record, |file| {
            Ok(Some(FileRecord {
                job: Some(replaced.clone()),
                ..file.clone()
            }))
        })
        .await
        .unwrap();
    assert!(matches!(update, shared::dynamo::Update::Applied { .. }));

    // WHEN the check goes on
    assert_eq!(
        check_on(&api, first).await.last(),
        Some(&Outcome::Ignored("not the file's current upload"))
    );

    // THEN no verdict is written and the object is gone: nobody can serve it, and tagged
    // checking it would never expire
    assert!(
        !api.stored_objects(&plan.file_id)
            .await
            .contains(&plan.s3_key)
    );
}

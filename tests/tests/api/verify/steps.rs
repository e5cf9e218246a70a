//! Objects larger than one invocation's budget: checked in steps from checkpoints on the record,
//! in parallel windows, resuming after a step dies.

use super::*;

#[tokio::test]
async fn an_object_larger_than_the_budget_is_checked_in_steps_from_checkpoints() {
    // GIVEN a budget of 1 MiB per invocation and a completed upload of 12 MiB and a bit
    let api = TestApi::with_config(step_api_config).await;

    // WHEN its check starts (S3's event handed to verify)
    let (plan, bytes, first) = upload_large(&api, 12 * MIB + 3, None).await;

    // THEN the first step checked 1 MiB, checkpointed it, and the file shows it
    let file_id = plan.file_id.parse().unwrap();
    let job_id = plan.job_id.parse().unwrap();
    assert_eq!(
        first,
        Outcome::Unfinished(Continuation {
            file_id,
            job_id,
            bytes_checked: MIB
        })
    );
    let file = api.get(&plan.file_id).await.file();
    assert_eq!(
        (file.status, file.bytes_checked),
        (Status::Uploaded, Some(MIB))
    );

    // WHEN each continuation is handed on
    let outcomes = check_on(&api, first).await;

    // THEN 13 steps in all verify it, as one pass would
    assert_eq!(outcomes.len(), 13);
    assert_eq!(outcomes.last(), Some(&Outcome::Verified));
    let file = api.get(&plan.file_id).await.file();
    assert_eq!((file.status, file.bytes_checked), (Status::Verified, None));
    assert_eq!(api.download(&plan.file_id).await, bytes);

    // AND a continuation after the verdict changes nothing
    let settled = api.raw_item(&plan.file_id).await;
    let late = Continuation {
        file_id,
        job_id,
        bytes_checked: 5 * MIB,
    };
    assert_eq!(
        verify::continue_check(&api.services, &late).await.unwrap(),
        Outcome::Ignored("already settled")
    );
    assert_eq!(api.raw_item(&plan.file_id).await, settled);
}

#[tokio::test]
async fn steps_read_in_parallel_windows_from_wherever_the_last_one_stopped() {
    // GIVEN steps of a budget that is no multiple of the reads' windows (of 4 MiB), three
    // ranged GETs at a time
    let api = TestApi::with_config(|c| {
        step_api_config(c);
        c.verify_chunk_bytes = 9 * MIB + 7;
        c.verify_parallel_gets = 3;
    })
    .await;

    // WHEN an upload of 20 MiB and a bit is completed, and its check starts
    let (plan, bytes, first) = upload_large(&api, 20 * MIB + 3, None).await;

    // THEN three steps, each reading several windows at once, verify it as one pass would
    let outcomes = check_on(&api, first).await;
    assert_eq!(outcomes.len(), 3);
    assert_eq!(outcomes.last(), Some(&Outcome::Verified));
    assert_eq!(api.download(&plan.file_id).await, bytes);
}

#[tokio::test]
async fn an_object_checked_in_steps_that_differs_at_its_end_is_rejected() {
    // GIVEN a budget of 1 MiB per invocation, and the digests of 6 MiB and a bit whose last byte
    // differs from the content's
    let api = TestApi::with_config(step_api_config).await;
    let size = 6 * MIB + 5;
    let mut other: Vec<u8> = (0..size).map(|i| (i * 31 % 251) as u8).collect();
    *other.last_mut().unwrap() ^= 1;

    // WHEN the content is uploaded declared with those digests, and checked in steps
    let (_, _, first) = upload_large(&api, size, Some(digests(&other))).await;
    let outcomes = check_on(&api, first).await;

    // THEN the last of its 7 steps rejects it as a checksum mismatch
    assert_eq!(outcomes.len(), 7);
    assert_eq!(
        outcomes.last(),
        Some(&Outcome::Rejected(RejectionReason::ChecksumMismatch))
    );
}

#[tokio::test]
async fn a_step_killed_midway_resumes_from_the_last_checkpoint_and_duplicates_change_nothing() {
    // GIVEN a check in steps of 1 MiB, two steps done, storage reached through a fault proxy
    let (mut api, dependencies) = TestApi::behind_proxies(Duration::from_secs(2)).await;
    step_api_config(&mut api.services.config);
    let (plan, _, first) = upload_large(&api, 6 * MIB + 5, None).await;
    let Outcome::Unfinished(second) = first else {
        panic!("unfinished: {first:?}")
    };
    let Outcome::Unfinished(third) = verify::continue_check(&api.services, &second)
        .await
        .unwrap()
    else {
        panic!("unfinished")
    };
    assert_eq!(third.bytes_checked, 2 * MIB);
    let checkpointed = api.raw_item(&plan.file_id).await;

    // WHEN the third step dies while storage does not answer (Lambda's timeout, a crash)
    dependencies.s3.set(Fault::Blackhole);
    let killed = tokio::time::timeout(
        Duration::from_millis(500),
        verify::continue_check(&api.services, &third),
    )
    .await;
    assert!(killed.is_err(), "the step was killed");
    dependencies.s3.set(Fault::None);

    // THEN the file is as the last checkpoint left it, and the retry goes on from there
    assert_eq!(api.raw_item(&plan.file_id).await, checkpointed);
    let (once, twice) = tokio::join!(
        verify::continue_check(&api.services, &third),
        verify::continue_check(&api.services, &third),
    );
    // Two deliveries of one message at once: each goes on from the checkpoint it reads; one
    // loses its write if both read the same one, and no bytes are skipped either way.
    let mut outcomes = vec![once.unwrap(), twice.unwrap()];
    outcomes.sort_by_key(|o| matches!(o, Outcome::Ignored(_)));
    let Outcome::Unfinished(next) = outcomes[0].clone() else {
        panic!("one of them went on: {outcomes:?}")
    };
    assert!(
        matches!(
            &outcomes[1],
            Outcome::Ignored("checked on by another invocation")
        ) || matches!(&outcomes[1], Outcome::Unfinished(other) if other.bytes_checked + MIB == next.bytes_checked || other.bytes_checked == next.bytes_checked + MIB),
        "{outcomes:?}"
    );
    let all = check_on(&api, Outcome::Unfinished(next)).await;
    assert_eq!(all.last(), Some(&Outcome::Verified));
    assert_eq!(api.get(&plan.file_id).await.file().status, Status::Verified);
}

//! Issue 10, item 7: what `complete` costs as the part count grows. Parts of 5 MiB (storage's
//! minimum) are written straight to the multipart upload of a file created through the API;
//! then the two storage calls of a complete are timed, the listing (one ListParts page per
//! 1,000 parts) and the assembly, and the whole handler on another upload of the same size,
//! which assembles it (200) or, above `ASSEMBLE_INLINE_MAX_PARTS`, hands it to verify (202).

use std::time::Instant;

use aws_sdk_s3::primitives::ByteStream;
use futures_util::StreamExt;
use integration_tests::TestApi;
use integration_tests::serde_json::json;
use shared::s3::QUEUED_ASSEMBLY_TIMEOUT;

const PART: u64 = 5 << 20;

/// An upload of `parts` parts of 5 MiB, every part stored: its file id, key and upload id.
async fn stored_parts(api: &TestApi, parts: u64) -> Result<(String, String, String), String> {
    let plan = api
        .create(json!({"file_name": "parts.bin", "file_size": parts * PART}))
        .await
        .plan();
    let upload_id = plan.upload_id.clone().ok_or("not a multipart plan")?;
    let body = bytes::Bytes::from(vec![7u8; PART as usize]);
    // A client without the functions' 2 s deadline: LocalStack takes longer under this load.
    let client = &aws_sdk_s3::Client::from_conf(shared::aws::s3_config(
        &integration_tests::sdk_config().await,
        true,
    ));
    let uploads = (1..=parts).map(|number| {
        let (body, key, upload_id) = (body.clone(), plan.s3_key.clone(), upload_id.clone());
        async move {
            client
                .upload_part()
                .bucket(api.services.storage.objects.bucket())
                .key(key)
                .upload_id(upload_id)
                .part_number(number as i32)
                .body(ByteStream::from(body))
                .send()
                .await
                .map(|_| ())
                .map_err(|e| format!("UploadPart {number}: {e:?}"))
        }
    });
    let results: Vec<Result<(), String>> = futures_util::stream::iter(uploads)
        .buffer_unordered(4)
        .collect()
        .await;
    results.into_iter().collect::<Result<Vec<()>, String>>()?;
    Ok((plan.file_id, plan.s3_key, upload_id))
}

pub async fn rows(part_counts: &[u64]) -> Result<(), String> {
    let queue_url = integration_tests::verify_queue_url().await;
    let api = TestApi::with_config(|c| {
        c.multipart_threshold = PART;
        c.part_size = PART;
        c.verify_queue_url = Some(queue_url);
    })
    .await;
    for &parts in part_counts {
        // The storage calls alone.
        let (_, key, upload_id) = stored_parts(&api, parts).await?;
        let objects = &api.services.storage.objects;
        let started = Instant::now();
        let listed = objects
            .list_parts(&key, &upload_id)
            .await
            .map_err(|e| format!("{e:?}"))?
            .ok_or("no upload")?;
        let list_ms = started.elapsed().as_secs_f64() * 1000.0;
        let started = Instant::now();
        objects
            .complete_multipart_upload(&key, &upload_id, &listed, QUEUED_ASSEMBLY_TIMEOUT)
            .await
            .map_err(|e| format!("{e:?}"))?;
        let assemble_ms = started.elapsed().as_secs_f64() * 1000.0;
        let _ = objects.delete(&key).await;

        // The whole handler, on an upload of its own: it assembles, or hands the assembly over.
        let (file_id, key, upload_id) = stored_parts(&api, parts).await?;
        let started = Instant::now();
        let reply = api.complete(&file_id).await;
        let complete_ms = started.elapsed().as_secs_f64() * 1000.0;
        let inline = parts <= u64::from(api.services.config.assemble_inline_max_parts);
        if reply.status != if inline { 200 } else { 202 } {
            return Err(format!(
                "complete answered {}: {}",
                reply.status, reply.body
            ));
        }
        // Handed to verify, which does not run here: its parts go.
        let _ = objects.abort_multipart_upload(&key, &upload_id).await;
        let _ = objects.delete(&key).await;
        crate::row(
            &format!("7. complete of {parts} parts of 5 MiB"),
            format!(
                "{} in {complete_ms:.0} ms; storage alone: ListParts {list_ms:.0} ms ({} pages), assembly {assemble_ms:.0} ms",
                reply.status,
                parts.div_ceil(1000)
            ),
            format!(
                "inline assembly bound {} ms (function timeout 10 000, API Gateway 30 000)",
                shared::s3::INLINE_ASSEMBLY_TIMEOUT.as_millis()
            ),
            format!(
                "{:.2}× bound",
                assemble_ms / shared::s3::INLINE_ASSEMBLY_TIMEOUT.as_secs_f64() / 1000.0
            ),
            if inline {
                "200, assembled inline"
            } else {
                "202, assembled by verify"
            },
        );
    }
    Ok(())
}

//! Upload jobs: choose the shape, open the multipart upload, sign URLs, clean up.

use std::collections::BTreeMap;

use time::OffsetDateTime;

use crate::error::{ApiError, Detail};
use crate::model::{ContentDeclaration, FileId, JobId, UploadJob, object_key};
use crate::plan::UploadShape;
use crate::services::Services;
use crate::storage::UploadedPart;
use crate::validate::ClaimedPart;

/// Part URLs handed out at once: by create and reupload (parts 1..=100), and at most this many
/// per `POST …/parts`. 100 URLs of up to ~1.4 KB (with a session token) keep a response near
/// 140 KB, far below Lambda's 6 MB, and 100 parts of 16 MiB take minutes to upload, about the
/// lifetime of the URLs.
pub const PART_URL_BATCH: u32 = 100;

/// A job ready to be recorded, and the URLs to hand to the client.
#[derive(Debug)]
pub struct StartedJob {
    pub job: UploadJob,
    pub urls: Vec<String>,
}

/// Plans and signs a new upload of `content` for `file_id`: one signed PUT, or a multipart
/// upload with the first batch of part URLs. Writes nothing to the table.
pub async fn start_job(
    services: &Services,
    file_id: FileId,
    content: &ContentDeclaration,
    now: OffsetDateTime,
) -> Result<StartedJob, ApiError> {
    let config = &services.config;
    let job_id = JobId::random();
    let s3_key = object_key(file_id, job_id);
    let expires_at = now + config.upload_url_expiry;
    match UploadShape::for_size(
        content.file_size,
        config.multipart_threshold,
        config.part_size,
    ) {
        UploadShape::SinglePart => {
            let put = services
                .objects
                .presign_put(&s3_key, content, config.upload_url_expiry)
                .await?;
            let job = UploadJob {
                job_id,
                s3_key,
                upload_id: None,
                part_size: content.file_size,
                part_count: 1,
                expires_at,
                headers: put.headers,
            };
            Ok(StartedJob {
                job,
                urls: vec![put.url],
            })
        }
        UploadShape::Multipart {
            part_size,
            part_count,
        } => {
            let upload_id = services
                .objects
                .create_multipart_upload(&s3_key, &content.content_type)
                .await?;
            let job = UploadJob {
                job_id,
                s3_key,
                upload_id: Some(upload_id),
                part_size,
                part_count,
                expires_at,
                headers: BTreeMap::new(),
            };
            let first_batch: Vec<u32> = (1..=part_count.min(PART_URL_BATCH)).collect();
            match part_urls(services, &job, content, &first_batch).await {
                Ok(urls) => Ok(StartedJob {
                    urls: urls.into_values().collect(),
                    job,
                }),
                Err(err) => {
                    discard_storage(services, &job).await;
                    Err(err)
                }
            }
        }
    }
}

/// Fresh URLs for `part_numbers` of `job` (already validated against its part count). For a
/// single-part job, part 1 is the whole object, signed for the declared content as at creation.
pub async fn part_urls(
    services: &Services,
    job: &UploadJob,
    content: &ContentDeclaration,
    part_numbers: &[u32],
) -> Result<BTreeMap<u32, String>, ApiError> {
    let expiry = services.config.upload_url_expiry;
    match &job.upload_id {
        Some(upload_id) => {
            services
                .objects
                .presign_parts(&job.s3_key, upload_id, part_numbers, expiry)
                .await
        }
        None => {
            let url = services
                .objects
                .presign_put(&job.s3_key, content, expiry)
                .await?
                .url;
            Ok(part_numbers
                .iter()
                .map(|&part_number| (part_number, url.clone()))
                .collect())
        }
    }
}

/// Best effort: aborts the job's multipart upload and deletes its object. The delete follows
/// the abort even when the abort succeeded, because a complete racing it may still have
/// assembled the object. What this misses, the bucket's lifecycle rule (incomplete uploads) or
/// nothing (a stray object) is left with.
pub async fn discard_storage(services: &Services, job: &UploadJob) {
    let aborted = match &job.upload_id {
        Some(upload_id) => services
            .objects
            .abort_multipart_upload(&job.s3_key, upload_id)
            .await
            .map(|_| ()),
        None => Ok(()),
    };
    let result = aborted.and(services.objects.delete(&job.s3_key).await);
    if let Err(err) = result {
        tracing::warn!(job_id = %job.job_id, error = ?err, "could not discard the storage of a job");
    }
}

/// The parts to assemble, in order, if storage holds every planned part at its planned size
/// (and, when the client listed its ETags, with those ETags); else 409 `upload_incomplete`
/// naming the missing, wrong-sized and mismatched parts.
pub fn parts_to_assemble(
    job: &UploadJob,
    file_size: u64,
    stored: &[UploadedPart],
    claimed: Option<&[ClaimedPart]>,
) -> Result<Vec<UploadedPart>, ApiError> {
    let shape = job.shape();
    let (mut missing, mut wrong_size, mut mismatched) = (Vec::new(), Vec::new(), Vec::new());
    let mut parts = Vec::with_capacity(job.part_count as usize);
    for number in 1..=job.part_count {
        let Some(part) = stored.iter().find(|part| part.part_number == number) else {
            missing.push(number);
            continue;
        };
        if Some(part.size) != shape.expected_part_size(file_size, number) {
            wrong_size.push(number);
        }
        let claim = claimed.and_then(|claimed| claimed.iter().find(|c| c.part_number == number));
        if claim.is_some_and(|claim| claim.etag.trim_matches('"') != part.etag.trim_matches('"')) {
            mismatched.push(number);
        }
        parts.push(part.clone());
    }
    let mut details = Vec::new();
    if !missing.is_empty() {
        details.push(
            Detail::reason(
                "upload_incomplete",
                format!("{} of {} parts are missing", missing.len(), job.part_count),
            )
            .with_parts(missing),
        );
    }
    if !wrong_size.is_empty() {
        details.push(
            Detail::reason(
                "upload_incomplete",
                format!(
                    "parts must be {} bytes, the last one the remainder",
                    job.part_size
                ),
            )
            .with_parts(wrong_size),
        );
    }
    if !mismatched.is_empty() {
        details.push(
            Detail::reason(
                "upload_incomplete",
                "the stored parts have other ETags than the ones given",
            )
            .with_parts(mismatched),
        );
    }
    if details.is_empty() {
        Ok(parts)
    } else {
        Err(ApiError::Conflict {
            message: "the upload is incomplete".into(),
            details,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timestamp;

    const MIB: u64 = 1 << 20;

    fn job() -> UploadJob {
        UploadJob {
            job_id: JobId::random(),
            s3_key: "k".into(),
            upload_id: Some("u".into()),
            part_size: 5 * MIB,
            part_count: 4,
            expires_at: timestamp::now(),
            headers: BTreeMap::new(),
        }
    }

    fn part(part_number: u32, size: u64) -> UploadedPart {
        UploadedPart {
            part_number,
            size,
            etag: format!("\"etag{part_number}\""),
        }
    }

    const FILE_SIZE: u64 = 15 * MIB + 1234;

    #[test]
    fn all_parts_at_their_planned_sizes_assemble_in_order() {
        let stored = [
            part(2, 5 * MIB),
            part(1, 5 * MIB),
            part(4, 1234),
            part(3, 5 * MIB),
        ];
        let mut sorted = stored.to_vec();
        sorted.sort_by_key(|p| p.part_number);
        assert_eq!(
            parts_to_assemble(&job(), FILE_SIZE, &stored, None).unwrap(),
            sorted
        );
    }

    #[test]
    fn missing_and_wrong_sized_parts_are_named() {
        let stored = [part(1, 5 * MIB), part(2, 5 * MIB - 1), part(4, 1235)];
        let err = parts_to_assemble(&job(), FILE_SIZE, &stored, None).unwrap_err();
        let details = err.details();
        assert_eq!(err.status().as_u16(), 409);
        assert_eq!(details[0].part_numbers, [3]);
        assert_eq!(details[1].part_numbers, [2, 4]);
        assert!(
            details
                .iter()
                .all(|d| d.reason == Some("upload_incomplete"))
        );
    }

    #[test]
    fn claimed_etags_must_match_with_or_without_quotes() {
        let stored = [
            part(1, 5 * MIB),
            part(2, 5 * MIB),
            part(3, 5 * MIB),
            part(4, 1234),
        ];
        let claimed = [
            ClaimedPart {
                part_number: 1,
                etag: "etag1".into(),
            },
            ClaimedPart {
                part_number: 3,
                etag: "\"other\"".into(),
            },
        ];
        let err = parts_to_assemble(&job(), FILE_SIZE, &stored, Some(&claimed)).unwrap_err();
        assert_eq!(err.details()[0].part_numbers, [3]);
    }
}

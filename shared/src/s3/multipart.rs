//! Multipart uploads: open, list the parts storage has, assemble, abort.

use std::time::Duration;

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::types::{ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart};

use super::ObjectStore;
use super::objects::PENDING_TAGGING;
use crate::aws;
use crate::domain::parts::UploadedPart;
use crate::error::Failure;

/// S3 answers 404 `NoSuchUpload` for an upload id that was completed, aborted or never existed.
fn is_no_such_upload<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> bool {
    let status = err
        .raw_response()
        .map(|response| response.status().as_u16());
    match err.code() {
        Some(code) => code == "NoSuchUpload",
        None => status == Some(404),
    }
}

/// S3 may take seconds to assemble thousands of parts (minutes, AWS warns, for the largest), and
/// answers only when it is done: the one call allowed longer than `DEPENDENCY_TIMEOUT_MS`. Inside
/// `complete`, within the API functions' 10-second timeout (template.yaml)…
pub const INLINE_ASSEMBLY_TIMEOUT: Duration = Duration::from_secs(8);
/// …and inside verify, within its 15 minutes.
pub const QUEUED_ASSEMBLY_TIMEOUT: Duration = Duration::from_secs(600);

impl ObjectStore {
    /// Starts a multipart upload whose object will have `content_type`; returns its upload id.
    /// With `part_checksums`, every part is sent with its SHA-256, which storage checks (it
    /// refuses a part's checksum of an upload started without one).
    pub async fn create_multipart_upload(
        &self,
        key: &str,
        content_type: &str,
        part_checksums: bool,
    ) -> Result<String, Failure> {
        let output = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .set_checksum_algorithm(part_checksums.then_some(ChecksumAlgorithm::Sha256))
            .tagging(PENDING_TAGGING)
            .send()
            .await
            .map_err(|err| aws::failure("CreateMultipartUpload", err))?;
        output
            .upload_id
            .ok_or_else(|| Failure::Internal("CreateMultipartUpload returned no upload id".into()))
    }

    /// Every part uploaded so far, in part-number order; `None` when the upload no longer exists
    /// (completed or aborted).
    pub async fn list_parts(
        &self,
        key: &str,
        upload_id: &str,
    ) -> Result<Option<Vec<UploadedPart>>, Failure> {
        let mut parts = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let result = self
                .client
                .list_parts()
                .bucket(&self.bucket)
                .key(key)
                .upload_id(upload_id)
                .set_part_number_marker(marker.take())
                .send()
                .await;
            let output = match result {
                Ok(output) => output,
                Err(err) if is_no_such_upload(&err) => {
                    return Ok(None);
                }
                Err(err) => return Err(aws::failure("ListParts", err)),
            };
            for part in output.parts() {
                parts.push(UploadedPart {
                    part_number: part
                        .part_number
                        .and_then(|n| u32::try_from(n).ok())
                        .unwrap_or(0),
                    size: part.size.and_then(|n| u64::try_from(n).ok()).unwrap_or(0),
                    etag: part.e_tag.clone().unwrap_or_default(),
                    checksum_sha256: part.checksum_sha256.clone(),
                });
            }
            match (output.is_truncated, output.next_part_number_marker) {
                (Some(true), Some(next)) => marker = Some(next),
                _ => break,
            }
        }
        parts.sort_by_key(|part| part.part_number);
        Ok(Some(parts))
    }

    /// The multipart uploads open under `prefix` that began before `initiated_before`, oldest
    /// first, as (key, upload id, initiation): for operators (`upload-admin stuck`).
    pub async fn open_uploads(
        &self,
        prefix: &str,
        initiated_before: time::OffsetDateTime,
    ) -> Result<Vec<(String, String, time::OffsetDateTime)>, Failure> {
        let mut uploads = Vec::new();
        let (mut key_marker, mut upload_marker) = (None, None);
        loop {
            let page = self
                .client
                .list_multipart_uploads()
                .bucket(&self.bucket)
                .prefix(prefix)
                .set_key_marker(key_marker.take())
                .set_upload_id_marker(upload_marker.take())
                .send()
                .await
                .map_err(|err| aws::failure("ListMultipartUploads", err))?;
            for upload in page.uploads() {
                let (Some(key), Some(upload_id), Some(initiated)) =
                    (upload.key(), upload.upload_id(), upload.initiated())
                else {
                    continue;
                };
                let Ok(initiated) = time::OffsetDateTime::from_unix_timestamp(initiated.secs())
                else {
                    continue;
                };
                if initiated < initiated_before {
                    uploads.push((key.to_owned(), upload_id.to_owned(), initiated));
                }
            }
            if page.is_truncated() != Some(true) {
                break;
            }
            key_marker = page.next_key_marker().map(str::to_owned);
            upload_marker = page.next_upload_id_marker().map(str::to_owned);
        }
        uploads.sort_by_key(|(_, _, initiated)| *initiated);
        Ok(uploads)
    }

    /// Whether storage still has the multipart upload (a lifecycle rule or someone may have
    /// aborted it): one ListParts of at most one part.
    pub async fn multipart_upload_exists(
        &self,
        key: &str,
        upload_id: &str,
    ) -> Result<bool, Failure> {
        let result = self
            .client
            .list_parts()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .max_parts(1)
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(err) if is_no_such_upload(&err) => Ok(false),
            Err(err) => Err(aws::failure("ListParts", err)),
        }
    }

    /// Assembles the object from `parts` (number, ETag and, for an upload with part checksums,
    /// the SHA-256 storage must be given back for each, in order) within `timeout`; `false`
    /// when the upload no longer exists (completed by a racing call, or aborted).
    pub async fn complete_multipart_upload(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[UploadedPart],
        timeout: Duration,
    ) -> Result<bool, Failure> {
        let completed = parts
            .iter()
            .map(|part| {
                CompletedPart::builder()
                    .part_number(i32::try_from(part.part_number).unwrap_or(i32::MAX))
                    .e_tag(&part.etag)
                    .set_checksum_sha256(part.checksum_sha256.clone())
                    .build()
            })
            .collect();
        let result = self
            .client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(completed))
                    .build(),
            )
            .customize()
            .config_override(
                aws_sdk_s3::config::Builder::default().timeout_config(aws::timeouts(timeout)),
            )
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(err) if is_no_such_upload(&err) => Ok(false),
            Err(err) => Err(aws::failure("CompleteMultipartUpload", err)),
        }
    }

    /// Aborts a multipart upload; `false` when it no longer existed (completed or aborted).
    pub async fn abort_multipart_upload(
        &self,
        key: &str,
        upload_id: &str,
    ) -> Result<bool, Failure> {
        let result = self
            .client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(err) if is_no_such_upload(&err) => Ok(false),
            Err(err) => Err(aws::failure("AbortMultipartUpload", err)),
        }
    }
}

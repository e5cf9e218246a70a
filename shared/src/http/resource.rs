//! The JSON shapes of `docs/API.md`: the file resource and the upload plan.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::app::Services;
use crate::domain::error::ApiError;
use crate::domain::timestamp;
use crate::domain::values::{FileName, Md5, MediaType, Metadata, Sha256};
use crate::domain::{FileId, FileRecord, FileStatus, JobId, RejectionReason, UploadJob};

#[derive(Debug, Serialize)]
pub struct UploadPlan {
    pub file_id: FileId,
    pub job_id: JobId,
    pub status: FileStatus,
    pub s3_key: String,
    pub method: &'static str,
    pub headers: BTreeMap<String, String>,
    pub urls: Vec<String>,
    pub upload_id: Option<String>,
    pub part_size: u64,
    pub part_count: u32,
    pub expires_at: String,
}

impl UploadPlan {
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self)
            .unwrap_or_else(|err| unreachable!("an UploadPlan always serializes: {err}"))
    }

    pub fn new(file_id: FileId, job: &UploadJob, urls: Vec<String>) -> Self {
        Self {
            file_id,
            job_id: job.job_id,
            status: FileStatus::PendingUpload,
            s3_key: job.s3_key.clone(),
            method: "PUT",
            headers: job.headers.clone(),
            urls,
            upload_id: job.upload_id.clone(),
            part_size: job.part_size,
            part_count: job.part_count,
            expires_at: timestamp::format(job.expires_at),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct FileResource {
    pub file_id: FileId,
    pub project_id: String,
    pub file_name: FileName,
    pub content_type: MediaType,
    pub file_size: u64,
    pub sha256: Option<Sha256>,
    pub md5: Option<Md5>,
    pub metadata: Metadata,
    pub status: FileStatus,
    pub rejection_reason: Option<RejectionReason>,
    pub created_at: String,
    pub updated_at: String,
    pub verified_at: Option<String>,
    /// The upload in progress. URLs are handed out only by create, reupload and `POST …/parts`,
    /// so that listings never carry live credentials; `urls` is empty here.
    pub upload: Option<UploadPlan>,
    pub download_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deduplicated: Option<bool>,
}

impl FileResource {
    /// Renders `record`, presigning a download URL for its verified version if it has one.
    pub async fn render(services: &Services, record: &FileRecord) -> Result<Self, ApiError> {
        let download_url = match &record.verified {
            Some(verified) => Some(
                services
                    .presigner
                    .presign_download(
                        &verified.s3_key,
                        verified.content.file_name.as_str(),
                        verified.content.content_type.as_str(),
                        services.config.download_url_expiry,
                    )
                    .await?,
            ),
            None => None,
        };
        let upload = match (&record.job, record.status) {
            (Some(job), FileStatus::PendingUpload) => {
                Some(UploadPlan::new(record.file_id, job, Vec::new()))
            }
            _ => None,
        };
        Ok(Self {
            file_id: record.file_id,
            project_id: record.project_id.clone(),
            file_name: record.content.file_name.clone(),
            content_type: record.content.content_type.clone(),
            file_size: record.content.file_size,
            sha256: record.content.sha256,
            md5: record.content.md5,
            metadata: record.metadata.clone(),
            status: record.status,
            rejection_reason: record.rejection_reason,
            created_at: timestamp::format(record.created_at),
            updated_at: timestamp::format(record.updated_at),
            verified_at: record
                .verified
                .as_ref()
                .map(|v| timestamp::format(v.verified_at)),
            upload,
            download_url,
            deduplicated: None,
        })
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self)
            .unwrap_or_else(|err| unreachable!("a FileResource always serializes: {err}"))
    }
}

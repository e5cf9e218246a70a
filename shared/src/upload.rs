//! Starting an upload job: choose its shape, sign its URLs, describe it.

use time::OffsetDateTime;

use crate::error::ApiError;
use crate::model::{ContentDeclaration, FileId, JobId, UploadJob, object_key};
use crate::plan::UploadShape;
use crate::services::Services;

/// A job ready to be recorded, and the URLs to hand to the client.
#[derive(Debug)]
pub struct StartedJob {
    pub job: UploadJob,
    pub urls: Vec<String>,
}

/// Plans and signs a new upload of `content` for `file_id`. Writes nothing to the table.
pub async fn start_job(
    services: &Services,
    file_id: FileId,
    content: &ContentDeclaration,
    now: OffsetDateTime,
) -> Result<StartedJob, ApiError> {
    let config = &services.config;
    let shape = UploadShape::for_size(
        content.file_size,
        config.multipart_threshold,
        config.part_size,
    );
    if let UploadShape::Multipart { .. } = shape {
        return Err(ApiError::invalid(
            "file_size",
            format!(
                "files above {} bytes need a multipart upload, which this deployment does not offer yet",
                config.multipart_threshold
            ),
        ));
    }
    let job_id = JobId::random();
    let s3_key = object_key(file_id, job_id);
    let put = services
        .objects
        .presign_put(&s3_key, content, config.upload_url_expiry)
        .await?;
    Ok(StartedJob {
        job: UploadJob {
            job_id,
            s3_key,
            upload_id: None,
            part_size: content.file_size,
            part_count: 1,
            expires_at: now + config.upload_url_expiry,
            headers: put.headers,
        },
        urls: vec![put.url],
    })
}

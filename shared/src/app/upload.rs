//! Upload jobs: choose the shape, open the multipart upload, sign URLs, clean up.

use std::collections::BTreeMap;
use std::time::Duration;

use time::OffsetDateTime;

use crate::app::{Services, release};
use crate::domain::error::Refusal;
use crate::domain::ids::{FileId, JobId, ObjectKey};
use crate::domain::parts::{ReportedPart, RequestedPart, UploadedPart, parts_to_assemble};
use crate::domain::plan::UploadShape;
use crate::domain::request::UploadRequest;
use crate::domain::storage;
use crate::domain::timestamp;
use crate::domain::token::UploadToken;
use crate::domain::{ContentDeclaration, FileRecord, UploadJob};
use crate::dynamo::Update;
use crate::error::{Error, Failure};
use crate::s3::{PartToSign, PartUrls};

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
/// upload with the first batch of part URLs. With `part_checksums` no URL is handed out: the
/// client asks for each part's once it has hashed the part. Writes nothing to the table.
pub async fn start_job(
    services: &Services,
    file_id: FileId,
    content: &ContentDeclaration,
    part_checksums: bool,
    now: OffsetDateTime,
) -> Result<StartedJob, Error> {
    let config = &services.config;
    let job_id = JobId::random();
    let s3_key = ObjectKey::new(file_id, job_id).to_string();
    match UploadShape::for_size(
        content.file_size,
        config.multipart_threshold,
        config.part_size,
    ) {
        UploadShape::SinglePart => {
            let put = services
                .storage
                .presigner
                .presign_put(&s3_key, content, config.upload_url_expiry)
                .await?;
            let job = UploadJob {
                job_id,
                s3_key,
                upload_id: None,
                part_size: content.file_size,
                part_count: 1,
                expires_at: put.expires_at,
                headers: put.headers,
                part_checksums,
                checkpoint: None,
            };
            Ok(StartedJob {
                job,
                urls: if part_checksums {
                    Vec::new()
                } else {
                    vec![put.url]
                },
            })
        }
        UploadShape::Multipart {
            part_size,
            part_count,
        } => {
            let upload_id = services
                .storage
                .objects
                .create_multipart_upload(&s3_key, content.content_type.as_str(), part_checksums)
                .await?;
            let mut job = UploadJob {
                job_id,
                s3_key,
                upload_id: Some(upload_id),
                part_size,
                part_count,
                // Until the URLs are signed, which tells how long they last (with part
                // checksums, none are signed yet).
                expires_at: now,
                headers: BTreeMap::new(),
                part_checksums,
                checkpoint: None,
            };
            if part_checksums {
                return Ok(StartedJob {
                    job,
                    urls: Vec::new(),
                });
            }
            let first_batch: Vec<RequestedPart> = (1..=part_count.min(PART_URL_BATCH))
                .map(RequestedPart::unhashed)
                .collect();
            match part_urls(services, &job, content, &first_batch).await {
                Ok(signed) => {
                    job.expires_at = signed.expires_at;
                    Ok(StartedJob {
                        urls: signed.urls.into_values().collect(),
                        job,
                    })
                }
                Err(err) => {
                    // No record names the job yet: all of it is freed.
                    release::best_effort(&services.storage.objects, &job.storage()).await;
                    Err(err)
                }
            }
        }
    }
}

/// The project's verified file with `content`, which an application declaring it is answered
/// with instead of a new file. Never for an upload token: its rights are exactly the files it
/// creates, and answering it with the project's existing file would hand it another caller's
/// file (its id, name and metadata, and the right to finish its uploads), and an answer that
/// tells whether some content exists.
pub async fn deduplicated(
    services: &Services,
    project_id: &str,
    token: Option<&UploadToken>,
    content: &ContentDeclaration,
) -> Result<Option<FileRecord>, Error> {
    match (token, &content.sha256) {
        (None, Some(sha256)) => {
            (services.table.files)
                .find_verified_by_content(project_id, sha256, content.file_size)
                .await
        }
        _ => Ok(None),
    }
}

/// Starts a new upload of new content on `file` (reupload): the verified version, if any,
/// stays served until the new content is verified, and an upload still in progress is
/// replaced, its storage released. The new job's URLs sign the content, not the file's state,
/// so they survive a retry.
pub async fn start_again(
    services: &Services,
    file: FileRecord,
    declared: &UploadRequest,
) -> Result<StartedJob, Error> {
    let now = timestamp::now();
    let content = declared.content(&file.content.file_name);
    let file_id = file.file_id;
    let started = start_job(services, file_id, &content, declared.part_checksums, now).await?;
    let (job, pending_ttl) = (&started.job, services.config.pending_ttl);
    let update = (services.table.files)
        .update(file, |file| {
            Ok(Some(file.start_upload(
                declared,
                job.clone(),
                now,
                pending_ttl,
            )))
        })
        .await;
    let freed = match &update {
        // What the job it replaced holds.
        Ok(Update::Applied { before, after }) => storage::freed(before, Some(after)),
        // The file may hold the new job after all: then its upload stays.
        Err(err) if err.may_have_applied() => Vec::new(),
        // No record names the new job.
        _ => job.storage(),
    };
    release::best_effort(&services.storage.objects, &freed).await;
    match update? {
        Update::Applied { .. } => Ok(started),
        _ => Err(Failure::Internal("starting an upload is never refused".into()).into()),
    }
}

/// Aborts `file`'s upload in progress: the file falls back to its verified version, or is
/// `rejected` with `upload_aborted` (see `FileRecord::abort_upload`). Recorded first, so that
/// a racing complete can no longer succeed; then storage is released. Answers the file as it
/// is now (aborted before: as it was).
pub async fn abort(services: &Services, file: FileRecord) -> Result<FileRecord, Error> {
    let (now, pending_ttl) = (timestamp::now(), services.config.pending_ttl);
    match (services.table.files)
        .update(file, |file| file.abort_upload(now, pending_ttl).map(Some))
        .await?
    {
        Update::Applied { before, after } => {
            let freed = storage::freed(&before, Some(&after));
            release::best_effort(&services.storage.objects, &freed).await;
            tracing::info!(file_id = %after.file_id, "upload aborted");
            Ok(after)
        }
        Update::Unchanged(file) => Ok(file),
        Update::Refused(refusal, _) => Err(refusal.into()),
    }
}

/// Fresh URLs for more `parts` of the upload `job` in progress: 409 `upload_expired` when
/// storage no longer has its multipart upload, whose URLs would only fail, part by part.
pub async fn more_part_urls(
    services: &Services,
    job: &UploadJob,
    content: &ContentDeclaration,
    parts: &[RequestedPart],
) -> Result<PartUrls, Error> {
    if let Some(upload_id) = &job.upload_id
        && !(services.storage.objects)
            .multipart_upload_exists(&job.s3_key, upload_id)
            .await?
    {
        return Err(Refusal::upload_expired().into());
    }
    part_urls(services, job, content, parts).await
}

/// The parts of the upload `job` already in storage (every page of ListParts), for resuming:
/// a single PUT's object is its one part.
pub async fn stored_parts(
    services: &Services,
    job: &UploadJob,
) -> Result<Vec<UploadedPart>, Error> {
    Ok(match &job.upload_id {
        Some(upload_id) => services
            .storage
            .objects
            .list_parts(&job.s3_key, upload_id)
            .await?
            .ok_or_else(Refusal::upload_expired)?,
        None => match services.storage.objects.head(&job.s3_key).await? {
            Some(head) => vec![UploadedPart {
                part_number: 1,
                size: head.size,
                etag: head.etag.unwrap_or_default(),
                checksum_sha256: head.checksum_sha256,
            }],
            None => Vec::new(),
        },
    })
}

/// Fresh URLs for `parts` of `job` (already validated against its part count and checksums).
/// For a single-part job, part 1 is the whole object, signed for the declared content as at
/// creation, and for the part's SHA-256 when one is given (the file's, then).
pub async fn part_urls(
    services: &Services,
    job: &UploadJob,
    content: &ContentDeclaration,
    parts: &[RequestedPart],
) -> Result<PartUrls, Error> {
    let expiry = services.config.upload_url_expiry;
    match &job.upload_id {
        Some(upload_id) => {
            let shape = job.shape();
            let parts = parts
                .iter()
                .map(|part| {
                    let length = shape
                        .expected_part_size(content.file_size, part.number)
                        .ok_or_else(|| {
                            Failure::Internal(format!(
                                "part {} is not a part of the job",
                                part.number
                            ))
                        })?;
                    Ok(PartToSign {
                        number: part.number,
                        length,
                        sha256: part.sha256,
                    })
                })
                .collect::<Result<Vec<_>, Error>>()?;
            services
                .storage
                .presigner
                .presign_parts(&job.s3_key, upload_id, &parts, expiry)
                .await
                .map_err(Error::from)
        }
        None => {
            let sha256 = parts.iter().find_map(|part| part.sha256);
            let signed = ContentDeclaration {
                sha256: content.sha256.or(sha256),
                ..content.clone()
            };
            let put = services
                .storage
                .presigner
                .presign_put(&job.s3_key, &signed, expiry)
                .await?;
            Ok(PartUrls {
                urls: parts
                    .iter()
                    .map(|part| (part.number, put.url.clone()))
                    .collect(),
                headers: parts
                    .iter()
                    .filter_map(|part| {
                        let sha256 = part.sha256?;
                        let part = PartToSign {
                            number: part.number,
                            length: content.file_size,
                            sha256: Some(sha256),
                        };
                        Some((part.number, part.headers()))
                    })
                    .collect(),
                expires_at: put.expires_at,
            })
        }
    }
}

/// Every stored part of the multipart upload `upload_id` of `job`, checked against the plan for
/// a file of `file_size` (and the parts the client reported): what storage is to assemble. `None` when
/// the upload no longer exists: assembled already (by a racing or earlier call), or aborted.
pub async fn stored_parts_to_assemble(
    services: &Services,
    job: &UploadJob,
    upload_id: &str,
    file_size: u64,
    reported: Option<&[ReportedPart]>,
) -> Result<Option<Vec<UploadedPart>>, Error> {
    let Some(stored) = services
        .storage
        .objects
        .list_parts(&job.s3_key, upload_id)
        .await?
    else {
        return Ok(None);
    };
    parts_to_assemble(job, file_size, &stored, reported)
        .map(Some)
        .map_err(Error::from)
}

/// What became of asking storage to assemble a multipart upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Assembled {
    /// Storage assembled it now: the object's `ObjectCreated` event is on its way.
    Now,
    /// Storage no longer has the upload: assembled already (by a racing or earlier call), or
    /// aborted.
    UploadGone,
    /// Another request is assembling it (its claim is live); this one did nothing.
    Elsewhere,
}

/// Has storage assemble `parts` of the job's multipart upload within `timeout`, one request at
/// a time: the first to claim it assembles, the others leave it to that one. A failed assembly
/// releases its claim, so that a retry may assemble at once.
pub async fn assemble(
    services: &Services,
    file_id: FileId,
    job: &UploadJob,
    upload_id: &str,
    parts: &[UploadedPart],
    timeout: Duration,
) -> Result<Assembled, Error> {
    let files = &services.table.files;
    let now = timestamp::now();
    let Some(claim) = files
        .claim_assembly(file_id, job.job_id, now, timeout)
        .await?
    else {
        return Ok(Assembled::Elsewhere);
    };
    let assembled = services
        .storage
        .objects
        .complete_multipart_upload(&job.s3_key, upload_id, parts, timeout)
        .await;
    if assembled.is_err() {
        files.release_assembly(&claim).await;
    }
    Ok(match assembled? {
        true => Assembled::Now,
        false => Assembled::UploadGone,
    })
}

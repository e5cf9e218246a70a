//! The direct upload (`POST …/uploads`): small files whose bytes come with the request. Each file
//! is declared (its record written first, pending, so that the verify trigger knows it), stored
//! with the digests computed here (storage checks them as it takes the bytes), then marked
//! `uploaded`; the verify trigger settles it as it settles any upload. For an API key, content the
//! project has verified already comes back as that file; a token's files are always its own (see
//! [`upload`]).
//!
//! All or nothing: if one file cannot be stored, every file this request created is deleted
//! again (record and object, as `DELETE …/files/{id}` does) and a token's slots are given back.

use std::collections::BTreeMap;

use bytes::Bytes;
use md5::Md5;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::app::{Services, delete, upload};
use crate::domain::ids::ObjectKey;
use crate::domain::token::UploadToken;
use crate::domain::values::{self, FileName, MediaType, Metadata};
use crate::domain::{ContentDeclaration, FileId, FileRecord, JobId, UploadJob};
use crate::dynamo::Update;
use crate::error::Error;

/// One file of the form, checked: what it is declared as, and its bytes.
#[derive(Debug, Clone)]
pub struct SentFile {
    pub content: ContentDeclaration,
    pub metadata: Metadata,
    pub bytes: Bytes,
}

impl SentFile {
    /// `bytes` named and typed as the form says, with their SHA-256 and MD5.
    pub fn new(
        file_name: FileName,
        content_type: MediaType,
        metadata: Metadata,
        bytes: Bytes,
    ) -> Self {
        let content = ContentDeclaration {
            file_name,
            content_type,
            file_size: bytes.len() as u64,
            sha256: Some(values::Sha256::from_bytes(Sha256::digest(&bytes).into())),
            md5: Some(values::Md5::from_bytes(Md5::digest(&bytes).into())),
        };
        Self {
            content,
            metadata,
            bytes,
        }
    }
}

/// What became of a sent file.
#[derive(Debug, Clone)]
pub enum Filed {
    /// A new file, uploaded (or already settled, if the verify trigger was quick).
    Created(FileRecord),
    /// The project's verified file with the same content.
    Deduplicated(FileRecord),
}

/// Stores `files` for `project_id`, counting them against `token` when a token sends them. With
/// an API key, a file whose content the project has verified already comes back as that file;
/// with a token, every file is a new one, so the same bytes twice in a form are two files.
pub async fn upload(
    services: &Services,
    project_id: &str,
    token: Option<&UploadToken>,
    files: Vec<SentFile>,
) -> Result<Vec<Filed>, Error> {
    let now = crate::domain::timestamp::now();
    let mut planned = Vec::with_capacity(files.len());
    for sent in files {
        let existing = upload::deduplicated(services, project_id, token, &sent.content).await?;
        planned.push(match existing {
            // The bytes are here, so the sender has shown it holds this content.
            Some(existing) => Planned::Existing(Box::new(existing)),
            None => Planned::New(FileId::random(), sent),
        });
    }
    let ids: Vec<FileId> = planned.iter().map(Planned::file_id).collect();
    if let Some(token) = token {
        services.table.tokens.claim(token, &ids, now).await?;
    }
    let mut created = Vec::new();
    match store(services, project_id, planned, now, &mut created).await {
        Ok(outcomes) => Ok(outcomes),
        Err(err) => {
            for record in created {
                let file_id = record.file_id;
                if let Err(undo) = delete::delete_file(services, record).await {
                    // Findable: the file is pending and expires with its TTL, its object with
                    // the bucket's rule for pending objects.
                    tracing::error!(file_id = %file_id, error = %undo, "a failed direct upload left a file behind");
                }
            }
            if let Some(token) = token {
                services.table.tokens.release(token, &ids).await;
            }
            Err(err)
        }
    }
}

enum Planned {
    Existing(Box<FileRecord>),
    New(FileId, SentFile),
}

impl Planned {
    fn file_id(&self) -> FileId {
        match self {
            Planned::Existing(record) => record.file_id,
            Planned::New(file_id, _) => *file_id,
        }
    }
}

/// Declares and stores each new file, then marks them all uploaded; `created` collects every
/// record written, for the caller to undo on failure.
async fn store(
    services: &Services,
    project_id: &str,
    planned: Vec<Planned>,
    now: OffsetDateTime,
    created: &mut Vec<FileRecord>,
) -> Result<Vec<Filed>, Error> {
    let mut stored = Vec::with_capacity(planned.len());
    for plan in planned {
        let (file_id, sent) = match plan {
            Planned::Existing(record) => {
                stored.push(Filed::Deduplicated(*record));
                continue;
            }
            Planned::New(file_id, sent) => (file_id, sent),
        };
        let job_id = JobId::random();
        let job = UploadJob {
            job_id,
            s3_key: ObjectKey::new(file_id, job_id).to_string(),
            upload_id: None,
            part_size: sent.content.file_size,
            part_count: 1,
            // No URL is handed out for it.
            expires_at: now,
            headers: BTreeMap::new(),
            part_checksums: false,
            checkpoint: None,
        };
        let record = FileRecord::declare(
            file_id,
            project_id.to_owned(),
            sent.content.clone(),
            sent.metadata,
            job.clone(),
            now,
            services.config.pending_ttl,
        );
        services.table.files.insert_new(&record, None).await?;
        created.push(record.clone());
        services
            .storage
            .objects
            .put(&job.s3_key, &sent.content, sent.bytes)
            .await?;
        stored.push(Filed::Created(record));
    }
    for outcome in &mut stored {
        let Filed::Created(record) = outcome else {
            continue;
        };
        let Some(job_id) = record.job.as_ref().map(|job| job.job_id) else {
            continue;
        };
        *record = match services
            .table
            .files
            .update(record.clone(), |file| file.mark_uploaded(job_id, now))
            .await?
        {
            Update::Applied { after, .. } => after,
            // Settled by the verify trigger already.
            Update::Unchanged(file) => file,
            Update::Refused(refusal, _) => return Err(refusal.into()),
        };
    }
    Ok(stored)
}

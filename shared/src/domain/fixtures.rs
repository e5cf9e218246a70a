//! Values for unit tests: a declared content and files at each step of the lifecycle.

use std::collections::BTreeMap;
use std::time::Duration;

use time::OffsetDateTime;

use crate::domain::file::{RejectionReason, Verdict};
use crate::domain::ids::ObjectKey;
use crate::domain::request::UploadRequest;
use crate::domain::timestamp;
use crate::domain::values::{FileName, MediaType, Metadata, Sha256};
use crate::domain::{ContentDeclaration, FileId, FileRecord, JobId, UploadJob};

pub const SHA256: &str = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=";
pub const PENDING_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

pub fn content(file_name: &str, content_type: &str, file_size: u64) -> ContentDeclaration {
    ContentDeclaration {
        file_name: FileName::parse(file_name).unwrap(),
        content_type: MediaType::parse(content_type).unwrap(),
        file_size,
        sha256: Some(Sha256::parse(SHA256).unwrap()),
        md5: None,
    }
}

/// A multipart job of 3 parts of 5 MiB for `file_id`.
pub fn job(file_id: FileId, now: OffsetDateTime) -> UploadJob {
    let job_id = JobId::random();
    UploadJob {
        job_id,
        s3_key: ObjectKey::new(file_id, job_id).to_string(),
        upload_id: Some("upload-1".into()),
        part_size: 5 << 20,
        part_count: 3,
        expires_at: now,
        headers: BTreeMap::from([("content-length".into(), "5242880".into())]),
        part_checksums: false,
        checkpoint: None,
    }
}

/// A file just declared, awaiting its first upload.
pub fn declared() -> FileRecord {
    let (file_id, now) = (FileId::random(), timestamp::now());
    FileRecord::declare(
        file_id,
        "p1".into(),
        content("report \"final\".pdf", "application/pdf", 1_048_576),
        Metadata::from_stored(BTreeMap::from([("category".into(), "invoice".into())])),
        job(file_id, now),
        now,
        PENDING_TTL,
    )
}

/// A file at each step of its lifecycle, named.
pub fn lifecycle() -> Vec<(&'static str, FileRecord)> {
    let declared = declared();
    let job_id = declared.job.as_ref().unwrap().job_id;
    let now = timestamp::now();
    let uploaded = declared.mark_uploaded(job_id, now).unwrap().unwrap();
    let verified = |file: &FileRecord| {
        let s3_key = file.job.as_ref().unwrap().s3_key.clone();
        file.settle(job_id, Verdict::Verified { s3_key }, now, PENDING_TTL)
            .unwrap()
    };
    let rejected = uploaded
        .settle(
            job_id,
            Verdict::Rejected(RejectionReason::SizeMismatch),
            now,
            PENDING_TTL,
        )
        .unwrap();
    let aborted = declared.abort_upload(now, PENDING_TTL).unwrap();
    let verified_file = verified(&uploaded);
    let reuploading =
        verified_file.start_upload(&request(), job(declared.file_id, now), now, PENDING_TTL);
    vec![
        ("declared", declared.clone()),
        ("uploaded", uploaded),
        ("verified", verified_file),
        ("rejected", rejected),
        ("aborted", aborted),
        ("reuploading a verified file", reuploading),
    ]
}

pub fn request() -> UploadRequest {
    UploadRequest {
        file_name: None,
        file_size: 42,
        content_type: MediaType::parse("text/plain").unwrap(),
        sha256: None,
        md5: None,
        metadata: None,
        part_checksums: false,
    }
}

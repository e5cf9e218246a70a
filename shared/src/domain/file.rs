//! The file: what was declared, which upload job is current, which version is verified.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::domain::ids::{FileId, JobId};
use crate::domain::plan::UploadShape;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileStatus {
    PendingUpload,
    Uploaded,
    Verified,
    Rejected,
}

impl FileStatus {
    pub const ALL: [FileStatus; 4] = [
        FileStatus::PendingUpload,
        FileStatus::Uploaded,
        FileStatus::Verified,
        FileStatus::Rejected,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FileStatus::PendingUpload => "pending_upload",
            FileStatus::Uploaded => "uploaded",
            FileStatus::Verified => "verified",
            FileStatus::Rejected => "rejected",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectionReason {
    SizeMismatch,
    ChecksumMismatch,
    ContentTypeMismatch,
    /// The client aborted the upload before any content was verified.
    UploadAborted,
}

impl RejectionReason {
    pub const ALL: [RejectionReason; 4] = [
        RejectionReason::SizeMismatch,
        RejectionReason::ChecksumMismatch,
        RejectionReason::ContentTypeMismatch,
        RejectionReason::UploadAborted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RejectionReason::SizeMismatch => "size_mismatch",
            RejectionReason::ChecksumMismatch => "checksum_mismatch",
            RejectionReason::ContentTypeMismatch => "content_type_mismatch",
            RejectionReason::UploadAborted => "upload_aborted",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|reason| reason.as_str() == s)
    }
}

/// What the client declared about the content of one upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentDeclaration {
    pub file_name: String,
    pub content_type: String,
    pub file_size: u64,
    /// Base64 of the 32-byte SHA-256 digest.
    pub sha256: Option<String>,
    /// Base64 of the 16-byte MD5 digest.
    pub md5: Option<String>,
}

/// The upload job that the file's `status` describes: the latest one started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadJob {
    pub job_id: JobId,
    pub s3_key: String,
    /// S3's multipart upload id; `None` for a single PUT.
    pub upload_id: Option<String>,
    pub part_size: u64,
    pub part_count: u32,
    pub expires_at: OffsetDateTime,
    /// The headers signed into every URL of this job, which clients must send as they are.
    pub headers: BTreeMap<String, String>,
}

impl UploadJob {
    pub fn shape(&self) -> UploadShape {
        match self.upload_id {
            None => UploadShape::SinglePart,
            Some(_) => UploadShape::Multipart {
                part_size: self.part_size,
                part_count: self.part_count,
            },
        }
    }
}

/// Content that passed verification: the version the file's download URL serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedVersion {
    pub job_id: JobId,
    pub s3_key: String,
    pub content: ContentDeclaration,
    pub verified_at: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRecord {
    pub file_id: FileId,
    pub project_id: String,
    /// The content declared for the current job (or, after an abort, the verified content).
    pub content: ContentDeclaration,
    pub metadata: BTreeMap<String, String>,
    pub status: FileStatus,
    pub rejection_reason: Option<RejectionReason>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub job: Option<UploadJob>,
    pub verified: Option<VerifiedVersion>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_reasons_parse_their_wire_names() {
        for status in FileStatus::ALL {
            assert_eq!(FileStatus::parse(status.as_str()), Some(status));
            assert_eq!(serde_json::to_value(status).unwrap(), status.as_str());
        }
        for reason in RejectionReason::ALL {
            assert_eq!(RejectionReason::parse(reason.as_str()), Some(reason));
        }
        assert_eq!(FileStatus::parse("deleted"), None);
    }
}

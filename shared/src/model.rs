//! The file model: what a file is, which upload job is current, and which version is verified.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::plan::UploadShape;

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            pub fn random() -> Self {
                Self(Uuid::new_v4())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.as_hyphenated().fmt(f)
            }
        }

        /// Only the canonical lowercase hyphenated form parses, so one id has one spelling.
        impl FromStr for $name {
            type Err = ();
            fn from_str(s: &str) -> Result<Self, ()> {
                let id = Uuid::try_parse(s).map_err(|_| ())?;
                if id.as_hyphenated().to_string() == s { Ok(Self(id)) } else { Err(()) }
            }
        }
    };
}

uuid_id!(
    /// Identifies a file for its whole life, across reuploads.
    FileId
);
uuid_id!(
    /// Identifies one upload of content for a file; each reupload gets a new one.
    JobId
);

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

/// Where the bytes of one job live. Built only from ids we generated, never from client text.
pub fn object_key(file_id: FileId, job_id: JobId) -> String {
    format!("{UPLOAD_PREFIX}{file_id}/{job_id}")
}

pub const UPLOAD_PREFIX: &str = "uploads/";

/// Reads back the ids from an object key written by [`object_key`].
pub fn parse_object_key(key: &str) -> Option<(FileId, JobId)> {
    let rest = key.strip_prefix(UPLOAD_PREFIX)?;
    let (file, job) = rest.split_once('/')?;
    Some((file.parse().ok()?, job.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_parse_only_in_canonical_form() {
        let id = FileId::random();
        assert_eq!(id.to_string().parse::<FileId>(), Ok(id));
        assert!(id.to_string().to_uppercase().parse::<FileId>().is_err());
        assert!("../etc/passwd".parse::<FileId>().is_err());
        assert!(id.to_string().replace('-', "").parse::<FileId>().is_err());
    }

    #[test]
    fn object_keys_round_trip_and_reject_anything_else() {
        let (file, job) = (FileId::random(), JobId::random());
        let key = object_key(file, job);
        assert_eq!(parse_object_key(&key), Some((file, job)));
        assert_eq!(parse_object_key(&format!("other/{file}/{job}")), None);
        assert_eq!(parse_object_key(&format!("{key}/x")), None);
        assert_eq!(parse_object_key("uploads/x/y"), None);
    }

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

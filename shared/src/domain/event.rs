//! Events: what an application hears about its files (docs/API.md v1.1, "Events and webhooks").
//!
//! An event is derived from one change of a file, the file as it was and as it is, exactly as the
//! table's stream records them. Only changes that happened are streamed (a refused conditional
//! write writes nothing), and each change names at most one event, so deriving events from the
//! stream emits each one once per change, never for one that did not happen. Its id is derived
//! from the change itself, so a redelivered stream record publishes the same id again, which
//! consumers (and webhook receivers, through `webhook-id`) use to drop the repeat.

use serde::Serialize;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::domain::file::{FileRecord, FileStatus, RejectionReason};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum EventType {
    #[serde(rename = "file.verified")]
    FileVerified,
    #[serde(rename = "file.rejected")]
    FileRejected,
    #[serde(rename = "file.deleted")]
    FileDeleted,
    #[serde(rename = "upload.aborted")]
    UploadAborted,
}

impl EventType {
    pub const ALL: [EventType; 4] = [
        EventType::FileVerified,
        EventType::FileRejected,
        EventType::FileDeleted,
        EventType::UploadAborted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::FileVerified => "file.verified",
            EventType::FileRejected => "file.rejected",
            EventType::FileDeleted => "file.deleted",
            EventType::UploadAborted => "upload.aborted",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == text)
    }
}

/// How a file left the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemovalCause {
    /// Deleted through the API: `file.deleted`.
    Deleted,
    /// Forgotten by the table's TTL: a file never verified, whose upload was abandoned. Nothing
    /// an application asked for, and no content it could have used: no event.
    Expired,
}

/// The event one change of a file is, if any: `before` and `after` are the file as the change
/// found and left it (`None` before a creation, after a removal).
pub fn event_of(
    before: Option<&FileRecord>,
    after: Option<&FileRecord>,
    removal: RemovalCause,
) -> Option<EventType> {
    match (before, after) {
        (Some(_), None) => (removal == RemovalCause::Deleted).then_some(EventType::FileDeleted),
        (Some(before), Some(after)) => transition(before, after),
        (None, _) => None,
    }
}

fn transition(before: &FileRecord, after: &FileRecord) -> Option<EventType> {
    let verified_job = |file: &FileRecord| file.verified.as_ref().map(|v| v.job_id);
    if after.verified.is_some() && verified_job(after) != verified_job(before) {
        return Some(EventType::FileVerified);
    }
    // An abort takes the job away; so does nothing else.
    if before.upload_in_progress().is_ok() && after.job.is_none() {
        return Some(EventType::UploadAborted);
    }
    let job = |file: &FileRecord| file.job.as_ref().map(|job| job.job_id);
    let newly_rejected = before.status != FileStatus::Rejected || job(before) != job(after);
    if after.status == FileStatus::Rejected
        && after.rejection_reason != Some(RejectionReason::UploadAborted)
        && newly_rejected
    {
        return Some(EventType::FileRejected);
    }
    None
}

/// The id of the event of this change: the same whenever the same change is seen again.
/// `version` is what tells the file's changes apart: its `updated_at` after the change (every
/// transition sets it), or for a deletion the file's last `updated_at`.
pub fn event_id(file: &FileRecord, kind: EventType, version: OffsetDateTime) -> String {
    let digest = Sha256::new()
        .chain_update(file.file_id.to_string())
        .chain_update([0])
        .chain_update(kind.as_str())
        .chain_update([0])
        .chain_update(version.unix_timestamp_nanos().to_be_bytes())
        .finalize();
    format!("evt_{}", hex::encode(&digest[..16]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::file::Verdict;
    use crate::domain::fixtures::{self, PENDING_TTL};
    use crate::domain::request::UploadRequest;
    use crate::domain::timestamp;

    fn verified(file: &FileRecord) -> FileRecord {
        let job = file.job.as_ref().unwrap();
        let s3_key = job.s3_key.clone();
        file.settle(
            job.job_id,
            Verdict::Verified { s3_key },
            timestamp::now(),
            PENDING_TTL,
        )
        .unwrap()
    }

    fn rejected(file: &FileRecord, reason: RejectionReason) -> FileRecord {
        let job = file.job.as_ref().unwrap().job_id;
        file.settle(
            job,
            Verdict::Rejected(reason),
            timestamp::now(),
            PENDING_TTL,
        )
        .unwrap()
    }

    fn reuploading(file: &FileRecord) -> FileRecord {
        let request = UploadRequest {
            file_name: None,
            content_type: file.content.content_type.clone(),
            file_size: 10,
            sha256: None,
            md5: None,
            metadata: None,
            part_checksums: false,
        };
        let now = timestamp::now();
        file.start_upload(&request, fixtures::job(file.file_id, now), now, PENDING_TTL)
    }

    /// A change named, the file before and after it, and the event it is.
    type Case<'a> = (
        &'a str,
        Option<&'a FileRecord>,
        Option<&'a FileRecord>,
        Option<EventType>,
    );

    #[test]
    fn each_change_is_at_most_one_event() {
        let declared = fixtures::declared();
        let job = declared.job.as_ref().unwrap().job_id;
        let now = timestamp::now();
        let uploaded = declared.mark_uploaded(job, now).unwrap().unwrap();
        let good = verified(&uploaded);
        let bad = rejected(&uploaded, RejectionReason::ChecksumMismatch);
        let aborted = declared.abort_upload(now, PENDING_TTL).unwrap();
        let again = reuploading(&good);
        let again_verified = verified(&again);
        let again_rejected = rejected(&again, RejectionReason::SizeMismatch);
        let again_aborted = again.abort_upload(now, PENDING_TTL).unwrap();
        let retried_after_rejection = reuploading(&bad);
        let rejected_again = rejected(&retried_after_rejection, RejectionReason::SizeMismatch);
        let verified_early = verified(&declared);

        use EventType::*;
        let cases: [Case; 15] = [
            ("created", None, Some(&declared), None),
            ("completed", Some(&declared), Some(&uploaded), None),
            ("verified", Some(&uploaded), Some(&good), Some(FileVerified)),
            (
                "verified before complete",
                Some(&declared),
                Some(&verified_early),
                Some(FileVerified),
            ),
            ("rejected", Some(&uploaded), Some(&bad), Some(FileRejected)),
            (
                "aborted",
                Some(&declared),
                Some(&aborted),
                Some(UploadAborted),
            ),
            ("reupload started", Some(&good), Some(&again), None),
            (
                "reupload verified",
                Some(&again),
                Some(&again_verified),
                Some(FileVerified),
            ),
            (
                "reupload rejected, old version kept",
                Some(&again),
                Some(&again_rejected),
                Some(FileRejected),
            ),
            (
                "reupload aborted, back to verified",
                Some(&again),
                Some(&again_aborted),
                Some(UploadAborted),
            ),
            (
                "reupload of a rejected file",
                Some(&bad),
                Some(&retried_after_rejection),
                None,
            ),
            (
                "rejected again",
                Some(&retried_after_rejection),
                Some(&rejected_again),
                Some(FileRejected),
            ),
            (
                "the same item written again",
                Some(&good),
                Some(&good),
                None,
            ),
            ("deleted", Some(&good), None, Some(FileDeleted)),
            ("never existed", None, None, None),
        ];
        for (name, before, after, expected) in cases {
            assert_eq!(
                event_of(before, after, RemovalCause::Deleted),
                expected,
                "{name}"
            );
        }
    }

    #[test]
    fn a_file_the_ttl_forgets_is_not_deleted_by_anyone() {
        let declared = fixtures::declared();
        assert_eq!(event_of(Some(&declared), None, RemovalCause::Expired), None);
    }

    #[test]
    fn event_ids_name_the_change() {
        let file = fixtures::declared();
        let at = file.updated_at;
        let id = event_id(&file, EventType::FileVerified, at);
        assert_eq!(id, event_id(&file, EventType::FileVerified, at));
        assert!(id.starts_with("evt_") && id.len() == 36, "{id}");
        assert_ne!(id, event_id(&file, EventType::FileRejected, at));
        let later = at + time::Duration::microseconds(1);
        assert_ne!(id, event_id(&file, EventType::FileVerified, later));
    }

    #[test]
    fn types_have_the_contract_names() {
        for kind in EventType::ALL {
            assert_eq!(EventType::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(EventType::parse("file.created"), None);
    }
}

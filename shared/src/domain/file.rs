//! The file and its lifecycle: what was declared, which upload job is current, which version is
//! verified, and every transition between them, each written once here.
//!
//! ```text
//! declare ──► pending_upload ──mark_uploaded──► uploaded ──settle──► verified | rejected
//!                  │  ▲                                                   │
//!   abort_upload ◄─┘  └──────────────── start_upload (reupload) ◄─────────┘
//! ```
//! A file never verified carries an expiry (DynamoDB's TTL) from its last upload start, abort
//! or rejection; a verified version removes it, and so does `complete` (once its bytes are
//! stored, a file is never forgotten before its verdict, however long verification takes).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::domain::error::Refusal;
use crate::domain::ids::{FileId, JobId};
use crate::domain::plan::UploadShape;
use crate::domain::request::ContentDeclaration;
use crate::domain::request::UploadRequest;
use crate::domain::values::{Md5, Metadata, Sha256};

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
    /// Stored with headers or metadata the service did not set (`Content-Encoding`,
    /// `Cache-Control`, user metadata, …), which storage would serve with the content.
    UnexpectedMetadata,
    /// The client aborted the upload before any content was verified.
    UploadAborted,
    /// The completed upload's object was gone when verify looked: removed before it was checked
    /// (by the bucket's lifecycle rule, or by hand), so there is nothing to judge or serve.
    ContentMissing,
}

impl RejectionReason {
    pub const ALL: [RejectionReason; 6] = [
        RejectionReason::SizeMismatch,
        RejectionReason::ChecksumMismatch,
        RejectionReason::ContentTypeMismatch,
        RejectionReason::UnexpectedMetadata,
        RejectionReason::UploadAborted,
        RejectionReason::ContentMissing,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RejectionReason::SizeMismatch => "size_mismatch",
            RejectionReason::ChecksumMismatch => "checksum_mismatch",
            RejectionReason::ContentTypeMismatch => "content_type_mismatch",
            RejectionReason::UnexpectedMetadata => "unexpected_metadata",
            RejectionReason::UploadAborted => "upload_aborted",
            RejectionReason::ContentMissing => "content_missing",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|reason| reason.as_str() == s)
    }
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
    /// Whether each part's URL is signed for the part's SHA-256, which the client gives when it
    /// asks for the URL (docs/API.md v1.2, "Checksums at any size").
    pub part_checksums: bool,
    /// How far verification of the stored bytes got, while it goes on across invocations.
    pub checkpoint: Option<Checkpoint>,
}

/// Verification of a large object, part way: the object version checked, how many of its
/// leading bytes were hashed, and the hash states after them, so that the next invocation goes
/// on from there and reaches the verdict a single pass would.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// Which step wrote it: two steps that hash the same bytes from the same checkpoint (a
    /// duplicate continuation) write different checkpoints, so only one of them goes on.
    pub step_id: uuid::Uuid,
    /// The ETag of the object version being checked: another version starts over.
    pub etag: String,
    pub bytes_checked: u64,
    /// The serialized state of each hasher the check needs (`None`: not needed).
    pub sha256_state: Option<Vec<u8>>,
    pub md5_state: Option<Vec<u8>>,
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
    pub metadata: Metadata,
    pub status: FileStatus,
    pub rejection_reason: Option<RejectionReason>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub job: Option<UploadJob>,
    pub verified: Option<VerifiedVersion>,
    /// When the table may forget the file: only files never verified expire.
    pub expires_at: Option<OffsetDateTime>,
}

/// Why a transition does not apply to the file as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransitionRefusal {
    /// No upload awaits its bytes: none was started, or it was completed, settled or aborted.
    NoUploadInProgress,
    /// The job named is no longer the file's current one: a newer upload or an abort replaced it.
    JobSuperseded,
    /// The job is current but was already settled.
    AlreadySettled,
    /// A digest given for the whole file differs from the one declared for it.
    DigestDiffers { field: &'static str },
    /// A digest given for the whole file arrived after its content was verified without it:
    /// it can no longer be checked.
    VerifiedWithoutDigest,
    /// The content's declaration changed (digests given at complete) while it was being
    /// checked: the verdict is for a declaration that no longer holds.
    DeclarationChanged,
}

impl From<TransitionRefusal> for Refusal {
    fn from(refusal: TransitionRefusal) -> Self {
        match refusal {
            TransitionRefusal::NoUploadInProgress => Refusal::conflict(
                "no_upload_in_progress",
                "this file has no upload in progress; start one with reupload",
            ),
            TransitionRefusal::JobSuperseded => Refusal::conflict(
                "job_superseded",
                "this upload is no longer the file's current one: a newer upload or an abort replaced it",
            ),
            TransitionRefusal::AlreadySettled => Refusal::conflict(
                "already_settled",
                "this upload was already verified or rejected",
            ),
            TransitionRefusal::DigestDiffers { field } => Refusal::invalid(
                field,
                format!("differs from the {field} declared for this upload"),
            ),
            TransitionRefusal::VerifiedWithoutDigest => Refusal::conflict(
                "already_settled",
                "this upload was verified before its digest arrived, so the digest cannot be checked: declare sha256 at create, or start the upload with part_checksums",
            ),
            TransitionRefusal::DeclarationChanged => Refusal::concurrent_update(
                "the upload's declaration changed while it was checked; checking again",
            ),
        }
    }
}

/// What the verify trigger found the stored content of a job to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The content stored at `s3_key` is the declared one.
    Verified {
        s3_key: String,
    },
    Rejected(RejectionReason),
}

impl FileRecord {
    /// A new file of `project_id`, awaiting the bytes of its first upload `job`.
    pub fn declare(
        file_id: FileId,
        project_id: String,
        content: ContentDeclaration,
        metadata: Metadata,
        job: UploadJob,
        now: OffsetDateTime,
        pending_ttl: Duration,
    ) -> Self {
        let mut file = Self {
            file_id,
            project_id,
            content,
            metadata,
            status: FileStatus::PendingUpload,
            rejection_reason: None,
            created_at: now,
            updated_at: now,
            job: Some(job),
            verified: None,
            expires_at: None,
        };
        file.keep_unverified_for(pending_ttl, now);
        file
    }

    /// New content for the file, uploaded by `job` (planned from `request.content(..)`). The
    /// verified version stays served until the new content is verified; any other job is
    /// replaced. Name and metadata change only when the request gives them.
    pub fn start_upload(
        &self,
        request: &UploadRequest,
        job: UploadJob,
        now: OffsetDateTime,
        pending_ttl: Duration,
    ) -> Self {
        let mut file = Self {
            content: request.content(&self.content.file_name),
            metadata: request
                .metadata
                .clone()
                .unwrap_or_else(|| self.metadata.clone()),
            status: FileStatus::PendingUpload,
            rejection_reason: None,
            updated_at: now,
            job: Some(job),
            ..self.clone()
        };
        file.keep_unverified_for(pending_ttl, now);
        file
    }

    /// The upload in progress is abandoned: the file falls back to its verified version, or,
    /// with none, is `rejected` with `upload_aborted` so that it is clear nothing was uploaded.
    pub fn abort_upload(
        &self,
        now: OffsetDateTime,
        pending_ttl: Duration,
    ) -> Result<Self, TransitionRefusal> {
        self.upload_in_progress()?;
        let mut file = match &self.verified {
            Some(verified) => Self {
                content: verified.content.clone(),
                status: FileStatus::Verified,
                rejection_reason: None,
                ..self.clone()
            },
            None => Self {
                status: FileStatus::Rejected,
                rejection_reason: Some(RejectionReason::UploadAborted),
                ..self.clone()
            },
        };
        file.job = None;
        file.updated_at = now;
        file.keep_unverified_for(pending_ttl, now);
        Ok(file)
    }

    /// The client says the bytes of `job_id` are stored: `pending_upload` → `uploaded`, and the
    /// file stops expiring until its verdict. `None` when there is nothing to change: completed
    /// before, or already settled.
    pub fn mark_uploaded(
        &self,
        job_id: JobId,
        now: OffsetDateTime,
    ) -> Result<Option<Self>, TransitionRefusal> {
        self.current_job(Some(job_id))?;
        if self.status != FileStatus::PendingUpload {
            return Ok(None);
        }
        Ok(Some(Self {
            status: FileStatus::Uploaded,
            updated_at: now,
            expires_at: None,
            ..self.clone()
        }))
    }

    /// Settles the current, unsettled job `job_id`. Verified content becomes the version the
    /// file serves (and the file stops expiring); a rejection leaves an earlier verified version
    /// in place, and a file with none expires `pending_ttl` after it.
    pub fn settle(
        &self,
        job_id: JobId,
        verdict: Verdict,
        now: OffsetDateTime,
        pending_ttl: Duration,
    ) -> Result<Self, TransitionRefusal> {
        self.current_job(Some(job_id))?;
        if !self.awaits_verdict() {
            return Err(TransitionRefusal::AlreadySettled);
        }
        let mut settled = self.clone();
        if let Some(job) = &mut settled.job {
            job.checkpoint = None;
        }
        Ok(match verdict {
            Verdict::Verified { s3_key } => Self {
                status: FileStatus::Verified,
                rejection_reason: None,
                verified: Some(VerifiedVersion {
                    job_id,
                    s3_key,
                    content: self.content.clone(),
                    verified_at: now,
                }),
                updated_at: now,
                expires_at: None,
                ..settled
            },
            Verdict::Rejected(reason) => {
                let mut file = Self {
                    status: FileStatus::Rejected,
                    rejection_reason: Some(reason),
                    updated_at: now,
                    ..settled
                };
                file.keep_unverified_for(pending_ttl, now);
                file
            }
        })
    }

    /// Settles as [`FileRecord::settle`] does, with a verdict reached by checking the stored
    /// object against `checked`, the declaration as it was read before the check: refused when
    /// it has changed since (digests given at complete), for the check must then be made again.
    /// A SHA-256 that storage itself checked when the object was stored (`stored_sha256`)
    /// becomes verified content's own when none was declared: complete and dedup rely on it.
    pub fn settle_checked(
        &self,
        job_id: JobId,
        verdict: Verdict,
        checked: &ContentDeclaration,
        stored_sha256: Option<Sha256>,
        now: OffsetDateTime,
        pending_ttl: Duration,
    ) -> Result<Self, TransitionRefusal> {
        self.current_job(Some(job_id))?;
        if self.awaits_verdict() && self.content != *checked {
            return Err(TransitionRefusal::DeclarationChanged);
        }
        let mut file = self.clone();
        if matches!(verdict, Verdict::Verified { .. }) && file.content.sha256.is_none() {
            file.content.sha256 = stored_sha256;
        }
        file.settle(job_id, verdict, now, pending_ttl)
    }

    /// The whole file's digests, given at `complete` by a client that hashed while it uploaded
    /// (docs/API.md v1.2): the content of the current job `job_id` declares them from then on,
    /// and verify checks them as declared ones. `None` when there is nothing to record (the same
    /// digests were declared before, or the upload was rejected anyway). A digest other than
    /// the declared one is refused, and so is one that arrives after the content was verified
    /// without it.
    pub fn declare_digests(
        &self,
        job_id: JobId,
        sha256: Option<Sha256>,
        md5: Option<Md5>,
        now: OffsetDateTime,
    ) -> Result<Option<Self>, TransitionRefusal> {
        self.current_job(Some(job_id))?;
        let mut content = self.content.clone();
        match (sha256, content.sha256) {
            (Some(given), Some(declared)) if given != declared => {
                return Err(TransitionRefusal::DigestDiffers { field: "sha256" });
            }
            (Some(given), None) => content.sha256 = Some(given),
            _ => {}
        }
        match (md5, content.md5) {
            (Some(given), Some(declared)) if given != declared => {
                return Err(TransitionRefusal::DigestDiffers { field: "md5" });
            }
            (Some(given), None) => content.md5 = Some(given),
            _ => {}
        }
        if content == self.content {
            return Ok(None);
        }
        match self.status {
            FileStatus::PendingUpload | FileStatus::Uploaded => Ok(Some(Self {
                content,
                updated_at: now,
                ..self.clone()
            })),
            FileStatus::Verified => Err(TransitionRefusal::VerifiedWithoutDigest),
            FileStatus::Rejected => Ok(None),
        }
    }

    /// Verification of the current, unsettled job `job_id` got from `from` to `to`. `None` when
    /// the job's checkpoint is no longer `from`: another invocation moved it (a duplicate
    /// continuation), and it carries on from there.
    pub fn record_progress(
        &self,
        job_id: JobId,
        from: Option<&Checkpoint>,
        to: Checkpoint,
    ) -> Result<Option<Self>, TransitionRefusal> {
        let job = self.current_job(Some(job_id))?;
        if !self.awaits_verdict() {
            return Err(TransitionRefusal::AlreadySettled);
        }
        if job.checkpoint.as_ref() != from {
            return Ok(None);
        }
        let mut file = self.clone();
        if let Some(job) = &mut file.job {
            job.checkpoint = Some(to);
        }
        Ok(Some(file))
    }

    /// The current job, which must be `expected` when one is named.
    pub fn current_job(&self, expected: Option<JobId>) -> Result<&UploadJob, TransitionRefusal> {
        match (&self.job, expected) {
            (None, None) => Err(TransitionRefusal::NoUploadInProgress),
            (None, Some(_)) => Err(TransitionRefusal::JobSuperseded),
            (Some(job), Some(expected)) if job.job_id != expected => {
                Err(TransitionRefusal::JobSuperseded)
            }
            (Some(job), _) => Ok(job),
        }
    }

    /// The job that parts and abort act on: the current one, while it awaits its bytes.
    pub fn upload_in_progress(&self) -> Result<&UploadJob, TransitionRefusal> {
        match (&self.job, self.status) {
            (Some(job), FileStatus::PendingUpload) => Ok(job),
            _ => Err(TransitionRefusal::NoUploadInProgress),
        }
    }

    /// Whether the current job still waits for the verify trigger's verdict.
    pub fn awaits_verdict(&self) -> bool {
        matches!(
            self.status,
            FileStatus::PendingUpload | FileStatus::Uploaded
        )
    }

    /// Whether the content of `job_id` is the version the file serves.
    pub fn serves(&self, job_id: JobId) -> bool {
        self.verified.as_ref().is_some_and(|v| v.job_id == job_id)
    }

    /// The TTL rule: a file never verified expires `pending_ttl` after its last upload started,
    /// was aborted or rejected; one with a verified version never does, nor one whose bytes were
    /// completed and await their verdict.
    fn keep_unverified_for(&mut self, pending_ttl: Duration, now: OffsetDateTime) {
        if self.verified.is_none() {
            let at = now + pending_ttl;
            // Whole seconds, as DynamoDB's TTL keeps it.
            self.expires_at = Some(at.replace_nanosecond(0).unwrap_or(at));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::fixtures::{self, PENDING_TTL, lifecycle, request};
    use crate::domain::timestamp;
    use crate::domain::values::FileName;

    fn step(name: &str) -> FileRecord {
        lifecycle().into_iter().find(|(n, _)| *n == name).unwrap().1
    }

    #[test]
    fn each_step_has_its_status_job_versions_and_expiry() {
        // (step, status, has a job, has a verified version, expires, rejection)
        let table = [
            (
                "declared",
                FileStatus::PendingUpload,
                true,
                false,
                true,
                None,
            ),
            // completed bytes are never forgotten before their verdict
            ("uploaded", FileStatus::Uploaded, true, false, false, None),
            ("verified", FileStatus::Verified, true, true, false, None),
            (
                "rejected",
                FileStatus::Rejected,
                true,
                false,
                true,
                Some(RejectionReason::SizeMismatch),
            ),
            (
                "aborted",
                FileStatus::Rejected,
                false,
                false,
                true,
                Some(RejectionReason::UploadAborted),
            ),
            (
                "reuploading a verified file",
                FileStatus::PendingUpload,
                true,
                true,
                false,
                None,
            ),
        ];
        for (name, status, job, verified, expires, rejection) in table {
            let file = step(name);
            assert_eq!(file.status, status, "{name}");
            assert_eq!(file.job.is_some(), job, "{name}");
            assert_eq!(file.verified.is_some(), verified, "{name}");
            assert_eq!(file.expires_at.is_some(), expires, "{name}");
            assert_eq!(file.rejection_reason, rejection, "{name}");
        }
    }

    #[test]
    fn which_transitions_each_step_allows() {
        // (step, abort_upload, mark_uploaded writes, settle); what each frees: domain::storage
        let table = [
            ("declared", true, true, true),
            ("uploaded", false, false, true),
            ("verified", false, false, false),
            ("rejected", false, false, false),
            ("aborted", false, false, false),
            ("reuploading a verified file", true, true, true),
        ];
        let now = timestamp::now();
        for (name, abort, complete, settle) in table {
            let file = step(name);
            assert_eq!(file.abort_upload(now, PENDING_TTL).is_ok(), abort, "{name}");
            let current = file.job.as_ref().map(|job| job.job_id);
            if let Some(job) = current {
                let marked = file.mark_uploaded(job, now);
                assert_eq!(matches!(marked, Ok(Some(_))), complete, "{name}");
                let settled = file.settle(
                    job,
                    Verdict::Rejected(RejectionReason::ChecksumMismatch),
                    now,
                    PENDING_TTL,
                );
                assert_eq!(settled.is_ok(), settle, "{name}");
            }
        }
    }

    #[test]
    fn progress_moves_only_from_the_checkpoint_it_started_at_and_ends_with_the_verdict() {
        let uploaded = step("uploaded");
        let job = uploaded.job.as_ref().unwrap().job_id;
        let at = |bytes_checked: u64| Checkpoint {
            step_id: uuid::Uuid::from_u128(bytes_checked.into()),
            etag: "\"e-2\"".into(),
            bytes_checked,
            sha256_state: Some(vec![7; 8]),
            md5_state: None,
        };
        let first = uploaded.record_progress(job, None, at(1)).unwrap().unwrap();
        assert_eq!(first.job.as_ref().unwrap().checkpoint, Some(at(1)));
        assert_eq!(
            (first.status, first.updated_at),
            (uploaded.status, uploaded.updated_at)
        );
        // a duplicate step, begun before the first one's write: nothing to do
        assert_eq!(first.record_progress(job, None, at(1)), Ok(None));
        let second = first
            .record_progress(job, Some(&at(1)), at(2))
            .unwrap()
            .unwrap();
        assert_eq!(
            second.record_progress(JobId::random(), Some(&at(2)), at(3)),
            Err(TransitionRefusal::JobSuperseded)
        );
        let s3_key = second.job.as_ref().unwrap().s3_key.clone();
        let verified = second
            .settle(
                job,
                Verdict::Verified { s3_key },
                timestamp::now(),
                PENDING_TTL,
            )
            .unwrap();
        assert_eq!(verified.job.as_ref().unwrap().checkpoint, None);
        assert_eq!(
            verified.record_progress(job, None, at(3)),
            Err(TransitionRefusal::AlreadySettled)
        );
    }

    #[test]
    fn another_job_is_superseded_and_no_job_has_nothing_in_progress() {
        let now = timestamp::now();
        let other = JobId::random();
        let expected = TransitionRefusal::JobSuperseded;
        for (name, file) in lifecycle() {
            assert_eq!(
                file.mark_uploaded(other, now).unwrap_err(),
                expected,
                "{name}"
            );
            assert_eq!(
                file.settle(
                    other,
                    Verdict::Rejected(RejectionReason::SizeMismatch),
                    now,
                    PENDING_TTL
                )
                .unwrap_err(),
                expected,
                "{name}"
            );
        }
        let aborted = step("aborted");
        assert_eq!(
            aborted.current_job(None).unwrap_err(),
            TransitionRefusal::NoUploadInProgress
        );
        assert_eq!(
            aborted.upload_in_progress().unwrap_err(),
            TransitionRefusal::NoUploadInProgress
        );
    }

    #[test]
    fn a_reupload_keeps_name_metadata_and_the_served_version_unless_given() {
        let verified = step("verified");
        let now = timestamp::now();
        let job = fixtures::job(verified.file_id, now);
        let kept = verified.start_upload(&request(), job.clone(), now, PENDING_TTL);
        assert_eq!(kept.content.file_name, verified.content.file_name);
        assert_eq!(kept.metadata, verified.metadata);
        assert_eq!(kept.content.file_size, 42);
        assert_eq!(kept.verified, verified.verified);
        assert!(kept.serves(verified.job.as_ref().unwrap().job_id));
        let renamed = verified.start_upload(
            &UploadRequest {
                file_name: Some(FileName::parse("new.txt").unwrap()),
                metadata: Some(Metadata::default()),
                part_checksums: false,
                ..request()
            },
            job,
            now,
            PENDING_TTL,
        );
        assert_eq!(renamed.content.file_name.as_str(), "new.txt");
        assert!(renamed.metadata.as_map().is_empty());
    }

    #[test]
    fn aborting_a_reupload_falls_back_to_the_verified_content() {
        let reuploading = step("reuploading a verified file");
        let aborted = reuploading
            .abort_upload(timestamp::now(), PENDING_TTL)
            .unwrap();
        assert_eq!(aborted.status, FileStatus::Verified);
        assert_eq!(aborted.content, aborted.verified.as_ref().unwrap().content);
        assert_eq!(aborted.job, None);
        assert_eq!(aborted.expires_at, None);
    }

    #[test]
    fn completed_bytes_are_never_forgotten_before_their_verdict() {
        let declared = step("declared");
        let job = declared.job.as_ref().unwrap().job_id;
        let now = timestamp::now();
        let uploaded = declared.mark_uploaded(job, now).unwrap().unwrap();
        assert_eq!(
            uploaded.expires_at, None,
            "no expiry while verification runs"
        );
        let later = now + time::Duration::hours(1);
        let rejected = uploaded
            .settle(
                job,
                Verdict::Rejected(RejectionReason::ChecksumMismatch),
                later,
                PENDING_TTL,
            )
            .unwrap();
        let expires_at = rejected
            .expires_at
            .expect("a rejected, never verified file expires");
        assert!(expires_at > later, "counted from the rejection");
    }

    #[test]
    fn expiry_counts_from_the_last_upload_start_in_whole_seconds() {
        let declared = step("declared");
        let expires_at = declared.expires_at.unwrap();
        assert_eq!(expires_at.nanosecond(), 0);
        let delta = expires_at - declared.created_at;
        assert!(delta <= time::Duration::try_from(PENDING_TTL).unwrap());
        assert!(delta > time::Duration::try_from(PENDING_TTL).unwrap() - time::Duration::SECOND);
    }

    /// The file at `name`'s step, declared without digests.
    fn undigested(name: &str) -> FileRecord {
        without_digests(step(name))
    }

    fn without_digests(mut file: FileRecord) -> FileRecord {
        (file.content.sha256, file.content.md5) = (None, None);
        if let Some(verified) = &mut file.verified {
            verified.content = file.content.clone();
        }
        file
    }

    fn digest(byte: u8) -> Sha256 {
        Sha256::from_bytes([byte; 32])
    }

    #[test]
    fn digests_given_at_complete_are_declared_until_the_verdict_and_never_replace_others() {
        let now = timestamp::now();
        for name in ["declared", "uploaded"] {
            let file = undigested(name);
            let job_id = file.job.as_ref().unwrap().job_id;
            let declared = file
                .declare_digests(job_id, Some(digest(1)), None, now)
                .unwrap()
                .unwrap();
            assert_eq!(declared.content.sha256, Some(digest(1)), "{name}");
            assert_eq!(declared.status, file.status, "{name}");
            assert_eq!(
                declared.declare_digests(job_id, Some(digest(1)), None, now),
                Ok(None),
                "{name}: the same again"
            );
            assert_eq!(
                declared.declare_digests(job_id, Some(digest(2)), None, now),
                Err(TransitionRefusal::DigestDiffers { field: "sha256" }),
                "{name}: another"
            );
            assert_eq!(
                file.declare_digests(JobId::random(), Some(digest(1)), None, now),
                Err(TransitionRefusal::JobSuperseded),
                "{name}: another job"
            );
        }
        let verified = undigested("verified");
        let job_id = verified.job.as_ref().unwrap().job_id;
        assert_eq!(
            verified.declare_digests(job_id, Some(digest(1)), None, now),
            Err(TransitionRefusal::VerifiedWithoutDigest),
            "it can no longer be checked"
        );
        let rejected = undigested("rejected");
        let job_id = rejected.job.as_ref().unwrap().job_id;
        assert_eq!(
            rejected.declare_digests(job_id, Some(digest(1)), None, now),
            Ok(None)
        );
    }

    #[test]
    fn a_verdict_holds_only_for_the_declaration_it_checked() {
        let now = timestamp::now();
        let declared = step("uploaded");
        let file = without_digests(declared.clone());
        let job = file.job.clone().unwrap();
        let checked = file.content.clone();
        let verified = Verdict::Verified {
            s3_key: job.s3_key.clone(),
        };
        let settle = |file: &FileRecord, verdict: &Verdict, stored: Option<Sha256>| {
            file.settle_checked(
                job.job_id,
                verdict.clone(),
                &checked,
                stored,
                now,
                PENDING_TTL,
            )
        };

        // digests given at complete while the object was checked: the check is made again
        let with_digest = file
            .declare_digests(job.job_id, Some(digest(1)), None, now)
            .unwrap()
            .unwrap();
        assert_eq!(
            settle(&with_digest, &verified, None),
            Err(TransitionRefusal::DeclarationChanged)
        );

        // storage's own check of the whole object's SHA-256 becomes verified content's
        let settled = settle(&file, &verified, Some(digest(3))).unwrap();
        assert_eq!(settled.content.sha256, Some(digest(3)));
        assert_eq!(settled.verified.unwrap().content.sha256, Some(digest(3)));
        // …never when rejected, nor in place of a declared one
        let rejected = Verdict::Rejected(RejectionReason::ContentTypeMismatch);
        let settled = settle(&file, &rejected, Some(digest(3))).unwrap();
        assert_eq!(settled.content.sha256, None);
        let settled = declared
            .settle_checked(
                job.job_id,
                verified,
                &declared.content,
                Some(digest(3)),
                now,
                PENDING_TTL,
            )
            .unwrap();
        assert_eq!(settled.content.sha256, declared.content.sha256);
    }

    #[test]
    fn statuses_and_reasons_parse_their_wire_names() {
        for status in FileStatus::ALL {
            assert_eq!(FileStatus::parse(status.as_str()), Some(status));
        }
        for reason in RejectionReason::ALL {
            assert_eq!(RejectionReason::parse(reason.as_str()), Some(reason));
        }
        assert_eq!(FileStatus::parse("deleted"), None);
    }
}

//! What a file keeps in storage, and what each change of it frees: the one rule behind every
//! abort and delete in storage (`app::release` carries it out).
//!
//! Every object key names one job of one file (`ids::object_key`), and a job, once dropped from
//! its file's record, never comes back. So storage that the record as it now is does not hold is
//! nobody's, whatever the record was when a request read it, and is freed for good.

use std::collections::BTreeSet;

use crate::domain::{FileRecord, FileStatus, UploadJob};

/// A piece of storage a file's record refers to. Uploads order before objects: an upload is
/// aborted before its object is deleted, for a complete racing the abort may still assemble it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stored {
    /// A multipart upload in progress, and the parts uploaded to it.
    Upload {
        s3_key: String,
        upload_id: String,
    },
    Object {
        s3_key: String,
    },
}

impl UploadJob {
    /// Everything of storage this job may have made: its multipart upload, if it has one, and
    /// its object.
    pub fn storage(&self) -> Vec<Stored> {
        let upload = self.upload_id.as_ref().map(|upload_id| Stored::Upload {
            s3_key: self.s3_key.clone(),
            upload_id: upload_id.clone(),
        });
        let object = Stored::Object {
            s3_key: self.s3_key.clone(),
        };
        upload.into_iter().chain([object]).collect()
    }
}

impl FileRecord {
    /// What of storage the file needs: the object of its verified version; the current job's
    /// object, unless the job was rejected; and the job's multipart upload while its bytes are
    /// awaited (once settled, the upload was assembled into the object that was checked).
    pub fn holds(&self) -> BTreeSet<Stored> {
        let verified = self.verified.iter().map(|verified| Stored::Object {
            s3_key: verified.s3_key.clone(),
        });
        let job = self
            .job
            .iter()
            .filter(|_| self.status != FileStatus::Rejected)
            .flat_map(UploadJob::storage)
            .filter(|stored| self.awaits_verdict() || matches!(stored, Stored::Object { .. }));
        verified.chain(job).collect()
    }

    /// Everything of storage the record refers to: what it holds, and the object of a rejected
    /// job, which verify removes after writing the verdict (a delete of the file removes it if
    /// that failed).
    fn refers_to(&self) -> BTreeSet<Stored> {
        let mut stored = self.holds();
        if let Some(job) = self.job.as_ref().filter(|_| !self.awaits_verdict()) {
            stored.insert(Stored::Object {
                s3_key: job.s3_key.clone(),
            });
        }
        stored
    }
}

/// What the change of a file from `before` to `after` (`None`: the file is gone) frees: what
/// `before` refers to and `after` does not hold. `before` may be older than the change (as a
/// request read it): whatever it refers to that `after` lets go is freed all the same.
pub fn freed(before: &FileRecord, after: Option<&FileRecord>) -> Vec<Stored> {
    let settled_by_after = after
        .filter(|after| !after.awaits_verdict())
        .and_then(|after| after.job.as_ref());
    let assembled = |stored: &Stored| match (stored, settled_by_after) {
        (Stored::Upload { s3_key, .. }, Some(job)) => *s3_key == job.s3_key,
        _ => false,
    };
    not_held(before.refers_to(), after)
        .into_iter()
        .filter(|stored| !assembled(stored))
        .collect()
}

/// Of `stored` (storage a request made or found), what `file` (`None`: no such file) does not
/// hold: storage of a job never recorded, replaced, aborted or rejected.
pub fn not_held(
    stored: impl IntoIterator<Item = Stored>,
    file: Option<&FileRecord>,
) -> Vec<Stored> {
    let held = file.map(FileRecord::holds).unwrap_or_default();
    let mut freed: Vec<Stored> = stored
        .into_iter()
        .filter(|stored| !held.contains(stored))
        .collect();
    freed.sort();
    freed.dedup();
    freed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::fixtures::{PENDING_TTL, job, lifecycle, request};
    use crate::domain::{RejectionReason, Verdict, timestamp};

    fn step(name: &str) -> FileRecord {
        lifecycle().into_iter().find(|(n, _)| *n == name).unwrap().1
    }

    /// The storage named by `kinds`: `u` the current job's upload, `o` its object, `v` the
    /// verified version's object (which is the job's own object once that job is verified).
    fn storage(file: &FileRecord, kinds: &str) -> BTreeSet<Stored> {
        let job = file.job.as_ref().unwrap();
        let mut stored = BTreeSet::new();
        for kind in kinds.chars() {
            stored.insert(match kind {
                'u' => job.storage().remove(0),
                'o' => Stored::Object {
                    s3_key: job.s3_key.clone(),
                },
                'v' => Stored::Object {
                    s3_key: file.verified.as_ref().unwrap().s3_key.clone(),
                },
                _ => unreachable!("{kind}"),
            });
        }
        stored
    }

    #[test]
    fn what_each_step_holds() {
        // (step, what it holds)
        let table = [
            ("declared", "uo"),
            ("uploaded", "uo"),
            ("verified", "v"),
            ("rejected", ""),
            ("reuploading a verified file", "uov"),
        ];
        for (name, held) in table {
            let file = step(name);
            assert_eq!(file.holds(), storage(&file, held), "{name}");
        }
        assert!(step("aborted").holds().is_empty());
    }

    fn settle(file: &FileRecord, verdict: Verdict) -> Option<FileRecord> {
        let job = file.job.as_ref().unwrap().job_id;
        Some(
            file.settle(job, verdict, timestamp::now(), PENDING_TTL)
                .unwrap(),
        )
    }
    fn complete(file: &FileRecord) -> Option<FileRecord> {
        let job = file.job.as_ref().unwrap().job_id;
        file.mark_uploaded(job, timestamp::now()).unwrap()
    }
    fn verify(file: &FileRecord) -> Option<FileRecord> {
        let s3_key = file.job.as_ref().unwrap().s3_key.clone();
        settle(file, Verdict::Verified { s3_key })
    }
    fn reject(file: &FileRecord) -> Option<FileRecord> {
        settle(file, Verdict::Rejected(RejectionReason::SizeMismatch))
    }
    fn reupload(file: &FileRecord) -> Option<FileRecord> {
        let now = timestamp::now();
        Some(file.start_upload(&request(), job(file.file_id, now), now, PENDING_TTL))
    }
    fn abort(file: &FileRecord) -> Option<FileRecord> {
        Some(file.abort_upload(timestamp::now(), PENDING_TTL).unwrap())
    }
    fn delete(_: &FileRecord) -> Option<FileRecord> {
        None
    }

    #[test]
    fn what_each_change_frees() {
        type Change = fn(&FileRecord) -> Option<FileRecord>;
        // (step, change, what it frees of the step's storage)
        let table: [(&str, Change, &str); 17] = [
            ("declared", complete, ""),
            ("declared", abort, "uo"),
            ("declared", reupload, "uo"),
            ("declared", delete, "uo"),
            ("uploaded", verify, ""),
            ("uploaded", reject, "o"),
            ("uploaded", reupload, "uo"),
            ("uploaded", delete, "uo"),
            ("verified", reupload, ""),
            ("verified", delete, "v"),
            ("rejected", reupload, "o"),
            ("rejected", delete, "o"),
            ("reuploading a verified file", verify, "v"),
            ("reuploading a verified file", reject, "o"),
            ("reuploading a verified file", abort, "uo"),
            ("reuploading a verified file", reupload, "uo"),
            ("reuploading a verified file", delete, "uov"),
        ];
        for (row, (name, change, kinds)) in table.into_iter().enumerate() {
            let before = step(name);
            let after = change(&before);
            let freed: BTreeSet<Stored> = freed(&before, after.as_ref()).into_iter().collect();
            assert_eq!(freed, storage(&before, kinds), "row {row}: {name}");
        }
    }

    #[test]
    fn a_request_that_read_the_file_before_another_change_frees_only_what_the_file_lets_go() {
        // Complete read the file uploading job A; a reupload replaced A with B meanwhile.
        let read = step("declared");
        let replaced_a = read.job.clone().unwrap();
        let now = timestamp::now();
        let latest = read.start_upload(&request(), job(read.file_id, now), now, PENDING_TTL);
        assert_eq!(freed(&read, Some(&latest)), replaced_a.storage());
        assert_eq!(
            not_held(replaced_a.storage(), Some(&latest)),
            replaced_a.storage()
        );
        // Nothing the latest record holds is freed, however old the record read.
        assert_eq!(not_held(latest.holds(), Some(&latest)), Vec::new());
        assert_eq!(not_held(replaced_a.storage(), None), replaced_a.storage());
    }

    #[test]
    fn freed_storage_lists_uploads_before_objects() {
        let freed = freed(&step("reuploading a verified file"), None);
        assert!(matches!(freed[0], Stored::Upload { .. }), "{freed:?}");
        assert!(
            freed[1..]
                .iter()
                .all(|s| matches!(s, Stored::Object { .. }))
        );
    }
}

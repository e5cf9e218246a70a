//! What a project's files hold, counted as its usage and bounded by its quota (docs/API.md,
//! v1.2 "Usage and quotas"). Each file holds what [`Usage::of`] says; a change of a file takes
//! or gives back the difference ([`Usage::change`]), written with the change itself, so that the
//! sum over the project's files is its usage whatever the races and retries.

use std::iter::Sum;
use std::ops::{Add, Sub};

use crate::domain::error::{Detail, Refusal};
use crate::domain::file::FileRecord;

/// What one file holds, a project's sum of them, or (as a difference) what a change of a file
/// takes or gives back.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Files serving verified content.
    pub files_verified: i64,
    /// Files with an upload in progress: declared, or completed and awaiting its verdict.
    pub files_uploading: i64,
    /// Files holding either, each once (a verified file being reuploaded is one file): what
    /// `max_files` bounds.
    pub files: i64,
    /// The sizes of the verified contents.
    pub bytes_verified: i64,
    /// The declared sizes of the uploads in progress.
    pub bytes_reserved: i64,
}

impl Usage {
    /// What `file` holds (nothing, when there is no file).
    pub fn of(file: Option<&FileRecord>) -> Self {
        let Some(file) = file else {
            return Self::default();
        };
        let verified = file.verified.as_ref();
        let uploading = file.awaits_verdict() && file.job.is_some();
        let size = |bytes: u64| i64::try_from(bytes).unwrap_or(i64::MAX);
        Self {
            files_verified: i64::from(verified.is_some()),
            files_uploading: i64::from(uploading),
            files: i64::from(verified.is_some() || uploading),
            bytes_verified: verified.map_or(0, |verified| size(verified.content.file_size)),
            bytes_reserved: if uploading {
                size(file.content.file_size)
            } else {
                0
            },
        }
    }

    /// What the change of a file from `before` to `after` takes (positive) or gives back.
    pub fn change(before: Option<&FileRecord>, after: Option<&FileRecord>) -> Self {
        Self::of(after) - Self::of(before)
    }

    /// Verified and reserved bytes: what `max_bytes` bounds.
    pub fn bytes(&self) -> i64 {
        self.bytes_verified + self.bytes_reserved
    }

    pub fn is_zero(&self) -> bool {
        *self == Self::default()
    }

    /// Whether this change takes more of what a quota bounds (files or bytes).
    pub fn takes(&self) -> bool {
        self.files > 0 || self.bytes() > 0
    }
}

/// Usages counted apart (a project's counters are spread over several items) summed.
impl Add for Usage {
    type Output = Usage;

    fn add(self, other: Usage) -> Usage {
        Usage {
            files_verified: self.files_verified + other.files_verified,
            files_uploading: self.files_uploading + other.files_uploading,
            files: self.files + other.files,
            bytes_verified: self.bytes_verified + other.bytes_verified,
            bytes_reserved: self.bytes_reserved + other.bytes_reserved,
        }
    }
}

impl Sum for Usage {
    fn sum<I: Iterator<Item = Usage>>(items: I) -> Usage {
        items.fold(Usage::default(), Add::add)
    }
}

impl Sub for Usage {
    type Output = Usage;

    fn sub(self, other: Usage) -> Usage {
        Usage {
            files_verified: self.files_verified - other.files_verified,
            files_uploading: self.files_uploading - other.files_uploading,
            files: self.files - other.files,
            bytes_verified: self.bytes_verified - other.bytes_verified,
            bytes_reserved: self.bytes_reserved - other.bytes_reserved,
        }
    }
}

/// A project's usage, with its quota.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProjectUsage {
    pub usage: Usage,
    pub quota: Quota,
}

/// A project's bounds; `None`: unbounded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Quota {
    pub max_files: Option<u64>,
    pub max_bytes: Option<u64>,
}

impl Quota {
    /// Refuses `change` when it would take `usage` past a bound: 403 `quota_exceeded`, a detail
    /// for each bound passed. A change that takes nothing more always passes, so that settling,
    /// deleting and aborting work above a quota lowered meanwhile.
    pub fn admit(&self, usage: &Usage, change: &Usage) -> Result<(), Refusal> {
        if !change.takes() {
            return Ok(());
        }
        let mut passed = Vec::new();
        let mut check = |field: &str, unit: &str, used: i64, taken: i64, max: Option<u64>| {
            if let Some(max) = max {
                let max = i64::try_from(max).unwrap_or(i64::MAX);
                if taken > 0 && used.saturating_add(taken) > max {
                    passed.push(Detail::field(
                        field,
                        format!("{used} {unit} used of {max}; this needs {taken} more"),
                    ));
                }
            }
        };
        check(
            "max_files",
            "files",
            usage.files,
            change.files,
            self.max_files,
        );
        check(
            "max_bytes",
            "bytes",
            usage.bytes(),
            change.bytes(),
            self.max_bytes,
        );
        if passed.is_empty() {
            Ok(())
        } else {
            Err(Refusal::QuotaExceeded(passed))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::fixtures::{PENDING_TTL, lifecycle, request};
    use crate::domain::timestamp;

    #[test]
    fn each_step_of_a_file_holds_what_its_content_and_upload_say() {
        let steps = lifecycle();
        let step = |name: &str| &steps.iter().find(|(n, _)| *n == name).unwrap().1;
        let size = step("declared").content.file_size as i64;
        let uploading = Usage {
            files_uploading: 1,
            files: 1,
            bytes_reserved: size,
            ..Usage::default()
        };
        let served = Usage {
            files_verified: 1,
            files: 1,
            bytes_verified: size,
            ..Usage::default()
        };
        let reupload_aborted = step("reuploading a verified file")
            .abort_upload(timestamp::now(), PENDING_TTL)
            .unwrap();
        let table = [
            ("no file", None, Usage::default()),
            ("declared", Some(step("declared")), uploading),
            ("uploaded", Some(step("uploaded")), uploading),
            ("verified", Some(step("verified")), served),
            ("rejected", Some(step("rejected")), Usage::default()),
            ("aborted", Some(step("aborted")), Usage::default()),
            (
                // The new content is reserved; the verified one is still served: one file.
                "reuploading a verified file",
                Some(step("reuploading a verified file")),
                Usage {
                    files_uploading: 1,
                    bytes_reserved: request().file_size as i64,
                    ..served
                },
            ),
            ("reupload aborted", Some(&reupload_aborted), served),
        ];
        for (name, file, holds) in table {
            assert_eq!(Usage::of(file), holds, "{name}");
        }
        let (uploaded, verified) = (step("uploaded"), step("verified"));
        assert_eq!(
            Usage::change(Some(uploaded), Some(verified)),
            Usage {
                files_uploading: -1,
                files_verified: 1,
                bytes_reserved: -size,
                bytes_verified: size,
                files: 0,
            },
            "settling moves the file from reserved to verified, taking nothing more"
        );
        assert!(!Usage::change(Some(uploaded), Some(verified)).takes());
        assert!(Usage::change(Some(verified), Some(step("reuploading a verified file"))).takes());
        assert_eq!(
            Usage::change(Some(verified), None),
            Usage::default() - served
        );
    }

    #[test]
    fn counters_counted_apart_sum_to_what_the_changes_add_up_to() {
        let steps = lifecycle();
        let files: Vec<Option<&FileRecord>> = steps.iter().map(|(_, file)| Some(file)).collect();
        // Each file's change counted in a different place (a shard, the project item): the sum
        // of the places is the sum of what the files hold, added up here field by field so
        // that `Sum` is held to something other than itself.
        let places: Vec<Usage> = files
            .iter()
            .map(|file| Usage::change(None, *file))
            .collect();
        let whole = files.iter().fold(Usage::default(), |sum, file| {
            let of = Usage::of(*file);
            Usage {
                files_verified: sum.files_verified + of.files_verified,
                files_uploading: sum.files_uploading + of.files_uploading,
                files: sum.files + of.files,
                bytes_verified: sum.bytes_verified + of.bytes_verified,
                bytes_reserved: sum.bytes_reserved + of.bytes_reserved,
            }
        });
        assert_eq!(places.iter().copied().sum::<Usage>(), whole);
        assert!(!whole.is_zero());
        // A change and its give-back, counted apart, cancel.
        let verified = &steps.iter().find(|(n, _)| *n == "verified").unwrap().1;
        let taken = Usage::change(None, Some(verified));
        let given_back = Usage::change(Some(verified), None);
        assert!((taken + given_back).is_zero());
    }

    #[test]
    fn a_quota_refuses_what_would_pass_it_naming_each_bound() {
        let used = Usage {
            files_verified: 8,
            files: 9,
            files_uploading: 1,
            bytes_verified: 800,
            bytes_reserved: 100,
        };
        let one = |bytes| Usage {
            files_uploading: 1,
            files: 1,
            bytes_reserved: bytes,
            ..Usage::default()
        };
        let quota = Quota {
            max_files: Some(10),
            max_bytes: Some(1000),
        };
        assert!(
            quota.admit(&used, &one(100)).is_ok(),
            "exactly at both bounds"
        );
        let err = quota.admit(&used, &one(101)).unwrap_err();
        assert!(matches!(err, Refusal::QuotaExceeded(_)), "{err:?}");
        assert_eq!(err.details()[0].field.as_deref(), Some("max_bytes"));
        assert_eq!(
            err.details()[0].message,
            "900 bytes used of 1000; this needs 101 more"
        );
        let full = Usage { files: 10, ..used };
        let err = quota.admit(&full, &one(200)).unwrap_err();
        let fields: Vec<_> = err.details().iter().map(|d| d.field.as_deref()).collect();
        assert_eq!(fields, [Some("max_files"), Some("max_bytes")]);
        assert!(
            Quota::default().admit(&full, &one(1 << 40)).is_ok(),
            "no quota"
        );
        let release = Usage::default() - one(100);
        assert!(
            quota.admit(&Usage { files: 50, ..used }, &release).is_ok(),
            "above a lowered quota, giving back passes"
        );
    }
}

//! Parts of a multipart upload: what storage holds, what a client claims, and whether they
//! make the whole planned object.

use crate::domain::error::{Detail, Refusal};
use crate::domain::file::UploadJob;
use crate::domain::values::Sha256;

/// A part the client asks a URL for: its number and, in an upload with part checksums, the
/// SHA-256 of its bytes, which the URL is signed for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestedPart {
    pub number: u32,
    pub sha256: Option<Sha256>,
}

impl RequestedPart {
    pub fn unhashed(number: u32) -> Self {
        Self {
            number,
            sha256: None,
        }
    }
}

/// A part already in storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadedPart {
    pub part_number: u32,
    pub size: u64,
    pub etag: String,
    /// The SHA-256 storage checked the part against, in an upload with part checksums.
    pub checksum_sha256: Option<String>,
}

/// A part the client says it uploaded, with the ETag storage returned for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportedPart {
    pub part_number: u32,
    pub etag: String,
}

/// The parts to assemble, in order, if storage holds every planned part at its planned size
/// (and, when the client listed its ETags, with those ETags); else 409 `upload_incomplete`
/// naming the missing, wrong-sized and mismatched parts.
pub fn parts_to_assemble(
    job: &UploadJob,
    file_size: u64,
    stored: &[UploadedPart],
    reported: Option<&[ReportedPart]>,
) -> Result<Vec<UploadedPart>, Refusal> {
    let shape = job.shape();
    let (mut missing, mut wrong_size, mut mismatched) = (Vec::new(), Vec::new(), Vec::new());
    let mut parts = Vec::with_capacity(job.part_count as usize);
    for number in 1..=job.part_count {
        let Some(part) = stored.iter().find(|part| part.part_number == number) else {
            missing.push(number);
            continue;
        };
        if Some(part.size) != shape.expected_part_size(file_size, number) {
            wrong_size.push(number);
        }
        let report =
            reported.and_then(|reported| reported.iter().find(|r| r.part_number == number));
        if report.is_some_and(|report| report.etag.trim_matches('"') != part.etag.trim_matches('"'))
        {
            mismatched.push(number);
        }
        parts.push(part.clone());
    }
    let mut details = Vec::new();
    if !missing.is_empty() {
        details.push(
            Detail::reason(
                "upload_incomplete",
                format!("{} of {} parts are missing", missing.len(), job.part_count),
            )
            .with_parts(missing),
        );
    }
    if !wrong_size.is_empty() {
        details.push(
            Detail::reason(
                "upload_incomplete",
                format!(
                    "parts must be {} bytes, the last one the remainder",
                    job.part_size
                ),
            )
            .with_parts(wrong_size),
        );
    }
    if !mismatched.is_empty() {
        details.push(
            Detail::reason(
                "upload_incomplete",
                "the stored parts have other ETags than the ones given",
            )
            .with_parts(mismatched),
        );
    }
    if details.is_empty() {
        Ok(parts)
    } else {
        Err(Refusal::Conflict {
            message: "the upload is incomplete".into(),
            details,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ids::JobId;
    use crate::domain::timestamp;
    use std::collections::BTreeMap;

    const MIB: u64 = 1 << 20;

    fn job() -> UploadJob {
        UploadJob {
            job_id: JobId::random(),
            s3_key: "k".into(),
            upload_id: Some("u".into()),
            part_size: 5 * MIB,
            part_count: 4,
            expires_at: timestamp::now(),
            headers: BTreeMap::new(),
            part_checksums: false,
            checkpoint: None,
        }
    }

    fn part(part_number: u32, size: u64) -> UploadedPart {
        UploadedPart {
            part_number,
            size,
            etag: format!("\"etag{part_number}\""),
            checksum_sha256: None,
        }
    }

    const FILE_SIZE: u64 = 15 * MIB + 1234;

    #[test]
    fn all_parts_at_their_planned_sizes_assemble_in_order() {
        let stored = [
            part(2, 5 * MIB),
            part(1, 5 * MIB),
            part(4, 1234),
            part(3, 5 * MIB),
        ];
        let mut sorted = stored.to_vec();
        sorted.sort_by_key(|p| p.part_number);
        assert_eq!(
            parts_to_assemble(&job(), FILE_SIZE, &stored, None).unwrap(),
            sorted
        );
    }

    #[test]
    fn missing_and_wrong_sized_parts_are_named() {
        let stored = [part(1, 5 * MIB), part(2, 5 * MIB - 1), part(4, 1235)];
        let err = parts_to_assemble(&job(), FILE_SIZE, &stored, None).unwrap_err();
        let details = err.details();
        assert!(matches!(err, Refusal::Conflict { .. }), "{err:?}");
        assert_eq!(details[0].part_numbers, [3]);
        assert_eq!(details[1].part_numbers, [2, 4]);
        assert!(
            details
                .iter()
                .all(|d| d.reason == Some("upload_incomplete"))
        );
    }

    #[test]
    fn claimed_etags_must_match_with_or_without_quotes() {
        let stored = [
            part(1, 5 * MIB),
            part(2, 5 * MIB),
            part(3, 5 * MIB),
            part(4, 1234),
        ];
        let reported = [
            ReportedPart {
                part_number: 1,
                etag: "etag1".into(),
            },
            ReportedPart {
                part_number: 3,
                etag: "\"other\"".into(),
            },
        ];
        let err = parts_to_assemble(&job(), FILE_SIZE, &stored, Some(&reported)).unwrap_err();
        assert_eq!(err.details()[0].part_numbers, [3]);
    }
}

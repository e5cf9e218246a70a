//! The contract's JSON shapes (`docs/API.md`): the file resource, the upload plan, the event, the
//! usage report and the error body, as the HTTP edge answers them and notify and deliver publish them. Shapes
//! only: what needs a service to fill in (a presigned download URL) is the edge's
//! (`http::render_file`).

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Map, Value, json};
use time::OffsetDateTime;

use crate::domain::error::MAX_DETAILS;
use crate::domain::event::{EventType, event_id};
use crate::domain::parts::UploadedPart;
use crate::domain::timestamp;
use crate::domain::values::{FileName, Md5, MediaType, Metadata, Sha256};
use crate::domain::{FileId, FileRecord, FileStatus, JobId, RejectionReason, UploadJob};
use crate::error::Error;

#[derive(Debug, Serialize)]
pub struct UploadPlan {
    pub file_id: FileId,
    pub job_id: JobId,
    pub status: FileStatus,
    pub s3_key: String,
    pub method: &'static str,
    pub headers: BTreeMap<String, String>,
    pub urls: Vec<String>,
    pub upload_id: Option<String>,
    pub part_size: u64,
    pub part_count: u32,
    /// `"sha256"` when each part's URL is signed for the part's SHA-256, which the client gives
    /// to `POST …/parts`: `urls` is then empty.
    pub part_checksums: Option<&'static str>,
    pub expires_at: String,
}

impl UploadPlan {
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self)
            .unwrap_or_else(|err| unreachable!("an UploadPlan always serializes: {err}"))
    }

    pub fn new(file_id: FileId, job: &UploadJob, urls: Vec<String>) -> Self {
        Self {
            file_id,
            job_id: job.job_id,
            status: FileStatus::PendingUpload,
            s3_key: job.s3_key.clone(),
            method: "PUT",
            headers: job.headers.clone(),
            urls,
            upload_id: job.upload_id.clone(),
            part_size: job.part_size,
            part_count: job.part_count,
            part_checksums: job.part_checksums.then_some("sha256"),
            expires_at: timestamp::format(job.expires_at),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct FileResource {
    pub file_id: FileId,
    pub project_id: String,
    pub file_name: FileName,
    pub content_type: MediaType,
    pub file_size: u64,
    pub sha256: Option<Sha256>,
    pub md5: Option<Md5>,
    pub metadata: Metadata,
    pub status: FileStatus,
    pub rejection_reason: Option<RejectionReason>,
    pub created_at: String,
    pub updated_at: String,
    pub verified_at: Option<String>,
    /// While a large upload is checked in steps: how many of its bytes were checked so far.
    pub bytes_checked: Option<u64>,
    /// The upload in progress. URLs are handed out only by create, reupload and `POST …/parts`,
    /// so that listings never carry live credentials; `urls` is empty here.
    pub upload: Option<UploadPlan>,
    pub download_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deduplicated: Option<bool>,
}

impl FileResource {
    /// `record`, without a download URL.
    pub fn of(record: &FileRecord) -> Self {
        let upload = match (&record.job, record.status) {
            (Some(job), FileStatus::PendingUpload) => {
                Some(UploadPlan::new(record.file_id, job, Vec::new()))
            }
            _ => None,
        };
        Self {
            file_id: record.file_id,
            project_id: record.project_id.clone(),
            file_name: record.content.file_name.clone(),
            content_type: record.content.content_type.clone(),
            file_size: record.content.file_size,
            sha256: record.content.sha256,
            md5: record.content.md5,
            metadata: record.metadata.clone(),
            status: record.status,
            rejection_reason: record.rejection_reason,
            created_at: timestamp::format(record.created_at),
            updated_at: timestamp::format(record.updated_at),
            verified_at: record
                .verified
                .as_ref()
                .map(|v| timestamp::format(v.verified_at)),
            bytes_checked: record
                .job
                .as_ref()
                .and_then(|job| job.checkpoint.as_ref())
                .filter(|_| record.awaits_verdict())
                .map(|checkpoint| checkpoint.bytes_checked),
            upload,
            download_url: None,
            deduplicated: None,
        }
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self)
            .unwrap_or_else(|err| unreachable!("a FileResource always serializes: {err}"))
    }
}

/// An event (docs/API.md v1.1, "Events and webhooks"): EventBridge's `detail`, a webhook's body.
#[derive(Debug, Clone, PartialEq)]
pub struct EventMessage {
    pub id: String,
    pub kind: EventType,
    pub at: OffsetDateTime,
    /// The file resource, without `download_url` (an event may be read long after any URL in it
    /// expired, and goes to places the file's readers do not choose) and `bytes_checked` (the
    /// progress of a check, which events never report).
    pub data: serde_json::Value,
}

impl EventMessage {
    /// The event `kind` of the change that left `file` as it is (as it was, for a deletion),
    /// made at `at`; `version` tells the file's changes apart ([`event_id`]).
    pub fn new(
        kind: EventType,
        file: &FileRecord,
        version: OffsetDateTime,
        at: OffsetDateTime,
    ) -> Self {
        let mut data = FileResource::of(file).to_json();
        if let Some(fields) = data.as_object_mut() {
            fields.remove("download_url");
            fields.remove("bytes_checked");
        }
        Self {
            id: event_id(file, kind, version),
            kind,
            at,
            data,
        }
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "id": self.id,
            "type": self.kind.as_str(),
            "timestamp": timestamp::format(self.at),
            "data": self.data,
        })
    }

    /// An event as [`EventMessage::to_json`] wrote it; `None` for anything else.
    pub fn from_json(value: &serde_json::Value) -> Option<Self> {
        Some(Self {
            id: value.get("id")?.as_str()?.to_owned(),
            kind: EventType::parse(value.get("type")?.as_str()?)?,
            at: timestamp::parse(value.get("timestamp")?.as_str()?)?,
            data: value.get("data")?.clone(),
        })
    }

    /// The project of the file the event is about.
    pub fn project_id(&self) -> Option<&str> {
        self.data.get("project_id")?.as_str()
    }
}

/// The body of `POST …/parts`: `{"urls": {"7": "…"}, "headers": {"7": {…}}, "expires_at": "…"}`
/// (JSON objects are keyed by strings).
pub fn part_urls(
    urls: &BTreeMap<u32, String>,
    headers: &BTreeMap<u32, BTreeMap<String, String>>,
    expires_at: OffsetDateTime,
) -> Value {
    fn by_part<T: Serialize>(map: &BTreeMap<u32, T>) -> Map<String, Value> {
        map.iter()
            .map(|(number, value)| (number.to_string(), json!(value)))
            .collect()
    }
    json!({
        "urls": by_part(urls),
        "headers": by_part(headers),
        "expires_at": timestamp::format(expires_at),
    })
}

/// The body of `GET …/parts`: the parts already in storage.
pub fn uploaded_parts(parts: &[UploadedPart]) -> Value {
    let parts: Vec<_> = parts
        .iter()
        .map(|part| json!({"part_number": part.part_number, "size": part.size, "etag": part.etag}))
        .collect();
    json!({ "parts": parts })
}

/// The body of `GET …/usage` (docs/API.md, v1.2 "Usage and quotas").
pub fn usage(project_id: &str, found: &crate::domain::usage::ProjectUsage) -> serde_json::Value {
    let usage = &found.usage;
    serde_json::json!({
        "project_id": project_id,
        "files": {"verified": usage.files_verified, "uploading": usage.files_uploading},
        "bytes": {"verified": usage.bytes_verified, "reserved": usage.bytes_reserved},
        "quota": {"max_files": found.quota.max_files, "max_bytes": found.quota.max_bytes},
    })
}

/// The body of an error response, as `docs/API.md` fixes it. At most [`MAX_DETAILS`]
/// details are listed (the message still counts them all), so that no body can outgrow
/// Lambda's 6 MB response limit however many fields a request got wrong.
pub fn error_body(err: &Error, request_id: &str) -> Value {
    let details = err.details();
    json!({
        "error": {
            "code": crate::error::code(err),
            "message": err.to_string(),
            "details": &details[..details.len().min(MAX_DETAILS)],
        },
        "request_id": request_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::error::{Detail, Refusal};
    use crate::error::Failure;

    #[test]
    fn statuses_reasons_event_types_and_digests_are_written_as_their_wire_names() {
        for status in FileStatus::ALL {
            assert_eq!(json!(status), status.as_str());
        }
        for reason in RejectionReason::ALL {
            assert_eq!(json!(reason), reason.as_str());
        }
        for kind in EventType::ALL {
            assert_eq!(json!(kind), kind.as_str());
        }
        let sha = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=";
        assert_eq!(json!(Sha256::parse(sha).unwrap()), sha);
    }

    #[test]
    fn validation_body_lists_every_field() {
        let err = Error::from(Refusal::Validation(vec![
            Detail::field("file_size", "must be between 1 and 5"),
            Detail::field("sha256", "must be base64"),
        ]));
        let body = error_body(&err, "req-1");
        assert_eq!(body["error"]["code"], "validation_error");
        assert_eq!(body["error"]["message"], "2 fields are invalid");
        assert_eq!(body["error"]["details"][1]["field"], "sha256");
        assert_eq!(body["request_id"], "req-1");
    }

    #[test]
    fn a_body_lists_a_bounded_number_of_details_and_counts_them_all() {
        let err = Error::from(Refusal::Validation(
            (0..100_000)
                .map(|i| Detail::field(format!("metadata[{i}]"), "must be a string"))
                .collect(),
        ));
        let body = error_body(&err, "r");
        assert_eq!(
            body["error"]["details"].as_array().unwrap().len(),
            MAX_DETAILS
        );
        assert_eq!(
            body["error"]["message"],
            "100000 fields are invalid; the first 50 are listed"
        );
        assert!(body.to_string().len() < 10_000);
    }

    #[test]
    fn a_503_tells_to_retry_with_the_same_key_whether_or_not_its_write_may_have_applied() {
        for err in [
            Failure::Unavailable("GetItem file: timeout".into()),
            Failure::MayHaveApplied("PutItem file: timeout".into()),
        ] {
            let body = error_body(&err.into(), "r");
            assert_eq!(body["error"]["code"], "unavailable");
            let message = body["error"]["message"].as_str().unwrap();
            assert!(message.contains("retry later with the same Idempotency-Key"));
            assert!(!body.to_string().contains("timeout"), "{body}");
        }
    }

    #[test]
    fn internal_errors_do_not_leak_their_text() {
        let err = Failure::Internal("table files-prod: secret detail".into());
        let body = error_body(&err.into(), "r").to_string();
        assert!(!body.contains("secret"), "{body}");
        assert!(body.contains(r#""code":"internal""#), "{body}");
    }
}

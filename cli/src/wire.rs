//! The shapes of docs/API.md this command line reads and sends. Its own, not the `shared`
//! crate's (that would bring the AWS SDK into a small binary); scripts/cli-test, which runs the
//! CLI against the real service, keeps them honest. Fields the CLI does not use are left out:
//! the service may add fields, and the file resource is also passed on whole as JSON (`--json`).

use std::collections::BTreeMap;

use serde::Deserialize;

/// The upload plan: answered by create, and the `upload` of a file while one is in progress
/// (there without URLs).
#[derive(Debug, Clone, Deserialize)]
pub struct Plan {
    pub file_id: String,
    pub job_id: String,
    /// Signed into every PUT of a single-part upload; empty for parts.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Parts 1..k in order, or none (parts signed for their checksums are asked for one batch at
    /// a time, and a file's `upload` never carries URLs).
    #[serde(default)]
    pub urls: Vec<String>,
    pub upload_id: Option<String>,
    pub part_size: u64,
    pub part_count: u32,
    pub expires_at: String,
    /// `"sha256"` when each part is signed for its SHA-256 (asked for one batch at a time, once
    /// hashed); null otherwise.
    #[serde(default)]
    pub part_checksums: Option<String>,
}

impl Plan {
    pub fn is_multipart(&self) -> bool {
        self.upload_id.is_some()
    }
}

/// The file resource, as much of it as the CLI reads.
#[derive(Debug, Clone, Deserialize)]
pub struct File {
    pub file_id: String,
    pub file_name: String,
    pub file_size: u64,
    pub sha256: Option<String>,
    pub status: String,
    pub bytes_checked: Option<u64>,
    pub upload: Option<Plan>,
    pub download_url: Option<String>,
    #[serde(default)]
    pub created_at: String,
}

impl File {
    /// Whether the file's status is final for `--wait`.
    pub fn is_settled(&self) -> bool {
        matches!(self.status.as_str(), "verified" | "rejected")
    }
}

/// `POST …/parts`: a URL per part and, for parts signed for their checksums, the headers each
/// PUT must carry.
#[derive(Debug, Clone, Deserialize)]
pub struct SignedParts {
    pub urls: BTreeMap<String, String>,
    #[serde(default)]
    pub headers: BTreeMap<String, BTreeMap<String, String>>,
    pub expires_at: String,
}

/// `GET …/parts`.
#[derive(Debug, Clone, Deserialize)]
pub struct StoredParts {
    pub parts: Vec<StoredPart>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
pub struct StoredPart {
    pub part_number: u32,
    pub size: u64,
}

/// `GET …/files`.
#[derive(Debug, Clone, Deserialize)]
pub struct FileList {
    pub files: Vec<serde_json::Value>,
    pub next_cursor: Option<String>,
}

/// Every non-2xx answer of the API.
#[derive(Debug, Clone, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
    pub request_id: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ErrorDetail {
    pub code: String,
    pub message: String,
    #[serde(default)]
    pub details: Vec<serde_json::Value>,
}

//! The contract's JSON (`docs/API.md`) as the tests read it: the upload plan, the file resource,
//! the other routes' answers and the error body, declared here rather than borrowed from
//! `shared::contract`, so that the tests check the wire and not the server's own types.
//!
//! Every shape denies unknown fields: a field the contract does not name fails the test that
//! reads it, and a required field that is missing does too.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Value, json};

/// A file's status, as the wire spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    PendingUpload,
    Uploaded,
    Verified,
    Rejected,
}

/// The upload plan that create and reupload answer.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    pub file_id: String,
    pub job_id: String,
    pub status: Status,
    pub s3_key: String,
    pub method: String,
    /// The headers every PUT must carry, exactly: they are signed.
    pub headers: BTreeMap<String, String>,
    /// One presigned PUT per part, parts 1..k in order (empty inside a file resource).
    pub urls: Vec<String>,
    pub upload_id: Option<String>,
    pub part_size: u64,
    pub part_count: u32,
    /// `Some("sha256")` when each part's URL is signed for its SHA-256 (then `urls` is empty).
    pub part_checksums: Option<String>,
    pub expires_at: String,
}

impl Plan {
    /// The plan's URL for part `number` (1-based; a single-part upload has part 1 only).
    pub fn url(&self, number: u32) -> &str {
        let index = usize::try_from(number).expect("a part number") - 1;
        self.urls
            .get(index)
            .unwrap_or_else(|| panic!("the plan has no URL for part {number}: {self:#?}"))
    }

    /// A PUT of `bytes` to `url` with the plan's signed headers, as a client sends it.
    pub fn put(
        &self,
        http: &reqwest::Client,
        url: &str,
        bytes: Vec<u8>,
    ) -> reqwest::RequestBuilder {
        self.headers
            .iter()
            .fold(http.put(url).body(bytes), |request, (name, value)| {
                request.header(name, value)
            })
    }
}

/// The file resource: what get, complete and abort answer, and create for content already
/// verified in the project.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct File {
    pub file_id: String,
    pub project_id: String,
    pub file_name: String,
    pub content_type: String,
    pub file_size: u64,
    pub sha256: Option<String>,
    pub md5: Option<String>,
    pub metadata: BTreeMap<String, String>,
    pub status: Status,
    pub rejection_reason: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub verified_at: Option<String>,
    /// How far a check in steps got.
    pub bytes_checked: Option<u64>,
    /// The upload in progress, without URLs.
    pub upload: Option<Plan>,
    pub download_url: Option<String>,
    /// `Some(true)` when create found the content verified already; absent otherwise.
    pub deduplicated: Option<bool>,
}

/// A page of the file listing.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilePage {
    pub files: Vec<File>,
    pub next_cursor: Option<String>,
}

/// The answer of `GET …/parts`: the parts in storage, for resuming.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoredParts {
    pub parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Part {
    pub part_number: u32,
    pub size: u64,
    pub etag: String,
}

/// The answer of `POST …/upload-tokens`: the token, shown once, and its bounds.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MintedToken {
    pub token: String,
    pub project_id: String,
    pub expires_at: String,
    pub max_file_size: Option<u64>,
    pub content_types: Vec<String>,
    pub max_files: u32,
    pub metadata: BTreeMap<String, String>,
}

/// The answer of `POST …/parts`: fresh URLs by part number, and the headers signed into each
/// beside the plan's (a part's SHA-256, for an upload with part checksums).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedParts {
    pub urls: BTreeMap<u32, String>,
    pub headers: BTreeMap<u32, BTreeMap<String, String>>,
    pub expires_at: String,
}

impl SignedParts {
    pub fn url(&self, number: u32) -> &str {
        self.urls
            .get(&number)
            .unwrap_or_else(|| panic!("no URL for part {number}: {self:#?}"))
    }

    /// A PUT of part `number` with the plan's headers and the part's own, as a client sends it.
    pub fn put(
        &self,
        http: &reqwest::Client,
        plan: &Plan,
        number: u32,
        bytes: Vec<u8>,
    ) -> reqwest::RequestBuilder {
        let own = self.headers.get(&number).into_iter().flatten();
        own.fold(
            plan.put(http, self.url(number), bytes),
            |request, (name, value)| request.header(name, value),
        )
    }
}

/// Every non-2xx body: the error and the request id. Its fields are all required and no other
/// is allowed, so a body that reads as one has exactly the contract's keys.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiErrorBody {
    pub error: ErrorInfo,
    pub request_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorInfo {
    pub code: String,
    pub message: String,
    pub details: Vec<ErrorDetail>,
}

/// One detail of an error: a bad `field`, or a `reason` (with the `part_numbers` it concerns).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorDetail {
    pub field: Option<String>,
    pub reason: Option<String>,
    pub message: String,
    #[serde(default)]
    pub part_numbers: Vec<u32>,
}

impl ApiErrorBody {
    /// The `field` of every detail that names one, in order.
    pub fn fields(&self) -> Vec<String> {
        self.error
            .details
            .iter()
            .filter_map(|detail| detail.field.clone())
            .collect()
    }

    /// The reason of the first detail, which says why a conflict is one.
    pub fn reason(&self) -> Option<&str> {
        self.error.details.first()?.reason.as_deref()
    }
}

/// A create body declaring `bytes` as `file_name` of `content_type`, with their SHA-256 and MD5
/// when asked.
pub fn declaration(
    file_name: &str,
    content_type: &str,
    bytes: &[u8],
    sha256: bool,
    md5: bool,
) -> Value {
    let (sha256_digest, md5_digest) = digests(bytes);
    let mut body =
        json!({"file_name": file_name, "file_size": bytes.len(), "content_type": content_type});
    if sha256 {
        body["sha256"] = json!(sha256_digest);
    }
    if md5 {
        body["md5"] = json!(md5_digest);
    }
    body
}

/// Base64 SHA-256 and MD5 of `bytes`, as the API expects them.
pub fn digests(bytes: &[u8]) -> (String, String) {
    use base64::Engine;
    use sha2::Digest;
    let b64 = base64::engine::general_purpose::STANDARD;
    (
        b64.encode(sha2::Sha256::digest(bytes)),
        b64.encode(md5::Md5::digest(bytes)),
    )
}

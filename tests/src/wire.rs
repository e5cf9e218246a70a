//! Request bodies as the API expects them.

use serde_json::{Value, json};

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

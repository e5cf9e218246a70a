//! The S3 side: presigned PUTs signed for the declared content, object checks, download URLs.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use aws_sdk_s3::Client;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::{Credentials, ProvideCredentials, SharedCredentialsProvider};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::operation::head_object::HeadObjectError;
use aws_sdk_s3::presigning::{PresignedRequest, PresigningConfig};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ChecksumMode, CompletedMultipartUpload, CompletedPart};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::error::ApiError;
use crate::model::ContentDeclaration;
use crate::part_signer::PartUrlSigner;

/// A URL and the headers that were signed into it: the client must send exactly these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresignedPut {
    pub url: String,
    pub headers: BTreeMap<String, String>,
}

/// A part already in storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadedPart {
    pub part_number: u32,
    pub size: u64,
    pub etag: String,
}

/// S3 answers 404 `NoSuchUpload` for an upload id that was completed, aborted or never existed.
fn is_no_such_upload<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> bool {
    let status = err
        .raw_response()
        .map(|response| response.status().as_u16());
    match err.code() {
        Some(code) => code == "NoSuchUpload",
        None => status == Some(404),
    }
}

/// What storage reports about a stored object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectHead {
    pub size: u64,
    pub content_type: Option<String>,
    /// The SHA-256 that storage itself checked on upload, when one was sent with the PUT.
    pub checksum_sha256: Option<String>,
    pub etag: Option<String>,
}

#[derive(Clone, Debug)]
pub struct ObjectStore {
    client: Client,
    bucket: String,
    /// The credentials the client signs with, for signing part URLs in bulk.
    credentials: Option<SharedCredentialsProvider>,
    signing_credentials: Arc<Mutex<Option<Credentials>>>,
}

/// Credentials kept for bulk signing are refreshed this long before they expire.
const CREDENTIALS_MARGIN: Duration = Duration::from_secs(300);

impl ObjectStore {
    pub fn new(
        client: Client,
        bucket: impl Into<String>,
        credentials: Option<SharedCredentialsProvider>,
    ) -> Self {
        Self {
            client,
            bucket: bucket.into(),
            credentials,
            signing_credentials: Arc::default(),
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// A PUT URL for the whole object, signed for the declared type, length and digests, so
    /// storage refuses any other body.
    pub async fn presign_put(
        &self,
        key: &str,
        content: &ContentDeclaration,
        expires_in: Duration,
    ) -> Result<PresignedPut, ApiError> {
        let length = i64::try_from(content.file_size).map_err(|_| {
            ApiError::Internal(format!("file size {} overflows i64", content.file_size))
        })?;
        // Only the declared value is set, never `checksum_algorithm` too (awslabs/aws-sdk-rust#1103).
        let request = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(&content.content_type)
            .content_length(length)
            .set_checksum_sha256(content.sha256.clone())
            .set_content_md5(content.md5.clone())
            // Write-once: a second PUT with this URL cannot replace what landed (or was verified).
            .if_none_match("*")
            .presigned(presigning(expires_in)?)
            .await
            .map_err(|err| ApiError::Internal(format!("presign PutObject: {err}")))?;
        Ok(presigned_put(&request))
    }

    /// Starts a multipart upload whose object will have `content_type`; returns its upload id.
    pub async fn create_multipart_upload(
        &self,
        key: &str,
        content_type: &str,
    ) -> Result<String, ApiError> {
        let output = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .send()
            .await
            .map_err(|err| ApiError::from_aws("CreateMultipartUpload", err))?;
        output
            .upload_id
            .ok_or_else(|| ApiError::Internal("CreateMultipartUpload returned no upload id".into()))
    }

    /// PUT URLs for parts of a multipart upload. Only the host is signed: part sizes are checked
    /// at completion. The SDK signs the first; the rest are signed in bulk from it.
    pub async fn presign_parts(
        &self,
        key: &str,
        upload_id: &str,
        part_numbers: &[u32],
        expires_in: Duration,
    ) -> Result<BTreeMap<u32, String>, ApiError> {
        self.presign_parts_at(key, upload_id, part_numbers, expires_in, SystemTime::now())
            .await
    }

    /// [`ObjectStore::presign_parts`] as if signed at `signed_at`.
    pub async fn presign_parts_at(
        &self,
        key: &str,
        upload_id: &str,
        part_numbers: &[u32],
        expires_in: Duration,
        signed_at: SystemTime,
    ) -> Result<BTreeMap<u32, String>, ApiError> {
        let Some((&first, rest)) = part_numbers.split_first() else {
            return Ok(BTreeMap::new());
        };
        let template = self
            .presign_part_at(key, upload_id, first, expires_in, signed_at)
            .await?;
        if !rest.is_empty()
            && let Some(signer) = self.part_signer(&template, signed_at).await
        {
            return Ok(signer.urls(part_numbers));
        }
        let mut urls = BTreeMap::from([(first, template)]);
        for &part_number in rest {
            urls.insert(
                part_number,
                self.presign_part_at(key, upload_id, part_number, expires_in, signed_at)
                    .await?,
            );
        }
        Ok(urls)
    }

    async fn part_signer(&self, template: &str, signed_at: SystemTime) -> Option<PartUrlSigner> {
        let credentials = self.signing_credentials().await?;
        let signer =
            PartUrlSigner::from_template(template, credentials.secret_access_key(), signed_at);
        if signer.is_none() {
            tracing::warn!(
                "bulk part signing disagreed with the SDK; signing each part with the SDK"
            );
        }
        signer
    }

    /// The current credentials, from a cache: the provider chain may make a network call.
    async fn signing_credentials(&self) -> Option<Credentials> {
        let fresh = |credentials: &Credentials| {
            credentials
                .expiry()
                .is_none_or(|expiry| expiry > SystemTime::now() + CREDENTIALS_MARGIN)
        };
        if let Some(cached) = self.signing_credentials.lock().ok()?.clone().filter(fresh) {
            return Some(cached);
        }
        let credentials = self
            .credentials
            .as_ref()?
            .provide_credentials()
            .await
            .ok()?;
        *self.signing_credentials.lock().ok()? = Some(credentials.clone());
        Some(credentials)
    }

    /// The SDK's presigned URL for one part, as if signed at `signed_at`.
    pub async fn presign_part_at(
        &self,
        key: &str,
        upload_id: &str,
        part_number: u32,
        expires_in: Duration,
        signed_at: SystemTime,
    ) -> Result<String, ApiError> {
        let part_number = i32::try_from(part_number)
            .map_err(|_| ApiError::Internal(format!("part number {part_number} overflows i32")))?;
        let request = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .part_number(part_number)
            .presigned(presigning_at(expires_in, signed_at)?)
            .await
            .map_err(|err| ApiError::Internal(format!("presign UploadPart: {err}")))?;
        Ok(request.uri().to_owned())
    }

    /// Every part uploaded so far, in part-number order; `None` when the upload no longer exists
    /// (completed or aborted).
    pub async fn list_parts(
        &self,
        key: &str,
        upload_id: &str,
    ) -> Result<Option<Vec<UploadedPart>>, ApiError> {
        let mut parts = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let result = self
                .client
                .list_parts()
                .bucket(&self.bucket)
                .key(key)
                .upload_id(upload_id)
                .set_part_number_marker(marker.take())
                .send()
                .await;
            let output = match result {
                Ok(output) => output,
                Err(err) if is_no_such_upload(&err) => {
                    return Ok(None);
                }
                Err(err) => return Err(ApiError::from_aws("ListParts", err)),
            };
            for part in output.parts() {
                parts.push(UploadedPart {
                    part_number: part
                        .part_number
                        .and_then(|n| u32::try_from(n).ok())
                        .unwrap_or(0),
                    size: part.size.and_then(|n| u64::try_from(n).ok()).unwrap_or(0),
                    etag: part.e_tag.clone().unwrap_or_default(),
                });
            }
            match (output.is_truncated, output.next_part_number_marker) {
                (Some(true), Some(next)) => marker = Some(next),
                _ => break,
            }
        }
        parts.sort_by_key(|part| part.part_number);
        Ok(Some(parts))
    }

    /// Assembles the object from `parts` (number and ETag, in order); `false` when the upload no
    /// longer exists (completed by a racing call, or aborted).
    pub async fn complete_multipart_upload(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[UploadedPart],
    ) -> Result<bool, ApiError> {
        let completed = parts
            .iter()
            .map(|part| {
                CompletedPart::builder()
                    .part_number(i32::try_from(part.part_number).unwrap_or(i32::MAX))
                    .e_tag(&part.etag)
                    .build()
            })
            .collect();
        let result = self
            .client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(completed))
                    .build(),
            )
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(err) if is_no_such_upload(&err) => Ok(false),
            Err(err) => Err(ApiError::from_aws("CompleteMultipartUpload", err)),
        }
    }

    /// Aborts a multipart upload; `false` when it no longer existed (completed or aborted).
    pub async fn abort_multipart_upload(
        &self,
        key: &str,
        upload_id: &str,
    ) -> Result<bool, ApiError> {
        let result = self
            .client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(err) if is_no_such_upload(&err) => Ok(false),
            Err(err) => Err(ApiError::from_aws("AbortMultipartUpload", err)),
        }
    }

    pub async fn delete(&self, key: &str) -> Result<(), ApiError> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|err| ApiError::from_aws("DeleteObject", err))?;
        Ok(())
    }

    /// The object's size, type and stored checksum, or `None` when there is no such object.
    pub async fn head(&self, key: &str) -> Result<Option<ObjectHead>, ApiError> {
        let result = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .checksum_mode(ChecksumMode::Enabled)
            .send()
            .await;
        match result {
            Ok(output) => Ok(Some(ObjectHead {
                size: output
                    .content_length
                    .and_then(|n| u64::try_from(n).ok())
                    .unwrap_or(0),
                content_type: output.content_type,
                checksum_sha256: output.checksum_sha256,
                etag: output.e_tag,
            })),
            Err(err) if matches!(err.as_service_error(), Some(HeadObjectError::NotFound(_))) => {
                Ok(None)
            }
            Err(err) => Err(ApiError::from_aws("HeadObject", err)),
        }
    }

    /// The first `len` bytes of the object (fewer if it is shorter), of the version with `etag`.
    pub async fn read_prefix(
        &self,
        key: &str,
        len: usize,
        etag: Option<&str>,
    ) -> Result<Vec<u8>, ApiError> {
        let mut body = self
            .get(
                key,
                Some(format!("bytes=0-{}", len.saturating_sub(1))),
                etag,
            )
            .await?;
        let mut bytes = Vec::with_capacity(len);
        while let Some(chunk) = body.next().await {
            let chunk =
                chunk.map_err(|err| ApiError::Unavailable(format!("GetObject body: {err}")))?;
            bytes.extend_from_slice(&chunk);
        }
        bytes.truncate(len);
        Ok(bytes)
    }

    /// The object's bytes as a stream, of the version with `etag` (a newer one fails, to be retried).
    pub async fn read(&self, key: &str, etag: Option<&str>) -> Result<ByteStream, ApiError> {
        self.get(key, None, etag).await
    }

    async fn get(
        &self,
        key: &str,
        range: Option<String>,
        etag: Option<&str>,
    ) -> Result<ByteStream, ApiError> {
        let output = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .set_range(range)
            .set_if_match(etag.map(str::to_owned))
            .send()
            .await
            .map_err(
                |err| match err.raw_response().map(|r| r.status().as_u16()) {
                    // Replaced since it was looked at: a newer event will judge the new object.
                    Some(412) => ApiError::Unavailable(format!(
                        "GetObject {key}: object changed during the check"
                    )),
                    _ => ApiError::from_aws("GetObject", err),
                },
            )?;
        Ok(output.body)
    }

    /// A GET URL that downloads the object as an attachment named `file_name`.
    pub async fn presign_download(
        &self,
        key: &str,
        file_name: &str,
        content_type: &str,
        expires_in: Duration,
    ) -> Result<String, ApiError> {
        let request = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .response_content_disposition(content_disposition(file_name))
            .response_content_type(content_type)
            .presigned(presigning(expires_in)?)
            .await
            .map_err(|err| ApiError::Internal(format!("presign GetObject: {err}")))?;
        Ok(request.uri().to_owned())
    }
}

fn presigning(expires_in: Duration) -> Result<PresigningConfig, ApiError> {
    presigning_at(expires_in, SystemTime::now())
}

fn presigning_at(
    expires_in: Duration,
    signed_at: SystemTime,
) -> Result<PresigningConfig, ApiError> {
    PresigningConfig::builder()
        .start_time(signed_at)
        .expires_in(expires_in)
        .build()
        .map_err(|err| ApiError::Internal(format!("presigning config: {err}")))
}

/// The URL and the headers signed into it. The SDK also hands back unsigned headers (such as
/// `x-amzn-trace-id` inside Lambda): clients need not send those, so they are left out.
fn presigned_put(request: &PresignedRequest) -> PresignedPut {
    let url = request.uri().to_owned();
    let signed = signed_header_names(&url);
    let headers = request
        .headers()
        .map(|(name, value)| (name.to_ascii_lowercase(), value.to_owned()))
        .filter(|(name, _)| name != "host" && signed.contains(name))
        .collect();
    PresignedPut { url, headers }
}

/// The names in a presigned URL's `X-Amz-SignedHeaders` parameter.
fn signed_header_names(url: &str) -> Vec<String> {
    let query = url.split_once('?').map_or("", |(_, query)| query);
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix("X-Amz-SignedHeaders="))
        .map(|names| {
            percent_encoding::percent_decode_str(names)
                .decode_utf8_lossy()
                .split(';')
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// RFC 5987 `attr-char`s stay as they are in `filename*`; everything else is percent-encoded.
const ATTR_CHAR_ESCAPES: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'!')
    .remove(b'#')
    .remove(b'$')
    .remove(b'&')
    .remove(b'+')
    .remove(b'-')
    .remove(b'.')
    .remove(b'^')
    .remove(b'_')
    .remove(b'`')
    .remove(b'|')
    .remove(b'~');

/// `attachment` with an ASCII `filename` fallback (quotes, backslashes, `%`, control and
/// non-ASCII characters replaced) and the exact name in `filename*` (RFC 6266).
pub fn content_disposition(file_name: &str) -> String {
    let fallback: String = file_name
        .chars()
        .map(|c| match c {
            ' ' => ' ',
            '"' | '\\' | '%' => '_',
            c if c.is_ascii_graphic() => c,
            _ => '_',
        })
        .collect();
    let exact = utf8_percent_encode(file_name, ATTR_CHAR_ESCAPES);
    format!("attachment; filename=\"{fallback}\"; filename*=UTF-8''{exact}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_header_names_are_read_from_the_url() {
        let url = "http://h/b/k?x-id=PutObject&X-Amz-SignedHeaders=content-length%3Bcontent-type%3Bhost&X-Amz-Signature=ab";
        assert_eq!(
            signed_header_names(url),
            ["content-length", "content-type", "host"]
        );
        assert!(signed_header_names("http://h/b/k").is_empty());
    }

    #[test]
    fn plain_names_pass_through() {
        assert_eq!(
            content_disposition("report.pdf"),
            "attachment; filename=\"report.pdf\"; filename*=UTF-8''report.pdf"
        );
    }

    #[test]
    fn quotes_and_header_breaking_characters_cannot_escape_the_value() {
        let value = content_disposition("a\"b\\c\r\nSet-Cookie: x=1;.pdf");
        assert!(!value.contains('\r') && !value.contains('\n'));
        assert_eq!(value.matches('"').count(), 2, "{value}");
        assert!(
            value.contains("filename*=UTF-8''a%22b%5Cc%0D%0ASet-Cookie%3A%20x%3D1%3B.pdf"),
            "{value}"
        );
    }

    #[test]
    fn non_ascii_names_keep_their_exact_form_in_filename_star() {
        let value = content_disposition("résumé 日本.pdf");
        assert!(
            value.starts_with("attachment; filename=\"r_sum_ __.pdf\";"),
            "{value}"
        );
        assert!(
            value.ends_with("filename*=UTF-8''r%C3%A9sum%C3%A9%20%E6%97%A5%E6%9C%AC.pdf"),
            "{value}"
        );
        assert!(value.is_ascii());
    }
}

//! Object reads and checks: what storage holds at a key, its bytes, and deleting it.

use aws_sdk_s3::operation::head_object::HeadObjectError;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ChecksumMode;

use aws_sdk_s3::types::{Tag, Tagging};

use bytes::Bytes;

use super::ObjectStore;
use crate::aws;
use crate::domain::ContentDeclaration;
use crate::error::Failure;

/// Every object is written with this tag (signed into single-PUT URLs, set on multipart uploads).
/// The bucket's lifecycle rule expires pending objects: whatever nobody goes on to check (an
/// upload never completed, a late PUT on an old job's URL, content whose deletion failed) goes
/// by itself. The rule counts from the object's date, which for an object assembled from parts
/// is its upload's initiation, so complete content must leave the rule before it is checked:
/// verify retags it [`CHECKING_TAG`] as it starts, then [`VERIFIED_TAG`] before the file serves it.
pub const PENDING_TAGGING: &str = "state=pending";

/// The `Cache-Control` a single PUT stores, signed into its URL like the rest. Browsers add
/// `Cache-Control: max-age=0` by themselves to a request with a conditional header (the PUT's
/// `If-None-Match: *`), and storage keeps it with the object: signing that very value makes it
/// the service's, so a browser's upload verifies, and any other value is refused by storage.
/// (Download URLs set the cache headers of their responses whatever is stored.)
pub const PUT_CACHE_CONTROL: &str = "max-age=0";
const STATE_TAG: &str = "state";
const VERIFIED_TAG: &str = "verified";
/// Content being checked: no lifecycle rule matches it, so a check that fails for days (its
/// message retried, then waiting in the failure queue) still finds the bytes. It is not
/// `verified`, which would tell an operator the content passed. Whatever verify leaves tagged so
/// it also removes: a rejection deletes the object, and so does a verdict refused because the
/// job was replaced meanwhile.
const CHECKING_TAG: &str = "checking";

/// What storage reports about a stored object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectHead {
    pub size: u64,
    pub content_type: Option<String>,
    /// The SHA-256 that storage itself checked on upload, when one was sent with the PUT.
    pub checksum_sha256: Option<String>,
    pub etag: Option<String>,
    /// What the object carries that the service never stores (a single PUT may add standard
    /// headers its URL does not sign: S3 keeps them and serves them with the object), by name.
    pub foreign_metadata: Vec<&'static str>,
}

impl ObjectStore {
    /// Stores `bytes` as the declared `content` at `key`, as a presigned PUT would: with the
    /// declared type and digests, which storage checks, tagged pending, and never over an
    /// object already there.
    pub async fn put(
        &self,
        key: &str,
        content: &ContentDeclaration,
        bytes: Bytes,
    ) -> Result<(), Failure> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content.content_type.as_str())
            .set_checksum_sha256(content.sha256.map(|digest| digest.to_base64()))
            .set_content_md5(content.md5.map(|digest| digest.to_base64()))
            .if_none_match("*")
            .cache_control(PUT_CACHE_CONTROL)
            .tagging(PENDING_TAGGING)
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map_err(|err| aws::failure("PutObject", err))?;
        Ok(())
    }

    pub async fn delete(&self, key: &str) -> Result<(), Failure> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|err| aws::failure("DeleteObject", err))?;
        Ok(())
    }

    /// Tags the object as verified content, which the lifecycle rule keeps.
    pub async fn mark_verified(&self, key: &str) -> Result<(), Failure> {
        match self.tag_state(key, VERIFIED_TAG).await? {
            true => Ok(()),
            false => Err(Failure::Unavailable(format!(
                "PutObjectTagging {key}: the object is gone"
            ))),
        }
    }

    /// Takes complete content out of the lifecycle rule for pending objects while it is checked.
    /// Nothing to do for an object that is not there (the check that follows finds it missing).
    pub async fn mark_checking(&self, key: &str) -> Result<(), Failure> {
        self.tag_state(key, CHECKING_TAG).await.map(|_| ())
    }

    /// Sets the object's `state` tag; `false` if there is no such object.
    async fn tag_state(&self, key: &str, state: &str) -> Result<bool, Failure> {
        let tag = Tag::builder()
            .key(STATE_TAG)
            .value(state)
            .build()
            .map_err(|err| Failure::Internal(err.to_string()))?;
        let tagging = Tagging::builder()
            .tag_set(tag)
            .build()
            .map_err(|err| Failure::Internal(err.to_string()))?;
        let result = self
            .client
            .put_object_tagging()
            .bucket(&self.bucket)
            .key(key)
            .tagging(tagging)
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(err)
                if err
                    .raw_response()
                    .is_some_and(|raw| raw.status().as_u16() == 404) =>
            {
                Ok(false)
            }
            Err(err) => Err(aws::failure("PutObjectTagging", err)),
        }
    }

    /// The keys under `prefix` with when each was last written.
    pub async fn list(
        &self,
        prefix: &str,
    ) -> Result<Vec<(String, Option<aws_smithy_types::DateTime>)>, Failure> {
        let mut keys = Vec::new();
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|err| aws::failure("ListObjectsV2", err))?;
            for object in page.contents() {
                if let Some(key) = object.key() {
                    keys.push((key.to_owned(), object.last_modified().copied()));
                }
            }
        }
        Ok(keys)
    }

    /// The object's tags (`state`: pending, checking or verified), for operators.
    pub async fn tags(
        &self,
        key: &str,
    ) -> Result<std::collections::BTreeMap<String, String>, Failure> {
        let output = self
            .client
            .get_object_tagging()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|err| aws::failure("GetObjectTagging", err))?;
        Ok(output
            .tag_set()
            .iter()
            .map(|tag| (tag.key().to_owned(), tag.value().to_owned()))
            .collect())
    }

    /// The object's size, type and stored checksum, or `None` when there is no such object.
    pub async fn head(&self, key: &str) -> Result<Option<ObjectHead>, Failure> {
        let result = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .checksum_mode(ChecksumMode::Enabled)
            .send()
            .await;
        match result {
            Ok(output) => {
                let stored = |value: Option<&str>| value.is_some_and(|v| !v.is_empty());
                let cache_control = output.cache_control().filter(|v| *v != PUT_CACHE_CONTROL);
                let foreign_metadata = [
                    ("content-encoding", stored(output.content_encoding())),
                    ("content-disposition", stored(output.content_disposition())),
                    ("cache-control", stored(cache_control)),
                    ("content-language", stored(output.content_language())),
                    ("expires", stored(output.expires_string())),
                    (
                        "x-amz-website-redirect-location",
                        stored(output.website_redirect_location()),
                    ),
                    (
                        "x-amz-meta-*",
                        output.metadata().is_some_and(|meta| !meta.is_empty()),
                    ),
                ]
                .into_iter()
                .filter_map(|(name, present)| present.then_some(name))
                .collect();
                Ok(Some(ObjectHead {
                    size: output
                        .content_length
                        .and_then(|n| u64::try_from(n).ok())
                        .unwrap_or(0),
                    content_type: output.content_type,
                    checksum_sha256: output.checksum_sha256,
                    etag: output.e_tag,
                    foreign_metadata,
                }))
            }
            Err(err) if matches!(err.as_service_error(), Some(HeadObjectError::NotFound(_))) => {
                Ok(None)
            }
            // 403 is an error, never "missing": a missing object is a verdict (complete refuses,
            // verify rejects the file), and a denial is no proof of absence. The roles that look
            // at objects hold s3:ListBucket, with which S3 answers 404 for a key that is not there.
            Err(err) => Err(aws::failure("HeadObject", err)),
        }
    }

    /// The first `len` bytes of the object (fewer if it is shorter), of the version with `etag`.
    pub async fn read_prefix(
        &self,
        key: &str,
        len: usize,
        etag: Option<&str>,
    ) -> Result<Vec<u8>, Failure> {
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
                chunk.map_err(|err| Failure::Unavailable(format!("GetObject body: {err}")))?;
            bytes.extend_from_slice(&chunk);
        }
        bytes.truncate(len);
        Ok(bytes)
    }

    /// Bytes `from..to` (`from < to`) of the object version `etag`, as a stream.
    pub async fn read_range(
        &self,
        key: &str,
        from: u64,
        to: u64,
        etag: &str,
    ) -> Result<ByteStream, Failure> {
        self.get(key, Some(format!("bytes={from}-{}", to - 1)), Some(etag))
            .await
    }

    /// The object's bytes as a stream, of the version with `etag` (a newer one fails, to be retried).
    pub async fn read(&self, key: &str, etag: Option<&str>) -> Result<ByteStream, Failure> {
        self.get(key, None, etag).await
    }

    async fn get(
        &self,
        key: &str,
        range: Option<String>,
        etag: Option<&str>,
    ) -> Result<ByteStream, Failure> {
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
                    Some(412) => Failure::Unavailable(format!(
                        "GetObject {key}: object changed during the check"
                    )),
                    _ => aws::failure("GetObject", err),
                },
            )?;
        Ok(output.body)
    }
}

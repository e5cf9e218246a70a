//! Checks a stored object against what was declared for it, with the least I/O that proves it.

use md5::Md5;
use sha2::{Digest, Sha256};

use crate::domain::error::ApiError;
use crate::domain::sniff::{self, SNIFF_LEN};
use crate::domain::{ContentDeclaration, RejectionReason};
use crate::s3::{ObjectHead, ObjectStore};
use aws_sdk_s3::primitives::ByteStream;

/// Bytes handed from the network to the hashing threads at a time, and how many such batches
/// may wait per thread: memory stays bounded whatever the object's size.
const BATCH_BYTES: usize = 1 << 20;
const QUEUED_BATCHES: usize = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finding {
    /// Size, type and every declared digest match.
    Sound,
    Flawed(RejectionReason),
    /// No object at the key (deleted since the event): nothing to judge.
    Missing,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Inspection {
    pub finding: Finding,
    /// Object bytes read to reach the finding.
    pub bytes_read: u64,
}

impl Inspection {
    fn without_reading(finding: Finding) -> Self {
        Self {
            finding,
            bytes_read: 0,
        }
    }
}

pub async fn inspect(
    objects: &ObjectStore,
    key: &str,
    declared: &ContentDeclaration,
) -> Result<Inspection, ApiError> {
    let Some(head) = objects.head(key).await? else {
        return Ok(Inspection::without_reading(Finding::Missing));
    };
    if head.size != declared.file_size {
        return Ok(Inspection::without_reading(Finding::Flawed(
            RejectionReason::SizeMismatch,
        )));
    }
    if head.content_type.as_deref() != Some(declared.content_type.as_str()) {
        return Ok(Inspection::without_reading(Finding::Flawed(
            RejectionReason::ContentTypeMismatch,
        )));
    }
    if !head.foreign_metadata.is_empty() {
        // `Content-Encoding: gzip` would have every client decode the verified bytes into
        // something else; a cache policy or a redirect would be the uploader's, not ours.
        tracing::info!(headers = ?head.foreign_metadata, "stored with metadata the service did not set");
        return Ok(Inspection::without_reading(Finding::Flawed(
            RejectionReason::UnexpectedMetadata,
        )));
    }

    let sha256 = match proof_of_sha256(declared, &head) {
        Proof::Disproven => {
            return Ok(Inspection::without_reading(Finding::Flawed(
                RejectionReason::ChecksumMismatch,
            )));
        }
        proof => proof,
    };
    let md5 = proof_of_md5(declared, &head);
    if sha256 == Proof::Proven && md5 == Proof::Proven {
        // Storage vouches for the digests: only the leading bytes are left to look at.
        let leading = objects
            .read_prefix(key, SNIFF_LEN, head.etag.as_deref())
            .await?;
        let finding = if sniff::agrees(&declared.content_type, &leading) {
            Finding::Sound
        } else {
            Finding::Flawed(RejectionReason::ContentTypeMismatch)
        };
        return Ok(Inspection {
            finding,
            bytes_read: leading.len() as u64,
        });
    }

    let body = objects.read(key, head.etag.as_deref()).await?;
    let digest = digest(body, sha256 == Proof::Unknown, md5 == Proof::Unknown).await?;
    let finding = if digest.len != declared.file_size {
        Finding::Flawed(RejectionReason::SizeMismatch)
    } else if !sniff::agrees(&declared.content_type, &digest.leading) {
        Finding::Flawed(RejectionReason::ContentTypeMismatch)
    } else if !digest_matches(
        digest.sha256.as_deref(),
        declared.sha256.as_ref().map(|d| d.as_bytes().as_slice()),
    ) || !digest_matches(
        digest.md5.as_deref(),
        declared.md5.as_ref().map(|d| d.as_bytes().as_slice()),
    ) {
        Finding::Flawed(RejectionReason::ChecksumMismatch)
    } else {
        Finding::Sound
    };
    Ok(Inspection {
        finding,
        bytes_read: digest.len,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Proof {
    /// Nothing declared, or storage's own record matches the declaration.
    Proven,
    /// Storage's own checksum of the whole object differs from the declaration.
    Disproven,
    /// Only reading the object can tell.
    Unknown,
}

/// S3 keeps the SHA-256 it checked when the PUT carried `x-amz-checksum-sha256`.
fn proof_of_sha256(declared: &ContentDeclaration, head: &ObjectHead) -> Proof {
    match (&declared.sha256, &head.checksum_sha256) {
        (None, _) => Proof::Proven,
        (Some(declared), Some(stored)) if *stored == declared.to_base64() => Proof::Proven,
        // A composite checksum of parts ("…-N") is not the object's digest.
        (Some(_), Some(stored)) if !stored.contains('-') => Proof::Disproven,
        _ => Proof::Unknown,
    }
}

/// The ETag of a single-part object stored with SSE-S3 is its MD5; a match proves it, anything
/// else (multipart or KMS ETags) proves nothing either way.
fn proof_of_md5(declared: &ContentDeclaration, head: &ObjectHead) -> Proof {
    let Some(declared) = &declared.md5 else {
        return Proof::Proven;
    };
    let etag_md5 = head
        .etag
        .as_deref()
        .map(|etag| etag.trim_matches('"'))
        .filter(|etag| etag.len() == 32)
        .and_then(|etag| hex::decode(etag).ok());
    match etag_md5 {
        Some(stored) if stored == declared.as_bytes() => Proof::Proven,
        _ => Proof::Unknown,
    }
}

fn digest_matches(computed: Option<&[u8]>, declared: Option<&[u8]>) -> bool {
    match (computed, declared) {
        (Some(computed), Some(declared)) => computed == declared,
        _ => true,
    }
}

/// What streaming a body through the hashers found.
#[derive(Debug)]
pub struct StreamDigest {
    pub len: u64,
    /// The first [`SNIFF_LEN`] bytes.
    pub leading: Vec<u8>,
    pub sha256: Option<Vec<u8>>,
    pub md5: Option<Vec<u8>>,
}

/// Streams `body` through the hashers: it is read here while each digest is computed on a
/// thread of its own, fed through a bounded queue, so memory does not grow with the body and
/// SHA-256 and MD5 together take about as long as the slower of the two.
pub async fn digest(
    mut body: ByteStream,
    want_sha256: bool,
    want_md5: bool,
) -> Result<StreamDigest, ApiError> {
    let sha256 = want_sha256.then(|| Hasher::spawn(Sha256::new()));
    let md5 = want_md5.then(|| Hasher::spawn(Md5::new()));
    let hashers: Vec<&Hasher> = sha256.iter().chain(md5.iter()).collect();

    let mut leading = Vec::with_capacity(SNIFF_LEN);
    let mut len = 0u64;
    let mut batch = Vec::new();
    let mut batch_len = 0;
    let mut failure = None;
    loop {
        match body.next().await {
            Some(Ok(chunk)) => {
                if leading.len() < SNIFF_LEN {
                    leading.extend_from_slice(&chunk[..chunk.len().min(SNIFF_LEN - leading.len())]);
                }
                len += chunk.len() as u64;
                batch_len += chunk.len();
                batch.push(chunk);
                if batch_len >= BATCH_BYTES {
                    batch_len = 0;
                    let full = std::mem::take(&mut batch);
                    for hasher in &hashers {
                        hasher.feed(full.clone()).await;
                    }
                }
            }
            Some(Err(err)) => {
                failure = Some(ApiError::Unavailable(format!("GetObject body: {err}")));
                break;
            }
            None => break,
        }
    }
    if !batch.is_empty() {
        for hasher in &hashers {
            hasher.feed(batch.clone()).await;
        }
    }
    drop(hashers);
    let sha256 = match sha256 {
        Some(hasher) => Some(hasher.finish().await?),
        None => None,
    };
    let md5 = match md5 {
        Some(hasher) => Some(hasher.finish().await?),
        None => None,
    };
    match failure {
        Some(err) => Err(err),
        None => Ok(StreamDigest {
            len,
            leading,
            sha256,
            md5,
        }),
    }
}

/// One digest computed on a blocking thread from batches of shared chunks.
struct Hasher {
    batches: tokio::sync::mpsc::Sender<Vec<bytes::Bytes>>,
    digest: tokio::task::JoinHandle<Vec<u8>>,
}

impl Hasher {
    fn spawn<D: Digest + Send + 'static>(mut digest: D) -> Self {
        let (batches, mut receiver) =
            tokio::sync::mpsc::channel::<Vec<bytes::Bytes>>(QUEUED_BATCHES);
        let digest = tokio::task::spawn_blocking(move || {
            while let Some(batch) = receiver.blocking_recv() {
                for chunk in batch {
                    digest.update(&chunk);
                }
            }
            digest.finalize().to_vec()
        });
        Self { batches, digest }
    }

    /// Queues a batch; a full queue makes the reader wait, which bounds memory. A send fails
    /// only if the thread panicked, which [`Hasher::finish`] reports.
    async fn feed(&self, batch: Vec<bytes::Bytes>) {
        let _ = self.batches.send(batch).await;
    }

    async fn finish(self) -> Result<Vec<u8>, ApiError> {
        drop(self.batches);
        self.digest
            .await
            .map_err(|err| ApiError::Internal(format!("hashing thread: {err}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::fixtures;
    use crate::domain::values::{Md5 as Md5Digest, Sha256 as Sha256Digest};

    fn declared(sha256: Option<&str>, md5: Option<&str>) -> ContentDeclaration {
        ContentDeclaration {
            sha256: sha256.map(|d| Sha256Digest::parse(d).unwrap()),
            md5: md5.map(|d| Md5Digest::parse(d).unwrap()),
            ..fixtures::content("f", "text/plain", 3)
        }
    }

    fn head(checksum_sha256: Option<&str>, etag: Option<&str>) -> ObjectHead {
        ObjectHead {
            size: 3,
            content_type: Some("text/plain".into()),
            checksum_sha256: checksum_sha256.map(str::to_owned),
            etag: etag.map(str::to_owned),
            foreign_metadata: Vec::new(),
        }
    }

    const SHA: &str = "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0="; // sha256("abc")
    const MD5: &str = "kAFQmDzST7DWlj99KOF/cg=="; // md5("abc")
    const MD5_ETAG: &str = "\"900150983cd24fb0d6963f7d28e17f72\"";

    #[tokio::test]
    async fn the_streamed_digests_are_those_of_the_whole_body() {
        // Several batches' worth, read from a file in many chunks.
        let body: Vec<u8> = (0..(3 << 20) + 17).map(|i: u32| (i % 249) as u8).collect();
        let path = std::env::temp_dir().join(format!("digest-{}", uuid::Uuid::new_v4()));
        std::fs::write(&path, &body).unwrap();
        let stream = ByteStream::from_path(&path).await.unwrap();
        let digest = digest(stream, true, true).await.unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(digest.len, body.len() as u64);
        assert_eq!(digest.leading, body[..SNIFF_LEN]);
        assert_eq!(digest.sha256.unwrap(), Sha256::digest(&body).to_vec());
        assert_eq!(digest.md5.unwrap(), Md5::digest(&body).to_vec());
    }

    #[test]
    fn storage_checksums_prove_or_disprove_the_sha256() {
        assert_eq!(
            proof_of_sha256(&declared(None, None), &head(None, None)),
            Proof::Proven
        );
        assert_eq!(
            proof_of_sha256(&declared(Some(SHA), None), &head(Some(SHA), None)),
            Proof::Proven
        );
        assert_eq!(
            proof_of_sha256(&declared(Some(SHA), None), &head(Some(MD5), None)),
            Proof::Disproven
        );
        assert_eq!(
            proof_of_sha256(&declared(Some(SHA), None), &head(None, None)),
            Proof::Unknown
        );
        assert_eq!(
            proof_of_sha256(&declared(Some(SHA), None), &head(Some("abc-3"), None)),
            Proof::Unknown
        );
    }

    #[test]
    fn a_single_part_etag_proves_the_md5_but_never_disproves_it() {
        assert_eq!(
            proof_of_md5(&declared(None, Some(MD5)), &head(None, Some(MD5_ETAG))),
            Proof::Proven
        );
        assert_eq!(
            proof_of_md5(&declared(None, Some(MD5)), &head(None, Some("\"ffff\""))),
            Proof::Unknown
        );
        assert_eq!(
            proof_of_md5(
                &declared(None, Some(MD5)),
                &head(None, Some("\"900150983cd24fb0d6963f7d28e17f72-2\""))
            ),
            Proof::Unknown
        );
    }
}

//! Checks a stored object against what was declared for it, with the least I/O that proves it.
//!
//! An object storage cannot vouch for is hashed, at most a [`Budget`] per call: a larger one
//! comes back [`Finding::Unfinished`] with a [`Checkpoint`] (the hash states after the bytes
//! checked), from which the next call goes on with ranged GETs, so the verdict is the one a
//! single pass over the object gives.

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{Stream, StreamExt, TryStreamExt, stream};
use md5::Md5;
use sha2::digest::common::hazmat::{SerializableState, SerializedState};
use sha2::{Digest, Sha256};

use crate::domain::sniff::{self, SNIFF_LEN};
use crate::domain::values::Sha256 as Sha256Digest;
use crate::domain::{Checkpoint, ContentDeclaration, RejectionReason};
use crate::error::{Error, Failure};
use crate::s3::{ObjectHead, ObjectStore};
use aws_sdk_s3::primitives::ByteStream;

/// Bytes handed from the network to the hashing threads at a time, and how many such batches
/// may wait per thread: memory stays bounded whatever the object's size.
const BATCH_BYTES: usize = 1 << 20;
const QUEUED_BATCHES: usize = 4;

/// A check reads its span by ranged GETs of this many bytes, [`Budget::parallel_gets`] of them
/// in flight, hashed in order. One connection to S3 delivers on the order of 100 MB/s, less than
/// SHA-256 hashes, so more GETs at a time can pay in AWS; each window waits whole in memory for
/// its turn, so each one more costs a window of memory.
const WINDOW: u64 = 4 << 20;

/// How much one call may hash before it hands over (whichever of bytes and time runs out
/// first), and how many ranged GETs it keeps in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    pub bytes: u64,
    pub time: Duration,
    pub parallel_gets: usize,
}

impl Budget {
    /// No limit: the whole object in one call, one GET ahead.
    pub const UNLIMITED: Budget = Budget {
        bytes: u64::MAX,
        time: Duration::MAX,
        parallel_gets: 1,
    };
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// Size, type and every declared digest match.
    Sound,
    Flawed(RejectionReason),
    /// No object at the key (deleted since the event): nothing to judge.
    Missing,
    /// Sound so far: the budget ran out at the checkpoint, from which another call goes on.
    Unfinished(Checkpoint),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inspection {
    pub finding: Finding,
    /// Object bytes read by this call.
    pub bytes_read: u64,
    /// The whole object's SHA-256 as storage checked it when the object was stored (its PUT
    /// carried one), if it did.
    pub stored_sha256: Option<Sha256Digest>,
}

impl Inspection {
    fn without_reading(finding: Finding) -> Self {
        Self {
            finding,
            bytes_read: 0,
            stored_sha256: None,
        }
    }
}

/// Checks the object at `key` against `declared`, going on from `resume` if it is a checkpoint
/// of the object as it now is (another version starts over).
pub async fn inspect(
    objects: &ObjectStore,
    key: &str,
    declared: &ContentDeclaration,
    resume: Option<&Checkpoint>,
    budget: Budget,
) -> Result<Inspection, Error> {
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
    let stored_sha256 = head
        .checksum_sha256
        .as_deref()
        .filter(|stored| !is_composite(stored))
        .and_then(|stored| Sha256Digest::parse(stored).ok());
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
            stored_sha256,
        });
    }

    let etag = head.etag.clone().unwrap_or_default();
    let (want_sha256, want_md5) = (sha256 == Proof::Unknown, md5 == Proof::Unknown);
    let (start, hashers) = match resume
        .filter(|checkpoint| checkpoint.etag == etag)
        .and_then(|checkpoint| Some((checkpoint, Hashers::resume(checkpoint)?)))
        .filter(|(_, hashers)| hashers.wants() == (want_sha256, want_md5))
    {
        Some((checkpoint, hashers)) => (checkpoint.bytes_checked, hashers),
        None => (0, Hashers::new(want_sha256, want_md5)),
    };
    let end = head.size.min(start.saturating_add(budget.bytes));
    let deadline = Instant::now().checked_add(budget.time);
    let chunks = read_span(
        objects,
        key,
        start,
        end,
        &etag,
        deadline,
        budget.parallel_gets,
    );
    let (hashers, hashed) = hashers.hash(chunks).await?;
    let checked = start + hashed.len;

    let finding = if start == 0 && !sniff::agrees(&declared.content_type, &hashed.leading) {
        Finding::Flawed(RejectionReason::ContentTypeMismatch)
    } else if checked < head.size {
        Finding::Unfinished(hashers.checkpoint(etag, checked))
    } else {
        let (sha256, md5) = hashers.finish();
        let matches =
            |computed: Option<Vec<u8>>, declared: Option<&[u8]>| match (computed, declared) {
                (Some(computed), Some(declared)) => computed == declared,
                _ => true,
            };
        if matches(
            sha256,
            declared.sha256.as_ref().map(|d| d.as_bytes().as_slice()),
        ) && matches(md5, declared.md5.as_ref().map(|d| d.as_bytes().as_slice()))
        {
            Finding::Sound
        } else {
            Finding::Flawed(RejectionReason::ChecksumMismatch)
        }
    };
    Ok(Inspection {
        finding,
        bytes_read: hashed.len,
        stored_sha256,
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
        (Some(_), Some(stored)) if !is_composite(stored) => Proof::Disproven,
        _ => Proof::Unknown,
    }
}

/// A composite checksum of parts ("…-N") is not the object's digest.
fn is_composite(stored: &str) -> bool {
    stored.contains('-')
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

/// Bytes `start..end` of the object version `etag`, in order, read by ranged GETs of [`WINDOW`]
/// bytes, `parallel` of them at a time. No new GET starts once `deadline` has passed.
fn read_span(
    objects: &ObjectStore,
    key: &str,
    start: u64,
    end: u64,
    etag: &str,
    deadline: Option<Instant>,
    parallel: usize,
) -> impl Stream<Item = Result<Bytes, Error>> + 'static {
    let (store, key, etag) = (objects.clone(), key.to_owned(), etag.to_owned());
    let windows = (start..end)
        .step_by(WINDOW as usize)
        .map(move |from| (from, end.min(from + WINDOW)));
    stream::iter(windows)
        .take_while({
            // The first window always counts, so that every call makes progress.
            let mut first = true;
            move |_| {
                let go = first || deadline.is_none_or(|deadline| Instant::now() < deadline);
                first = false;
                std::future::ready(go)
            }
        })
        .map(move |(from, to)| {
            let (store, key, etag) = (store.clone(), key.clone(), etag.clone());
            async move {
                let body = store.read_range(&key, from, to, &etag).await?;
                let window = body
                    .collect()
                    .await
                    .map_err(|err| Failure::Unavailable(format!("GetObject body: {err}")))?;
                Ok::<_, Error>(stream::iter(window.into_segments().map(Ok)))
            }
        })
        .buffered(parallel.max(1))
        .try_flatten()
}

/// The chunks of `body` as they arrive.
fn chunks(body: ByteStream) -> impl Stream<Item = Result<Bytes, Error>> {
    stream::unfold(body, |mut body| async move {
        let chunk = body.next().await?;
        let chunk = chunk
            .map_err(|err| Error::from(Failure::Unavailable(format!("GetObject body: {err}"))));
        Some((chunk, body))
    })
}

/// What one pass of the hashers read.
#[derive(Debug)]
struct Hashed {
    len: u64,
    /// The first [`SNIFF_LEN`] bytes of the pass.
    leading: Vec<u8>,
}

/// The digests a check computes, each on a thread of its own while the bytes stream past.
#[derive(Clone)]
struct Hashers {
    sha256: Option<Sha256>,
    md5: Option<Md5>,
}

impl Hashers {
    fn new(want_sha256: bool, want_md5: bool) -> Self {
        Self {
            sha256: want_sha256.then(Sha256::new),
            md5: want_md5.then(Md5::new),
        }
    }

    /// The hashers as `checkpoint` left them; `None` if a state does not deserialize.
    fn resume(checkpoint: &Checkpoint) -> Option<Self> {
        fn restore<D: SerializableState>(state: &Option<Vec<u8>>) -> Option<Option<D>> {
            match state {
                None => Some(None),
                Some(bytes) => {
                    let state = SerializedState::<D>::try_from(bytes.as_slice()).ok()?;
                    D::deserialize(&state).ok().map(Some)
                }
            }
        }
        Some(Self {
            sha256: restore(&checkpoint.sha256_state)?,
            md5: restore(&checkpoint.md5_state)?,
        })
    }

    fn wants(&self) -> (bool, bool) {
        (self.sha256.is_some(), self.md5.is_some())
    }

    fn checkpoint(&self, etag: String, bytes_checked: u64) -> Checkpoint {
        Checkpoint {
            step_id: uuid::Uuid::new_v4(),
            etag,
            bytes_checked,
            sha256_state: self.sha256.as_ref().map(|d| d.serialize().to_vec()),
            md5_state: self.md5.as_ref().map(|d| d.serialize().to_vec()),
        }
    }

    fn finish(self) -> (Option<Vec<u8>>, Option<Vec<u8>>) {
        (
            self.sha256.map(|d| d.finalize().to_vec()),
            self.md5.map(|d| d.finalize().to_vec()),
        )
    }

    /// Streams `chunks` through the hashers: they are read here while each digest is computed
    /// on a thread of its own, fed through a bounded queue, so memory does not grow with the
    /// body and SHA-256 and MD5 together take about as long as the slower of the two.
    async fn hash(
        self,
        chunks: impl Stream<Item = Result<Bytes, Error>>,
    ) -> Result<(Self, Hashed), Error> {
        let sha256 = self.sha256.map(Thread::spawn);
        let md5 = self.md5.map(Thread::spawn);
        let mut chunks = std::pin::pin!(chunks);
        let mut hashed = Hashed {
            len: 0,
            leading: Vec::with_capacity(SNIFF_LEN),
        };
        let mut batch = Vec::new();
        let mut batch_len = 0;
        let mut failure = None;
        loop {
            let chunk = match chunks.next().await {
                Some(Ok(chunk)) => chunk,
                Some(Err(err)) => {
                    failure = Some(err);
                    break;
                }
                None => break,
            };
            let wanted = SNIFF_LEN.saturating_sub(hashed.leading.len());
            hashed
                .leading
                .extend_from_slice(&chunk[..chunk.len().min(wanted)]);
            hashed.len += chunk.len() as u64;
            batch_len += chunk.len();
            batch.push(chunk);
            if batch_len >= BATCH_BYTES {
                batch_len = 0;
                feed(&sha256, &md5, std::mem::take(&mut batch)).await;
            }
        }
        if !batch.is_empty() {
            feed(&sha256, &md5, batch).await;
        }
        let hashers = Self {
            sha256: match sha256 {
                Some(thread) => Some(thread.join().await?),
                None => None,
            },
            md5: match md5 {
                Some(thread) => Some(thread.join().await?),
                None => None,
            },
        };
        match failure {
            Some(err) => Err(err),
            None => Ok((hashers, hashed)),
        }
    }
}

async fn feed(sha256: &Option<Thread<Sha256>>, md5: &Option<Thread<Md5>>, batch: Vec<Bytes>) {
    if let Some(thread) = sha256 {
        thread.feed(batch.clone()).await;
    }
    if let Some(thread) = md5 {
        thread.feed(batch).await;
    }
}

/// One digest updated on a blocking thread from batches of shared chunks, and handed back.
struct Thread<D> {
    batches: tokio::sync::mpsc::Sender<Vec<Bytes>>,
    digest: tokio::task::JoinHandle<D>,
}

impl<D: Digest + Send + 'static> Thread<D> {
    fn spawn(mut digest: D) -> Self {
        let (batches, mut receiver) = tokio::sync::mpsc::channel::<Vec<Bytes>>(QUEUED_BATCHES);
        let digest = tokio::task::spawn_blocking(move || {
            while let Some(batch) = receiver.blocking_recv() {
                for chunk in batch {
                    digest.update(&chunk);
                }
            }
            digest
        });
        Self { batches, digest }
    }

    /// Queues a batch; a full queue makes the reader wait, which bounds memory. A send fails
    /// only if the thread panicked, which [`Thread::join`] reports.
    async fn feed(&self, batch: Vec<Bytes>) {
        let _ = self.batches.send(batch).await;
    }

    async fn join(self) -> Result<D, Error> {
        drop(self.batches);
        self.digest
            .await
            .map_err(|err| Failure::Internal(format!("hashing thread: {err}")).into())
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

/// The digests of a whole `body`, through the hashers a check uses.
pub async fn digest(
    body: ByteStream,
    want_sha256: bool,
    want_md5: bool,
) -> Result<StreamDigest, Error> {
    let (hashers, hashed) = Hashers::new(want_sha256, want_md5)
        .hash(chunks(body))
        .await?;
    let (sha256, md5) = hashers.finish();
    Ok(StreamDigest {
        len: hashed.len,
        leading: hashed.leading,
        sha256,
        md5,
    })
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

    #[tokio::test]
    async fn a_check_resumed_from_its_checkpoint_reaches_the_single_pass_digests() {
        let body: Vec<u8> = (0..(3 << 20) + 17).map(|i: u32| (i % 251) as u8).collect();
        let chunks = |range: std::ops::Range<usize>| {
            stream::iter(
                body[range]
                    .chunks(100_000)
                    .map(|chunk| Ok(Bytes::copy_from_slice(chunk)))
                    .collect::<Vec<_>>(),
            )
        };
        // Stopped off any block boundary, and carried across as the checkpoint's bytes only.
        let split = 1_000_003;
        let (first, _) = Hashers::new(true, true)
            .hash(chunks(0..split))
            .await
            .unwrap();
        let checkpoint = first.checkpoint("\"etag\"".into(), split as u64);
        let resumed = Hashers::resume(&checkpoint.clone()).unwrap();
        let (second, hashed) = resumed.hash(chunks(split..body.len())).await.unwrap();
        assert_eq!(hashed.len, (body.len() - split) as u64);
        assert_eq!(
            second.finish(),
            (
                Some(Sha256::digest(&body).to_vec()),
                Some(Md5::digest(&body).to_vec())
            )
        );
        let mut garbled = checkpoint;
        garbled.sha256_state = Some(vec![0; 3]);
        assert!(Hashers::resume(&garbled).is_none());
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

//! Parts of a file: their byte ranges, their SHA-256s and the file's, computed in one pass in
//! file order beside the uploads (which go out of order), and the presigned URLs they go to.

use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::FileExt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::sync::watch;

use crate::api::Api;
use crate::error::Failure;

/// Bytes read at a time, for hashing and for the bodies of PUTs: memory per PUT in flight is a
/// small multiple of this, whatever the part size.
pub const CHUNK: usize = 1 << 20;

/// Part URLs signed per `POST …/parts` at most (the service's batch).
pub const SIGN_BATCH: usize = 100;

/// A URL whose expiry is this close is signed again before use.
const EXPIRY_MARGIN: Duration = Duration::from_secs(60);

/// Where part `n` (1-based) of a file of `size` bytes in parts of `part_size` starts, and how
/// long it is; the last part holds the remainder. None for a part the file does not have.
pub fn part_range(size: u64, part_size: u64, n: u32) -> Option<(u64, u64)> {
    if n == 0 || part_size == 0 {
        return None;
    }
    let offset = part_size.checked_mul(u64::from(n - 1))?;
    (offset < size).then(|| (offset, part_size.min(size - offset)))
}

/// The parts of a plan: their count must cover the file exactly (each part non-empty).
pub fn check_plan(size: u64, part_size: u64, part_count: u32) -> Result<(), Failure> {
    let covers = part_count >= 1
        && part_range(size, part_size, part_count).is_some()
        && part_range(size, part_size, part_count + 1).is_none();
    if covers {
        Ok(())
    } else {
        Err(Failure::new(
            "bad_response",
            format!("the plan's {part_count} parts of {part_size} bytes do not cover {size} bytes"),
        ))
    }
}

pub fn base64_digest(hasher: Sha256) -> String {
    BASE64.encode(hasher.finalize())
}

/// How far the hashing got: parts hashed so far (in order), and in the end the whole file's
/// SHA-256 or why it stopped.
#[derive(Clone)]
struct HashState {
    hashed: u32,
    end: Option<Result<String, Failure>>,
}

/// The SHA-256 of each part and of the whole file, computed by one sequential reader on a
/// thread of its own. Parts become available in order, as the reader passes them.
pub struct Hashes {
    state: watch::Receiver<HashState>,
    parts: Arc<Mutex<Vec<String>>>,
}

impl Hashes {
    /// Starts hashing `file` (`size` bytes) in parts of `part_size`.
    pub fn start(file: Arc<std::fs::File>, size: u64, part_size: u64, part_count: u32) -> Self {
        let (sender, state) = watch::channel(HashState {
            hashed: 0,
            end: None,
        });
        let parts = Arc::new(Mutex::new(Vec::with_capacity(part_count as usize)));
        let sums = Arc::clone(&parts);
        // Dropped with the upload it serves: then the reader stops at its next part.
        tokio::task::spawn_blocking(move || {
            let result = hash_parts(&file, size, part_size, part_count, |n, sum| {
                sums.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(sum);
                sender.send_modify(|state| state.hashed = n);
                !sender.is_closed()
            });
            sender.send_modify(|state| state.end = Some(result));
        });
        Self { state, parts }
    }

    /// Parts hashed so far.
    pub fn hashed(&self) -> u32 {
        self.state.borrow().hashed
    }

    /// Waits until part `n` is hashed, or the hashing failed.
    pub async fn wait_for(&self, n: u32) -> Result<(), Failure> {
        let mut state = self.state.clone();
        let reached = state
            .wait_for(|state| state.hashed >= n || state.end.is_some())
            .await
            .map_err(|_| Failure::new("io_error", "the file's hashing stopped"))?;
        match &reached.end {
            Some(Err(failure)) => Err(failure.clone()),
            _ if reached.hashed >= n => Ok(()),
            _ => Err(Failure::new(
                "io_error",
                format!("part {n} was never hashed"),
            )),
        }
    }

    /// The base64 SHA-256 of part `n`, once hashed.
    pub fn part(&self, n: u32) -> Option<String> {
        let parts = self.parts.lock().unwrap_or_else(PoisonError::into_inner);
        parts.get((n as usize).checked_sub(1)?).cloned()
    }

    /// The whole file's base64 SHA-256, once every byte was read.
    pub async fn whole(&self) -> Result<String, Failure> {
        let mut state = self.state.clone();
        let done = state
            .wait_for(|state| state.end.is_some())
            .await
            .map_err(|_| Failure::new("io_error", "the file's hashing stopped"))?;
        done.end
            .clone()
            .unwrap_or_else(|| Err(Failure::new("io_error", "the file's hashing stopped")))
    }
}

/// Reads `file` once, in order, hashing each part and the whole: `on_part(n, sha256)` as each
/// part ends, which answers whether to go on. A file shorter than planned has changed since it was declared.
fn hash_parts(
    file: &std::fs::File,
    size: u64,
    part_size: u64,
    part_count: u32,
    mut on_part: impl FnMut(u32, String) -> bool,
) -> Result<String, Failure> {
    let mut whole = Sha256::new();
    let mut buffer = vec![0; CHUNK];
    for n in 1..=part_count {
        let (offset, length) = part_range(size, part_size, n)
            .ok_or_else(|| Failure::new("bad_response", format!("the plan has no part {n}")))?;
        let mut part = Sha256::new();
        let mut done = 0;
        while done < length {
            let take = usize::try_from(length - done).map_or(CHUNK, |left| left.min(CHUNK));
            let chunk = &mut buffer[..take];
            file.read_exact_at(chunk, offset + done).map_err(|err| {
                if err.kind() == std::io::ErrorKind::UnexpectedEof {
                    changed()
                } else {
                    Failure::io("reading the file", &err)
                }
            })?;
            part.update(&*chunk);
            whole.update(&*chunk);
            done += take as u64;
        }
        if !on_part(n, base64_digest(part)) {
            return Err(Failure::new("io_error", "the upload stopped"));
        }
    }
    Ok(base64_digest(whole))
}

pub fn changed() -> Failure {
    Failure::new(
        "file_changed",
        "the file changed while it was uploaded; run the command again to upload it as it is now",
    )
}

/// A presigned URL for one part and the headers its PUT must carry.
#[derive(Debug, Clone)]
pub struct Signed {
    pub url: String,
    pub headers: BTreeMap<String, String>,
    expires_at: Option<OffsetDateTime>,
}

impl Signed {
    fn is_fresh(&self) -> bool {
        self.expires_at
            .is_none_or(|expiry| expiry - EXPIRY_MARGIN > OffsetDateTime::now_utc())
    }
}

fn expiry(text: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(text, &Rfc3339).ok()
}

/// The URLs of the parts still to send: those of the plan, then signed in batches as the
/// parts need them, again when they near expiry or storage says they expired. When the upload
/// was declared with `part_checksums`, a part is signed only once hashed, for its SHA-256.
pub struct PartUrls {
    api: Api,
    file_id: String,
    /// Signed into every PUT of the upload (the plan's `headers`).
    common: BTreeMap<String, String>,
    checksums: Option<Arc<Hashes>>,
    /// The parts still to send, in order: a batch is the next ones after the part asked for.
    wanted: Vec<u32>,
    known: tokio::sync::Mutex<HashMap<u32, Signed>>,
}

impl PartUrls {
    pub fn new(
        api: Api,
        file_id: String,
        plan: &crate::wire::Plan,
        checksums: Option<Arc<Hashes>>,
        wanted: Vec<u32>,
    ) -> Self {
        let expires_at = expiry(&plan.expires_at);
        let known = (1..)
            .zip(&plan.urls)
            .filter(|(n, _)| wanted.contains(n))
            .map(|(n, url)| {
                let signed = Signed {
                    url: url.clone(),
                    headers: plan.headers.clone(),
                    expires_at,
                };
                (n, signed)
            })
            .collect();
        Self {
            api,
            file_id,
            common: plan.headers.clone(),
            checksums,
            wanted,
            known: tokio::sync::Mutex::new(known),
        }
    }

    /// A fresh URL for part `n`, signing a batch when there is none.
    pub async fn get(&self, n: u32) -> Result<Signed, Failure> {
        if let Some(hashes) = &self.checksums {
            hashes.wait_for(n).await?;
        }
        // One batch is signed at a time; parts asked for meanwhile are in it or the next.
        let mut known = self.known.lock().await;
        if let Some(signed) = known.get(&n).filter(|signed| signed.is_fresh()) {
            return Ok(signed.clone());
        }
        let hashed = self.checksums.as_ref().map_or(u32::MAX, |h| h.hashed());
        let batch = batch_after(&self.wanted, n, hashed, |m| {
            known.get(&m).is_some_and(Signed::is_fresh)
        });
        let checksums = match &self.checksums {
            None => None,
            Some(hashes) => Some(
                batch
                    .iter()
                    .map(|&m| {
                        let sum = hashes.part(m).ok_or_else(|| {
                            Failure::new("io_error", format!("part {m} is not hashed yet"))
                        })?;
                        Ok((m, sum))
                    })
                    .collect::<Result<Vec<_>, Failure>>()?,
            ),
        };
        let answer = self
            .api
            .sign_parts(&self.file_id, &batch, checksums.as_deref())
            .await?;
        let expires_at = expiry(&answer.expires_at);
        for (number, url) in answer.urls {
            let Ok(m) = number.parse::<u32>() else {
                continue;
            };
            let mut headers = self.common.clone();
            if let Some(own) = answer.headers.get(&number) {
                headers.extend(own.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
            known.insert(
                m,
                Signed {
                    url,
                    headers,
                    expires_at,
                },
            );
        }
        known.get(&n).cloned().ok_or_else(|| {
            Failure::new(
                "bad_response",
                format!("POST …/parts answered no URL for part {n}"),
            )
        })
    }

    /// Forgets the URL of part `n` (storage said it expired): the next `get` signs it again.
    pub async fn discard(&self, n: u32) {
        self.known.lock().await.remove(&n);
    }
}

/// The parts to sign with `n`: `n`, then the wanted parts after it that are hashed (numbers up
/// to `hashed`) and have no fresh URL, up to a batch.
fn batch_after(wanted: &[u32], n: u32, hashed: u32, has_fresh: impl Fn(u32) -> bool) -> Vec<u32> {
    let start = wanted.iter().position(|&m| m == n).map_or(0, |i| i + 1);
    std::iter::once(n)
        .chain(
            wanted[start..]
                .iter()
                .copied()
                .filter(|&m| m <= hashed && !has_fresh(m)),
        )
        .take(SIGN_BATCH)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    const MIB: u64 = 1 << 20;

    #[test]
    fn parts_cover_the_file_and_the_last_holds_the_rest() {
        let size = 150 * MIB;
        assert_eq!(part_range(size, 16 * MIB, 1), Some((0, 16 * MIB)));
        assert_eq!(part_range(size, 16 * MIB, 9), Some((128 * MIB, 16 * MIB)));
        assert_eq!(part_range(size, 16 * MIB, 10), Some((144 * MIB, 6 * MIB)));
        assert_eq!(part_range(size, 16 * MIB, 11), None);
        assert_eq!(part_range(size, 16 * MIB, 0), None);
        assert!(check_plan(size, 16 * MIB, 10).is_ok());
        assert!(check_plan(size, 16 * MIB, 9).is_err());
        assert!(check_plan(size, 16 * MIB, 11).is_err());
        assert_eq!(
            part_range(32 * MIB, 16 * MIB, 2),
            Some((16 * MIB, 16 * MIB))
        );
        assert!(check_plan(32 * MIB, 16 * MIB, 2).is_ok());
        // A single PUT is one part of the whole file.
        assert_eq!(part_range(5, 5, 1), Some((0, 5)));
        assert!(check_plan(5, 5, 1).is_ok());
        assert_eq!(part_range(5, 0, 1), None);
        assert_eq!(part_range(u64::MAX, u64::MAX, 3), None);
    }

    #[test]
    fn a_batch_is_the_part_then_the_next_hashed_parts_without_a_fresh_url() {
        let wanted = [2, 3, 5, 6, 7, 9];
        assert_eq!(
            batch_after(&wanted, 3, u32::MAX, |_| false),
            [3, 5, 6, 7, 9]
        );
        assert_eq!(batch_after(&wanted, 3, 6, |_| false), [3, 5, 6]);
        assert_eq!(batch_after(&wanted, 3, u32::MAX, |m| m == 6), [3, 5, 7, 9]);
        let many: Vec<u32> = (1..=250).collect();
        let batch = batch_after(&many, 1, u32::MAX, |_| false);
        assert_eq!(batch.len(), SIGN_BATCH);
        assert_eq!(batch.last(), Some(&100));
    }

    fn sha256_base64(bytes: &[u8]) -> String {
        BASE64.encode(Sha256::digest(bytes))
    }

    #[tokio::test]
    async fn hashes_each_part_and_the_whole_file_in_one_pass() {
        let path = std::env::temp_dir().join(format!("upload-cli-hash-{}", uuid::Uuid::new_v4()));
        let content: Vec<u8> = (0..(2 * CHUNK + 12_345)).map(|i| (i % 251) as u8).collect();
        std::fs::File::create(&path)
            .unwrap()
            .write_all(&content)
            .unwrap();
        let file = Arc::new(std::fs::File::open(&path).unwrap());
        let part_size = CHUNK as u64 + 7;
        let size = content.len() as u64;
        let count = u32::try_from(size.div_ceil(part_size)).unwrap();
        let hashes = Hashes::start(file, size, part_size, count);
        hashes.wait_for(count).await.unwrap();
        for n in 1..=count {
            let (offset, length) = part_range(size, part_size, n).unwrap();
            let part = &content[offset as usize..(offset + length) as usize];
            assert_eq!(hashes.part(n).unwrap(), sha256_base64(part), "part {n}");
        }
        assert_eq!(hashes.whole().await.unwrap(), sha256_base64(&content));
        std::fs::remove_file(path).unwrap();
    }

    #[tokio::test]
    async fn a_file_shorter_than_planned_has_changed() {
        let path = std::env::temp_dir().join(format!("upload-cli-hash-{}", uuid::Uuid::new_v4()));
        std::fs::write(&path, b"short").unwrap();
        let file = Arc::new(std::fs::File::open(&path).unwrap());
        let hashes = Hashes::start(file, 10, 5, 2);
        assert_eq!(hashes.wait_for(2).await.unwrap_err().code, "file_changed");
        assert_eq!(hashes.whole().await.unwrap_err().code, "file_changed");
        std::fs::remove_file(path).unwrap();
    }
}

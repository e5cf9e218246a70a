//! `upload put`: one file, from declaration to `complete` (and with `--wait`, to its verdict),
//! resumable.
//!
//! - Every file is declared with `part_checksums: "sha256"`, and one up to `HASH_FIRST_MAX` is
//!   hashed first and declared with its SHA-256 too, so storage checks it on the PUT (and a
//!   verified copy in the project is found: `deduplicated`); should the deployment's threshold
//!   be lower and the plan come in parts, each part is still checked by storage.
//! - A larger one is declared by size alone: one reader goes through the file
//!   in order, hashing each part and the whole; each part is signed for its SHA-256 once hashed
//!   and PUT (several at a time, out of order), and the whole file's SHA-256 is declared at
//!   `complete`. Should the plan be one PUT (a higher threshold), its one part is the file, and
//!   storage checks the file's SHA-256 on it.
//! - Part bodies are read from the file in chunks as they are sent: memory is bounded by the
//!   PUTs in flight, not by the part size.
//! - State for resuming is kept from before the create until `complete` answers (state.rs).

use std::collections::BTreeMap;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use reqwest::Client;
use reqwest::header::{CONTENT_LENGTH, HeaderMap, HeaderName, HeaderValue};
use serde_json::{Value, json};
use tokio::sync::Semaphore;

use crate::api::{Api, backoff, parse};
use crate::error::Failure;
use crate::parts::{self, CHUNK, Hashes, PartUrls, Signed, part_range};
use crate::progress::{Bars, Progress};
use crate::state::{Identity, Resume, Store};
use crate::wire::{File, Plan};

/// Files up to this size are hashed before they are declared: the service's default multipart
/// threshold, so that single PUTs (which verify may check before `complete` is called) always
/// carry their SHA-256. Hashing 100 MiB takes a fraction of a second.
pub const HASH_FIRST_MAX: u64 = 100 << 20;

/// Attempts of one PUT (storage's 5xx, lost connections, expired URLs).
const PUT_ATTEMPTS: u32 = 6;

/// What every file's upload shares.
pub struct Context {
    pub api: Api,
    pub http: Client,
    /// The project's base URL, part of each resume key.
    pub base: String,
    pub store: Option<Store>,
    /// PUTs in flight, across all files.
    pub slots: Arc<Semaphore>,
    pub progress: Progress,
}

pub struct Options {
    pub metadata: BTreeMap<String, String>,
    pub content_type: Option<String>,
    pub wait: bool,
    pub parallel: usize,
    pub restart: bool,
}

/// What one file's upload did, kept up to date while it runs so that an interruption can
/// report it too.
#[derive(Debug, Default, Clone)]
pub struct Report {
    pub path: String,
    pub file_id: Option<String>,
    /// Whether an earlier, interrupted run had begun this upload.
    pub resumed: bool,
    /// Parts storage already had when this run began (a resumed multipart upload).
    pub parts_stored_before: Vec<u32>,
    /// Parts this run PUT, storage answering 2xx, in the order they finished.
    pub parts_sent: Vec<u32>,
}

pub type SharedReport = Arc<Mutex<Report>>;

fn note(report: &SharedReport, change: impl FnOnce(&mut Report)) {
    change(&mut report.lock().unwrap_or_else(PoisonError::into_inner));
}

/// How the upload stands once begun.
enum Begun {
    /// Bytes to send under this plan; `resumed` when storage may already have some.
    Plan { plan: Plan, resumed: bool },
    /// Nothing to send: a verified copy (`deduplicated`), or an upload completed earlier.
    Settled(Value),
}

/// Uploads `path` and completes it; with `wait`, until it is verified or rejected. The answer
/// is the file resource as the service last gave it.
pub async fn put(
    ctx: &Context,
    path: &Path,
    options: &Options,
    report: &SharedReport,
) -> Result<Value, Failure> {
    let canonical =
        std::fs::canonicalize(path).map_err(|err| Failure::io("opening the file", &err))?;
    let metadata = std::fs::metadata(&canonical)
        .map_err(|err| Failure::io("reading the file's size", &err))?;
    if !metadata.is_file() {
        return Err(Failure::new("io_error", "not a regular file"));
    }
    let identity = Identity::new(&ctx.base, canonical.clone(), &metadata);
    let file = Arc::new(
        std::fs::File::open(&canonical).map_err(|err| Failure::io("opening the file", &err))?,
    );
    let size = identity.size;
    let name = file_name(path);
    let bars = ctx.progress.file(&name, size);

    let result = async {
        let (state, begun) = begin(ctx, &identity, &file, &name, options, report, &bars).await?;
        let resource = match begun {
            Begun::Settled(resource) => resource,
            Begun::Plan { plan, resumed } => {
                let declared = state.create_body.get("sha256").is_some();
                // The plan says, also when resumed from the file's `upload`.
                let checksummed = plan.part_checksums.is_some();
                let whole = send(
                    ctx,
                    &file,
                    size,
                    &plan,
                    resumed,
                    declared,
                    checksummed,
                    options,
                    report,
                    &bars,
                )
                .await?;
                // The bytes sent must be the bytes declared: the file must not have changed since.
                let now = std::fs::metadata(&canonical)
                    .map_err(|err| Failure::io("reading the file's size", &err))?;
                if Identity::new(&ctx.base, canonical.clone(), &now) != identity {
                    return Err(parts::changed());
                }
                let mut body = json!({ "job_id": plan.job_id });
                if let Some(sha256) = whole {
                    body["sha256"] = Value::String(sha256);
                }
                bars.status("completing");
                let key = uuid::Uuid::new_v4().to_string();
                ctx.api.complete(&plan.file_id, &body, &key).await?
            }
        };
        if let Some(store) = &ctx.store {
            store.remove(&identity);
        }
        if options.wait {
            wait(&ctx.api, resource, &bars).await
        } else {
            Ok(resource)
        }
    }
    .await;
    match &result {
        Ok(resource) => bars.finish(
            resource
                .get("status")
                .and_then(Value::as_str)
                .unwrap_or("done"),
        ),
        Err(failure) => bars.abandon(&failure.code),
    }
    result
}

/// Finds the upload an interrupted run began (its file still waiting for these bytes), or
/// declares the file anew.
async fn begin(
    ctx: &Context,
    identity: &Identity,
    file: &Arc<std::fs::File>,
    name: &str,
    options: &Options,
    report: &SharedReport,
    bars: &Bars,
) -> Result<(Resume, Begun), Failure> {
    let earlier = ctx.store.as_ref().and_then(|store| store.load(identity));
    let earlier = match earlier {
        Some(state) if options.restart => {
            // Best effort: the old upload's parts would otherwise wait for storage's lifecycle.
            if let Some(file_id) = &state.file_id {
                let _ = ctx
                    .api
                    .abort(file_id, &uuid::Uuid::new_v4().to_string())
                    .await;
            }
            None
        }
        other => other,
    };
    if let Some(state) = earlier {
        match &state.file_id {
            Some(file_id) => {
                if let Some(begun) = resumable(ctx, &state, file_id).await? {
                    note(report, |r| {
                        r.resumed = true;
                        r.file_id = Some(file_id.clone());
                    });
                    return Ok((state, begun));
                }
                // Gone, settled otherwise or replaced: this file starts anew.
            }
            None => {
                // The create was sent and its answer lost: sent again with its key, it finds
                // the file it made instead of making another.
                note(report, |r| r.resumed = true);
                return create(ctx, state, report).await;
            }
        }
    }
    let mut body = json!({
        "file_name": name,
        "file_size": identity.size,
        "content_type": options.content_type.clone().unwrap_or_else(|| guess_type(name).to_owned()),
    });
    if !options.metadata.is_empty() {
        body["metadata"] = json!(options.metadata);
    }
    // Every part is signed for its SHA-256, whatever the plan: a deployment whose threshold is
    // below HASH_FIRST_MAX plans a file hashed first in parts too. An empty file is declared as
    // it is, for the service to refuse (file_size is 1 or more).
    body["part_checksums"] = Value::String("sha256".into());
    if (1..=HASH_FIRST_MAX).contains(&identity.size) {
        bars.status("hashing");
        let hashes = Hashes::start(Arc::clone(file), identity.size, identity.size, 1);
        body["sha256"] = Value::String(hashes.whole().await?);
        bars.status("");
    }
    let state = Resume::new(identity, uuid::Uuid::new_v4().to_string(), body);
    create(ctx, state, report).await
}

/// Whether the upload `state` describes can go on: its file still waits for the job's bytes
/// (→ its plan), or was completed and awaits or has its verdict (→ settled).
async fn resumable(ctx: &Context, state: &Resume, file_id: &str) -> Result<Option<Begun>, Failure> {
    let value = match ctx.api.file(file_id).await {
        Ok(value) => value,
        Err(failure) if matches!(failure.code.as_str(), "not_found" | "forbidden") => {
            return Ok(None);
        }
        Err(failure) => return Err(failure),
    };
    let resource: File = parse("the file", value.clone())?;
    let same_job = |plan: &Plan| Some(&plan.job_id) == state.job_id.as_ref();
    Ok(match (resource.status.as_str(), resource.upload) {
        ("pending_upload", Some(plan)) if same_job(&plan) => Some(Begun::Plan {
            plan,
            resumed: true,
        }),
        ("uploaded" | "verified", _) => Some(Begun::Settled(value)),
        _ => None,
    })
}

/// Sends the create of `state` (saved first, with its key), and saves what it answered.
async fn create(
    ctx: &Context,
    mut state: Resume,
    report: &SharedReport,
) -> Result<(Resume, Begun), Failure> {
    save(ctx, &state)?;
    let answer = match ctx.api.create(&state.create_body, &state.create_key).await {
        Ok(answer) => answer,
        Err(failure) => {
            // A final refusal is replayed to its key: sending it again would only repeat it.
            // What may have applied (a 5xx, a lost answer) is kept for the next run to find out.
            if failure.status.is_some_and(|status| status < 500)
                && !failure.is_retriable()
                && let Some(store) = &ctx.store
            {
                store.remove(&state.identity());
            }
            return Err(failure);
        }
    };
    if answer.body.get("deduplicated").and_then(Value::as_bool) == Some(true) {
        let file_id = answer
            .body
            .get("file_id")
            .and_then(Value::as_str)
            .map(str::to_owned);
        note(report, |r| r.file_id = file_id);
        return Ok((state, Begun::Settled(answer.body)));
    }
    let plan: Plan = parse("the upload plan", answer.body)?;
    parts::check_plan(state.size, plan.part_size, plan.part_count)?;
    state.file_id = Some(plan.file_id.clone());
    state.job_id = Some(plan.job_id.clone());
    save(ctx, &state)?;
    note(report, |r| r.file_id = Some(plan.file_id.clone()));
    // A replayed create may have had parts sent under it before this run.
    Ok((
        state,
        Begun::Plan {
            plan,
            resumed: answer.replayed,
        },
    ))
}

fn save(ctx: &Context, state: &Resume) -> Result<(), Failure> {
    match &ctx.store {
        Some(store) => store.save(state).map_err(|err| {
            Failure::io(
                &format!("saving the resume state in {}", store.dir().display()),
                &err,
            )
        }),
        None => Ok(()),
    }
}

/// Sends what storage does not have yet. Answers the whole file's SHA-256 when it was not
/// declared at create (it is then declared at complete).
#[allow(clippy::too_many_arguments)]
async fn send(
    ctx: &Context,
    file: &Arc<std::fs::File>,
    size: u64,
    plan: &Plan,
    resumed: bool,
    declared: bool,
    checksummed: bool,
    options: &Options,
    report: &SharedReport,
    bars: &Bars,
) -> Result<Option<String>, Failure> {
    parts::check_plan(size, plan.part_size, plan.part_count)?;
    // Storage lists a single PUT's object as part 1.
    let stored = if resumed {
        ctx.api
            .stored_parts(&plan.file_id)
            .await
            .map_err(|failure| {
                if failure.has_reason("upload_expired") {
                    Failure {
                        message: format!("{} (run again with --restart)", failure.message),
                        ..failure
                    }
                } else {
                    failure
                }
            })?
    } else {
        Vec::new()
    };
    let mut have = Vec::new();
    let mut missing = Vec::new();
    for n in 1..=plan.part_count {
        let length = part_range(size, plan.part_size, n).map_or(0, |(_, length)| length);
        if stored
            .iter()
            .any(|part| part.part_number == n && part.size == length)
        {
            have.push(n);
            bars.inc(length);
        } else {
            missing.push(n);
        }
    }
    note(report, |r| r.parts_stored_before.clone_from(&have));

    // One reader hashes in file order whatever must be declared: the parts' checksums before
    // they are signed, the whole file's for complete. A single PUT's one part is the whole
    // file, whose SHA-256 storage checks on the PUT when it is signed for it: nothing is
    // declared at complete then (verify may have settled the file before complete comes).
    let whole_at_complete = plan.is_multipart() && !declared;
    let hashes = (checksummed || whole_at_complete).then(|| {
        Arc::new(Hashes::start(
            Arc::clone(file),
            size,
            plan.part_size,
            plan.part_count,
        ))
    });
    let urls = PartUrls::new(
        ctx.api.clone(),
        plan.file_id.clone(),
        plan,
        hashes.clone().filter(|_| checksummed),
        missing.clone(),
    );
    let single = !plan.is_multipart();
    let next = AtomicUsize::new(0);
    let worker = || async {
        while let Some(&n) = missing.get(next.fetch_add(1, Ordering::Relaxed)) {
            let (offset, length) = part_range(size, plan.part_size, n)
                .ok_or_else(|| Failure::new("bad_response", format!("the plan has no part {n}")))?;
            send_part(ctx, file, n, offset, length, &urls, bars, single).await?;
            note(report, |r| r.parts_sent.push(n));
        }
        Ok::<(), Failure>(())
    };
    let workers = options.parallel.clamp(1, missing.len().max(1));
    futures_util::future::try_join_all((0..workers).map(|_| worker())).await?;
    match hashes.filter(|_| whole_at_complete) {
        Some(hashes) => Ok(Some(hashes.whole().await?)),
        None => Ok(None),
    }
}

/// PUTs part `n` (bytes `offset..offset + length` of the file), retrying storage's 5xx and lost
/// connections with backoff, and signing the part again when its URL expired.
#[allow(clippy::too_many_arguments)]
async fn send_part(
    ctx: &Context,
    file: &Arc<std::fs::File>,
    n: u32,
    offset: u64,
    length: u64,
    urls: &PartUrls,
    bars: &Bars,
    single: bool,
) -> Result<(), Failure> {
    let what = if single {
        "the PUT".to_owned()
    } else {
        format!("part {n}")
    };
    let mut attempt = 0;
    loop {
        attempt += 1;
        let signed = urls.get(n).await?;
        let permit = ctx
            .slots
            .acquire()
            .await
            .map_err(|_| Failure::new("io_error", "the upload was stopped"))?;
        let sent = Arc::new(AtomicU64::new(0));
        let result = put_range(&ctx.http, &what, &signed, file, offset, length, bars, &sent).await;
        drop(permit);
        let failure = match result {
            Ok(()) => return Ok(()),
            Err(failure) => failure,
        };
        bars.dec(sent.load(Ordering::Relaxed));
        // A single PUT's URL writes once (`if-none-match: *`): 412 says an earlier attempt,
        // whose answer was lost, stored the file.
        if single && failure.status == Some(412) {
            return Ok(());
        }
        let expired = failure.status == Some(403)
            && (failure.to_string().to_ascii_lowercase().contains("expired")
                || failure.has_reason("AccessDenied"));
        if attempt >= PUT_ATTEMPTS || !(expired || failure.is_retriable()) {
            return Err(failure);
        }
        if expired {
            urls.discard(n).await;
        } else {
            tokio::time::sleep(backoff(attempt)).await;
        }
    }
}

/// One PUT of `length` bytes of the file from `offset`, with exactly the signed headers; the
/// body is read from the file a chunk at a time as it is sent.
#[allow(clippy::too_many_arguments)]
async fn put_range(
    http: &Client,
    what: &str,
    signed: &Signed,
    file: &Arc<std::fs::File>,
    offset: u64,
    length: u64,
    bars: &Bars,
    sent: &Arc<AtomicU64>,
) -> Result<(), Failure> {
    let mut headers = HeaderMap::new();
    for (name, value) in &signed.headers {
        let name = HeaderName::from_bytes(name.as_bytes());
        let value = HeaderValue::from_str(value);
        let (Ok(name), Ok(value)) = (name, value) else {
            return Err(Failure::new(
                "bad_response",
                format!("a signed header of {what} is not valid HTTP"),
            ));
        };
        headers.insert(name, value);
    }
    headers.insert(CONTENT_LENGTH, HeaderValue::from(length));
    let (file, bars, sent) = (Arc::clone(file), bars.clone(), Arc::clone(sent));
    let body = futures_util::stream::try_unfold(0u64, move |done| {
        let (file, bars, sent) = (Arc::clone(&file), bars.clone(), Arc::clone(&sent));
        async move {
            if done >= length {
                return Ok(None);
            }
            let take = usize::try_from(length - done).map_or(CHUNK, |left| left.min(CHUNK));
            let chunk = tokio::task::spawn_blocking(move || {
                let mut buffer = vec![0; take];
                file.read_exact_at(&mut buffer, offset + done)
                    .map(|()| Bytes::from(buffer))
            })
            .await
            .map_err(std::io::Error::other)??;
            bars.inc(take as u64);
            sent.fetch_add(take as u64, Ordering::Relaxed);
            Ok::<_, std::io::Error>(Some((chunk, done + take as u64)))
        }
    });
    let response = http
        .put(&signed.url)
        .headers(headers)
        .body(reqwest::Body::wrap_stream(body))
        .send()
        .await
        .map_err(|err| Failure::network(what, &err))?;
    let status = response.status().as_u16();
    if (200..300).contains(&status) {
        return Ok(());
    }
    let body = response.bytes().await.unwrap_or_default();
    Err(Failure::from_storage(what, status, &body))
}

/// Polls the file until verify has settled it, showing how far a large check got.
pub async fn wait(api: &Api, mut resource: Value, bars: &Bars) -> Result<Value, Failure> {
    let mut pause = Duration::from_millis(250);
    loop {
        let file: File = parse("the file", resource.clone())?;
        if file.is_settled() {
            return Ok(resource);
        }
        bars.status(match file.bytes_checked {
            Some(checked) if file.file_size > 0 => {
                format!(
                    "verifying {}%",
                    checked.saturating_mul(100) / file.file_size
                )
            }
            _ => "verifying".to_owned(),
        });
        tokio::time::sleep(pause).await;
        pause = (pause * 3 / 2).min(Duration::from_secs(2));
        resource = api.file(&file.file_id).await?;
    }
}

/// The name the file is declared with: its last path component.
pub fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.to_string_lossy().into_owned())
}

/// The content type of a few common extensions; anything else is declared as bytes. verify
/// checks the leading bytes of the types it knows, so a wrong guess would be rejected: `--type`
/// says otherwise.
pub fn guess_type(name: &str) -> &'static str {
    let extension = name
        .rsplit_once('.')
        .map(|(_, extension)| extension.to_ascii_lowercase())
        .unwrap_or_default();
    match extension.as_str() {
        "txt" | "log" => "text/plain",
        "csv" => "text/csv",
        "html" | "htm" => "text/html",
        "json" => "application/json",
        "pdf" => "application/pdf",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "zip" => "application/zip",
        "gz" => "application/gzip",
        "mp4" => "video/mp4",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_are_guessed_from_a_few_extensions_only() {
        assert_eq!(guess_type("report.PDF"), "application/pdf");
        assert_eq!(guess_type("a.tar.gz"), "application/gzip");
        assert_eq!(guess_type("big.bin"), "application/octet-stream");
        assert_eq!(guess_type("README"), "application/octet-stream");
    }

    #[test]
    fn files_are_declared_by_their_last_component() {
        assert_eq!(file_name(Path::new("/data/x/report.pdf")), "report.pdf");
        assert_eq!(file_name(Path::new("hello.txt")), "hello.txt");
    }
}

//! The commands: `put` (several files at once, interruptible), `ls`, `get` and `rm`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use futures_util::StreamExt;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use crate::api::{Api, http_client, parse};
use crate::error::Failure;
use crate::parts::base64_digest;
use crate::progress::Progress;
use crate::put::{self, Context, Options, Report, SharedReport};
use crate::state::Store;
use crate::wire::File;
use crate::{Cli, Command, Exit, Output};

pub async fn run(cli: Cli, output: Output) -> Exit {
    let settings = match cli.settings() {
        Ok(settings) => settings,
        Err(failure) => {
            output.failure(None, &failure);
            return Exit::Failed;
        }
    };
    let http = match http_client() {
        Ok(http) => http,
        Err(failure) => {
            output.failure(None, &failure);
            return Exit::Failed;
        }
    };
    let api = Api::new(http.clone(), &settings.api, settings.bearer);
    let result = match cli.command {
        Command::Put(put) => {
            let options = put.options();
            return put_files(api, http, &settings.api, put.files, options, output).await;
        }
        Command::Ls { status, limit } => list(&api, status.as_deref(), limit, output).await,
        Command::Get { id, output: path } => get(&api, &http, &id, path, output).await,
        Command::Rm { id } => remove(&api, &id, output).await,
    };
    match result {
        Ok(()) => Exit::Done,
        Err(failure) => {
            output.failure(None, &failure);
            Exit::Failed
        }
    }
}

/// Uploads `files`, several at once; Ctrl-C stops them all, says what each had sent, and
/// leaves them to resume.
async fn put_files(
    api: Api,
    http: reqwest::Client,
    base: &str,
    files: Vec<PathBuf>,
    options: Options,
    output: Output,
) -> Exit {
    let total: u64 = files
        .iter()
        .filter_map(|path| std::fs::metadata(path).ok())
        .map(|metadata| metadata.len())
        .sum();
    let store = Store::from_env();
    if store.is_none() {
        eprintln!(
            "upload: neither XDG_STATE_HOME nor HOME is set: an interrupted upload cannot be resumed"
        );
    }
    let ctx = Context {
        api,
        http,
        base: base.trim_end_matches('/').to_owned(),
        store,
        slots: Arc::new(Semaphore::new(options.parallel)),
        progress: Progress::new(total, files.len()),
    };
    let reports: Vec<SharedReport> = files
        .iter()
        .map(|path| {
            Arc::new(Mutex::new(Report {
                path: path.display().to_string(),
                ..Report::default()
            }))
        })
        .collect();
    let exits = Arc::new(Mutex::new(Vec::new()));
    let uploads = futures_util::stream::iter(files.iter().zip(&reports))
        .map(|(path, report)| {
            let (ctx, options, exits) = (&ctx, &options, Arc::clone(&exits));
            async move {
                let result = put::put(ctx, path, options, report).await;
                let report = report
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clone();
                let exit = ctx.progress.suspend(|| print_put(&report, result, output));
                exits
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(exit);
            }
        })
        .buffer_unordered(options.parallel)
        .collect::<Vec<()>>();
    tokio::select! {
        _ = uploads => ctx.progress.clear(),
        _ = tokio::signal::ctrl_c() => {
            ctx.progress.clear();
            for report in &reports {
                let report = report.lock().unwrap_or_else(PoisonError::into_inner).clone();
                print_interrupted(&report, output);
            }
            return Exit::Interrupted;
        }
    }
    let exits = exits.lock().unwrap_or_else(PoisonError::into_inner).clone();
    if exits.contains(&Exit::Failed) {
        Exit::Failed
    } else if exits.contains(&Exit::Rejected) {
        Exit::Rejected
    } else {
        Exit::Done
    }
}

/// One line (or JSON object) for a file `put` finished with; its exit status.
fn print_put(report: &Report, result: Result<Value, Failure>, output: Output) -> Exit {
    let resource = match result {
        Ok(resource) => resource,
        Err(failure) => {
            output.failure(Some(&report.path), &failure);
            return Exit::Failed;
        }
    };
    let status = resource
        .get("status")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    if output.json {
        let mut line = json!({ "path": report.path });
        if let Value::Object(fields) = resource.clone() {
            line.as_object_mut()
                .into_iter()
                .for_each(|object| object.extend(fields.clone()));
        }
        line["resumed"] = Value::Bool(report.resumed);
        line["parts_stored_before"] = json!(report.parts_stored_before);
        line["parts_sent"] = json!(report.parts_sent);
        println!("{line}");
    } else {
        let file_id = resource
            .get("file_id")
            .and_then(Value::as_str)
            .unwrap_or("?");
        let mut line = format!("{status:<9} {file_id}  {}", report.path);
        if resource.get("deduplicated").and_then(Value::as_bool) == Some(true) {
            line.push_str("  (deduplicated: the project has these bytes verified)");
        }
        if let Some(reason) = resource.get("rejection_reason").and_then(Value::as_str) {
            line.push_str(&format!("  ({reason})"));
        }
        if report.resumed {
            line.push_str(&format!(
                "  (resumed: {} part(s) were stored, {} sent now)",
                report.parts_stored_before.len(),
                report.parts_sent.len()
            ));
        }
        println!("{line}");
    }
    if status == "rejected" {
        Exit::Rejected
    } else {
        Exit::Done
    }
}

fn print_interrupted(report: &Report, output: Output) {
    if output.json {
        let line = json!({
            "path": report.path,
            "file_id": report.file_id,
            "status": "interrupted",
            "resumed": report.resumed,
            "parts_stored_before": report.parts_stored_before,
            "parts_sent": report.parts_sent,
        });
        println!("{line}");
    } else if let Some(file_id) = &report.file_id {
        eprintln!(
            "upload: {}: interrupted ({file_id}, {} part(s) sent); the same command resumes it",
            report.path,
            report.parts_sent.len()
        );
    }
}

/// Pages through the project's files, newest first.
async fn list(
    api: &Api,
    status: Option<&str>,
    limit: Option<usize>,
    output: Output,
) -> Result<(), Failure> {
    /// The service's largest page.
    const PAGE: usize = 100;
    let mut left = limit.unwrap_or(usize::MAX);
    let mut cursor: Option<String> = None;
    while left > 0 {
        let page = api.list(status, left.min(PAGE), cursor.as_deref()).await?;
        for value in page.files.into_iter().take(left) {
            left -= 1;
            if output.json {
                println!("{value}");
            } else {
                let file: File = parse("a listed file", value)?;
                println!(
                    "{}  {:<14} {:>14}  {}  {}",
                    file.file_id, file.status, file.file_size, file.created_at, file.file_name
                );
            }
        }
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    Ok(())
}

/// Downloads the verified content of `file_id` and checks its size and SHA-256 against the
/// file's record. Written beside its destination and renamed only once checked.
async fn get(
    api: &Api,
    http: &reqwest::Client,
    file_id: &str,
    path: Option<PathBuf>,
    output: Output,
) -> Result<(), Failure> {
    let value = api.file(file_id).await?;
    let file: File = parse("the file", value)?;
    let Some(url) = file.download_url.clone() else {
        return Err(Failure::new(
            "not_downloadable",
            format!(
                "the file is {}: only verified content can be downloaded",
                file.status
            ),
        ));
    };
    let to_stdout = path.as_deref() == Some(Path::new("-"));
    let destination = path.unwrap_or_else(|| PathBuf::from(safe_name(&file.file_name)));
    let response = http
        .get(&url)
        .send()
        .await
        .map_err(|err| Failure::network("the download", &err))?;
    let status = response.status().as_u16();
    if !(200..300).contains(&status) {
        let body = response.bytes().await.unwrap_or_default();
        return Err(Failure::from_storage("the download", status, &body));
    }
    let progress = Progress::new(file.file_size, 1);
    let bars = progress.file(&file.file_name, file.file_size);
    let temporary = destination.with_file_name(format!(
        ".{}.{}.part",
        destination
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        std::process::id()
    ));
    let mut sink: Box<dyn Write> = if to_stdout {
        Box::new(std::io::stdout().lock())
    } else {
        Box::new(
            std::fs::File::create(&temporary)
                .map_err(|err| Failure::io("creating the file", &err))?,
        )
    };
    let mut hasher = Sha256::new();
    let mut bytes = 0u64;
    let mut stream = response.bytes_stream();
    let written = async {
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|err| Failure::network("the download", &err))?;
            hasher.update(&chunk);
            sink.write_all(&chunk)
                .map_err(|err| Failure::io("writing the file", &err))?;
            bytes += chunk.len() as u64;
            bars.inc(chunk.len() as u64);
        }
        sink.flush()
            .map_err(|err| Failure::io("writing the file", &err))
    }
    .await;
    drop(sink);
    let sha256 = base64_digest(hasher);
    // The record's size and SHA-256 are the current upload's; they describe the served content
    // only once that is verified. While a reupload is in progress (or was rejected), the URL
    // serves the earlier verified version, which the record does not describe.
    let describes_served = file.status == "verified";
    if !describes_served {
        eprintln!(
            "upload: the file is {}: its record describes that upload, not the verified version downloaded, so the download is not checked against it",
            file.status
        );
    }
    let checked = written.and_then(|()| {
        if !describes_served {
            return Ok(());
        }
        if bytes != file.file_size {
            return Err(Failure::new(
                "size_mismatch",
                format!("downloaded {bytes} bytes, the file has {}", file.file_size),
            ));
        }
        match &file.sha256 {
            Some(expected) if *expected != sha256 => Err(Failure::new(
                "checksum_mismatch",
                format!("the download's SHA-256 is {sha256}, the file's {expected}"),
            )),
            _ => Ok(()),
        }
    });
    if let Err(failure) = checked {
        bars.abandon(&failure.code);
        if !to_stdout {
            let _ = std::fs::remove_file(&temporary);
        }
        return Err(failure);
    }
    if !to_stdout {
        std::fs::rename(&temporary, &destination)
            .map_err(|err| Failure::io("renaming the download", &err))?;
    }
    bars.finish("checked");
    progress.clear();
    let shown = if to_stdout {
        "-".to_owned()
    } else {
        destination.display().to_string()
    };
    if output.json {
        println!(
            "{}",
            json!({ "file_id": file.file_id, "path": shown, "file_size": bytes, "sha256": sha256,
                    "sha256_checked": file.sha256.is_some() })
        );
    } else if !to_stdout {
        let checked = if file.sha256.is_some() {
            "SHA-256 checked"
        } else {
            "no SHA-256 on record to check"
        };
        println!("{}  {shown}  ({bytes} bytes, {checked})", file.file_id);
    }
    Ok(())
}

/// A file name from the service, safe to create in this directory: its last component, and
/// never `.`, `..` or empty.
fn safe_name(name: &str) -> String {
    let last = name.rsplit(['/', '\\']).next().unwrap_or("");
    match last {
        "" | "." | ".." => "download".to_owned(),
        last => last.to_owned(),
    }
}

async fn remove(api: &Api, file_id: &str, output: Output) -> Result<(), Failure> {
    api.delete(file_id, &uuid::Uuid::new_v4().to_string())
        .await?;
    if output.json {
        println!("{}", json!({ "file_id": file_id, "deleted": true }));
    } else {
        println!("deleted {file_id}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn downloads_are_named_by_the_last_component_only() {
        assert_eq!(safe_name("report.pdf"), "report.pdf");
        assert_eq!(safe_name("../../etc/passwd"), "passwd");
        assert_eq!(safe_name("a\\b.txt"), "b.txt");
        assert_eq!(safe_name(".."), "download");
        assert_eq!(safe_name("dir/"), "download");
    }
}

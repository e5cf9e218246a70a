//! Row 13 (issue 22): the command line (`upload put`, the release binary beside this one)
//! uploading 1 GiB through `scripts/dev`, against curl PUTting the same parts, as many at a time,
//! on URLs signed the same way (for each part's SHA-256), then complete with the whole file's
//! SHA-256. The CLI's time is its process's, from exec to exit (declare, hash, sign, PUT,
//! complete); curl's from its create to complete's answer, its part files cut and hashed
//! beforehand (so the baseline pays nothing for hashing or reading the parts out of the file).
//! Peak RSS of the CLI from wait4, in a process started for it ([`peak_rss_of`]). Each upload
//! is deleted after it, and the runs alternate.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::stats::median;
use crate::{RUNS, row};

const GIB: u64 = 1 << 30;
/// The CLI's default `--parallel`, and so curl's.
const PARALLEL: usize = 4;

pub async fn rows(api: &str, key: &str) -> Result<(), String> {
    let dir = std::env::var_os("BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
        .join("cli");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let (path, sha256) = crate::verify::make_file(&dir, GIB)?;
    let http = reqwest::Client::new();
    let client = Client {
        http: &http,
        api,
        key,
    };

    // The parts as the service plans them, cut into files of their own and hashed, untimed.
    let plan = client
        .post(
            "/files",
            &json!({"file_name": "plan.bin", "file_size": GIB, "part_checksums": "sha256"}),
        )
        .await?;
    let part_size = plan["part_size"].as_u64().ok_or("no part_size")?;
    let part_count = plan["part_count"].as_u64().ok_or("no part_count")? as u32;
    client
        .delete(plan["file_id"].as_str().ok_or("no file_id")?)
        .await?;
    let parts = cut_parts(&path, &dir, part_size, part_count)?;

    let upload = crate::release_dir()?.join("upload");
    let (mut cli_seconds, mut cli_rss, mut curl_seconds) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..RUNS {
        let (seconds, rss_kib, file_id) = cli_upload(&upload, &path, &dir, api, key)?;
        client.delete(&file_id).await?;
        cli_seconds.push(seconds);
        cli_rss.push(rss_kib as f64);
        let (seconds, file_id) = curl_upload(&client, &parts, &sha256).await?;
        client.delete(&file_id).await?;
        curl_seconds.push(seconds);
    }
    for (part, _) in &parts {
        let _ = std::fs::remove_file(part);
    }
    let _ = std::fs::remove_file(&path);

    let mib = |seconds: f64| GIB as f64 / (1 << 20) as f64 / seconds;
    let (cli, curl) = (mib(median(&cli_seconds)), mib(median(&curl_seconds)));
    let rss = median(&cli_rss) / 1024.0;
    row(
        &format!(
            "13. `upload put` of 1 GiB ({part_count} parts of {} MiB, {PARALLEL} at a time, each part's and the file's SHA-256, complete)",
            part_size >> 20
        ),
        format!("{cli:.0} MiB/s, peak RSS {rss:.1} MiB"),
        format!(
            "curl PUTs the same parts {PARALLEL} at a time on URLs signed the same way, {curl:.0} MiB/s"
        ),
        format!("{:.2}×", cli / curl),
        "≥ 0.9×, RSS < 64 MiB",
    );
    Ok(())
}

struct Client<'a> {
    http: &'a reqwest::Client,
    api: &'a str,
    key: &'a str,
}

impl Client<'_> {
    async fn post(&self, path: &str, body: &Value) -> Result<Value, String> {
        let response = self
            .http
            .post(format!("{}{path}", self.api))
            .bearer_auth(self.key)
            .json(body)
            .send()
            .await
            .map_err(|e| format!("POST {path}: {e}"))?;
        let status = response.status();
        let text = response.text().await.map_err(|e| e.to_string())?;
        if !status.is_success() {
            return Err(format!("POST {path}: {status} {text}"));
        }
        serde_json::from_str(&text).map_err(|e| e.to_string())
    }

    async fn delete(&self, file_id: &str) -> Result<(), String> {
        let response = self
            .http
            .delete(format!("{}/files/{file_id}", self.api))
            .bearer_auth(self.key)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        match response.status().as_u16() {
            204 => Ok(()),
            status => Err(format!("DELETE {file_id}: {status}")),
        }
    }
}

/// Part files `part-N` of `path` and their base64 SHA-256s.
fn cut_parts(
    path: &Path,
    dir: &Path,
    part_size: u64,
    part_count: u32,
) -> Result<Vec<(PathBuf, String)>, String> {
    use std::io::Read;
    let mut file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut parts = Vec::new();
    for n in 1..=part_count {
        let mut bytes = Vec::new();
        (&mut file)
            .take(part_size)
            .read_to_end(&mut bytes)
            .map_err(|e| e.to_string())?;
        let part = dir.join(format!("part-{n}"));
        std::fs::write(&part, &bytes).map_err(|e| e.to_string())?;
        parts.push((part, BASE64.encode(Sha256::digest(&bytes))));
    }
    Ok(parts)
}

/// One `upload put --json` in a process of its own: seconds, peak RSS (KiB) and the file's id.
fn cli_upload(
    upload: &Path,
    path: &Path,
    dir: &Path,
    api: &str,
    key: &str,
) -> Result<(f64, u64, String), String> {
    let started = Instant::now();
    let rss_file = dir.join("peak-rss");
    let child = Command::new(std::env::current_exe().map_err(|e| e.to_string())?)
        .arg(PEAK_RSS)
        .arg(&rss_file)
        .arg(upload)
        .args(["put", "--json", "--parallel", &PARALLEL.to_string()])
        .arg(path)
        .env("UPLOAD_API", api)
        .env("UPLOAD_KEY", key)
        .env("XDG_STATE_HOME", dir.join("state"))
        .env_remove("UPLOAD_TOKEN")
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{}: {e}", upload.display()))?;
    let output = child.wait_with_output().map_err(|e| e.to_string())?;
    let status = output.status;
    let output = String::from_utf8_lossy(&output.stdout).into_owned();
    let rss_kib: u64 = std::fs::read_to_string(&rss_file)
        .map_err(|e| format!("{}: {e}", rss_file.display()))?
        .trim()
        .parse()
        .map_err(|e| format!("peak RSS: {e}"))?;
    let seconds = started.elapsed().as_secs_f64();
    let answer: Value =
        serde_json::from_str(output.trim()).map_err(|e| format!("upload put: {e}: {output}"))?;
    if !status.success() || answer["status"] != "uploaded" && answer["status"] != "verified" {
        return Err(format!("upload put failed: {output}"));
    }
    let file_id = answer["file_id"].as_str().ok_or("no file_id")?.to_owned();
    Ok((seconds, rss_kib, file_id))
}

/// Create, sign every part for its SHA-256, PUT the part files with curl `PARALLEL` at a time,
/// complete with the file's SHA-256: seconds, and the file's id.
async fn curl_upload(
    client: &Client<'_>,
    parts: &[(PathBuf, String)],
    sha256: &str,
) -> Result<(f64, String), String> {
    let started = Instant::now();
    let plan = client
        .post(
            "/files",
            &json!({"file_name": "curl.bin", "file_size": GIB, "part_checksums": "sha256"}),
        )
        .await?;
    let file_id = plan["file_id"].as_str().ok_or("no file_id")?.to_owned();
    let numbers: Vec<u32> = (1..=parts.len() as u32).collect();
    let checksums: serde_json::Map<String, Value> = numbers
        .iter()
        .zip(parts)
        .map(|(n, (_, sum))| (n.to_string(), Value::String(sum.clone())))
        .collect();
    let signed = client
        .post(
            &format!("/files/{file_id}/parts"),
            &json!({"part_numbers": numbers, "checksums": checksums}),
        )
        .await?;
    let jobs: Vec<(PathBuf, String, Vec<String>)> = numbers
        .iter()
        .zip(parts)
        .map(|(n, (part, _))| {
            let key = n.to_string();
            let url = signed["urls"][&key].as_str().unwrap_or_default().to_owned();
            let headers = signed["headers"][&key]
                .as_object()
                .map(|headers| {
                    headers
                        .iter()
                        .map(|(name, value)| {
                            format!("{name}: {}", value.as_str().unwrap_or_default())
                        })
                        .collect()
                })
                .unwrap_or_default();
            (part.clone(), url, headers)
        })
        .collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..PARALLEL)
            .map(|_| {
                scope.spawn(|| -> Result<(), String> {
                    while let Some((part, url, headers)) =
                        jobs.get(next.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
                    {
                        let mut curl = Command::new("curl");
                        // No `Expect: 100-continue`: a round trip per part that the CLI does not make.
                        curl.args(["-sf", "-o", "/dev/null", "-H", "Expect:", "-T"])
                            .arg(part);
                        for header in headers {
                            curl.args(["-H", header]);
                        }
                        let status = curl.arg(url).status().map_err(|e| format!("curl: {e}"))?;
                        if !status.success() {
                            return Err(format!("curl PUT of {} failed: {status}", part.display()));
                        }
                    }
                    Ok(())
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|worker| {
                worker
                    .join()
                    .map_err(|_| "a curl worker panicked".to_owned())?
            })
            .collect::<Result<Vec<()>, String>>()
    })?;
    let done = client
        .post(
            &format!("/files/{file_id}/complete"),
            &json!({"sha256": sha256}),
        )
        .await?;
    if done["status"] != "uploaded" && done["status"] != "verified" {
        return Err(format!("curl's upload did not complete: {done}"));
    }
    Ok((started.elapsed().as_secs_f64(), file_id))
}

/// `upload-bench peak-rss FILE COMMAND ARGS…`: runs COMMAND, writes its peak RSS (KiB) to FILE,
/// and exits as it did.
pub const PEAK_RSS: &str = "peak-rss";

/// The peak RSS of a command, measured from a process of its own: Linux counts into a child's
/// `ru_maxrss` the RSS of the process it was forked from (kept across `exec`), so a child of the
/// bench, whose earlier sections hold hundreds of MiB, reported the bench's size (741 MiB in a
/// full run on 2026-12-06, 25 MiB alone). This process is a fresh start of the bench binary, a
/// few MiB, that runs nothing else.
pub fn peak_rss_of(args: &[String]) -> std::process::ExitCode {
    let [file, command, rest @ ..] = args else {
        eprintln!("usage: upload-bench {PEAK_RSS} FILE COMMAND [ARGS…]");
        return std::process::ExitCode::FAILURE;
    };
    let child = match Command::new(command).args(rest).spawn() {
        Ok(child) => child,
        Err(err) => {
            eprintln!("{command}: {err}");
            return std::process::ExitCode::FAILURE;
        }
    };
    // SAFETY: wait4 writes only the status and the rusage it is given; the child is ours and
    // not waited for otherwise.
    let (status, usage) = unsafe {
        let mut status = 0;
        let mut usage = std::mem::zeroed::<libc::rusage>();
        libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage);
        (status, usage)
    };
    if let Err(err) = std::fs::write(file, usage.ru_maxrss.to_string()) {
        eprintln!("{file}: {err}");
        return std::process::ExitCode::FAILURE;
    }
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        1
    };
    std::process::ExitCode::from(u8::try_from(code).unwrap_or(1))
}

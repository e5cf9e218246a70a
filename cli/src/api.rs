//! Calls of the API, retried as the contract allows: 503, 429, 5xx, a key still in use, a file
//! another request was changing, and lost connections, with jittered backoff or what
//! `Retry-After` says. A state-changing call carries one `Idempotency-Key`, the same on each of
//! its retries, so that a retry whose first attempt applied finds out instead of doing it twice.

use std::time::Duration;

use reqwest::{Client, Method, header};
use serde_json::{Value, json};

use crate::error::Failure;
use crate::wire::{FileList, SignedParts, StoredPart, StoredParts};

/// Attempts of one call, and the longest wait between two: a service that stays unavailable
/// for about half a minute fails the call.
const ATTEMPTS: u32 = 7;
const BASE_DELAY: Duration = Duration::from_millis(250);
const MAX_DELAY: Duration = Duration::from_secs(8);
/// A `Retry-After` above this is not waited for: the call fails with the answer.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// One answer of the API: its JSON body (`null` for 204), and whether it replays the first
/// answer to its `Idempotency-Key`.
#[derive(Debug)]
pub struct Answer {
    pub body: Value,
    pub replayed: bool,
}

#[derive(Clone)]
pub struct Api {
    http: Client,
    /// The project's base URL, `…/v1/projects/{project_id}`, without a trailing slash.
    base: String,
    bearer: String,
}

/// The HTTP client of every call, to the API and to storage: proxies from the environment,
/// connections that give up when nothing moves for two minutes.
pub fn http_client() -> Result<Client, Failure> {
    Client::builder()
        .user_agent(concat!("upload-cli/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(15))
        .read_timeout(Duration::from_secs(120))
        .build()
        .map_err(|err| Failure::network("setting up HTTP", &err))
}

impl Api {
    pub fn new(http: Client, base: &str, bearer: String) -> Self {
        Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
            bearer,
        }
    }

    /// One call, retried while its answer is retriable. `key` goes as `Idempotency-Key`.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        key: Option<&str>,
    ) -> Result<Answer, Failure> {
        let url = format!("{}{path}", self.base);
        let what = format!("{method} {path}");
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut request = self
                .http
                .request(method.clone(), &url)
                .bearer_auth(&self.bearer)
                .timeout(Duration::from_secs(60));
            if let Some(key) = key {
                request = request.header("idempotency-key", key);
            }
            if let Some(body) = body {
                request = request
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(body.to_string());
            }
            let (failure, retry_after) = match request.send().await {
                Err(err) => (Failure::network(&what, &err), None),
                Ok(response) => {
                    let status = response.status().as_u16();
                    let headers = response.headers().clone();
                    match response.bytes().await {
                        Err(err) => (Failure::network(&what, &err), None),
                        Ok(bytes) if (200..300).contains(&status) => {
                            let body = if bytes.is_empty() {
                                Value::Null
                            } else {
                                serde_json::from_slice(&bytes).map_err(|err| {
                                    Failure::new(
                                        "bad_response",
                                        format!("{what} answered {status} with a body that is not JSON: {err}"),
                                    )
                                })?
                            };
                            let replayed = headers
                                .get("idempotent-replayed")
                                .is_some_and(|value| value == "true");
                            return Ok(Answer { body, replayed });
                        }
                        Ok(bytes) => {
                            let request_id = headers
                                .get("x-request-id")
                                .and_then(|value| value.to_str().ok())
                                .map(str::to_owned);
                            (
                                Failure::from_api(status, &bytes, request_id),
                                retry_after(&headers),
                            )
                        }
                    }
                }
            };
            if !failure.is_retriable() || attempt >= ATTEMPTS {
                return Err(failure);
            }
            let delay = retry_after.unwrap_or_else(|| backoff(attempt));
            if delay > MAX_RETRY_AFTER {
                return Err(failure);
            }
            tokio::time::sleep(delay).await;
        }
    }

    /// `POST …/files`: 201 with the plan, or 200 with a verified file (`deduplicated`).
    pub async fn create(&self, body: &Value, key: &str) -> Result<Answer, Failure> {
        self.call(Method::POST, "/files", Some(body), Some(key))
            .await
    }

    pub async fn file(&self, file_id: &str) -> Result<Value, Failure> {
        let path = format!("/files/{}", segment(file_id));
        Ok(self.call(Method::GET, &path, None, None).await?.body)
    }

    /// `POST …/parts` for `part_numbers`, with their checksums when the upload was declared
    /// with `part_checksums`.
    pub async fn sign_parts(
        &self,
        file_id: &str,
        part_numbers: &[u32],
        checksums: Option<&[(u32, String)]>,
    ) -> Result<SignedParts, Failure> {
        let mut body = json!({ "part_numbers": part_numbers });
        if let Some(checksums) = checksums {
            body["checksums"] = checksums
                .iter()
                .map(|(n, sum)| (n.to_string(), Value::String(sum.clone())))
                .collect::<serde_json::Map<_, _>>()
                .into();
        }
        let path = format!("/files/{}/parts", segment(file_id));
        let answer = self.call(Method::POST, &path, Some(&body), None).await?;
        parse(&path, answer.body)
    }

    /// `GET …/parts`: what storage already has of the upload in progress.
    pub async fn stored_parts(&self, file_id: &str) -> Result<Vec<StoredPart>, Failure> {
        let path = format!("/files/{}/parts", segment(file_id));
        let answer = self.call(Method::GET, &path, None, None).await?;
        Ok(parse::<StoredParts>(&path, answer.body)?.parts)
    }

    pub async fn complete(&self, file_id: &str, body: &Value, key: &str) -> Result<Value, Failure> {
        let path = format!("/files/{}/complete", segment(file_id));
        Ok(self
            .call(Method::POST, &path, Some(body), Some(key))
            .await?
            .body)
    }

    /// `DELETE …/upload`: abort the upload in progress.
    pub async fn abort(&self, file_id: &str, key: &str) -> Result<(), Failure> {
        let path = format!("/files/{}/upload", segment(file_id));
        self.call(Method::DELETE, &path, None, Some(key)).await?;
        Ok(())
    }

    pub async fn delete(&self, file_id: &str, key: &str) -> Result<(), Failure> {
        let path = format!("/files/{}", segment(file_id));
        self.call(Method::DELETE, &path, None, Some(key)).await?;
        Ok(())
    }

    pub async fn list(
        &self,
        status: Option<&str>,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<FileList, Failure> {
        let mut query = vec![format!("limit={limit}")];
        if let Some(status) = status {
            query.push(format!("status={}", segment(status)));
        }
        if let Some(cursor) = cursor {
            query.push(format!("cursor={}", segment(cursor)));
        }
        let path = format!("/files?{}", query.join("&"));
        let answer = self.call(Method::GET, &path, None, None).await?;
        parse(&path, answer.body)
    }
}

pub fn parse<T: serde::de::DeserializeOwned>(what: &str, body: Value) -> Result<T, Failure> {
    serde_json::from_value(body).map_err(|err| {
        Failure::new(
            "bad_response",
            format!("{what}: the answer is not shaped as docs/API.md says: {err}"),
        )
    })
}

/// A path segment or query value, percent-encoded except for unreserved characters.
fn segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// `Retry-After` in seconds (the service sends seconds; an HTTP date is not waited for).
fn retry_after(headers: &header::HeaderMap) -> Option<Duration> {
    let seconds: u64 = headers
        .get(header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(seconds))
}

/// Full jitter under a ceiling that doubles from `BASE_DELAY` up to `MAX_DELAY`: retries of
/// many clients spread out instead of arriving together.
pub fn backoff(attempt: u32) -> Duration {
    let ceiling = BASE_DELAY
        .saturating_mul(1 << attempt.saturating_sub(1).min(16))
        .min(MAX_DELAY);
    let random = uuid::Uuid::new_v4().as_u128() as u64;
    let millis = u64::try_from(ceiling.as_millis())
        .unwrap_or(u64::MAX)
        .max(2);
    Duration::from_millis(millis / 2 + random % (millis / 2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_ceiling_with_jitter() {
        for _ in 0..100 {
            let first = backoff(1);
            assert!(first >= Duration::from_millis(125) && first < Duration::from_millis(250));
            let late = backoff(30);
            assert!(late >= MAX_DELAY / 2 && late < MAX_DELAY);
        }
    }

    #[test]
    fn path_segments_are_encoded() {
        assert_eq!(segment("a b/c"), "a%20b%2Fc");
        assert_eq!(segment("3f2a-9_~."), "3f2a-9_~.");
    }

    #[test]
    fn retry_after_is_read_in_seconds() {
        let mut headers = header::HeaderMap::new();
        assert_eq!(retry_after(&headers), None);
        headers.insert(header::RETRY_AFTER, header::HeaderValue::from_static("3"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(3)));
    }
}

//! What went wrong, as the contract says it: a `code`, a `message`, `details` and the
//! `request_id` of the answer. The API's errors pass through as they came; storage's answers,
//! the network and the local file get codes of their own (`storage_error`, `network_error`,
//! `io_error`, `checksum_mismatch`, `file_changed`, `bad_response`).

use std::fmt;

use serde_json::{Value, json};

use crate::wire::ErrorBody;

#[derive(Debug, Clone)]
pub struct Failure {
    pub code: String,
    pub message: String,
    pub details: Vec<Value>,
    pub request_id: Option<String>,
    /// The HTTP status of the answer, when there was one.
    pub status: Option<u16>,
}

impl Failure {
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        Self {
            code: code.to_owned(),
            message: message.into(),
            details: Vec::new(),
            request_id: None,
            status: None,
        }
    }

    /// An error answer of the API: its body as the contract shapes it, or (a proxy's or a
    /// gateway's page) the status and the start of what came.
    pub fn from_api(status: u16, body: &[u8], request_id: Option<String>) -> Self {
        match serde_json::from_slice::<ErrorBody>(body) {
            Ok(parsed) => Self {
                code: parsed.error.code,
                message: parsed.error.message,
                details: parsed.error.details,
                request_id: parsed.request_id.or(request_id),
                status: Some(status),
            },
            Err(_) => Self {
                code: format!("http_{status}"),
                message: format!(
                    "the API answered {status} without the contract's error body: {}",
                    snippet(body)
                ),
                details: Vec::new(),
                request_id,
                status: Some(status),
            },
        }
    }

    /// A refusal of storage (S3's XML error: its `Code` and `Message`).
    pub fn from_storage(what: &str, status: u16, body: &[u8]) -> Self {
        let text = String::from_utf8_lossy(body);
        let code = xml_field(&text, "Code").unwrap_or_else(|| format!("http_{status}"));
        let message = xml_field(&text, "Message").unwrap_or_default();
        Self {
            code: "storage_error".to_owned(),
            message: format!("storage refused {what}: {status} {code}"),
            details: vec![json!({ "reason": code, "message": message })],
            request_id: None,
            status: Some(status),
        }
    }

    pub fn network(what: &str, err: &reqwest::Error) -> Self {
        // The chain says why (connection refused, reset, timed out), the top only "error
        // sending request".
        let mut message = format!("{what}: {err}");
        let mut source = std::error::Error::source(err);
        while let Some(cause) = source {
            message.push_str(&format!(": {cause}"));
            source = cause.source();
        }
        Self::new("network_error", message)
    }

    pub fn io(what: &str, err: &std::io::Error) -> Self {
        Self::new("io_error", format!("{what}: {err}"))
    }

    /// Whether the same request may be answered otherwise later: the contract's retriable
    /// answers (5xx, 429, a key still in use, a file another request was changing) and a lost
    /// connection.
    pub fn is_retriable(&self) -> bool {
        match (self.status, self.code.as_str()) {
            (_, "network_error") => true,
            (Some(429 | 500..=599), _) => true,
            (Some(409), "idempotency_key_in_use") => true,
            (Some(409), "conflict") => self.has_reason("concurrent_update"),
            _ => false,
        }
    }

    /// Whether a detail names `reason` (`upload_expired`, `concurrent_update`, …).
    pub fn has_reason(&self, reason: &str) -> bool {
        self.details
            .iter()
            .any(|detail| detail.get("reason").and_then(Value::as_str) == Some(reason))
    }

    /// The contract's error body, for `--json`.
    pub fn to_json(&self) -> Value {
        json!({
            "error": { "code": self.code, "message": self.message, "details": self.details },
            "request_id": self.request_id,
        })
    }
}

impl fmt::Display for Failure {
    /// `code: message`, then a line per detail and the request id.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)?;
        for detail in &self.details {
            let name = ["field", "reason"]
                .iter()
                .find_map(|key| detail.get(*key).and_then(Value::as_str));
            let message = detail.get("message").and_then(Value::as_str).unwrap_or("");
            match name {
                Some(name) => write!(f, "\n  {name}: {message}")?,
                None => write!(f, "\n  {detail}")?,
            }
        }
        if let Some(id) = &self.request_id {
            write!(f, "\n  (request {id})")?;
        }
        Ok(())
    }
}

fn xml_field(text: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let start = text.find(&open)? + open.len();
    let end = text[start..].find(&format!("</{name}>"))? + start;
    Some(text[start..end].to_owned())
}

fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    match text.char_indices().nth(200) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_api_error_keeps_the_contracts_code_message_details_and_request_id() {
        let body = br#"{"error":{"code":"validation_error","message":"1 field is invalid",
            "details":[{"field":"file_size","message":"must be between 1 and 5"}]},"request_id":"r-1"}"#;
        let failure = Failure::from_api(422, body, None);
        assert_eq!(failure.code, "validation_error");
        assert_eq!(failure.request_id.as_deref(), Some("r-1"));
        assert_eq!(
            failure.to_string(),
            "validation_error: 1 field is invalid\n  file_size: must be between 1 and 5\n  (request r-1)"
        );
        assert!(!failure.is_retriable());
    }

    #[test]
    fn retriable_answers_are_those_the_contract_says_a_retry_may_change() {
        let conflict = |reason: &str| {
            let body = format!(
                r#"{{"error":{{"code":"conflict","message":"m","details":[{{"reason":"{reason}","message":"m"}}]}},"request_id":"r"}}"#
            );
            Failure::from_api(409, body.as_bytes(), None)
        };
        assert!(conflict("concurrent_update").is_retriable());
        assert!(!conflict("upload_incomplete").is_retriable());
        assert!(conflict("upload_expired").has_reason("upload_expired"));
        assert!(Failure::from_api(503, b"{}", None).is_retriable());
        assert!(Failure::from_api(429, b"", None).is_retriable());
        let in_use = br#"{"error":{"code":"idempotency_key_in_use","message":"m","details":[]},"request_id":"r"}"#;
        assert!(Failure::from_api(409, in_use, None).is_retriable());
        assert!(!Failure::from_api(404, b"<html>", None).is_retriable());
        assert!(Failure::new("network_error", "reset").is_retriable());
    }

    #[test]
    fn storage_refusals_carry_s3s_code() {
        let body = b"<?xml version=\"1.0\"?><Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>";
        let failure = Failure::from_storage("part 3", 403, body);
        assert_eq!(failure.code, "storage_error");
        assert_eq!(failure.message, "storage refused part 3: 403 AccessDenied");
        assert!(
            failure
                .to_string()
                .contains("AccessDenied: Request has expired")
        );
    }
}

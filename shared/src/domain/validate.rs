//! Request bodies → validated values, reporting every bad field at once.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value};

use crate::domain::error::{ApiError, Detail};
use crate::domain::parts::ClaimedPart;

pub const MAX_FILE_NAME_CHARS: usize = 255;
pub const MAX_CONTENT_TYPE_CHARS: usize = 255;
pub const MAX_METADATA_ENTRIES: usize = 64;
pub const MAX_METADATA_NAME_CHARS: usize = 128;
pub const MAX_METADATA_VALUE_CHARS: usize = 1024;
/// Sum of the UTF-8 lengths of all names and values.
pub const MAX_METADATA_BYTES: usize = 8 * 1024;
pub const DEFAULT_CONTENT_TYPE: &str = "application/octet-stream";

/// The body of create and reupload, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadRequest {
    /// Required by create; reupload keeps the current name when absent.
    pub file_name: Option<String>,
    pub file_size: u64,
    pub content_type: String,
    pub sha256: Option<String>,
    pub md5: Option<String>,
    /// Absent means "none" on create and "keep the current metadata" on reupload.
    pub metadata: Option<BTreeMap<String, String>>,
}

/// Checks every field of a create (`name_required`) or reupload body.
pub fn upload_request(
    body: &Map<String, Value>,
    max_file_size: u64,
    name_required: bool,
) -> Result<UploadRequest, ApiError> {
    let mut bad = Vec::new();
    let mut too_large = None;

    let file_name = match body.get("file_name") {
        None | Some(Value::Null) if name_required => {
            bad.push(Detail::field("file_name", "is required"));
            None
        }
        None | Some(Value::Null) => None,
        Some(value) => checked_text(value, "file_name", MAX_FILE_NAME_CHARS, &mut bad),
    };

    let range = format!("must be between 1 and {max_file_size}");
    let file_size = match body.get("file_size") {
        None | Some(Value::Null) => {
            bad.push(Detail::field("file_size", "is required"));
            None
        }
        Some(Value::Number(n)) => match n.as_u64() {
            Some(size) if (1..=max_file_size).contains(&size) => Some(size),
            Some(size) if size > max_file_size => {
                too_large = Some(Detail::field("file_size", range));
                None
            }
            Some(_) => {
                bad.push(Detail::field("file_size", range));
                None
            }
            None if n.as_i64().is_some() => {
                bad.push(Detail::field("file_size", range));
                None
            }
            None => {
                bad.push(Detail::field("file_size", "must be an integer"));
                None
            }
        },
        Some(_) => {
            bad.push(Detail::field("file_size", "must be an integer"));
            None
        }
    };

    let content_type = match body.get("content_type") {
        None | Some(Value::Null) => Some(DEFAULT_CONTENT_TYPE.to_owned()),
        Some(Value::String(text)) if is_media_type(text) => Some(text.clone()),
        Some(Value::String(_)) => {
            bad.push(Detail::field(
                "content_type",
                format!("must be a media type such as image/png, at most {MAX_CONTENT_TYPE_CHARS} characters"),
            ));
            None
        }
        Some(_) => {
            bad.push(Detail::field("content_type", "must be a string"));
            None
        }
    };

    let sha256 = digest(body.get("sha256"), "sha256", 32, &mut bad);
    let md5 = digest(body.get("md5"), "md5", 16, &mut bad);
    let metadata = match body.get("metadata") {
        None | Some(Value::Null) => None,
        Some(value) => metadata(value, &mut bad),
    };

    match (bad.is_empty(), too_large) {
        (true, Some(detail)) => Err(ApiError::PayloadTooLarge {
            max: max_file_size,
            details: vec![detail],
        }),
        (false, too_large) => {
            bad.extend(too_large);
            bad.sort_by(|a, b| a.field.cmp(&b.field));
            Err(ApiError::Validation(bad))
        }
        (true, None) => Ok(UploadRequest {
            file_name,
            file_size: file_size
                .unwrap_or_else(|| unreachable!("no error was recorded for file_size")),
            content_type: content_type
                .unwrap_or_else(|| unreachable!("no error was recorded for content_type")),
            sha256,
            md5,
            metadata,
        }),
    }
}

/// A string of 1..=`max_chars` characters with no control characters.
fn checked_text(
    value: &Value,
    field: &str,
    max_chars: usize,
    bad: &mut Vec<Detail>,
) -> Option<String> {
    let Value::String(text) = value else {
        bad.push(Detail::field(field, "must be a string"));
        return None;
    };
    let chars = text.chars().count();
    if chars == 0 || chars > max_chars {
        bad.push(Detail::field(
            field,
            format!("must be 1 to {max_chars} characters"),
        ));
        None
    } else if text.chars().any(char::is_control) {
        bad.push(Detail::field(field, "must not contain control characters"));
        None
    } else {
        Some(text.clone())
    }
}

/// Base64 of exactly `bytes` raw digest bytes, in canonical padded form.
fn digest(
    value: Option<&Value>,
    field: &str,
    bytes: usize,
    bad: &mut Vec<Detail>,
) -> Option<String> {
    let text = match value {
        None | Some(Value::Null) => return None,
        Some(Value::String(text)) => text,
        Some(_) => {
            bad.push(Detail::field(field, "must be a string"));
            return None;
        }
    };
    match STANDARD.decode(text) {
        Ok(raw) if raw.len() == bytes => Some(text.clone()),
        Ok(raw) => {
            bad.push(Detail::field(
                field,
                format!(
                    "must be the base64 of a {bytes}-byte digest, got {} bytes",
                    raw.len()
                ),
            ));
            None
        }
        Err(_) => {
            bad.push(Detail::field(field, "must be standard base64 with padding"));
            None
        }
    }
}

/// An object of string → string, or a list of `{"name", "value"}` pairs.
fn metadata(value: &Value, bad: &mut Vec<Detail>) -> Option<BTreeMap<String, String>> {
    let errors_before = bad.len();
    let mut entries: Vec<(String, Option<String>, Option<String>)> = Vec::new();
    match value {
        Value::Object(map) => {
            for (name, value) in map {
                let field = format!("metadata.{name}");
                let value = checked_value(value, &field, bad);
                entries.push((field, Some(name.clone()), value));
            }
        }
        Value::Array(pairs) => {
            for (index, pair) in pairs.iter().enumerate() {
                let field = format!("metadata[{index}]");
                let Some(pair) = pair.as_object() else {
                    bad.push(Detail::field(
                        field,
                        "must be an object with name and value",
                    ));
                    continue;
                };
                let name = match pair.get("name") {
                    Some(Value::String(name)) => Some(name.clone()),
                    _ => {
                        bad.push(Detail::field(format!("{field}.name"), "must be a string"));
                        None
                    }
                };
                let value = checked_value(
                    pair.get("value").unwrap_or(&Value::Null),
                    &format!("{field}.value"),
                    bad,
                );
                entries.push((field, name, value));
            }
        }
        _ => {
            bad.push(Detail::field(
                "metadata",
                "must be an object of strings or a list of {name, value}",
            ));
            return None;
        }
    }

    if entries.len() > MAX_METADATA_ENTRIES {
        bad.push(Detail::field(
            "metadata",
            format!("must have at most {MAX_METADATA_ENTRIES} entries"),
        ));
    }
    let mut metadata = BTreeMap::new();
    let mut total_bytes = 0;
    for (field, name, value) in entries {
        let Some(name) = name else { continue };
        let chars = name.chars().count();
        if chars == 0 || chars > MAX_METADATA_NAME_CHARS || name.chars().any(char::is_control) {
            bad.push(Detail::field(
                field,
                format!("names must be 1 to {MAX_METADATA_NAME_CHARS} characters without control characters"),
            ));
            continue;
        }
        let Some(value) = value else { continue };
        total_bytes += name.len() + value.len();
        if metadata.insert(name.clone(), value).is_some() {
            bad.push(Detail::field(field, format!("duplicate name {name:?}")));
        }
    }
    if total_bytes > MAX_METADATA_BYTES {
        bad.push(Detail::field(
            "metadata",
            format!("must total at most {MAX_METADATA_BYTES} bytes"),
        ));
    }
    (bad.len() == errors_before).then_some(metadata)
}

fn checked_value(value: &Value, field: &str, bad: &mut Vec<Detail>) -> Option<String> {
    match value {
        Value::String(text) if text.chars().count() > MAX_METADATA_VALUE_CHARS => {
            bad.push(Detail::field(
                field,
                format!("must be at most {MAX_METADATA_VALUE_CHARS} characters"),
            ));
            None
        }
        Value::String(text) if text.chars().any(char::is_control) => {
            bad.push(Detail::field(field, "must not contain control characters"));
            None
        }
        Value::String(text) => Some(text.clone()),
        _ => {
            bad.push(Detail::field(field, "must be a string"));
            None
        }
    }
}

/// `{"part_numbers": [...]}`: 1 to `max_per_call` distinct numbers between 1 and `part_count`.
pub fn part_numbers(
    body: &Map<String, Value>,
    part_count: u32,
    max_per_call: u32,
) -> Result<Vec<u32>, ApiError> {
    let Some(value) = body.get("part_numbers") else {
        return Err(ApiError::invalid("part_numbers", "is required"));
    };
    let Value::Array(items) = value else {
        return Err(ApiError::invalid(
            "part_numbers",
            "must be an array of part numbers",
        ));
    };
    if items.is_empty() || items.len() > max_per_call as usize {
        return Err(ApiError::invalid(
            "part_numbers",
            format!("must list 1 to {max_per_call} part numbers"),
        ));
    }
    let mut bad = Vec::new();
    let mut numbers = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let field = format!("part_numbers[{index}]");
        match item.as_u64().and_then(|n| u32::try_from(n).ok()) {
            Some(n) if (1..=part_count).contains(&n) && numbers.contains(&n) => {
                bad.push(Detail::field(field, format!("duplicate part number {n}")));
            }
            Some(n) if (1..=part_count).contains(&n) => numbers.push(n),
            _ => bad.push(Detail::field(
                field,
                format!("must be an integer between 1 and {part_count}"),
            )),
        }
    }
    if bad.is_empty() {
        Ok(numbers)
    } else {
        Err(ApiError::Validation(bad))
    }
}

/// The optional `parts` of a complete body: `[{"part_number", "etag"}]`, distinct numbers.
pub fn claimed_parts(
    body: Option<&Map<String, Value>>,
    part_count: u32,
) -> Result<Option<Vec<ClaimedPart>>, ApiError> {
    let items = match body.and_then(|body| body.get("parts")) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(items)) => items,
        Some(_) => {
            return Err(ApiError::invalid(
                "parts",
                "must be an array of {part_number, etag}",
            ));
        }
    };
    let mut bad = Vec::new();
    let mut parts: Vec<ClaimedPart> = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let number = item
            .get("part_number")
            .and_then(Value::as_u64)
            .and_then(|n| u32::try_from(n).ok());
        match number {
            Some(n)
                if (1..=part_count).contains(&n) && parts.iter().any(|p| p.part_number == n) =>
            {
                bad.push(Detail::field(
                    format!("parts[{index}].part_number"),
                    format!("duplicate part number {n}"),
                ));
            }
            Some(n) if (1..=part_count).contains(&n) => match item.get("etag") {
                Some(Value::String(etag)) if !etag.is_empty() => {
                    parts.push(ClaimedPart {
                        part_number: n,
                        etag: etag.clone(),
                    });
                }
                _ => bad.push(Detail::field(
                    format!("parts[{index}].etag"),
                    "must be the part's ETag",
                )),
            },
            _ => bad.push(Detail::field(
                format!("parts[{index}].part_number"),
                format!("must be an integer between 1 and {part_count}"),
            )),
        }
    }
    if bad.is_empty() {
        Ok(Some(parts))
    } else {
        Err(ApiError::Validation(bad))
    }
}

/// `type/subtype` with optional `; name=value` parameters, all in RFC 9110 token characters.
pub fn is_media_type(text: &str) -> bool {
    fn token(s: &str) -> bool {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
    }
    if text.is_empty() || text.len() > MAX_CONTENT_TYPE_CHARS {
        return false;
    }
    let mut parts = text.split(';');
    let essence = parts.next().unwrap_or_default();
    let Some((kind, subtype)) = essence.split_once('/') else {
        return false;
    };
    token(kind)
        && token(subtype)
        && parts.all(|param| {
            param
                .trim_start_matches(' ')
                .split_once('=')
                .is_some_and(|(name, value)| token(name) && token(value))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const MAX: u64 = 5 << 40;
    const SHA: &str = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=";
    const MD5: &str = "1B2M2Y8AsgTpgAmY7PhCfg==";

    fn parse(body: Value) -> Result<UploadRequest, ApiError> {
        upload_request(body.as_object().unwrap(), MAX, true)
    }

    fn fields(err: ApiError) -> Vec<String> {
        err.details()
            .iter()
            .filter_map(|d| d.field.clone())
            .collect()
    }

    #[test]
    fn a_full_declaration_parses_with_list_metadata() {
        let req = parse(json!({
            "file_name": "report.pdf", "file_size": 1048576, "content_type": "application/pdf",
            "sha256": SHA, "md5": MD5,
            "metadata": [{"name": "category", "value": "invoice"}]
        }))
        .unwrap();
        assert_eq!(req.file_name.as_deref(), Some("report.pdf"));
        assert_eq!(req.metadata.unwrap()["category"], "invoice");
        assert_eq!(req.sha256.as_deref(), Some(SHA));
    }

    #[test]
    fn content_type_defaults_to_octet_stream() {
        let req = parse(json!({"file_name": "a", "file_size": 1})).unwrap();
        assert_eq!(req.content_type, DEFAULT_CONTENT_TYPE);
        assert_eq!(req.metadata, None);
    }

    #[test]
    fn every_bad_field_is_reported() {
        let err = parse(json!({
            "file_name": "bad\u{7}name", "file_size": -1, "content_type": "pdf",
            "sha256": "!!notbase64", "md5": SHA, "metadata": {"k": 5}
        }))
        .unwrap_err();
        assert!(matches!(err, ApiError::Validation(_)));
        assert_eq!(
            fields(err),
            [
                "content_type",
                "file_name",
                "file_size",
                "md5",
                "metadata.k",
                "sha256"
            ]
        );
    }

    #[test]
    fn missing_and_mistyped_fields() {
        assert_eq!(
            fields(parse(json!({})).unwrap_err()),
            ["file_name", "file_size"]
        );
        let err = parse(json!({"file_name": 7, "file_size": "10"})).unwrap_err();
        assert_eq!(fields(err), ["file_name", "file_size"]);
        let err = parse(json!({"file_name": "a", "file_size": 1.5})).unwrap_err();
        assert_eq!(err.details()[0].message, "must be an integer");
        let err = parse(json!({"file_name": "a", "file_size": 0})).unwrap_err();
        assert_eq!(
            err.details()[0].message,
            format!("must be between 1 and {MAX}")
        );
    }

    #[test]
    fn names_are_bounded_in_characters_not_bytes() {
        assert!(parse(json!({"file_name": "é".repeat(255), "file_size": 1})).is_ok());
        let err = parse(json!({"file_name": "a".repeat(256), "file_size": 1})).unwrap_err();
        assert_eq!(fields(err), ["file_name"]);
        assert_eq!(
            fields(parse(json!({"file_name": "", "file_size": 1})).unwrap_err()),
            ["file_name"]
        );
    }

    #[test]
    fn oversize_alone_is_413_and_with_other_errors_is_listed_among_them() {
        let err = parse(json!({"file_name": "a", "file_size": MAX + 1})).unwrap_err();
        assert!(matches!(err, ApiError::PayloadTooLarge { .. }));
        assert_eq!(fields(err), ["file_size"]);
        let err = parse(json!({"file_size": MAX + 1})).unwrap_err();
        assert!(matches!(err, ApiError::Validation(_)));
        assert_eq!(fields(err), ["file_name", "file_size"]);
    }

    #[test]
    fn digests_must_have_the_right_length() {
        let err = parse(json!({"file_name": "a", "file_size": 1, "sha256": MD5, "md5": "AAAA"}))
            .unwrap_err();
        assert_eq!(fields(err), ["md5", "sha256"]);
    }

    #[test]
    fn metadata_limits() {
        let big = json!({"file_name": "a", "file_size": 1, "metadata": {"k": "v".repeat(1025)}});
        assert_eq!(fields(parse(big).unwrap_err()), ["metadata.k"]);
        let many: Map<String, Value> = (0..65).map(|i| (format!("k{i}"), json!("v"))).collect();
        let err = parse(json!({"file_name": "a", "file_size": 1, "metadata": many})).unwrap_err();
        assert_eq!(fields(err), ["metadata"]);
        let heavy: Map<String, Value> = (0..9)
            .map(|i| (format!("k{i}"), json!("v".repeat(1000))))
            .collect();
        let err = parse(json!({"file_name": "a", "file_size": 1, "metadata": heavy})).unwrap_err();
        assert_eq!(fields(err), ["metadata"]);
        let dup = json!([{"name": "a", "value": "1"}, {"name": "a", "value": "2"}]);
        let err = parse(json!({"file_name": "a", "file_size": 1, "metadata": dup})).unwrap_err();
        assert_eq!(fields(err), ["metadata[1]"]);
        let err = parse(json!({"file_name": "a", "file_size": 1, "metadata": "x"})).unwrap_err();
        assert_eq!(fields(err), ["metadata"]);
    }

    #[test]
    fn part_numbers_are_distinct_in_range_and_bounded_per_call() {
        let body = |v: Value| v.as_object().unwrap().clone();
        assert_eq!(
            part_numbers(&body(json!({"part_numbers": [3, 1]})), 5, 100).unwrap(),
            [3, 1]
        );
        let err =
            part_numbers(&body(json!({"part_numbers": [0, 2, 2, 6, "x"]})), 5, 100).unwrap_err();
        assert_eq!(
            fields(err),
            [
                "part_numbers[0]",
                "part_numbers[2]",
                "part_numbers[3]",
                "part_numbers[4]"
            ]
        );
        let err = part_numbers(
            &body(json!({"part_numbers": (1..=101).collect::<Vec<_>>()})),
            10_000,
            100,
        )
        .unwrap_err();
        assert_eq!(fields(err), ["part_numbers"]);
        assert_eq!(
            fields(part_numbers(&body(json!({"part_numbers": []})), 5, 100).unwrap_err()),
            ["part_numbers"]
        );
        assert_eq!(
            fields(part_numbers(&body(json!({})), 5, 100).unwrap_err()),
            ["part_numbers"]
        );
        assert_eq!(
            fields(part_numbers(&body(json!({"part_numbers": 3})), 5, 100).unwrap_err()),
            ["part_numbers"]
        );
    }

    #[test]
    fn claimed_parts_need_numbers_in_range_and_etags() {
        let body = json!({"parts": [{"part_number": 1, "etag": "\"a\""}, {"part_number": 1, "etag": "b"}, {"part_number": 9}, {"part_number": 2}]});
        let err = claimed_parts(body.as_object(), 3).unwrap_err();
        assert_eq!(
            fields(err),
            [
                "parts[1].part_number",
                "parts[2].part_number",
                "parts[3].etag"
            ]
        );
        assert_eq!(claimed_parts(None, 3).unwrap(), None);
        let ok = json!({"parts": [{"part_number": 2, "etag": "e"}]});
        assert_eq!(
            claimed_parts(ok.as_object(), 3).unwrap().unwrap()[0].part_number,
            2
        );
    }

    #[test]
    fn media_types() {
        for ok in [
            "image/png",
            "application/vnd.ms-excel",
            "text/plain; charset=utf-8",
            "a/b;c=d",
        ] {
            assert!(is_media_type(ok), "{ok}");
        }
        for bad in [
            "",
            "png",
            "image/",
            "/png",
            "image/png\r\nx: y",
            "text/plain; charset",
            "image/p ng",
        ] {
            assert!(!is_media_type(bad), "{bad}");
        }
    }
}

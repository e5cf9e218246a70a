//! Request bodies → domain values, at the edge: each field is parsed by its value type, and a
//! [`Fields`] collector reports every bad field of a body at once (docs/API.md: 422 with one
//! detail per field).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::{Map, Value};

use crate::domain::FileStatus;
use crate::domain::error::{Detail, Refusal};
use crate::domain::event::EventType;
use crate::domain::parts::{ReportedPart, RequestedPart};
use crate::domain::request::{DirectUpload, NewFile, UploadRequest};
use crate::domain::token::{
    DEFAULT_EXPIRES_IN, MAX_CONTENT_TYPES, MAX_EXPIRES_IN, MAX_FILES, MIN_EXPIRES_IN, MediaRange,
    TokenGrant,
};
use crate::domain::values::{FileName, Md5, MediaType, Metadata, MetadataEntry, Sha256};
use crate::domain::webhook::{WebhookRequest, WebhookUrl};
use crate::domain::{JobId, UploadJob};
use crate::dynamo::ListCursor;
use crate::error::{Error, Failure};
use lambda_http::Request;

/// Checks every field of a create body.
pub fn new_file(body: &Map<String, Value>, max_file_size: u64) -> Result<NewFile, Error> {
    let request = upload_request(body, max_file_size, true)?;
    let file_name = request.file_name.clone().ok_or_else(|| {
        Failure::Internal("a create passed validation without a file_name".into())
    })?;
    Ok(NewFile {
        content: request.content(&file_name),
        metadata: request.metadata.unwrap_or_default(),
        part_checksums: request.part_checksums,
    })
}

/// The fields of a create or reupload body.
pub const UPLOAD_REQUEST_FIELDS: &[&str] = &[
    "file_name",
    "file_size",
    "content_type",
    "sha256",
    "md5",
    "metadata",
    "part_checksums",
];

/// The fields of a `POST …/parts` body.
pub const PART_NUMBERS_FIELDS: &[&str] = &["part_numbers", "checksums"];

/// The fields of a complete body.
pub const COMPLETE_FIELDS: &[&str] = &["job_id", "parts", "sha256", "md5"];

/// 422 naming each field of `body` that is not one of `known` (docs/API.md v1.2, "Strict
/// bodies"): a typo must never widen what a request grants, nor be ignored without a word.
pub fn known_fields(body: &Map<String, Value>, known: &[&str]) -> Result<(), Error> {
    let mut fields = Fields::default();
    fields.refuse_unknown(body, known, str::to_owned);
    fields.finish()
}

/// Gathers the refusals of every field of one body.
#[derive(Debug, Default)]
struct Fields {
    bad: Vec<Detail>,
}

impl Fields {
    fn refuse(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.bad.push(Detail::field(field, message));
    }

    /// Refuses each field of `object` that is not one of `known`, named by `at`.
    fn refuse_unknown(
        &mut self,
        object: &Map<String, Value>,
        known: &[&str],
        at: impl Fn(&str) -> String,
    ) {
        for name in object.keys().filter(|name| !known.contains(&name.as_str())) {
            self.refuse(at(name), "unknown field");
        }
    }

    /// 422 listing every refusal, sorted by field; `Ok` when there was none.
    fn finish(mut self) -> Result<(), Error> {
        if self.bad.is_empty() {
            return Ok(());
        }
        self.bad.sort_by(|a, b| a.field.cmp(&b.field));
        Err(Refusal::Validation(self.bad).into())
    }

    /// The optional integer `field` of `body`, from `min` to `max`; `None` when absent or refused.
    fn integer(
        &mut self,
        body: &Map<String, Value>,
        field: &str,
        min: u64,
        max: u64,
    ) -> Option<u64> {
        match body.get(field) {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) if n.is_u64() || n.is_i64() => match n.as_u64() {
                Some(value) if (min..=max).contains(&value) => Some(value),
                _ => {
                    self.refuse(field, format!("must be between {min} and {max}"));
                    None
                }
            },
            Some(_) => {
                self.refuse(field, "must be an integer");
                None
            }
        }
    }

    /// The optional string `field` of `body`, parsed by `parse`; `None` when absent or refused.
    fn text<T>(
        &mut self,
        body: &Map<String, Value>,
        field: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        match body.get(field) {
            None | Some(Value::Null) => None,
            Some(Value::String(text)) => parse(text)
                .map_err(|message| self.refuse(field, message))
                .ok(),
            Some(_) => {
                self.refuse(field, "must be a string");
                None
            }
        }
    }
}

/// Checks every field of a create (`name_required`) or reupload body.
pub fn upload_request(
    body: &Map<String, Value>,
    max_file_size: u64,
    name_required: bool,
) -> Result<UploadRequest, Error> {
    let mut fields = Fields::default();

    let file_name = fields.text(body, "file_name", FileName::parse);
    if name_required && matches!(body.get("file_name"), None | Some(Value::Null)) {
        fields.refuse("file_name", "is required");
    }
    let (file_size, too_large) = file_size(body.get("file_size"), max_file_size, &mut fields);
    let content_type = fields.text(body, "content_type", MediaType::parse);
    let sha256 = fields.text(body, "sha256", Sha256::parse);
    let md5 = fields.text(body, "md5", Md5::parse);
    let metadata = match body.get("metadata") {
        None | Some(Value::Null) => None,
        Some(value) => metadata(value, &mut fields),
    };
    let part_checksums = fields
        .text(body, "part_checksums", |text| match text {
            "sha256" => Ok(true),
            _ => Err("must be \"sha256\"".to_owned()),
        })
        .unwrap_or(false);

    let mut bad = fields.bad;
    match (bad.is_empty(), too_large, file_size) {
        (true, Some(detail), _) => Err(Refusal::PayloadTooLarge {
            max: max_file_size,
            details: vec![detail],
        }
        .into()),
        (true, None, Some(file_size)) => Ok(UploadRequest {
            file_name,
            file_size,
            content_type: content_type.unwrap_or_else(MediaType::octet_stream),
            sha256,
            md5,
            metadata,
            part_checksums,
        }),
        (_, too_large, _) => {
            bad.extend(too_large);
            bad.sort_by(|a, b| a.field.cmp(&b.field));
            Err(Refusal::Validation(bad).into())
        }
    }
}

/// `file_size`: an integer from 1 to `max`. Above `max` it is set apart (the second value),
/// for a 413 when it is the only problem.
fn file_size(
    value: Option<&Value>,
    max: u64,
    fields: &mut Fields,
) -> (Option<u64>, Option<Detail>) {
    let range = format!("must be between 1 and {max}");
    match value {
        None | Some(Value::Null) => {
            fields.refuse("file_size", "is required");
            (None, None)
        }
        Some(Value::Number(n)) => match n.as_u64() {
            Some(size) if (1..=max).contains(&size) => (Some(size), None),
            Some(size) if size > max => (None, Some(Detail::field("file_size", range))),
            Some(_) => {
                fields.refuse("file_size", range);
                (None, None)
            }
            None if n.as_i64().is_some() => {
                fields.refuse("file_size", range);
                (None, None)
            }
            None => {
                fields.refuse("file_size", "must be an integer");
                (None, None)
            }
        },
        Some(_) => {
            fields.refuse("file_size", "must be an integer");
            (None, None)
        }
    }
}

/// An object of string → string, or a list of `{"name", "value"}` pairs.
fn metadata(value: &Value, fields: &mut Fields) -> Option<Metadata> {
    let refused_before = fields.bad.len();
    let string = |value: Option<&Value>, at: &str, fields: &mut Fields| match value {
        Some(Value::String(text)) => Some(text.clone()),
        _ => {
            fields.refuse(at, "must be a string");
            None
        }
    };
    let mut entries = Vec::new();
    match value {
        Value::Object(map) => {
            for (name, value) in map {
                let at = format!("metadata.{name}");
                if let Some(value) = string(Some(value), &at, fields) {
                    entries.push(MetadataEntry {
                        value_at: at.clone(),
                        at,
                        name: name.clone(),
                        value,
                    });
                }
            }
        }
        Value::Array(pairs) => {
            for (index, pair) in pairs.iter().enumerate() {
                let at = format!("metadata[{index}]");
                let Some(pair) = pair.as_object() else {
                    fields.refuse(at, "must be an object with name and value");
                    continue;
                };
                fields.refuse_unknown(pair, &["name", "value"], |name| format!("{at}.{name}"));
                let name = string(pair.get("name"), &format!("{at}.name"), fields);
                let value_at = format!("{at}.value");
                let value = string(pair.get("value"), &value_at, fields);
                if let (Some(name), Some(value)) = (name, value) {
                    entries.push(MetadataEntry {
                        at,
                        value_at,
                        name,
                        value,
                    });
                }
            }
        }
        _ => {
            fields.refuse(
                "metadata",
                "must be an object of strings or a list of {name, value}",
            );
            return None;
        }
    }
    match Metadata::parse(entries) {
        Ok(metadata) => (fields.bad.len() == refused_before).then_some(metadata),
        Err(refusals) => {
            for refusal in refusals {
                let at = refusal.entry.unwrap_or_else(|| "metadata".to_owned());
                fields.refuse(at, refusal.message);
            }
            None
        }
    }
}

/// A file of a direct upload, as its form part says it: name and type as the client gave them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FilePart<'a> {
    pub file_name: Option<&'a str>,
    pub content_type: Option<&'a str>,
    pub size: u64,
}

/// Checks a direct upload's form: at least one file, each named (by its part's filename, or
/// `name` when it is the only one) and typed (`application/octet-stream` when its part says
/// nothing), 1 byte to `max_file_size`; `meta` a JSON object of strings or list of
/// `{name, value}`. Every refusal names its part: `files[i].file_name`, `name`, `meta.k`, …
pub fn direct_upload(
    files: &[FilePart<'_>],
    name: Option<&str>,
    meta: Option<&str>,
    max_file_size: u64,
) -> Result<DirectUpload, Error> {
    let mut fields = Fields::default();
    if files.is_empty() {
        fields.refuse("file", "is required: send one or more file parts");
    }
    let name = match name {
        Some(_) if files.len() > 1 => {
            fields.refuse("name", "names the file of a form with one file only");
            None
        }
        Some(name) => FileName::parse(name)
            .map_err(|message| fields.refuse("name", message))
            .ok(),
        None => None,
    };
    let mut parsed = Vec::with_capacity(files.len());
    for (index, sent) in files.iter().enumerate() {
        let at = |field: &str| format!("files[{index}].{field}");
        let file_name = match (&name, sent.file_name) {
            (Some(name), _) => Some(name.clone()),
            (None, Some(file_name)) => FileName::parse(file_name)
                .map_err(|message| fields.refuse(at("file_name"), message))
                .ok(),
            (None, None) => {
                fields.refuse(at("file_name"), "is required: the part's filename, or name");
                None
            }
        };
        let content_type = match sent.content_type {
            Some(text) => MediaType::parse(text)
                .map_err(|message| fields.refuse(at("content_type"), message))
                .ok(),
            None => Some(MediaType::octet_stream()),
        };
        if !(1..=max_file_size).contains(&sent.size) {
            fields.refuse(
                at("file_size"),
                format!("must be between 1 and {max_file_size}"),
            );
        }
        if let (Some(file_name), Some(content_type)) = (file_name, content_type) {
            parsed.push((file_name, content_type, sent.size));
        }
    }
    let metadata = match meta {
        None => Some(Metadata::default()),
        Some(text) => match serde_json::from_str::<Value>(text) {
            Ok(value) => {
                // The form's field is `meta`: its refusals say so.
                let mut named = Fields::default();
                let metadata = metadata(&value, &mut named);
                for detail in named.bad {
                    let field = detail.field.unwrap_or_default();
                    let field = field.strip_prefix("metadata").unwrap_or(&field);
                    fields.refuse(format!("meta{field}"), detail.message);
                }
                metadata
            }
            Err(_) => {
                fields.refuse(
                    "meta",
                    "must be JSON: an object of strings or a list of {name, value}",
                );
                None
            }
        },
    };
    fields.finish()?;
    Ok(DirectUpload {
        files: parsed,
        metadata: metadata.unwrap_or_default(),
    })
}

/// A `POST …/parts` body for `job`, whose content declared `declared_sha256`: `part_numbers`
/// and, for a job with part checksums, `checksums` (`{"<n>": "<base64 SHA-256>"}`) with one
/// for each part asked for; `part_numbers` may then be left out, meaning the parts given. A
/// single-part job's one part is the whole file: its checksum must be the file's, if declared.
pub fn part_requests(
    body: &Map<String, Value>,
    job: &UploadJob,
    declared_sha256: Option<Sha256>,
    max_per_call: u32,
) -> Result<Vec<RequestedPart>, Error> {
    let checksums = match body.get("checksums") {
        None | Some(Value::Null) => None,
        Some(value) => Some(value),
    };
    if !job.part_checksums {
        if checksums.is_some() {
            return Err(Refusal::invalid(
                "checksums",
                "this upload was started without part_checksums: its part URLs sign no checksum",
            )
            .into());
        }
        let numbers = part_numbers(body, job.part_count, max_per_call)?;
        return Ok(numbers.into_iter().map(RequestedPart::unhashed).collect());
    }
    let Some(Value::Object(checksums)) = checksums else {
        return Err(Refusal::invalid(
            "checksums",
            "is required, an object of part number → base64 SHA-256: this upload's part URLs are signed for each part's SHA-256",
        ).into());
    };

    let mut fields = Fields::default();
    let (mut digests, mut given) = (BTreeMap::new(), BTreeSet::new());
    for (key, value) in checksums {
        let at = format!("checksums.{key}");
        let number = key
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=job.part_count).contains(n) && *key == n.to_string());
        let Some(number) = number else {
            fields.refuse(
                at,
                format!(
                    "must be keyed by a part number between 1 and {}",
                    job.part_count
                ),
            );
            continue;
        };
        given.insert(number);
        let digest = match value {
            Value::String(text) => Sha256::parse(text),
            _ => Err("must be a string".to_owned()),
        };
        match digest {
            Ok(digest)
                if job.upload_id.is_none() && declared_sha256.is_some_and(|d| d != digest) =>
            {
                fields.refuse(
                    at,
                    "must be the sha256 declared for the file: this upload is one part, the whole file",
                );
            }
            Ok(digest) => {
                digests.insert(number, digest);
            }
            Err(message) => fields.refuse(at, message),
        }
    }
    let numbers: Vec<u32> = match body.get("part_numbers") {
        None | Some(Value::Null) => {
            if given.is_empty() || given.len() > max_per_call as usize {
                fields.refuse(
                    "checksums",
                    format!("must give the SHA-256 of 1 to {max_per_call} parts"),
                );
            }
            given.iter().copied().collect()
        }
        Some(_) => {
            let numbers = match part_numbers(body, job.part_count, max_per_call) {
                Ok(numbers) => numbers,
                Err(Error::Refused(Refusal::Validation(details))) => {
                    fields.bad.extend(details);
                    Vec::new()
                }
                Err(err) => return Err(err),
            };
            for extra in given.iter().filter(|n| !numbers.contains(n)) {
                fields.refuse(format!("checksums.{extra}"), "is not one of part_numbers");
            }
            numbers
        }
    };
    for missing in numbers.iter().filter(|n| !given.contains(n)) {
        fields.refuse(
            format!("checksums.{missing}"),
            "is required: this upload's part URLs are signed for each part's SHA-256",
        );
    }
    fields.finish()?;
    Ok(numbers
        .into_iter()
        .map(|number| RequestedPart {
            number,
            sha256: digests.get(&number).copied(),
        })
        .collect())
}

/// The optional `sha256` and `md5` of a complete body: the whole file's digests, for a client
/// that hashed while it uploaded.
pub fn completed_digests(
    body: Option<&Map<String, Value>>,
) -> Result<(Option<Sha256>, Option<Md5>), Error> {
    let Some(body) = body else {
        return Ok((None, None));
    };
    let mut fields = Fields::default();
    let sha256 = fields.text(body, "sha256", Sha256::parse);
    let md5 = fields.text(body, "md5", Md5::parse);
    fields.finish()?;
    Ok((sha256, md5))
}

/// The optional `job_id` of a complete body: completing a job that is no longer current is
/// refused.
pub fn completed_job(body: Option<&Map<String, Value>>) -> Result<Option<JobId>, Error> {
    match body.and_then(|body| body.get("job_id")) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => text
            .parse()
            .map(Some)
            .map_err(|_| Refusal::invalid("job_id", "must be a job id from the upload plan"))
            .map_err(Error::from),
        Some(_) => Err(Refusal::invalid("job_id", "must be a string").into()),
    }
}

/// `{"part_numbers": [...]}`: 1 to `max_per_call` distinct numbers between 1 and `part_count`.
fn part_numbers(
    body: &Map<String, Value>,
    part_count: u32,
    max_per_call: u32,
) -> Result<Vec<u32>, Error> {
    let Some(value) = body.get("part_numbers") else {
        return Err(Refusal::invalid("part_numbers", "is required").into());
    };
    let Value::Array(items) = value else {
        return Err(Refusal::invalid("part_numbers", "must be an array of part numbers").into());
    };
    if items.is_empty() || items.len() > max_per_call as usize {
        return Err(Refusal::invalid(
            "part_numbers",
            format!("must list 1 to {max_per_call} part numbers"),
        )
        .into());
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
        Err(Refusal::Validation(bad).into())
    }
}

/// The optional `parts` of a complete body: `[{"part_number", "etag"}]`, distinct numbers.
pub fn reported_parts(
    body: Option<&Map<String, Value>>,
    part_count: u32,
) -> Result<Option<Vec<ReportedPart>>, Error> {
    let items = match body.and_then(|body| body.get("parts")) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(items)) => items,
        Some(_) => {
            return Err(
                Refusal::invalid("parts", "must be an array of {part_number, etag}").into(),
            );
        }
    };
    if items.len() > part_count as usize {
        // Each part once: more claims than parts are wrong whatever they say, and not read.
        return Err(Refusal::invalid(
            "parts",
            format!("must list at most {part_count} parts, the upload's part count"),
        )
        .into());
    }
    let mut fields = Fields::default();
    let mut parts: Vec<ReportedPart> = Vec::with_capacity(items.len());
    let mut seen = std::collections::HashSet::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        if let Some(object) = item.as_object() {
            fields.refuse_unknown(object, &["part_number", "etag"], |name| {
                format!("parts[{index}].{name}")
            });
        }
        let number = item
            .get("part_number")
            .and_then(Value::as_u64)
            .and_then(|n| u32::try_from(n).ok());
        match number {
            Some(n) if (1..=part_count).contains(&n) && !seen.insert(n) => {
                fields.refuse(
                    format!("parts[{index}].part_number"),
                    format!("duplicate part number {n}"),
                );
            }
            Some(n) if (1..=part_count).contains(&n) => match item.get("etag") {
                Some(Value::String(etag)) if !etag.is_empty() => {
                    parts.push(ReportedPart {
                        part_number: n,
                        etag: etag.clone(),
                    });
                }
                _ => fields.refuse(format!("parts[{index}].etag"), "must be the part's ETag"),
            },
            _ => fields.refuse(
                format!("parts[{index}].part_number"),
                format!("must be an integer between 1 and {part_count}"),
            ),
        }
    }
    fields.finish()?;
    Ok(Some(parts))
}

/// The fields of a mint body.
pub const TOKEN_GRANT_FIELDS: &[&str] = &[
    "expires_in",
    "max_file_size",
    "content_types",
    "max_files",
    "metadata",
];

/// A mint body (`POST …/upload-tokens`); `max_file_size` is bounded by the deployment's.
pub fn token_grant(body: &Map<String, Value>, deployment_max: u64) -> Result<TokenGrant, Error> {
    let mut fields = Fields::default();
    let expires_in = fields
        .integer(body, "expires_in", MIN_EXPIRES_IN, MAX_EXPIRES_IN)
        .unwrap_or(DEFAULT_EXPIRES_IN);
    let max_file_size = fields.integer(body, "max_file_size", 1, deployment_max);
    let max_files = fields.integer(body, "max_files", 1, MAX_FILES).unwrap_or(1);
    let content_types = match body.get("content_types") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) if items.len() <= MAX_CONTENT_TYPES => items
            .iter()
            .enumerate()
            .filter_map(|(index, item)| {
                let at = format!("content_types[{index}]");
                match item.as_str().map(MediaRange::parse) {
                    Some(Ok(range)) => Some(range),
                    Some(Err(message)) => {
                        fields.refuse(at, message);
                        None
                    }
                    None => {
                        fields.refuse(at, "must be a string");
                        None
                    }
                }
            })
            .collect(),
        Some(_) => {
            fields.refuse(
                "content_types",
                format!("must be a list of at most {MAX_CONTENT_TYPES} media types"),
            );
            Vec::new()
        }
    };
    let metadata = match body.get("metadata") {
        None | Some(Value::Null) => Some(Metadata::default()),
        Some(value) => metadata(value, &mut fields),
    };
    fields.finish()?;
    Ok(TokenGrant {
        expires_in: Duration::from_secs(expires_in),
        max_file_size,
        content_types,
        max_files: u32::try_from(max_files).unwrap_or(1),
        metadata: metadata.unwrap_or_default(),
    })
}

/// The fields of a `PUT …/webhook` body.
pub const WEBHOOK_FIELDS: &[&str] = &["url", "events", "rotate_secret"];

/// A `PUT …/webhook` body; 422 lists each bad field.
pub fn webhook_request(
    body: &Map<String, Value>,
    allow_loopback: bool,
) -> Result<WebhookRequest, Error> {
    let mut bad = Vec::new();
    let url = match body.get("url") {
        None | Some(Value::Null) => {
            bad.push(Detail::field("url", "is required"));
            None
        }
        Some(Value::String(text)) => WebhookUrl::parse(text, allow_loopback)
            .map_err(|message| bad.push(Detail::field("url", message)))
            .ok(),
        Some(_) => {
            bad.push(Detail::field("url", "must be a string"));
            None
        }
    };
    let events = match body.get("events") {
        None | Some(Value::Null) => EventType::ALL.into_iter().collect(),
        Some(Value::Array(items)) if items.is_empty() => {
            bad.push(Detail::field("events", "must name at least one event type"));
            BTreeSet::new()
        }
        Some(Value::Array(items)) => {
            let mut events = BTreeSet::new();
            for (index, item) in items.iter().enumerate() {
                match item.as_str().and_then(EventType::parse) {
                    Some(kind) => {
                        events.insert(kind);
                    }
                    None => bad.push(Detail::field(
                        format!("events[{index}]"),
                        format!("must be one of {}", type_names()),
                    )),
                }
            }
            events
        }
        Some(_) => {
            bad.push(Detail::field("events", "must be a list of event types"));
            BTreeSet::new()
        }
    };
    let rotate_secret = match body.get("rotate_secret") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(rotate)) => *rotate,
        Some(_) => {
            bad.push(Detail::field("rotate_secret", "must be true or false"));
            false
        }
    };
    match url {
        Some(url) if bad.is_empty() => Ok(WebhookRequest {
            url,
            events,
            rotate_secret,
        }),
        _ => Err(Refusal::Validation(bad).into()),
    }
}

/// A page of `GET …/files` holds this many files unless `limit` says otherwise, and never more
/// than [`MAX_PAGE_SIZE`].
pub const DEFAULT_PAGE_SIZE: usize = 50;
pub const MAX_PAGE_SIZE: usize = 100;

/// The query of `GET …/files`: a status to filter by, a page size and where the page starts.
pub struct ListQuery {
    pub status: Option<FileStatus>,
    pub limit: usize,
    pub cursor: Option<ListCursor>,
}

/// The query of `GET …/files` in `request`, every bad parameter reported at once.
pub fn list_query(request: &Request, project_id: &str) -> Result<ListQuery, Error> {
    let mut bad = Vec::new();
    let status = super::query_param(request, "status").and_then(|text| {
        FileStatus::parse(&text).or_else(|| {
            let names: Vec<_> = FileStatus::ALL.iter().map(|s| s.as_str()).collect();
            bad.push(Detail::field(
                "status",
                format!("must be one of {}", names.join(", ")),
            ));
            None
        })
    });
    let limit = match super::query_param(request, "limit") {
        None => DEFAULT_PAGE_SIZE,
        Some(text) => match text.parse::<usize>() {
            Ok(limit) if (1..=MAX_PAGE_SIZE).contains(&limit) => limit,
            _ => {
                bad.push(Detail::field(
                    "limit",
                    format!("must be an integer between 1 and {MAX_PAGE_SIZE}"),
                ));
                DEFAULT_PAGE_SIZE
            }
        },
    };
    let cursor = super::query_param(request, "cursor").and_then(|text| {
        ListCursor::decode(&text, project_id).or_else(|| {
            bad.push(Detail::field(
                "cursor",
                "must be a next_cursor from a previous page of this listing",
            ));
            None
        })
    });
    if bad.is_empty() {
        Ok(ListQuery {
            status,
            limit,
            cursor,
        })
    } else {
        Err(Refusal::Validation(bad).into())
    }
}

/// The event types, as a refusal lists them.
fn type_names() -> String {
    let names: Vec<_> = EventType::ALL.iter().map(|kind| kind.as_str()).collect();
    names.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const MAX: u64 = 5 << 40;
    const SHA: &str = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=";
    const MD5: &str = "1B2M2Y8AsgTpgAmY7PhCfg==";

    fn parse(body: Value) -> Result<UploadRequest, Error> {
        upload_request(body.as_object().unwrap(), MAX, true)
    }

    fn fields(err: Error) -> Vec<String> {
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
        assert_eq!(
            req.file_name.as_ref().map(FileName::as_str),
            Some("report.pdf")
        );
        assert_eq!(req.metadata.unwrap().as_map()["category"], "invoice");
        assert_eq!(req.sha256.map(|d| d.to_string()).as_deref(), Some(SHA));
    }

    #[test]
    fn content_type_defaults_to_octet_stream() {
        let req = parse(json!({"file_name": "a", "file_size": 1})).unwrap();
        assert_eq!(req.content_type.as_str(), MediaType::DEFAULT);
        assert_eq!(req.metadata, None);
    }

    #[test]
    fn every_bad_field_is_reported() {
        let err = parse(json!({
            "file_name": "bad\u{7}name", "file_size": -1, "content_type": "pdf",
            "sha256": "!!notbase64", "md5": SHA, "metadata": {"k": 5}
        }))
        .unwrap_err();
        assert!(matches!(err, Error::Refused(Refusal::Validation(_))));
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
        assert!(matches!(
            err,
            Error::Refused(Refusal::PayloadTooLarge { .. })
        ));
        assert_eq!(fields(err), ["file_size"]);
        let err = parse(json!({"file_size": MAX + 1})).unwrap_err();
        assert!(matches!(err, Error::Refused(Refusal::Validation(_))));
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
        let err = reported_parts(body.as_object(), 4).unwrap_err();
        assert_eq!(
            fields(err),
            [
                "parts[1].part_number",
                "parts[2].part_number",
                "parts[3].etag"
            ]
        );
        assert_eq!(reported_parts(None, 3).unwrap(), None);
        let ok = json!({"parts": [{"part_number": 2, "etag": "e"}]});
        assert_eq!(
            reported_parts(ok.as_object(), 3).unwrap().unwrap()[0].part_number,
            2
        );
    }

    #[test]
    fn more_claimed_parts_than_the_upload_has_are_refused_unread() {
        let claims: Vec<Value> = (1..=4)
            .map(|n| json!({"part_number": n, "etag": "e"}))
            .collect();
        let body = json!({ "parts": claims });
        assert_eq!(
            fields(reported_parts(body.as_object(), 3).unwrap_err()),
            ["parts"]
        );
        assert_eq!(
            reported_parts(body.as_object(), 4).unwrap().unwrap().len(),
            4
        );
    }

    #[test]
    fn unknown_fields_are_refused_each_by_name_at_every_level() {
        let body =
            json!({"file_size": 1, "content_type": "text/plain", "file_nme": "a", "sha": "x"});
        let err = known_fields(body.as_object().unwrap(), UPLOAD_REQUEST_FIELDS).unwrap_err();
        assert!(
            matches!(err, Error::Refused(Refusal::Validation(_))),
            "{err:?}"
        );
        assert_eq!(fields(err), ["file_nme", "sha"]);
        assert!(
            known_fields(
                body.as_object().unwrap(),
                &["file_size", "content_type", "file_nme", "sha"]
            )
            .is_ok()
        );

        let parts = json!({"parts": [{"part_number": 1, "etag": "e", "size": 3}]});
        assert_eq!(
            fields(reported_parts(parts.as_object(), 1).unwrap_err()),
            ["parts[0].size"]
        );
        let listed = json!({"file_name": "a", "file_size": 1,
            "metadata": [{"name": "k", "value": "v", "vaule": "w"}]});
        assert_eq!(fields(parse(listed).unwrap_err()), ["metadata[0].vaule"]);
    }
}

#[cfg(test)]
mod token_grant_tests {
    use super::*;
    use serde_json::json;

    fn grant(body: Value) -> Result<TokenGrant, Error> {
        token_grant(body.as_object().unwrap(), 1 << 40)
    }

    fn fields(err: Error) -> Vec<String> {
        match err {
            Error::Refused(Refusal::Validation(details)) => {
                details.into_iter().filter_map(|d| d.field).collect()
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_empty_body_mints_a_token_for_one_file_of_any_type_for_15_minutes() {
        let grant = grant(json!({})).unwrap();
        assert_eq!(grant.expires_in, Duration::from_secs(900));
        assert_eq!((grant.max_files, grant.max_file_size), (1, None));
        assert!(grant.content_types.is_empty());
    }

    #[test]
    fn every_bad_field_is_named() {
        let err = grant(json!({
            "expires_in": 59, "max_file_size": 0, "max_files": 101,
            "content_types": ["image/*", "nope", 3], "metadata": {"k": 1}
        }))
        .unwrap_err();
        assert_eq!(
            fields(err),
            [
                "content_types[1]",
                "content_types[2]",
                "expires_in",
                "max_file_size",
                "max_files",
                "metadata.k"
            ]
        );
        assert_eq!(
            fields(grant(json!({"expires_in": 3601, "max_file_size": 1u64 << 41})).unwrap_err()),
            ["expires_in", "max_file_size"]
        );
    }
}

#[cfg(test)]
mod webhook_request_tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_request_names_every_bad_field() {
        let body = json!({"url": "http://example.com", "events": ["file.verified", "file.created", 3], "rotate_secret": "yes"});
        let err = webhook_request(body.as_object().unwrap(), false).unwrap_err();
        let fields: Vec<_> = err
            .details()
            .iter()
            .map(|d| d.field.clone().unwrap())
            .collect();
        assert_eq!(fields, ["url", "events[1]", "events[2]", "rotate_secret"]);
        assert!(
            matches!(err, Error::Refused(Refusal::Validation(_))),
            "{err:?}"
        );

        let body = json!({"url": "https://example.com/h"});
        let request = webhook_request(body.as_object().unwrap(), false).unwrap();
        assert_eq!(request.events.len(), EventType::ALL.len());
        assert!(!request.rotate_secret);
        let body = json!({"url": "https://example.com/h", "events": []});
        assert!(webhook_request(body.as_object().unwrap(), false).is_err());
        let err = webhook_request(&Map::new(), false).unwrap_err();
        assert_eq!(err.details()[0].message, "is required");
    }
}

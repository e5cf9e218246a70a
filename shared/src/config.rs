//! Deployment settings, read from the environment once per cold start.
//!
//! Each variable, its default and its meaning are in the one table of the README
//! (`README.md`, "Configuration"); the bounds are checked here, so a bad value fails the cold start.
//!
//! Endpoints and credentials come from the standard AWS variables (`AWS_ENDPOINT_URL_S3`,
//! `AWS_ENDPOINT_URL_DYNAMODB`, `AWS_REGION`, …) through `aws-config`.

use std::time::Duration;

use crate::domain::plan::{MAX_OBJECT_SIZE, MAX_PART_SIZE, MAX_SINGLE_PUT_SIZE, MIN_PART_SIZE};

/// SigV4 presigned URLs live at most seven days.
const MAX_URL_EXPIRY_SECS: u64 = 7 * 24 * 3600;

/// A direct upload's body reaches the function inside Lambda's 6 MB (6,291,456-byte) request
/// payload, base64-encoded by API Gateway (4 bytes for every 3) with the event's headers around
/// it: 4 MiB encodes to 5,592,408 bytes, leaving some 680 KB for the rest of the event. (API
/// Gateway's own limit, 10 MB, is the looser one.)
pub const MAX_DIRECT_UPLOAD_BYTES: u64 = 4 << 20;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub table_name: String,
    /// The bucket of files' content: only the functions over it need it.
    pub bucket_name: Option<String>,
    pub upload_url_expiry: Duration,
    pub download_url_expiry: Duration,
    pub max_file_size: u64,
    pub multipart_threshold: u64,
    pub part_size: u64,
    pub pending_ttl: Duration,
    pub s3_force_path_style: bool,
    pub trust_system_roots: bool,
    pub dependency_timeout: Duration,
    /// Where `notify` publishes events; only `notify` needs it.
    pub event_bus_name: Option<String>,
    /// The queue of webhook deliveries, whose messages `deliver` puts back for a retry.
    pub webhook_queue_url: Option<String>,
    pub webhook_retry_base: Duration,
    pub webhook_timeout: Duration,
    pub webhook_allow_loopback: bool,
    /// The queue `verify` reads S3's events from and hands continuations to.
    pub verify_queue_url: Option<String>,
    /// What one invocation of `verify` may hash before a continuation takes over.
    pub verify_chunk_bytes: u64,
    pub verify_chunk_time: Duration,
    /// Ranged GETs one `verify` invocation keeps in flight.
    pub verify_parallel_gets: usize,
    /// `complete` assembles uploads of up to this many parts itself; larger ones, verify.
    pub assemble_inline_max_parts: u32,
    /// The role whose sessions sign presigned URLs (their lifetime is known, unlike that of
    /// Lambda's own credentials); the function's own credentials sign where it is not set.
    pub url_signing_role_arn: Option<String>,
    /// The largest body a direct upload takes.
    pub direct_upload_max_bytes: u64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("configuration: {0}")]
pub struct ConfigError(String);

impl ConfigError {
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

impl Config {
    /// The bucket, required by whatever reaches files' content (storage's clients, the admin
    /// commands that provision it).
    pub fn bucket(&self) -> Result<&str, ConfigError> {
        self.bucket_name.as_deref().ok_or_else(|| {
            ConfigError::new("BUCKET_NAME is not set, and what reaches files' content needs it")
        })
    }

    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the settings through `lookup`, so tests need not touch the process environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let required = |name: &str| {
            lookup(name)
                .filter(|value| !value.is_empty())
                .ok_or_else(|| ConfigError(format!("{name} is not set")))
        };
        let number = |name: &str, default: u64, min: u64, max: u64| -> Result<u64, ConfigError> {
            let Some(raw) = lookup(name) else {
                return Ok(default);
            };
            match raw.trim().parse::<u64>() {
                Ok(value) if (min..=max).contains(&value) => Ok(value),
                _ => Err(ConfigError(format!(
                    "{name}={raw:?} must be an integer between {min} and {max}"
                ))),
            }
        };
        let secs = |name: &str, default: u64, max: u64| {
            number(name, default, 1, max).map(Duration::from_secs)
        };
        let flag = |name: &str| match lookup(name).as_deref() {
            None | Some("" | "false" | "0") => Ok(false),
            Some("true" | "1") => Ok(true),
            Some(other) => Err(ConfigError(format!(
                "{name}={other:?} must be true or false"
            ))),
        };

        let config = Config {
            table_name: required("TABLE_NAME")?,
            bucket_name: lookup("BUCKET_NAME").filter(|name| !name.is_empty()),
            upload_url_expiry: secs("UPLOAD_URL_EXPIRY_SECS", 900, MAX_URL_EXPIRY_SECS)?,
            download_url_expiry: secs("DOWNLOAD_URL_EXPIRY_SECS", 300, MAX_URL_EXPIRY_SECS)?,
            max_file_size: number("MAX_FILE_SIZE", MAX_OBJECT_SIZE, 1, MAX_OBJECT_SIZE)?,
            multipart_threshold: number("MULTIPART_THRESHOLD", 100 << 20, 1, MAX_SINGLE_PUT_SIZE)?,
            part_size: number("PART_SIZE", 16 << 20, MIN_PART_SIZE, MAX_PART_SIZE)?,
            pending_ttl: secs("PENDING_TTL_SECS", 7 * 24 * 3600, 365 * 24 * 3600)?,
            s3_force_path_style: flag("S3_FORCE_PATH_STYLE")?,
            trust_system_roots: flag("TRUST_SYSTEM_ROOTS")?,
            dependency_timeout: number("DEPENDENCY_TIMEOUT_MS", 2000, 100, 20_000)
                .map(Duration::from_millis)?,
            event_bus_name: lookup("EVENT_BUS_NAME").filter(|name| !name.is_empty()),
            webhook_queue_url: lookup("WEBHOOK_QUEUE_URL").filter(|url| !url.is_empty()),
            webhook_retry_base: number("WEBHOOK_RETRY_BASE_SECS", 30, 0, 3600)
                .map(Duration::from_secs)?,
            webhook_timeout: number("WEBHOOK_TIMEOUT_MS", 10_000, 100, 10_000)
                .map(Duration::from_millis)?,
            webhook_allow_loopback: flag("WEBHOOK_ALLOW_LOOPBACK")?,
            verify_queue_url: lookup("VERIFY_QUEUE_URL").filter(|url| !url.is_empty()),
            verify_chunk_bytes: number("VERIFY_CHUNK_BYTES", 32 << 30, 1 << 20, MAX_OBJECT_SIZE)?,
            // Well inside verify's 15-minute timeout, whatever storage's pace.
            verify_chunk_time: secs("VERIFY_CHUNK_SECS", 600, 840)?,
            verify_parallel_gets: number("VERIFY_PARALLEL_GETS", 1, 1, 8)? as usize,
            assemble_inline_max_parts: number("ASSEMBLE_INLINE_MAX_PARTS", 100, 1, 10_000)? as u32,
            url_signing_role_arn: lookup("URL_SIGNING_ROLE_ARN").filter(|arn| !arn.is_empty()),
            direct_upload_max_bytes: number(
                "DIRECT_UPLOAD_MAX_BYTES",
                MAX_DIRECT_UPLOAD_BYTES,
                1,
                MAX_DIRECT_UPLOAD_BYTES,
            )?,
        };
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let env: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|name| env.get(name).cloned())
    }

    #[test]
    fn documented_defaults_apply() {
        let c = config(&[("TABLE_NAME", "t"), ("BUCKET_NAME", "b")]).unwrap();
        assert_eq!(c.upload_url_expiry, Duration::from_secs(900));
        assert_eq!(c.download_url_expiry, Duration::from_secs(300));
        assert_eq!(c.max_file_size, 5 * (1 << 40));
        assert_eq!(c.multipart_threshold, 100 << 20);
        assert_eq!(c.part_size, 16 << 20);
        assert!(!c.s3_force_path_style);
    }

    #[test]
    fn bad_values_fail_the_cold_start_with_the_variable_named() {
        let err = config(&[("BUCKET_NAME", "b")]).unwrap_err();
        assert!(err.to_string().contains("TABLE_NAME"));
        let err = config(&[
            ("TABLE_NAME", "t"),
            ("BUCKET_NAME", "b"),
            ("PART_SIZE", "1024"),
        ])
        .unwrap_err();
        assert!(err.to_string().contains("PART_SIZE"), "{err}");
        let err = config(&[
            ("TABLE_NAME", "t"),
            ("BUCKET_NAME", "b"),
            ("UPLOAD_URL_EXPIRY_SECS", "0"),
        ])
        .unwrap_err();
        assert!(err.to_string().contains("UPLOAD_URL_EXPIRY_SECS"), "{err}");
        let err = config(&[
            ("TABLE_NAME", "t"),
            ("BUCKET_NAME", "b"),
            ("S3_FORCE_PATH_STYLE", "yes"),
        ])
        .unwrap_err();
        assert!(err.to_string().contains("S3_FORCE_PATH_STYLE"), "{err}");
    }

    /// template.yaml passes `PENDING_TTL_SECS` from `PendingTtlSecs`, whose default is the code's,
    /// and aborts incomplete multipart uploads after `IncompleteUploadDays`: no sooner than a
    /// file waiting for them is forgotten.
    #[test]
    fn the_template_keeps_incomplete_uploads_as_long_as_their_files() {
        let template = include_str!("../../template.yaml");
        let default = |parameter: &str| -> u64 {
            template
                .split(&format!("\n  {parameter}:\n"))
                .nth(1)
                .and_then(|rest| rest.split("Default:").nth(1))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|value| value.parse().ok())
                .unwrap_or_else(|| panic!("{parameter}'s default in template.yaml"))
        };
        let code = config(&[("TABLE_NAME", "t"), ("BUCKET_NAME", "b")]).unwrap();
        assert_eq!(default("PendingTtlSecs"), code.pending_ttl.as_secs());
        assert!(default("IncompleteUploadDays") * 86_400 >= default("PendingTtlSecs"));
    }

    /// The README's table is the one description of the settings: it must name exactly the
    /// variables this module reads, each with the default the code applies.
    #[test]
    fn the_readme_table_documents_every_setting_and_its_default() {
        let readme = include_str!("../../README.md");
        let table = readme
            .split("## Configuration")
            .nth(1)
            .and_then(|section| section.split("\n## ").next())
            .unwrap();
        let documented: Vec<(&str, &str)> = table
            .lines()
            .filter_map(|line| {
                let mut cells = line.split('|').map(str::trim).skip(1);
                let name = cells.next()?.strip_prefix('`')?.strip_suffix('`')?;
                Some((name, cells.next()?))
            })
            .collect();
        let read = std::cell::RefCell::new(Vec::new());
        let defaults = Config::from_lookup(|name| {
            read.borrow_mut().push(name.to_owned());
            matches!(name, "TABLE_NAME" | "BUCKET_NAME").then(|| "x".to_owned())
        })
        .unwrap();
        let names: Vec<&str> = documented.iter().map(|(name, _)| *name).collect();
        assert_eq!(
            names,
            *read.borrow(),
            "README rows, in the order the code reads them"
        );
        let default_of = |name: &str| {
            documented
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, default)| default.split(' ').next().unwrap_or_default())
                .unwrap()
        };
        let secs = |d: Duration| d.as_secs().to_string();
        for (name, value) in [
            ("TABLE_NAME", "required".to_owned()),
            ("BUCKET_NAME", "none".to_owned()),
            ("UPLOAD_URL_EXPIRY_SECS", secs(defaults.upload_url_expiry)),
            (
                "DOWNLOAD_URL_EXPIRY_SECS",
                secs(defaults.download_url_expiry),
            ),
            ("MAX_FILE_SIZE", defaults.max_file_size.to_string()),
            (
                "MULTIPART_THRESHOLD",
                defaults.multipart_threshold.to_string(),
            ),
            ("PART_SIZE", defaults.part_size.to_string()),
            ("PENDING_TTL_SECS", secs(defaults.pending_ttl)),
            (
                "S3_FORCE_PATH_STYLE",
                defaults.s3_force_path_style.to_string(),
            ),
            (
                "TRUST_SYSTEM_ROOTS",
                defaults.trust_system_roots.to_string(),
            ),
            (
                "DEPENDENCY_TIMEOUT_MS",
                defaults.dependency_timeout.as_millis().to_string(),
            ),
            ("EVENT_BUS_NAME", "none".to_owned()),
            ("WEBHOOK_QUEUE_URL", "none".to_owned()),
            ("WEBHOOK_RETRY_BASE_SECS", secs(defaults.webhook_retry_base)),
            (
                "WEBHOOK_TIMEOUT_MS",
                defaults.webhook_timeout.as_millis().to_string(),
            ),
            (
                "WEBHOOK_ALLOW_LOOPBACK",
                defaults.webhook_allow_loopback.to_string(),
            ),
            ("VERIFY_QUEUE_URL", "none".to_owned()),
            (
                "VERIFY_CHUNK_BYTES",
                defaults.verify_chunk_bytes.to_string(),
            ),
            ("VERIFY_CHUNK_SECS", secs(defaults.verify_chunk_time)),
            (
                "VERIFY_PARALLEL_GETS",
                defaults.verify_parallel_gets.to_string(),
            ),
            (
                "ASSEMBLE_INLINE_MAX_PARTS",
                defaults.assemble_inline_max_parts.to_string(),
            ),
            ("URL_SIGNING_ROLE_ARN", "none".to_owned()),
            (
                "DIRECT_UPLOAD_MAX_BYTES",
                defaults.direct_upload_max_bytes.to_string(),
            ),
        ] {
            assert_eq!(default_of(name), value, "{name}");
        }
    }
}

//! Client upload tokens (`upt_…`): what a browser or a mobile app may do on a project without
//! ever holding its API key. An application mints one with its key, bounded in time, size, types
//! and number of files; the token may create files within those bounds and finish the uploads
//! of the files it created, nothing else.

use std::collections::BTreeSet;
use std::time::Duration;

use time::OffsetDateTime;

use crate::domain::error::{Detail, Refusal};
use crate::domain::ids::FileId;
use crate::domain::request::{ContentDeclaration, NewFile};
use crate::domain::values::{MediaType, Metadata};

pub const TOKEN_PREFIX: &str = "upt_";

/// A token lives from one minute to one hour: long enough for an upload page, short enough that
/// a leaked one is soon worthless (its URLs live no longer than their own expiry anyway).
pub const MIN_EXPIRES_IN: u64 = 60;
pub const MAX_EXPIRES_IN: u64 = 3600;
pub const DEFAULT_EXPIRES_IN: u64 = 900;
/// The most files one token may create: each one it created is kept on its record.
pub const MAX_FILES: u64 = 100;
pub const MAX_CONTENT_TYPES: usize = 50;

/// What a token allows: the body of `POST …/upload-tokens` (`http::parse::token_grant`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenGrant {
    pub expires_in: Duration,
    pub max_file_size: Option<u64>,
    /// Empty: any type.
    pub content_types: Vec<MediaRange>,
    pub max_files: u32,
    /// Attached to every file the token creates, over what the client sends.
    pub metadata: Metadata,
}

/// `type/subtype`, or `type/*` for every subtype of a type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaRange(String);

impl MediaRange {
    pub fn parse(text: &str) -> Result<Self, String> {
        let refusal =
            || "must be a media type such as image/png, or image/* for all images".to_owned();
        let (kind, subtype) = text.split_once('/').ok_or_else(refusal)?;
        let probe = if subtype == "*" {
            format!("{kind}/x")
        } else {
            text.to_owned()
        };
        let parsed = MediaType::parse(&probe).map_err(|_| refusal())?;
        if text.contains(';') || kind == "*" {
            return Err(refusal());
        }
        Ok(Self(if subtype == "*" {
            format!("{}/*", kind.to_ascii_lowercase())
        } else {
            parsed.essence().to_owned()
        }))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn admits(&self, media_type: &MediaType) -> bool {
        match self.0.strip_suffix("/*") {
            Some(kind) => media_type
                .essence()
                .split_once('/')
                .is_some_and(|(k, _)| k == kind),
            None => media_type.essence() == self.0,
        }
    }
}

/// A live token, as its record says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadToken {
    /// The SHA-256 of the token: what the table knows it by.
    pub hash: String,
    pub project_id: String,
    pub expires_at: OffsetDateTime,
    pub max_file_size: Option<u64>,
    pub content_types: Vec<MediaRange>,
    pub max_files: u32,
    pub metadata: Metadata,
    /// The files it created.
    pub files: BTreeSet<FileId>,
    /// The SHA-256 of the API key that minted it: the token is good only while that key is
    /// (revoking a key ends its tokens too). `None` for tokens minted before it was recorded,
    /// which expire within the hour anyway.
    pub minted_by: Option<String>,
}

impl UploadToken {
    /// A file declared with this token (create), as the token lets it be: within its bounds,
    /// with the token's metadata over the client's. Every refusal at once.
    pub fn admit_file(&self, mut file: NewFile) -> Result<NewFile, Vec<Detail>> {
        let admitted = self.admit(&file.content, "");
        let metadata = self.metadata_for(&file.metadata, "metadata");
        match (admitted, metadata) {
            (Ok(()), Ok(metadata)) => {
                file.metadata = metadata;
                Ok(file)
            }
            (admitted, metadata) => Err([admitted.err(), metadata.err()]
                .into_iter()
                .flatten()
                .flatten()
                .collect()),
        }
    }

    /// 422 naming the field when `content` is outside the token's bounds; `at` prefixes the
    /// field names (`files[1].` for a direct upload's second file).
    pub fn admit(&self, content: &ContentDeclaration, at: &str) -> Result<(), Vec<Detail>> {
        let mut refused = Vec::new();
        if let Some(max) = self.max_file_size
            && content.file_size > max
        {
            refused.push(Detail::field(
                format!("{at}file_size"),
                format!("must be at most {max} bytes for this upload token"),
            ));
        }
        if !self.content_types.is_empty()
            && !self
                .content_types
                .iter()
                .any(|range| range.admits(&content.content_type))
        {
            let allowed: Vec<&str> = self.content_types.iter().map(MediaRange::as_str).collect();
            refused.push(Detail::field(
                format!("{at}content_type"),
                format!(
                    "must be one of {} for this upload token",
                    allowed.join(", ")
                ),
            ));
        }
        if refused.is_empty() {
            Ok(())
        } else {
            Err(refused)
        }
    }

    /// The file's metadata with the token's over it: 422 naming `field` (where the client sent
    /// its metadata) if together they break the limits.
    pub fn metadata_for(&self, client: &Metadata, field: &str) -> Result<Metadata, Vec<Detail>> {
        client
            .merged(&self.metadata)
            .map_err(|message| vec![Detail::field(field, message)])
    }

    /// Whether the token may finish and read `file_id`: only the files it created.
    pub fn created(&self, file_id: FileId) -> bool {
        self.files.contains(&file_id)
    }

    /// 403 unless `count` more files fit in the token's `max_files`. The table's conditional
    /// write is what really counts (two racing creates cannot both take the last slot); this
    /// refuses early what cannot fit.
    pub fn room_for(&self, count: usize) -> Result<(), Refusal> {
        if self.files.len() + count > self.max_files as usize {
            Err(Refusal::token_used_up())
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::fixtures;

    #[test]
    fn media_ranges_admit_their_types_only() {
        let images = MediaRange::parse("Image/*").unwrap();
        let pdf = MediaRange::parse("application/PDF").unwrap();
        let png = MediaType::parse("image/png").unwrap();
        let pdf_type = MediaType::parse("application/pdf; charset=x").unwrap();
        assert!(images.admits(&png) && !images.admits(&pdf_type));
        assert!(pdf.admits(&pdf_type) && !pdf.admits(&png));
        for bad in ["*/*", "image", "image/*; q=1", "", "a b/c"] {
            assert!(MediaRange::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn content_outside_the_bounds_is_refused_naming_the_field() {
        let token = UploadToken {
            hash: "h".into(),
            project_id: "p1".into(),
            expires_at: OffsetDateTime::UNIX_EPOCH,
            max_file_size: Some(100),
            content_types: vec![MediaRange::parse("image/*").unwrap()],
            max_files: 1,
            metadata: Metadata::default(),
            files: BTreeSet::new(),
            minted_by: None,
        };
        assert_eq!(
            token.admit(&fixtures::content("a.png", "image/png", 100), ""),
            Ok(())
        );
        let refused = token
            .admit(
                &fixtures::content("a.pdf", "application/pdf", 101),
                "files[1].",
            )
            .unwrap_err();
        let named: Vec<_> = refused.into_iter().filter_map(|d| d.field).collect();
        assert_eq!(named, ["files[1].file_size", "files[1].content_type"]);
        assert!(token.room_for(1).is_ok());
        assert!(token.room_for(2).is_err());
    }

    #[test]
    fn the_tokens_metadata_wins_and_together_they_stay_within_the_limits() {
        let map = |pairs: Vec<(String, String)>| Metadata::from_stored(pairs.into_iter().collect());
        let token = UploadToken {
            hash: "h".into(),
            project_id: "p1".into(),
            expires_at: OffsetDateTime::UNIX_EPOCH,
            max_file_size: None,
            content_types: Vec::new(),
            max_files: 1,
            metadata: map(vec![("user".into(), "u-1".into())]),
            files: BTreeSet::new(),
            minted_by: None,
        };
        let client = map(vec![
            ("user".into(), "forged".into()),
            ("note".into(), "n".into()),
        ]);
        let merged = token.metadata_for(&client, "metadata").unwrap();
        assert_eq!(merged.as_map()["user"], "u-1");
        assert_eq!(merged.as_map()["note"], "n");

        let full = map((0..64).map(|i| (format!("k{i}"), "v".into())).collect());
        let refused = token.metadata_for(&full, "meta").unwrap_err();
        assert_eq!(refused[0].field.as_deref(), Some("meta"));
    }

    #[test]
    fn a_file_declared_with_a_token_is_refused_for_every_bound_at_once_or_takes_its_metadata() {
        let token = UploadToken {
            hash: "h".into(),
            project_id: "p1".into(),
            expires_at: OffsetDateTime::UNIX_EPOCH,
            max_file_size: Some(100),
            content_types: Vec::new(),
            max_files: 1,
            metadata: Metadata::from_stored([("user".into(), "u-1".into())].into()),
            files: BTreeSet::new(),
            minted_by: None,
        };
        let file = |size: u64, metadata: Metadata| NewFile {
            content: fixtures::content("a.png", "image/png", size),
            metadata,
            part_checksums: false,
        };
        let admitted = token.admit_file(file(100, Metadata::default())).unwrap();
        assert_eq!(admitted.metadata.as_map()["user"], "u-1");

        let full = Metadata::from_stored((0..64).map(|i| (format!("k{i}"), "v".into())).collect());
        let refused = token.admit_file(file(101, full)).unwrap_err();
        let named: Vec<_> = refused.into_iter().filter_map(|d| d.field).collect();
        assert_eq!(named, ["file_size", "metadata"]);
    }
}

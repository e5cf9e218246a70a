//! Identifiers of projects, files and upload jobs, and the object keys built from them.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            pub fn random() -> Self {
                Self(Uuid::new_v4())
            }

            pub fn as_uuid(&self) -> &Uuid {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.as_hyphenated().fmt(f)
            }
        }

        /// Only the canonical lowercase hyphenated form parses, so one id has one spelling.
        impl FromStr for $name {
            type Err = ();
            fn from_str(s: &str) -> Result<Self, ()> {
                let id = Uuid::try_parse(s).map_err(|_| ())?;
                if id.as_hyphenated().to_string() == s { Ok(Self(id)) } else { Err(()) }
            }
        }
    };
}

uuid_id!(
    /// Identifies a file for its whole life, across reuploads.
    FileId
);
uuid_id!(
    /// Identifies one upload of content for a file; each reupload gets a new one.
    JobId
);

/// A project's id: chosen by operators when they mint keys, short, URL- and key-safe (1 to 64
/// letters, digits, `-` or `_`). It reads as the `str` it is.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct ProjectId(String);

impl ProjectId {
    pub fn parse(id: &str) -> Result<Self, String> {
        let safe = id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        match (1..=64).contains(&id.len()) && safe {
            true => Ok(Self(id.to_owned())),
            false => Err("must be 1 to 64 letters, digits, '-' or '_'".to_owned()),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for ProjectId {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ProjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where the bytes of one upload job live: `uploads/{file_id}/{job_id}`. Built only from ids
/// the service generated, never from client text; written out by `Display`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ObjectKey {
    pub file_id: FileId,
    pub job_id: JobId,
}

impl ObjectKey {
    pub fn new(file_id: FileId, job_id: JobId) -> Self {
        Self { file_id, job_id }
    }

    /// The job whose key `key` is, if it is one the service writes (canonical ids only).
    pub fn parse(key: &str) -> Option<Self> {
        let rest = key.strip_prefix(UPLOAD_PREFIX)?;
        let (file, job) = rest.split_once('/')?;
        Some(Self::new(file.parse().ok()?, job.parse().ok()?))
    }

    /// The job whose key an S3 event names: URL-encoded, with spaces as `+`.
    pub fn from_event(raw: &str) -> Option<Self> {
        let spaced = raw.replace('+', " ");
        Self::parse(&percent_encoding::percent_decode_str(&spaced).decode_utf8_lossy())
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", file_prefix(self.file_id), self.job_id)
    }
}

/// Where every object of the file is: one key per upload job under it.
pub fn file_prefix(file_id: FileId) -> String {
    format!("{UPLOAD_PREFIX}{file_id}/")
}

pub const UPLOAD_PREFIX: &str = "uploads/";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_parse_only_in_canonical_form() {
        let id = FileId::random();
        assert_eq!(id.to_string().parse::<FileId>(), Ok(id));
        assert!(id.to_string().to_uppercase().parse::<FileId>().is_err());
        assert!("../etc/passwd".parse::<FileId>().is_err());
        assert!(id.to_string().replace('-', "").parse::<FileId>().is_err());
    }

    #[test]
    fn object_keys_round_trip_and_reject_anything_else() {
        let (file, job) = (FileId::random(), JobId::random());
        let key = ObjectKey::new(file, job);
        assert_eq!(key.to_string(), format!("uploads/{file}/{job}"));
        assert_eq!(ObjectKey::parse(&key.to_string()), Some(key));
        assert_eq!(ObjectKey::parse(&format!("other/{file}/{job}")), None);
        assert_eq!(ObjectKey::parse(&format!("{key}/x")), None);
        assert_eq!(ObjectKey::parse("uploads/x/y"), None);
    }

    #[test]
    fn event_keys_are_url_decoded() {
        let key = ObjectKey::new(FileId::random(), JobId::random());
        let encoded = key.to_string().replace('/', "%2F");
        assert_eq!(ObjectKey::from_event(&encoded), Some(key));
        assert_eq!(
            ObjectKey::from_event(&format!("{key}+")),
            None,
            "{key} and a space"
        );
        assert_eq!(ObjectKey::from_event("caf%C3%A9+menu.pdf"), None);
    }

    #[test]
    fn project_ids_are_short_and_url_and_key_safe() {
        for good in ["p1", "acme_prod-2", &"a".repeat(64)] {
            assert_eq!(ProjectId::parse(good).unwrap().as_str(), good);
        }
        for bad in ["", "a/b", "a#b", "a b", "é", &"a".repeat(65)] {
            assert!(ProjectId::parse(bad).is_err(), "{bad}");
        }
    }
}

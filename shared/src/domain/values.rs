//! The values a client declares, each checked once by its `parse`: whatever holds one of these
//! holds a valid one. A refusal is the message for the field (the edge's `http::parse` names the field).

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Serialize, Serializer};
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

pub const MAX_FILE_NAME_CHARS: usize = 255;
pub const MAX_CONTENT_TYPE_CHARS: usize = 255;
pub const MAX_METADATA_ENTRIES: usize = 64;
pub const MAX_METADATA_NAME_CHARS: usize = 128;
pub const MAX_METADATA_VALUE_CHARS: usize = 1024;
/// Sum of the UTF-8 lengths of all names and values.
pub const MAX_METADATA_BYTES: usize = 8 * 1024;

/// Serializes a value as the text it was parsed from.
macro_rules! text_value {
    ($name:ident) => {
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }
    };
}

/// A file's name: 1 to 255 characters, not all blank, no control characters and no invisible
/// format characters (bidirectional controls such as U+202E, zero-width characters): the name is
/// replayed in `Content-Disposition`, where `invoice\u{202e}fdp.exe` would show as
/// `invoiceexe.pdf`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileName(String);

impl FileName {
    pub fn parse(text: &str) -> Result<Self, String> {
        let chars = text.chars().count();
        if chars == 0 || chars > MAX_FILE_NAME_CHARS {
            Err(format!("must be 1 to {MAX_FILE_NAME_CHARS} characters"))
        } else if text.chars().any(char::is_control) {
            Err("must not contain control characters".into())
        } else if text
            .chars()
            .any(|c| c.general_category() == GeneralCategory::Format)
        {
            Err("must not contain invisible format characters (bidirectional controls, zero-width characters)".into())
        } else if text.trim().is_empty() {
            Err("must not be blank".into())
        } else {
            Ok(Self(text.to_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

text_value!(FileName);

/// A media type: `type/subtype` with optional `; name=value` parameters, all in RFC 9110 token
/// characters, at most 255 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaType {
    text: String,
    /// `type/subtype`, lowercased, without parameters.
    essence: String,
}

impl MediaType {
    /// What a file is declared as when the client says nothing.
    pub const DEFAULT: &str = "application/octet-stream";

    pub fn parse(text: &str) -> Result<Self, String> {
        fn token(s: &str) -> bool {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
        }
        let refusal = || {
            format!(
                "must be a media type such as image/png, at most {MAX_CONTENT_TYPE_CHARS} characters"
            )
        };
        if text.is_empty() || text.len() > MAX_CONTENT_TYPE_CHARS {
            return Err(refusal());
        }
        let mut parts = text.split(';');
        let essence = parts.next().unwrap_or_default();
        let Some((kind, subtype)) = essence.split_once('/') else {
            return Err(refusal());
        };
        let parameters_ok = parts.all(|param| {
            param
                .trim_start_matches(' ')
                .split_once('=')
                .is_some_and(|(name, value)| token(name) && token(value))
        });
        if token(kind) && token(subtype) && parameters_ok {
            Ok(Self {
                text: text.to_owned(),
                essence: essence.to_ascii_lowercase(),
            })
        } else {
            Err(refusal())
        }
    }

    /// `application/octet-stream`.
    pub fn octet_stream() -> Self {
        Self {
            text: Self::DEFAULT.to_owned(),
            essence: Self::DEFAULT.to_owned(),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// `type/subtype`, lowercased, without parameters: what the type means.
    pub fn essence(&self) -> &str {
        &self.essence
    }
}

text_value!(MediaType);

/// A digest of `N` bytes, written as standard padded base64 (`openssl dgst -binary | base64`).
macro_rules! digest_value {
    ($(#[$doc:meta])* $name:ident, $len:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub struct $name([u8; $len]);

        impl $name {
            pub fn parse(text: &str) -> Result<Self, String> {
                match STANDARD.decode(text) {
                    Ok(raw) => <[u8; $len]>::try_from(raw.as_slice()).map(Self).map_err(|_| {
                        format!(
                            "must be the base64 of a {}-byte digest, got {} bytes",
                            $len,
                            raw.len()
                        )
                    }),
                    Err(_) => Err("must be standard base64 with padding".into()),
                }
            }

            pub fn from_bytes(bytes: [u8; $len]) -> Self {
                Self(bytes)
            }

            pub fn as_bytes(&self) -> &[u8; $len] {
                &self.0
            }

            pub fn to_base64(&self) -> String {
                STANDARD.encode(self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_base64())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.to_base64())
            }
        }
    };
}

digest_value!(
    /// The SHA-256 of a file's content.
    Sha256,
    32
);
digest_value!(
    /// The MD5 of a file's content.
    Md5,
    16
);

/// A file's metadata: at most 64 names of 1 to 128 characters, values of at most 1024
/// characters, 8 KiB in all, no control characters anywhere.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Metadata(BTreeMap<String, String>);

/// One name and value as the client wrote them, with where it wrote them: `at` is the entry
/// (`metadata.<name>` or `metadata[<index>]`), `value_at` its value (`metadata.<name>` or
/// `metadata[<index>].value`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataEntry {
    pub at: String,
    pub value_at: String,
    pub name: String,
    pub value: String,
}

/// Why one metadata entry (or the whole) is refused; `entry` is where (an entry's `at` or
/// `value_at`), `None` for the metadata as a whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataRefusal {
    pub entry: Option<String>,
    pub message: String,
}

impl Metadata {
    /// Checks `entries` as a whole; every refusal is reported.
    pub fn parse(entries: Vec<MetadataEntry>) -> Result<Self, Vec<MetadataRefusal>> {
        let mut refusals = Vec::new();
        let refuse = |entry: Option<&str>, message: String| MetadataRefusal {
            entry: entry.map(str::to_owned),
            message,
        };
        if entries.len() > MAX_METADATA_ENTRIES {
            refusals.push(refuse(
                None,
                format!("must have at most {MAX_METADATA_ENTRIES} entries"),
            ));
        }
        let mut map = BTreeMap::new();
        let mut total_bytes = 0;
        for MetadataEntry {
            at,
            value_at,
            name,
            value,
        } in entries
        {
            let value_refused = Self::check_value(&value)
                .map_err(|message| refusals.push(refuse(Some(&value_at), message)))
                .is_err();
            let chars = name.chars().count();
            if chars == 0 || chars > MAX_METADATA_NAME_CHARS || name.chars().any(char::is_control) {
                refusals.push(refuse(
                    Some(&at),
                    format!("names must be 1 to {MAX_METADATA_NAME_CHARS} characters without control characters"),
                ));
                continue;
            }
            if value_refused {
                continue;
            }
            total_bytes += name.len() + value.len();
            match map.entry(name) {
                Entry::Occupied(taken) => {
                    let message = format!("duplicate name {:?}", taken.key());
                    refusals.push(refuse(Some(&at), message));
                }
                Entry::Vacant(free) => {
                    free.insert(value);
                }
            }
        }
        if total_bytes > MAX_METADATA_BYTES {
            refusals.push(refuse(
                None,
                format!("must total at most {MAX_METADATA_BYTES} bytes"),
            ));
        }
        if refusals.is_empty() {
            Ok(Self(map))
        } else {
            Err(refusals)
        }
    }

    /// A value: at most 1024 characters, no control characters.
    pub fn check_value(value: &str) -> Result<(), String> {
        if value.chars().count() > MAX_METADATA_VALUE_CHARS {
            Err(format!(
                "must be at most {MAX_METADATA_VALUE_CHARS} characters"
            ))
        } else if value.chars().any(char::is_control) {
            Err("must not contain control characters".into())
        } else {
            Ok(())
        }
    }

    /// Metadata read back from storage, where it was checked when it was written.
    pub fn from_stored(map: BTreeMap<String, String>) -> Self {
        Self(map)
    }

    pub fn as_map(&self) -> &BTreeMap<String, String> {
        &self.0
    }

    /// These entries with `over`'s in place of any of the same name; refused when together
    /// they exceed the limits.
    pub fn merged(&self, over: &Metadata) -> Result<Metadata, String> {
        let mut map = self.0.clone();
        map.extend(over.0.iter().map(|(k, v)| (k.clone(), v.clone())));
        let bytes: usize = map.iter().map(|(k, v)| k.len() + v.len()).sum();
        if map.len() > MAX_METADATA_ENTRIES || bytes > MAX_METADATA_BYTES {
            return Err(format!(
                "with the upload token's metadata, must have at most {MAX_METADATA_ENTRIES} entries and {MAX_METADATA_BYTES} bytes"
            ));
        }
        Ok(Self(map))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=";
    const MD5: &str = "1B2M2Y8AsgTpgAmY7PhCfg==";

    #[test]
    fn file_names() {
        let cases: &[(&str, bool)] = &[
            ("report.pdf", true),
            (&"é".repeat(255), true),
            (&"a".repeat(256), false),
            ("", false),
            ("bad\u{7}name", false),
            ("line\nbreak", false),
            ("   ", false),
            ("\u{3000}", false),
            ("invoice\u{202e}fdp.exe", false),
            ("a\u{200b}b", false),
            ("\u{feff}bom.txt", false),
            ("a\u{2066}b\u{2069}", false),
            (" padded name.txt ", true),
            ("résumé 日本.pdf", true),
        ];
        for (text, ok) in cases {
            assert_eq!(FileName::parse(text).is_ok(), *ok, "{text:?}");
        }
    }

    #[test]
    fn media_types_keep_their_text_and_know_their_essence() {
        for ok in [
            "image/png",
            "application/vnd.ms-excel",
            "text/plain; charset=utf-8",
            "a/b;c=d",
        ] {
            assert_eq!(MediaType::parse(ok).unwrap().as_str(), ok);
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
            assert!(MediaType::parse(bad).is_err(), "{bad}");
        }
        let parsed = MediaType::parse("Text/HTML; charset=utf-8").unwrap();
        assert_eq!(parsed.essence(), "text/html");
        assert_eq!(MediaType::octet_stream().as_str(), MediaType::DEFAULT);
    }

    #[test]
    fn digests_decode_once_and_print_as_they_were_written() {
        let sha = Sha256::parse(SHA).unwrap();
        assert_eq!(sha.to_string(), SHA);
        assert_eq!(sha.as_bytes()[0], 0xe3);
        assert_eq!(Md5::parse(MD5).unwrap().to_base64(), MD5);
        assert_eq!(
            Sha256::parse(MD5).unwrap_err(),
            "must be the base64 of a 32-byte digest, got 16 bytes"
        );
        assert_eq!(
            Md5::parse("!!notbase64").unwrap_err(),
            "must be standard base64 with padding"
        );
    }

    fn entry(at: &str, name: &str, value: &str) -> MetadataEntry {
        MetadataEntry {
            at: at.into(),
            value_at: format!("{at}.value"),
            name: name.into(),
            value: value.into(),
        }
    }

    #[test]
    fn metadata_limits_name_every_refused_entry() {
        let ok = Metadata::parse(vec![entry("metadata.k", "k", "v")]).unwrap();
        assert_eq!(ok.as_map()["k"], "v");
        let refusals = Metadata::parse(vec![
            entry("metadata[0]", "a", "1"),
            entry("metadata[1]", "a", "2"),
            entry("metadata[2]", "", "x"),
            entry("metadata[3]", "b", &"v".repeat(1025)),
        ])
        .unwrap_err();
        let entries: Vec<_> = refusals.iter().map(|r| r.entry.as_deref()).collect();
        assert_eq!(
            entries,
            [
                Some("metadata[1]"),
                Some("metadata[2]"),
                Some("metadata[3].value")
            ]
        );
        let many = (0..65).map(|i| entry("m", &format!("k{i}"), "v")).collect();
        assert_eq!(Metadata::parse(many).unwrap_err()[0].entry, None);
    }
}

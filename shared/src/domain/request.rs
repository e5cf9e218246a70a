//! What a client asks for, as domain values: the content of an upload, a create or reupload,
//! a direct upload. The HTTP edge parses request bodies into them (`http::parse`).

use crate::domain::values::{FileName, Md5, MediaType, Metadata, Sha256};

/// What the client declared about the content of one upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentDeclaration {
    pub file_name: FileName,
    pub content_type: MediaType,
    pub file_size: u64,
    pub sha256: Option<Sha256>,
    pub md5: Option<Md5>,
}

/// The body of create and reupload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadRequest {
    /// Required by create; reupload keeps the current name when absent.
    pub file_name: Option<FileName>,
    pub file_size: u64,
    pub content_type: MediaType,
    pub sha256: Option<Sha256>,
    pub md5: Option<Md5>,
    /// Absent means "none" on create and "keep the current metadata" on reupload.
    pub metadata: Option<Metadata>,
    /// `"part_checksums": "sha256"`: each part's URL is signed for the part's SHA-256.
    pub part_checksums: bool,
}

/// A create body: the content of the first upload, and the file's metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewFile {
    pub content: ContentDeclaration,
    pub metadata: Metadata,
    pub part_checksums: bool,
}

/// A direct upload's form: each file's name, type and size, and the metadata for
/// every file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectUpload {
    pub files: Vec<(FileName, MediaType, u64)>,
    pub metadata: Metadata,
}

impl UploadRequest {
    /// The content this request declares, named `default_name` when it gives no name.
    pub fn content(&self, default_name: &FileName) -> ContentDeclaration {
        ContentDeclaration {
            file_name: self
                .file_name
                .clone()
                .unwrap_or_else(|| default_name.clone()),
            content_type: self.content_type.clone(),
            file_size: self.file_size,
            sha256: self.sha256,
            md5: self.md5,
        }
    }
}

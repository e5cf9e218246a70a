//! The S3 adapter: the bucket's objects and multipart uploads ([`ObjectStore`], in `objects` and
//! `multipart`), and the URLs that let clients reach them without credentials ([`Presigner`], in
//! `presign`, with the bulk part signer and the signing credentials beside it).

mod multipart;
mod objects;
mod part_signer;
mod presign;
pub mod provision;
mod signing;

use aws_sdk_s3::Client;

pub use multipart::{INLINE_ASSEMBLY_TIMEOUT, QUEUED_ASSEMBLY_TIMEOUT};
pub use objects::ObjectHead;
pub use presign::{PartToSign, PartUrls, PresignedPut, Presigner, content_disposition};
pub use signing::{SIGNING_SESSION, URL_SIGNER};

/// Reads, checks, assembles and deletes the objects of one bucket.
#[derive(Clone, Debug)]
pub struct ObjectStore {
    client: Client,
    bucket: String,
}

impl ObjectStore {
    pub fn new(client: Client, bucket: impl Into<String>) -> Self {
        Self {
            client,
            bucket: bucket.into(),
        }
    }

    /// The raw client, for tests and benchmarks that look at storage directly.
    #[cfg(feature = "testing")]
    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }
}

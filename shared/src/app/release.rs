//! Releasing the storage a change freed (`domain::storage` says what): multipart uploads are
//! aborted, so that no part can be added, then objects deleted. After the record that frees them
//! is written, so that nothing a file holds is released; only a delete releases first, and
//! removes the record only if it has not changed since (`app::delete`). Two policies, by what a
//! failure means to the caller: [`required`] and [`best_effort`].

use crate::domain::storage::Stored;
use crate::error::Error;
use crate::s3::ObjectStore;

/// For callers that fail with the error and are retried: a delete, whose 204 says nothing of
/// the file is left, and verify, whose message comes back. Every one of `freed` is tried, in
/// order, even after one fails; the first failure is returned.
pub async fn required(objects: &ObjectStore, freed: &[Stored]) -> Result<(), Error> {
    let mut first_failure = None;
    for stored in freed {
        if let Err(err) = release(objects, stored).await {
            first_failure.get_or_insert(err);
        }
    }
    first_failure.map_or(Ok(()), Err)
}

/// For callers whose answer does not depend on it, since the record already lets the storage
/// go: a failure is logged as orphaned storage, which the bucket's lifecycle rules (incomplete
/// uploads, pending objects) or a sweep remove.
pub async fn best_effort(objects: &ObjectStore, freed: &[Stored]) {
    for stored in freed {
        if let Err(err) = release(objects, stored).await {
            // Findable: every such line names what is left in storage, for a sweep to remove.
            tracing::error!(?stored, error = %err, "orphaned storage: could not release");
        }
    }
}

async fn release(objects: &ObjectStore, stored: &Stored) -> Result<(), Error> {
    match stored {
        Stored::Upload { s3_key, upload_id } => objects
            .abort_multipart_upload(s3_key, upload_id)
            .await
            .map(|_| ())
            .map_err(Error::from),
        Stored::Object { s3_key } => objects.delete(s3_key).await.map_err(Error::from),
    }
}

//! Deleting a file (`DELETE …/files/{file_id}`): its storage first, then its record. A 204 thus
//! means nothing of the file is left to serve, and a failure part-way leaves a file that a retry
//! deletes. Each removal is conditional on the file being as it was read, so a complete, verify
//! or reupload that changed it meanwhile makes the delete remove what that change stored too.
//! An upload arriving after the record is gone is removed by verify, which keeps no object of
//! a file that does not exist.

use crate::app::{Services, release};
use crate::domain::FileRecord;
use crate::domain::error::Refusal;
use crate::domain::storage::freed;
use crate::dynamo::{Remove, UPDATE_ATTEMPTS, kept_changing};
use crate::error::Error;

/// Deletes `file` (as last read) and everything it stored. `NotFound` if someone else did first.
pub async fn delete_file(services: &Services, file: FileRecord) -> Result<(), Error> {
    let mut file = file;
    for _ in 0..UPDATE_ATTEMPTS {
        release::required(&services.storage.objects, &freed(&file, None)).await?;
        match services.table.files.remove(&file).await? {
            Remove::Applied => return Ok(()),
            Remove::Refused(Some(latest)) => file = latest,
            Remove::Refused(None) => return Err(Refusal::NotFound.into()),
        }
    }
    Err(kept_changing())
}

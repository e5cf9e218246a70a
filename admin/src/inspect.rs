//! Everything the service holds of one file, for an operator: its item, its objects with their
//! sizes and tags, and the multipart upload its current job has open.

use serde_json::{Value, json};
use shared::app::Services;
use shared::domain::FileId;
use shared::domain::ids::file_prefix;

/// `{"item": …, "objects": [{"key", "size", "last_modified", "tags"}], "open_upload": …}`;
/// `item` is `null` for a file the table does not hold (its objects may still be there).
pub async fn inspect(services: &Services, file_id: FileId) -> Result<Value, String> {
    let item = services
        .table
        .files
        .item_json(file_id)
        .await
        .map_err(crate::describe)?;
    let mut objects = Vec::new();
    for (key, last_modified) in services
        .storage
        .objects
        .list(&file_prefix(file_id))
        .await
        .map_err(crate::describe)?
    {
        let size = services
            .storage
            .objects
            .head(&key)
            .await
            .map_err(crate::describe)?
            .map(|head| head.size);
        let tags = services
            .storage
            .objects
            .tags(&key)
            .await
            .map_err(crate::describe)?;
        objects.push(json!({
            "key": key,
            "size": size,
            "last_modified": last_modified.map(|at| at.to_string()),
            "tags": tags,
        }));
    }
    let record = services
        .table
        .files
        .get(file_id)
        .await
        .map_err(crate::describe)?;
    let job = record.as_ref().and_then(|record| record.job.as_ref());
    let open_upload = match job.and_then(|job| Some((job, job.upload_id.as_deref()?))) {
        Some((job, upload_id)) => {
            let parts = services
                .storage
                .objects
                .list_parts(&job.s3_key, upload_id)
                .await
                .map_err(crate::describe)?;
            json!({
                "key": job.s3_key,
                "upload_id": upload_id,
                "part_count": job.part_count,
                // `null`: storage no longer has it (assembled, or aborted).
                "parts_stored": parts.map(|parts| parts.len()),
            })
        }
        None => Value::Null,
    };
    Ok(json!({ "item": item, "objects": objects, "open_upload": open_upload }))
}

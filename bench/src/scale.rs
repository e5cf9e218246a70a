//! Issue 24: one busy project against the table's partitions. Each upload path runs through the
//! API in one project, its writes recorded by the capacity model (`integration_tests::capacity`,
//! held to DynamoDB Local's own counts by `tests/api/capacity.rs`); from the units each upload
//! puts on the keys the project's uploads share, the uploads a second the project sustains
//! before its hottest key takes DynamoDB's 1,000 write units a second, and which key that is.

use integration_tests::capacity::{PARTITION_UNITS_PER_SECOND, UploadPath, shared_partitions};

/// S3's PUT rate per prefix: what storage would let one project do.
const S3_PUTS_PER_PREFIX: f64 = 3500.0;
/// Uploads per path and metadata size: enough for every key a share of uploads writes to
/// (a listing shard, say) to be written by several.
const UPLOADS: u64 = 48;

pub async fn rows() -> Result<(), String> {
    for (label, metadata) in [("1 KiB", 1000), ("8 KiB", 8000)] {
        for path in UploadPath::ALL {
            let api = UploadPath::api().await;
            let mut uploads = Vec::new();
            for seed in 0..UPLOADS {
                uploads.push(path.run(&api, metadata, seed).await);
            }
            let shared = shared_partitions(&uploads);
            let Some((hottest, units, writes)) = shared.first() else {
                return Err(format!("{}: no key shared by two uploads", path.name()));
            };
            let rate = PARTITION_UNITS_PER_SECOND / units;
            let key = hottest.replace(&api.project, "<project>");
            crate::row(
                &format!(
                    "24a. one project's {} uploads/s before a key takes 1,000 WCU/s ({label} of metadata)",
                    path.name()
                ),
                format!(
                    "{rate:.0}/s; hottest `{key}`: {units:.1} WCU, {writes:.1} writes per upload"
                ),
                format!("S3's PUTs per prefix {S3_PUTS_PER_PREFIX:.0}/s"),
                format!("{:.2}×", rate / S3_PUTS_PER_PREFIX),
                "≥ 1.0×",
            );
            for (partition, units, writes) in shared.iter().skip(1).take(2) {
                eprintln!(
                    "    {}: then `{}`: {units:.1} WCU, {writes:.1} writes per upload",
                    path.name(),
                    partition.replace(&api.project, "<project>")
                );
            }
        }
    }
    Ok(())
}

//! Issue 24: one busy project against the table's partitions. Each upload path runs through the
//! API in one project, its writes recorded by the capacity model (`integration_tests::capacity`,
//! held to DynamoDB Local's own counts by `tests/api/capacity.rs`); from the units each upload
//! puts on the keys the project's uploads share, the uploads a second the project sustains
//! before its hottest key takes DynamoDB's 1,000 write units a second, and which key that is.

use integration_tests::capacity::{
    Layout, PARTITION_UNITS_PER_SECOND, UploadPath, shared_partitions,
};

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
            let hottest = |layout| {
                let shared = shared_partitions(&uploads, layout);
                shared.into_iter().next().map(|(key, units, writes)| {
                    (key.replace(&api.project, "<project>"), units, writes)
                })
            };
            let (Some((key, units, writes)), Some((before_key, before_units, _))) =
                (hottest(Layout::Sharded), hottest(Layout::Unsharded))
            else {
                return Err(format!("{}: no key shared by two uploads", path.name()));
            };
            let rate = PARTITION_UNITS_PER_SECOND / units;
            let before = PARTITION_UNITS_PER_SECOND / before_units;
            crate::row(
                &format!(
                    "24a. one project's {} uploads/s before a key takes 1,000 WCU/s ({label} of metadata)",
                    path.name()
                ),
                format!(
                    "{rate:.0}/s; hottest `{key}`: {units:.2} WCU, {writes:.2} writes per upload"
                ),
                format!("unsharded {before:.0}/s (`{before_key}`: {before_units:.1} WCU)"),
                format!(
                    "{:.1}×; {:.2}× S3's {S3_PUTS_PER_PREFIX:.0}/s",
                    rate / before,
                    rate / S3_PUTS_PER_PREFIX
                ),
                "≥ 3,500/s",
            );
            for (partition, units, writes) in shared_partitions(&uploads, Layout::Sharded)
                .iter()
                .skip(1)
                .take(2)
            {
                eprintln!(
                    "    {}: then `{}`: {units:.2} WCU, {writes:.2} writes per upload",
                    path.name(),
                    partition.replace(&api.project, "<project>")
                );
            }
        }
    }
    Ok(())
}

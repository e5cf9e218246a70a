//! Raw signing: CPU time to sign 10,000 part URLs with an 800-character session token, by the
//! SDK's presigner one URL at a time and in batches of 100 by the bulk signer.

use std::time::{Duration, SystemTime};

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region, SharedCredentialsProvider};
use shared::s3::{PartToSign, Presigner};

use crate::stats::thread_cpu_time;

pub const PARTS: u32 = 10_000;
const BATCH: usize = 100;

fn store() -> Presigner {
    let token: String = "IQoJb3JpZ2luX2VjE".chars().cycle().take(800).collect();
    let credentials = Credentials::new(
        "ASIAEXAMPLEKEYID",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        Some(token),
        None,
        "bench",
    );
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(credentials.clone())
        .build();
    Presigner::new(
        aws_sdk_s3::Client::from_conf(config),
        "uploads-bench",
        Some(SharedCredentialsProvider::new(credentials)),
    )
}

const KEY: &str =
    "uploads/3f8e2a8c-5d0b-4c1e-9a57-2b7c4d9e6f10/9b2d7c1e-4a3f-4e8b-8c6d-5f1a2b3c4d5e";
const UPLOAD_ID: &str = "VXBsb2FkIElEIGZvciA2aWWpbmcncyBteS1tb3ZpZS5tMnRzIHVwbG9hZA--";

/// CPU seconds for 10,000 URLs: `(sdk, bulk)`. Runs on the calling thread's own runtime.
/// Each part's signed length.
const PART: u64 = 16 << 20;

fn part(number: u32) -> PartToSign {
    PartToSign {
        number,
        length: PART,
        sha256: None,
    }
}

pub fn cpu_per_10k() -> Result<(Duration, Duration), String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let store = store();
        let expiry = Duration::from_secs(900);
        let now = SystemTime::now();
        // warm up both paths
        store
            .presign_parts_at(KEY, UPLOAD_ID, &[1, 2, 3].map(part), expiry, now)
            .await
            .map_err(|e| format!("{e:?}"))?;

        let start = thread_cpu_time();
        for number in 1..=PARTS {
            store
                .presign_part_at(KEY, UPLOAD_ID, &part(number), expiry, now)
                .await
                .map_err(|e| format!("{e:?}"))?;
        }
        let sdk = thread_cpu_time() - start;

        let parts: Vec<PartToSign> = (1..=PARTS).map(part).collect();
        let start = thread_cpu_time();
        let mut signed = 0;
        for batch in parts.chunks(BATCH) {
            signed += store
                .presign_parts_at(KEY, UPLOAD_ID, batch, expiry, now)
                .await
                .map_err(|e| format!("{e:?}"))?
                .len();
        }
        let bulk = thread_cpu_time() - start;
        assert_eq!(signed, PARTS as usize);
        Ok((sdk, bulk))
    })
}

//! `Idempotency-Key` (docs/API.md v1.1): a retried state-changing request, with the key it was
//! first sent with, gets the first answer again instead of acting twice.

use sha2::{Digest, Sha256};
use time::OffsetDateTime;

/// How long a key and its answer are kept.
pub const KEY_LIFETIME: time::Duration = time::Duration::hours(24);

/// Until when an answer given at `now` is kept: the key's lifetime, or less when the answer
/// says it must not outlive something shorter (`keep_until`, e.g. the token a mint answers).
pub fn kept_until(now: OffsetDateTime, keep_until: Option<OffsetDateTime>) -> OffsetDateTime {
    let lifetime = now + KEY_LIFETIME;
    keep_until.map_or(lifetime, |until| until.min(lifetime))
}

/// How long a request may hold its key while it runs. Past it, the request is dead (API Gateway
/// gives up after 30 s) and a retry may take the key over, so that a crash cannot lock a key
/// for a day.
pub const RUNNING_LEASE: time::Duration = time::Duration::seconds(60);

/// The header's value: 1 to 255 printable ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub fn parse(text: &str) -> Result<Self, String> {
        if (1..=255).contains(&text.len()) && text.bytes().all(|b| (0x20..=0x7e).contains(&b)) {
            Ok(Self(text.to_owned()))
        } else {
            Err("must be 1 to 255 printable ASCII characters".into())
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What makes two requests "the same request": method, path and body.
pub fn fingerprint(method: &str, path: &str, body: &[u8]) -> String {
    let mut hash = Sha256::new();
    for part in [method.as_bytes(), path.as_bytes()] {
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part);
    }
    hash.update(body);
    hex::encode(hash.finalize())
}

/// What is kept under a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    pub fingerprint: String,
    pub state: RecordedState,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordedState {
    /// The first request is running since then.
    Running { since: OffsetDateTime },
    /// The first request answered this (never a 5xx: those are forgotten).
    Answered { status: u16, body: String },
}

/// What a request with a key that is already kept gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Repeat {
    /// The first answer, again.
    Replay { status: u16, body: String },
    /// Another request used this key: 422 `idempotency_key_reused`.
    Reused,
    /// The first request is still running: 409 `idempotency_key_in_use`.
    InUse,
}

impl Recorded {
    /// The answer for a request with `fingerprint` finding this under its key.
    pub fn repeat(&self, fingerprint: &str) -> Repeat {
        if self.fingerprint != fingerprint {
            return Repeat::Reused;
        }
        match &self.state {
            RecordedState::Running { .. } => Repeat::InUse,
            RecordedState::Answered { status, body } => Repeat::Replay {
                status: *status,
                body: body.clone(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_printable_ascii_of_bounded_length() {
        for (text, ok) in [
            ("a", true),
            ("order-42 retry", true),
            (&"k".repeat(255), true),
            ("", false),
            (&"k".repeat(256), false),
            ("tab\there", false),
            ("clé", false),
        ] {
            assert_eq!(IdempotencyKey::parse(text).is_ok(), ok, "{text:?}");
        }
    }

    #[test]
    fn the_fingerprint_tells_method_path_and_body_apart() {
        let base = fingerprint("POST", "/v1/projects/p/files", b"{}");
        assert_eq!(base, fingerprint("POST", "/v1/projects/p/files", b"{}"));
        for other in [
            fingerprint("PUT", "/v1/projects/p/files", b"{}"),
            fingerprint("POST", "/v1/projects/q/files", b"{}"),
            fingerprint("POST", "/v1/projects/p/files", b"{ }"),
            // the boundary between parts cannot move
            fingerprint("POST/", "v1/projects/p/files", b"{}"),
        ] {
            assert_ne!(base, other);
        }
    }

    #[test]
    fn a_kept_key_replays_refuses_or_waits() {
        let answered = Recorded {
            fingerprint: "f".into(),
            state: RecordedState::Answered {
                status: 201,
                body: "{}".into(),
            },
        };
        let running = Recorded {
            fingerprint: "f".into(),
            state: RecordedState::Running {
                since: OffsetDateTime::UNIX_EPOCH,
            },
        };
        let table = [
            (
                &answered,
                "f",
                Repeat::Replay {
                    status: 201,
                    body: "{}".into(),
                },
            ),
            (&answered, "g", Repeat::Reused),
            (&running, "f", Repeat::InUse),
            (&running, "g", Repeat::Reused),
        ];
        for (recorded, fingerprint, repeat) in table {
            assert_eq!(recorded.repeat(fingerprint), repeat);
        }
    }
}

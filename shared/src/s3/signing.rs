//! The credentials presigned URLs are signed with. Storage refuses a presigned URL once the
//! credentials that signed it expire, whatever its `X-Amz-Expires` says, so a URL's lifetime is
//! bounded by theirs: [`SigningIdentity::lifetime`] hands out credentials that last as long as the
//! URL should, fetching fresh ones when the cached ones would die sooner, and clamps the
//! lifetime to what they allow.
//!
//! Lambda's own role credentials come from the environment without an expiry (the runtime renews
//! them on a schedule it does not publish), so deployments sign with a role session of known
//! length instead (`URL_SIGNING_ROLE_ARN`, assumed for [`SIGNING_SESSION`]).

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::future;
use aws_sdk_s3::config::{Credentials, ProvideCredentials, SharedCredentialsProvider};

use crate::error::Failure;

/// The name the signing client goes by (its `AppName`): the tests attribute what it signs to
/// the signing role, not to the function.
pub const URL_SIGNER: &str = "url-signer";

/// How long a signing role session is asked to last: AWS caps sessions assumed by a role's own
/// session (role chaining, as a Lambda function assuming another role is) at one hour.
pub const SIGNING_SESSION: Duration = Duration::from_secs(3600);

/// Credentials fetched this recently are used as they are: fetching again would only hand back
/// a session of the same length (a lifetime longer than the provider's sessions is clamped, not
/// refetched on every request).
const REFETCH_AFTER: Duration = Duration::from_secs(60);

/// The signing credentials, cached between requests (the provider may call STS).
#[derive(Clone, Debug)]
pub struct SigningIdentity {
    provider: SharedCredentialsProvider,
    cached: Arc<Mutex<Option<Fetched>>>,
}

#[derive(Clone, Debug)]
struct Fetched {
    credentials: Credentials,
    at: SystemTime,
}

impl SigningIdentity {
    pub fn new(provider: SharedCredentialsProvider) -> Self {
        Self {
            provider,
            cached: Arc::default(),
        }
    }

    /// Credentials to sign, at `signed_at`, a URL meant to live `requested`, and the lifetime
    /// they allow it: `requested`, or less when even fresh credentials expire sooner.
    pub async fn lifetime(
        &self,
        requested: Duration,
        signed_at: SystemTime,
    ) -> Result<(Credentials, Duration), Failure> {
        let credentials = self
            .credentials_until(signed_at + requested, signed_at)
            .await?;
        let allowed = match credentials.expiry() {
            None => requested,
            Some(expiry) => {
                let left = expiry.duration_since(signed_at).unwrap_or_default();
                // X-Amz-Expires counts whole seconds.
                requested.min(Duration::from_secs(left.as_secs()))
            }
        };
        if allowed.is_zero() {
            return Err(Failure::Unavailable(
                "the signing credentials have expired".into(),
            ));
        }
        Ok((credentials, allowed))
    }

    /// The cached credentials if they last until `until` (or were fetched too recently for
    /// fresh ones to last longer), otherwise fresh ones.
    async fn credentials_until(
        &self,
        until: SystemTime,
        now: SystemTime,
    ) -> Result<Credentials, Failure> {
        let cached = self.cached.lock().ok().and_then(|cached| cached.clone());
        if let Some(fetched) = cached
            && (lasts(&fetched.credentials, until) || now < fetched.at + REFETCH_AFTER)
        {
            return Ok(fetched.credentials);
        }
        let credentials = self
            .provider
            .provide_credentials()
            .await
            .map_err(|err| Failure::Unavailable(format!("signing credentials: {err}")))?;
        if let Ok(mut cached) = self.cached.lock() {
            *cached = Some(Fetched {
                credentials: credentials.clone(),
                at: now,
            });
        }
        Ok(credentials)
    }
}

fn lasts(credentials: &Credentials, until: SystemTime) -> bool {
    credentials.expiry().is_none_or(|expiry| expiry >= until)
}

/// The SDK signs with whatever [`SigningIdentity::lifetime`] cached last: credentials that last
/// at least as long as the URL being signed (a concurrent refresh only swaps in later ones).
impl ProvideCredentials for SigningIdentity {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(async move {
            let now = SystemTime::now();
            self.credentials_until(now, now)
                .await
                .map_err(CredentialsError::provider_error)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    /// Hands out the given credentials one fetch after another.
    #[derive(Debug)]
    struct Sessions(Mutex<VecDeque<Credentials>>);

    impl ProvideCredentials for Sessions {
        fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
        where
            Self: 'a,
        {
            let next = self.0.lock().unwrap().pop_front();
            future::ProvideCredentials::ready(
                next.ok_or_else(|| CredentialsError::not_loaded("no more sessions")),
            )
        }
    }

    fn session(key: &str, expiry: Option<SystemTime>) -> Credentials {
        Credentials::new(key, "secret", Some("token".into()), expiry, "test")
    }

    fn identity(sessions: Vec<Credentials>) -> SigningIdentity {
        SigningIdentity::new(SharedCredentialsProvider::new(Sessions(Mutex::new(
            sessions.into(),
        ))))
    }

    const MINUTE: Duration = Duration::from_secs(60);

    #[tokio::test]
    async fn a_url_never_outlives_the_credentials_that_sign_it() {
        let now = SystemTime::UNIX_EPOCH + 1000 * MINUTE;
        let identity = identity(vec![session("short", Some(now + 10 * MINUTE))]);
        let (credentials, lifetime) = identity.lifetime(15 * MINUTE, now).await.unwrap();
        assert_eq!(credentials.access_key_id(), "short");
        assert_eq!(lifetime, 10 * MINUTE, "clamped to the session's end");
    }

    #[tokio::test]
    async fn credentials_that_would_die_too_soon_are_replaced_by_fresh_ones() {
        let start = SystemTime::UNIX_EPOCH + 1000 * MINUTE;
        let identity = identity(vec![
            session("first", Some(start + 60 * MINUTE)),
            session("second", Some(start + 110 * MINUTE)),
        ]);
        let (first, lifetime) = identity.lifetime(15 * MINUTE, start).await.unwrap();
        assert_eq!((first.access_key_id(), lifetime), ("first", 15 * MINUTE));

        // 40 minutes on, the first session still covers a 15-minute URL: no new session.
        let later = start + 40 * MINUTE;
        let (same, _) = identity.lifetime(15 * MINUTE, later).await.unwrap();
        assert_eq!(same.access_key_id(), "first");

        // 50 minutes on, it would end 5 minutes into the URL's life: a fresh session signs.
        let late = start + 50 * MINUTE;
        let (fresh, lifetime) = identity.lifetime(15 * MINUTE, late).await.unwrap();
        assert_eq!((fresh.access_key_id(), lifetime), ("second", 15 * MINUTE));
    }

    #[tokio::test]
    async fn a_lifetime_longer_than_any_session_is_clamped_without_fetching_on_every_url() {
        let now = SystemTime::UNIX_EPOCH + 1000 * MINUTE;
        // Only one session to hand out: a second fetch would fail the test.
        let identity = identity(vec![session("only", Some(now + 60 * MINUTE))]);
        for seconds in [0, 1, 30, 59] {
            let at = now + Duration::from_secs(seconds);
            let (credentials, lifetime) = identity.lifetime(120 * MINUTE, at).await.unwrap();
            assert_eq!(credentials.access_key_id(), "only");
            assert_eq!(lifetime, 60 * MINUTE - Duration::from_secs(seconds));
        }
    }

    #[tokio::test]
    async fn credentials_without_an_expiry_give_the_whole_lifetime() {
        let now = SystemTime::UNIX_EPOCH;
        let identity = identity(vec![session("static", None)]);
        let (_, lifetime) = identity.lifetime(7 * 24 * 60 * MINUTE, now).await.unwrap();
        assert_eq!(lifetime, 7 * 24 * 60 * MINUTE);
    }

    #[tokio::test]
    async fn expired_credentials_sign_nothing() {
        let now = SystemTime::UNIX_EPOCH + 1000 * MINUTE;
        let identity = identity(vec![session("dead", Some(now - MINUTE))]);
        assert!(matches!(
            identity.lifetime(MINUTE, now).await,
            Err(Failure::Unavailable(_))
        ));
    }
}

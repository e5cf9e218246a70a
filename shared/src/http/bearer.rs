//! The `Authorization` header: which kind of secret it carries, refused when malformed before
//! any lookup.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::domain::error::Refusal;
use crate::domain::token::TOKEN_PREFIX;
use crate::dynamo::KEY_PREFIX;
use crate::error::Error;

/// What an `Authorization` header carries: an application's API key or a client's upload token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bearer<'a> {
    ApiKey(&'a str),
    UploadToken(&'a str),
}

const BEARER_USAGE: &str = "Authorization must be Bearer <api key or upload token>";

/// The key or token in `authorization`. Malformed ones are refused here, never costing a read.
pub fn bearer(authorization: Option<&str>) -> Result<Bearer<'_>, Error> {
    let header = authorization.ok_or(Refusal::Unauthorized(
        "missing Authorization: Bearer <api key or upload token>",
    ))?;
    let (scheme, secret) = header
        .split_once(' ')
        .ok_or(Refusal::Unauthorized(BEARER_USAGE))?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(Refusal::Unauthorized(BEARER_USAGE).into());
    }
    let secret = secret.trim();
    let well_formed = |prefix: &str| {
        secret.len() == prefix.len() + 43
            && secret.starts_with(prefix)
            && URL_SAFE_NO_PAD
                .decode(&secret[prefix.len()..])
                .is_ok_and(|raw| raw.len() == 32)
    };
    if well_formed(KEY_PREFIX) {
        Ok(Bearer::ApiKey(secret))
    } else if well_formed(TOKEN_PREFIX) {
        Ok(Bearer::UploadToken(secret))
    } else if secret.starts_with(TOKEN_PREFIX) {
        Err(Refusal::Unauthorized("unknown upload token").into())
    } else {
        Err(Refusal::Unauthorized("unknown API key").into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "upk_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    const TOKEN: &str = "upt_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

    #[test]
    fn bearers_are_parsed_and_malformed_ones_refused_without_a_lookup() {
        assert_eq!(
            bearer(Some(&format!("Bearer {KEY}"))).unwrap(),
            Bearer::ApiKey(KEY)
        );
        assert_eq!(
            bearer(Some(&format!("bearer {KEY}"))).unwrap(),
            Bearer::ApiKey(KEY)
        );
        assert_eq!(
            bearer(Some(&format!("Bearer {TOKEN}"))).unwrap(),
            Bearer::UploadToken(TOKEN)
        );
        for bad in [
            None,
            Some(""),
            Some(KEY),
            Some("Basic dXNlcjpwYXNz"),
            Some("Bearer upk_short"),
            Some("Bearer upt_short"),
            Some("Bearer "),
        ] {
            assert!(
                matches!(bearer(bad), Err(Error::Refused(Refusal::Unauthorized(_)))),
                "{bad:?}"
            );
        }
    }
}

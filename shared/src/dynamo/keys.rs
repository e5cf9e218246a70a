//! API keys: `Authorization: Bearer upk_…`. Keys are 256 random bits, stored only as their
//! SHA-256 with the projects they grant.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use crate::aws;
use crate::domain::error::Refusal;
use crate::domain::ids::ProjectId;
use crate::domain::timestamp;
use crate::dynamo::item::{self, s};
use crate::error::{Error, Failure};

pub const KEY_PREFIX: &str = "upk_";
/// A grant read from the table is trusted this long in a warm container: revoking a key takes
/// effect within this time.
const CACHE_TTL: Duration = Duration::from_secs(60);
/// An unknown or revoked key is remembered this long, so that a stream of random keys costs one
/// table read per key and per container, not one per request; a key minted meanwhile is not
/// affected (keys are random, never guessed before they exist).
const REFUSAL_TTL: Duration = Duration::from_secs(10);
const CACHE_MAX_ENTRIES: usize = 1024;

type Grant = Arc<BTreeSet<String>>;
/// What the table says of a key: the projects it grants, or why it grants nothing.
type Lookup = Result<Grant, &'static str>;

#[derive(Debug)]
pub struct ApiKeys {
    client: Client,
    table: String,
    cache: Mutex<HashMap<String, (Lookup, Instant)>>,
}

impl ApiKeys {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// 401 unless `key` is live; 403 unless it grants `project_id`.
    pub async fn authorize(&self, key: &str, project_id: &str) -> Result<(), Error> {
        self.authorize_hash(&key_hash(key), project_id).await
    }

    /// [`ApiKeys::authorize`] for the key whose SHA-256 is `hash` (what an upload token keeps of
    /// the key that minted it), with the same cache: a revocation reaches it within a minute.
    pub async fn authorize_hash(&self, hash: &str, project_id: &str) -> Result<(), Error> {
        let grant = self.grant(hash).await?;
        if grant.contains(project_id) {
            Ok(())
        } else {
            Err(Refusal::no_grant().into())
        }
    }

    async fn grant(&self, hash: &str) -> Result<Grant, Error> {
        if let Some((lookup, at)) = self.cached(hash) {
            let ttl = if lookup.is_ok() {
                CACHE_TTL
            } else {
                REFUSAL_TTL
            };
            if at.elapsed() < ttl {
                return lookup.map_err(|reason| Refusal::Unauthorized(reason).into());
            }
        }
        let lookup = self.lookup(hash).await?;
        let mut cache = self
            .cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if cache.len() >= CACHE_MAX_ENTRIES {
            cache.clear();
        }
        cache.insert(hash.to_owned(), (lookup.clone(), Instant::now()));
        lookup.map_err(|reason| Refusal::Unauthorized(reason).into())
    }

    /// The key's item, read from the table.
    async fn lookup(&self, hash: &str) -> Result<Lookup, Error> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(item::PK, s(item::api_key_pk(hash)))
            .key(item::SK, s(item::API_KEY_SK))
            .send()
            .await
            .map_err(|err| aws::failure("GetItem api key", err))?;
        let Some(found) = output.item else {
            return Ok(Err("unknown API key"));
        };
        if matches!(found.get("revoked"), Some(AttributeValue::Bool(true))) {
            return Ok(Err("revoked API key"));
        }
        Ok(Ok(match found.get("projects") {
            Some(AttributeValue::Ss(projects)) => Arc::new(projects.iter().cloned().collect()),
            _ => Arc::default(),
        }))
    }

    fn cached(&self, hash: &str) -> Option<(Lookup, Instant)> {
        self.cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(hash)
            .cloned()
    }

    /// Creates a key granting `projects` and returns it: the only time it exists in clear.
    pub async fn mint(&self, projects: &[String], label: &str) -> Result<String, Error> {
        if projects.is_empty() || !projects.iter().all(|p| ProjectId::parse(p).is_ok()) {
            return Err(Refusal::invalid(
                "projects",
                "give at least one project id of 1 to 64 letters, digits, '-' or '_'",
            )
            .into());
        }
        let key = new_secret(KEY_PREFIX)?;
        let hash = key_hash(&key);
        self.client
            .put_item()
            .table_name(&self.table)
            .item(item::PK, s(item::api_key_pk(&hash)))
            .item(item::SK, s(item::API_KEY_SK))
            .item("projects", AttributeValue::Ss(projects.to_vec()))
            .item("label", s(label))
            .item("created_at", s(timestamp::format(timestamp::now())))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await
            .map_err(|err| aws::failure("PutItem api key", err))?;
        Ok(key)
    }
}

impl ApiKeys {
    /// Marks `key` revoked. Warm containers that cached it notice within a minute.
    pub async fn revoke(&self, key: &str) -> Result<(), Error> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key(item::PK, s(item::api_key_pk(&key_hash(key))))
            .key(item::SK, s(item::API_KEY_SK))
            .update_expression("SET revoked = :yes")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":yes", AttributeValue::Bool(true))
            .send()
            .await
            .map_err(|err| match err.as_service_error() {
                Some(e) if e.is_conditional_check_failed_exception() => {
                    Refusal::invalid("key", "no such API key").into()
                }
                _ => Error::from(aws::failure("UpdateItem revoke key", err)),
            })?;
        self.cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(&key_hash(key));
        Ok(())
    }
}

pub fn key_hash(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// A new secret: `prefix` and 256 random bits, base64url.
pub(crate) fn new_secret(prefix: &str) -> Result<String, Error> {
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret)
        .map_err(|err| Failure::Internal(format!("no randomness: {err}")))?;
    Ok(format!("{prefix}{}", URL_SAFE_NO_PAD.encode(secret)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stored_hash_is_sha256_hex() {
        assert_eq!(
            key_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}

//! Upload tokens: `Authorization: Bearer upt_…`, stored only as their SHA-256, with the bounds
//! they were minted with and the files they created. Never cached: every use reads the record,
//! which each create updates.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};
use time::OffsetDateTime;

use crate::aws;
use crate::domain::error::Refusal;
use crate::domain::ids::FileId;
use crate::domain::token::{TOKEN_PREFIX, TokenGrant, UploadToken};
use crate::dynamo::item::{self, Item, TOKEN_FILES, TTL, n};
use crate::dynamo::keys::{key_hash, new_secret};
use crate::error::{Error, Failure};

#[derive(Debug, Clone)]
pub struct UploadTokens {
    client: Client,
    table: String,
}

impl UploadTokens {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    /// Creates a token for `project_id` bounded by `grant`, good while the API key whose hash is
    /// `minted_by` is; the only time it exists in clear.
    pub async fn mint(
        &self,
        project_id: &str,
        minted_by: &str,
        grant: &TokenGrant,
        now: OffsetDateTime,
    ) -> Result<(String, UploadToken), Error> {
        let secret = new_secret(TOKEN_PREFIX)?;
        let expires_at = now + grant.expires_in;
        let token = UploadToken {
            hash: key_hash(&secret),
            project_id: project_id.to_owned(),
            expires_at: expires_at.replace_nanosecond(0).unwrap_or(expires_at),
            max_file_size: grant.max_file_size,
            content_types: grant.content_types.clone(),
            max_files: grant.max_files,
            metadata: grant.metadata.clone(),
            files: Default::default(),
            minted_by: Some(minted_by.to_owned()),
        };
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(Item::from(&token)))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await
            .map_err(|err| aws::failure("PutItem upload token", err))?;
        Ok((secret, token))
    }

    /// The live token `secret`: 401 when unknown or expired.
    pub async fn find(&self, secret: &str, now: OffsetDateTime) -> Result<UploadToken, Error> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(item::upload_token_key(&key_hash(secret))))
            .consistent_read(true)
            .send()
            .await
            .map_err(|err| aws::failure("GetItem upload token", err))?;
        let token = output
            .item
            .as_ref()
            .map(UploadToken::try_from)
            .transpose()
            .map_err(|err| Failure::Internal(err.to_string()))?
            .ok_or(Refusal::Unauthorized("unknown upload token"))?;
        if token.expires_at <= now {
            return Err(Refusal::Unauthorized("expired upload token").into());
        }
        Ok(token)
    }

    /// Counts `files` as created by `token`, in one conditional write: refused (403) when they
    /// would take it past `max_files`, so two racing creates cannot both take the last slot;
    /// 401 once it has expired. The token as it now is.
    pub async fn claim(
        &self,
        token: &UploadToken,
        files: &[FileId],
        now: OffsetDateTime,
    ) -> Result<UploadToken, Error> {
        token.room_for(files.len())?;
        let room = token.max_files as usize - files.len();
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(item::upload_token_key(&token.hash)))
            .update_expression("ADD #files :ids")
            .condition_expression(
                "attribute_exists(pk) AND #ttl > :now AND (attribute_not_exists(#files) OR size(#files) <= :room)",
            )
            .expression_attribute_names("#files", TOKEN_FILES)
            .expression_attribute_names("#ttl", TTL)
            .expression_attribute_values(":ids", file_set(files))
            .expression_attribute_values(":now", n(now.unix_timestamp()))
            .expression_attribute_values(":room", n(room))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(output) => output
                .attributes
                .as_ref()
                .map(UploadToken::try_from)
                .transpose()
                .map_err(|err| Failure::Internal(err.to_string()))?
                .ok_or_else(|| Failure::Internal("UpdateItem returned no token".into()))
                .map_err(Error::from),
            Err(err) => match err.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(failed)) => {
                    let held = failed
                        .item()
                        .and_then(|old| UploadToken::try_from(old).ok());
                    match held {
                        // This very claim, applied by an attempt whose answer was lost (the
                        // SDK sent it again): the files are counted, as asked.
                        Some(held) if files.iter().all(|file| held.created(*file)) => Ok(held),
                        Some(held) if held.expires_at > now => Err(Refusal::token_used_up().into()),
                        _ => Err(Refusal::Unauthorized("expired upload token").into()),
                    }
                }
                _ => Err(aws::failure("UpdateItem upload token", err).into()),
            },
        }
    }

    /// Gives back the slots of `files`, whose creation failed. Best effort: a slot lost to a
    /// failure here only makes a short-lived token create fewer files.
    pub async fn release(&self, token: &UploadToken, files: &[FileId]) {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(item::upload_token_key(&token.hash)))
            .update_expression("DELETE #files :ids")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_names("#files", TOKEN_FILES)
            .expression_attribute_values(":ids", file_set(files))
            .send()
            .await;
        if let Err(err) = result {
            tracing::warn!(error = %aws::failure("UpdateItem upload token", err), "a failed create's token slots were not given back");
        }
    }
}

fn file_set(files: &[FileId]) -> AttributeValue {
    AttributeValue::Ss(files.iter().map(FileId::to_string).collect())
}

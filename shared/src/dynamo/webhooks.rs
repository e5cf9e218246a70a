//! Each project's webhook: one item per project (`item` has the layout).

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};

use crate::aws;
use crate::domain::error::Refusal;
use crate::domain::webhook::WebhookConfig;
use crate::dynamo::files::UPDATE_ATTEMPTS;
use crate::dynamo::item::{self, Item, n};
use crate::error::{Error, Failure};

#[derive(Clone, Debug)]
pub struct Webhooks {
    client: Client,
    table: String,
}

/// The attribute counting the writes of a webhook. Each write is conditional on the count it
/// read, so that a write made from a stale read (a racing `PUT`'s) cannot undo another: a
/// secret rotation, above all. An item from before the count exists reads as 0.
const VERSION: &str = "version";

/// A webhook as stored: the webhook, and how many writes made it.
#[derive(Debug, PartialEq, Eq)]
struct Stored {
    config: WebhookConfig,
    version: u64,
}

/// What became of one conditional write.
enum Written {
    Applied,
    /// Another write got there first: the webhook as it now is (`None`: removed).
    Refused(Option<Stored>),
}

impl Webhooks {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    /// The project's webhook, read consistently: a delivery right after a change of it (a new
    /// URL, a rotated secret, a removal) already follows the change.
    pub async fn get(&self, project_id: &str) -> Result<Option<WebhookConfig>, Error> {
        Ok(self.read(project_id).await?.map(|stored| stored.config))
    }

    /// The webhook of each of `projects`, each read once, all at once.
    pub async fn get_each<'a>(
        &self,
        projects: impl IntoIterator<Item = &'a str>,
    ) -> HashMap<&'a str, Result<Option<WebhookConfig>, Error>> {
        let reads = projects
            .into_iter()
            .map(|project_id| async move { (project_id, self.get(project_id).await) });
        futures_util::future::join_all(reads)
            .await
            .into_iter()
            .collect()
    }

    /// Sets the project's webhook to what `change` makes of it as it is (`None`: the project
    /// has none), as one conditional write. When another write got there first, `change` is
    /// applied again to the webhook as that write left it, a few times at most; then 409
    /// `concurrent_update`. Racing `PUT`s thus apply one after the other, as if sent in turn.
    /// Answers the webhook written, with what `change` said besides.
    pub async fn set<T>(
        &self,
        project_id: &str,
        change: impl Fn(Option<&WebhookConfig>) -> (WebhookConfig, T),
    ) -> Result<(WebhookConfig, T), Error> {
        let mut current = self.read(project_id).await?;
        for _ in 0..UPDATE_ATTEMPTS {
            let (config, said) = change(current.as_ref().map(|stored| &stored.config));
            let next = Stored {
                config,
                version: current.as_ref().map_or(0, |stored| stored.version) + 1,
            };
            match self.replace(&next, current.as_ref()).await? {
                Written::Applied => return Ok((next.config, said)),
                // Our own write, applied by an attempt whose answer was lost (the SDK retried it).
                Written::Refused(Some(latest)) if latest == next => {
                    return Ok((next.config, said));
                }
                Written::Refused(latest) => current = latest,
            }
        }
        Err(Refusal::conflict(
            "concurrent_update",
            "the webhook kept changing while this request was setting it; retry",
        )
        .into())
    }

    /// Removes the project's webhook; `false` if it had none.
    pub async fn delete(&self, project_id: &str) -> Result<bool, Error> {
        let output = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(item::webhook_key(project_id)))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(|err| aws::failure("DeleteItem webhook", err))?;
        Ok(output.attributes.is_some_and(|old| !old.is_empty()))
    }

    async fn read(&self, project_id: &str) -> Result<Option<Stored>, Error> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(item::webhook_key(project_id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|err| aws::failure("GetItem webhook", err))?;
        output.item.as_ref().map(decode).transpose()
    }

    /// Writes `next` in place of `expected` (`None`: no webhook), only if the item is still
    /// the one `expected` was read from.
    async fn replace(&self, next: &Stored, expected: Option<&Stored>) -> Result<Written, Error> {
        let mut new_item = Item::from(&next.config);
        new_item.insert(VERSION.into(), n(next.version));
        let (condition, names, values) = match expected.map(|stored| stored.version) {
            None => ("attribute_not_exists(pk)", None, None),
            Some(0) => (
                "attribute_exists(pk) AND attribute_not_exists(#version)",
                Some(HashMap::from([("#version".to_owned(), VERSION.to_owned())])),
                None,
            ),
            Some(version) => (
                "#version = :version",
                Some(HashMap::from([("#version".to_owned(), VERSION.to_owned())])),
                Some(HashMap::from([(":version".to_owned(), n(version))])),
            ),
        };
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(new_item))
            .condition_expression(condition)
            .set_expression_attribute_names(names)
            .set_expression_attribute_values(values)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(Written::Applied),
            Err(err) => match err.as_service_error() {
                Some(PutItemError::ConditionalCheckFailedException(failed)) => Ok(
                    Written::Refused(failed.item.as_ref().map(decode).transpose()?),
                ),
                _ => Err(aws::failure("PutItem webhook", err).into()),
            },
        }
    }
}

fn decode(found: &Item) -> Result<Stored, Error> {
    let malformed = |err: String| Failure::Internal(format!("webhook item: {err}"));
    let config = WebhookConfig::try_from(found).map_err(|err| malformed(err.to_string()))?;
    let version = match found.get(VERSION) {
        None => 0,
        Some(AttributeValue::N(count)) => count
            .parse()
            .map_err(|_| malformed(format!("{VERSION} {count:?}")))?,
        Some(_) => return Err(malformed(format!("{VERSION} is not a number")).into()),
    };
    Ok(Stored { config, version })
}

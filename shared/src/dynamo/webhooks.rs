//! Each project's webhook: one item per project (`item` has the layout).

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::ReturnValue;

use crate::aws;
use crate::domain::error::ApiError;
use crate::domain::webhook::WebhookConfig;
use crate::dynamo::item::{self, Item};

#[derive(Clone, Debug)]
pub struct Webhooks {
    client: Client,
    table: String,
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
    pub async fn get(&self, project_id: &str) -> Result<Option<WebhookConfig>, ApiError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(item::webhook_key(project_id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|err| aws::failure("GetItem webhook", err))?;
        output
            .item
            .as_ref()
            .map(|found| {
                WebhookConfig::try_from(found).map_err(|err| ApiError::Internal(err.to_string()))
            })
            .transpose()
    }

    /// Sets the project's webhook, whatever it was: the last write wins, as for any setting.
    pub async fn put(&self, config: &WebhookConfig) -> Result<(), ApiError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(Item::from(config)))
            .send()
            .await
            .map_err(|err| aws::failure("PutItem webhook", err))?;
        Ok(())
    }

    /// Removes the project's webhook; `false` if it had none.
    pub async fn delete(&self, project_id: &str) -> Result<bool, ApiError> {
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
}

//! Which AWS operations each function performs, recorded while the tests drive it, so that
//! `scripts/check-iam` can hold them against the function's policy in `template.yaml`
//! (LocalStack and DynamoDB Local enforce no IAM: without this, a missing grant shows only in AWS).
//!
//! The kit runs each handler inside [`FUNCTION`]'s scope; [`OperationLog`], an interceptor on
//! the test clients, appends `<function> <service> <operation>` to the file named by
//! `OPERATIONS_LOG`, once per process and line. Calls outside a handler (the kit's own set-up
//! and checks) are not the functions' and are not recorded.

use std::collections::HashSet;
use std::future::Future;
use std::io::Write;
use std::sync::{Mutex, OnceLock};

use aws_sdk_s3::config::interceptors::BeforeSerializationInterceptorContextRef;
use aws_sdk_s3::config::{AppName, ConfigBag, Intercept, RuntimeComponents};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use shared::s3::URL_SIGNER;

tokio::task_local! {
    /// The function whose handler is running on this task.
    static FUNCTION: &'static str;
}

/// Runs `handler` as the code of `function`: the AWS calls it makes are that function's.
pub async fn as_function<F: Future>(function: &'static str, handler: F) -> F::Output {
    FUNCTION.scope(function, handler).await
}

/// Records the operation of every call made inside [`as_function`].
#[derive(Debug, Clone, Default)]
pub struct OperationLog;

impl Intercept for OperationLog {
    fn name(&self) -> &'static str {
        "OperationLog"
    }

    fn read_before_serialization(
        &self,
        context: &BeforeSerializationInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        config: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        crate::capacity::observe(context.input());
        if let (Ok(function), Some(operation)) = (
            FUNCTION.try_with(|function| *function),
            config.load::<Metadata>(),
        ) {
            if config
                .load::<AppName>()
                .is_some_and(|name| name.to_string() == URL_SIGNER)
            {
                // A presigned URL is the signing role's request, made with a session of it
                // that the function assumes (`URL_SIGNING_ROLE_ARN`; the tests sign with their
                // own credentials, as local development does).
                record(URL_SIGNER, operation.service(), operation.name());
                record(function, "STS", "AssumeRole");
            } else {
                record(function, operation.service(), operation.name());
                // IAM authorizes each write of a transaction by its own action: name them.
                let transaction = context
                    .input()
                    .downcast_ref::<aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsInput>();
                for item in transaction
                    .map(|input| input.transact_items())
                    .unwrap_or_default()
                {
                    let kinds = [
                        (item.put.is_some(), "TransactWriteItems.Put"),
                        (item.update.is_some(), "TransactWriteItems.Update"),
                        (item.delete.is_some(), "TransactWriteItems.Delete"),
                        (
                            item.condition_check.is_some(),
                            "TransactWriteItems.ConditionCheck",
                        ),
                    ];
                    for (_, kind) in kinds.into_iter().filter(|(present, _)| *present) {
                        record(function, operation.service(), kind);
                    }
                }
            }
        }
        Ok(())
    }
}

fn record(function: &str, service: &str, operation: &str) {
    let Some(path) = std::env::var_os("OPERATIONS_LOG") else {
        return;
    };
    static SEEN: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    let line = format!("{function} {service} {operation}\n");
    let mut seen = SEEN
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if seen.insert(line.clone()) {
        let appended = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut file| file.write_all(line.as_bytes()));
        if let Err(err) = appended {
            panic!("OPERATIONS_LOG {path:?}: {err}");
        }
    }
}

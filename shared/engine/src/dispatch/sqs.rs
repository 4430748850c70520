//! SQS dispatch for the Lambda functions: each task is one small JSON message (ids only;
//! payloads stay in the store, so no message ever nears SQS's 256 KB limit), sent with
//! `SendMessageBatch` in groups of ten. Delays use `DelaySeconds`, at most 15 minutes; a
//! longer wait arrives early and the executor sends it on for the time that remains.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use tracing::warn;
use wf_store::LazyClient;

use super::{Dispatcher, StepTask};
use crate::error::EngineError;

/// The longest delay SQS applies to one message.
pub const MAX_SQS_DELAY: Duration = Duration::from_secs(900);

/// Entries per `SendMessageBatch` request (the SQS maximum).
const BATCH: usize = 10;

/// How often entries SQS refused as transient are sent again before dispatch fails.
const RESENDS: u32 = 3;

/// Sends step tasks to one SQS queue.
#[derive(Debug, Clone)]
pub struct SqsDispatcher {
    client: LazyClient<Client>,
    queue_url: String,
}

impl SqsDispatcher {
    /// A dispatcher to the queue at `queue_url`. Build the client once per process.
    pub fn new(client: Client, queue_url: impl Into<String>) -> Self {
        Self {
            client: LazyClient::ready(client),
            queue_url: queue_url.into(),
        }
    }

    /// A dispatcher whose client is built on the first send
    /// ([`LazyClient::on_first_use`]): an invocation that dispatches nothing (most of
    /// `runs-api`'s) builds no SQS client at a cold start.
    pub fn with_lazy_client(client: LazyClient<Client>, queue_url: impl Into<String>) -> Self {
        Self {
            client,
            queue_url: queue_url.into(),
        }
    }

    /// The queue tasks go to.
    pub fn queue_url(&self) -> &str {
        &self.queue_url
    }

    async fn send_batch(&self, chunk: &[StepTask], delay_seconds: i32) -> Result<(), EngineError> {
        let mut pending: Vec<(String, String)> = chunk
            .iter()
            .enumerate()
            .map(|(i, task)| {
                serde_json::to_string(task)
                    .map(|body| (i.to_string(), body))
                    .map_err(|e| dispatch_error("a step task did not serialise", e))
            })
            .collect::<Result<_, _>>()?;
        let mut resends = 0;
        loop {
            let entries = pending
                .iter()
                .map(|(id, body)| {
                    SendMessageBatchRequestEntry::builder()
                        .id(id)
                        .message_body(body)
                        .delay_seconds(delay_seconds)
                        .build()
                        .map_err(|e| dispatch_error("a batch entry was incomplete", e))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let output = self
                .client
                .get()
                .send_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| dispatch_error("SendMessageBatch failed", e))?;
            let failed = output.failed();
            if failed.is_empty() {
                return Ok(());
            }
            if let Some(fatal) = failed.iter().find(|f| f.sender_fault()) {
                return Err(EngineError::Dispatch {
                    message: format!(
                        "SQS refused a step task: {} ({})",
                        fatal.message().unwrap_or("no message"),
                        fatal.code()
                    ),
                    source: None,
                });
            }
            resends += 1;
            if resends > RESENDS {
                return Err(EngineError::Dispatch {
                    message: format!(
                        "SQS kept failing {} step task(s) after {RESENDS} resends",
                        failed.len()
                    ),
                    source: None,
                });
            }
            warn!(
                failed = failed.len(),
                resends, "SQS failed part of a batch; sending those again"
            );
            let again: Vec<&str> = failed
                .iter()
                .map(aws_sdk_sqs::types::BatchResultErrorEntry::id)
                .collect();
            pending.retain(|(id, _)| again.contains(&id.as_str()));
        }
    }
}

fn dispatch_error(
    message: &str,
    source: impl std::error::Error + Send + Sync + 'static,
) -> EngineError {
    EngineError::Dispatch {
        message: format!("{message}: {source}"),
        source: Some(Box::new(source)),
    }
}

/// `DelaySeconds` for a delay: rounded up (never early by design), capped at 15 minutes.
fn delay_seconds(delay: Duration) -> i32 {
    let capped = delay.min(MAX_SQS_DELAY);
    let seconds = capped.as_secs() + u64::from(capped.subsec_nanos() > 0);
    i32::try_from(seconds.min(MAX_SQS_DELAY.as_secs())).unwrap_or(900)
}

#[async_trait]
impl Dispatcher for SqsDispatcher {
    async fn dispatch(&self, tasks: &[StepTask], delay: Duration) -> Result<(), EngineError> {
        let delay_seconds = delay_seconds(delay);
        for chunk in tasks.chunks(BATCH) {
            self.send_batch(chunk, delay_seconds).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_round_up_and_cap_at_fifteen_minutes() {
        assert_eq!(delay_seconds(Duration::ZERO), 0);
        assert_eq!(delay_seconds(Duration::from_millis(1)), 1);
        assert_eq!(delay_seconds(Duration::from_millis(1500)), 2);
        assert_eq!(delay_seconds(Duration::from_secs(899)), 899);
        assert_eq!(delay_seconds(Duration::from_secs(900)), 900);
        assert_eq!(delay_seconds(Duration::from_secs(86_400)), 900);
    }
}

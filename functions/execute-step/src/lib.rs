//! execute-step: runs step tasks delivered by SQS, and sweeps stranded steps when the
//! EventBridge schedule fires.
//!
//! - SQS batch: records run concurrently (at most [`CONCURRENCY`] at a time), each in its
//!   own span. A record that fails (malformed body, transient store or dispatch error, or
//!   too little time left to start it) is reported alone in `batchItemFailures`, so SQS
//!   redelivers only that message after its visibility timeout; after `maxReceiveCount`
//!   it lands in the dead-letter queue, never silently dropped.
//! - Chaining: when a step leaves exactly one successor ready and its timeout plus the
//!   executor's margin fits in the invocation's remaining time, it runs here without a
//!   queue hop.
//! - A step's commit is one transaction, so an invocation stopped by Lambda mid-step leaves
//!   either the whole commit or none of it; a lapsed lease is then taken over by the
//!   redelivered message or by the sweep.

use std::time::{Duration, SystemTime};

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use futures::StreamExt as _;
use lambda_runtime::LambdaEvent;
use serde_json::Value;
use tracing::{Instrument as _, error, info, info_span, warn};
use wf_engine::{EngineError, StepTask};
use wf_lambda::{ApiError, Deps};

/// Records of one batch executed at the same time.
pub const CONCURRENCY: usize = 4;

/// A record is started only if at least this much of the invocation is left; otherwise
/// it is handed back to SQS untouched.
pub const START_MARGIN: Duration = Duration::from_secs(10);

/// Ready or retrying steps untouched for this long count as lost dispatches in a sweep.
pub const SWEEP_STALE_AFTER: Duration = Duration::from_secs(300);

/// Handles an SQS batch or a scheduled sweep.
pub async fn handle(deps: &Deps, event: LambdaEvent<Value>) -> Result<Value, ApiError> {
    let deadline = deadline_of(&event.context);
    let payload = event.payload;
    let internal =
        |e: serde_json::Error| ApiError::new(500, "internal_error", format!("serialise: {e}"));
    if payload.get("Records").is_some() {
        let batch: SqsEvent = serde_json::from_value(payload).map_err(|e| {
            ApiError::field(
                400,
                "malformed_event",
                "Records",
                format!("not an SQS event: {e}"),
            )
        })?;
        let response = handle_batch(deps, batch, deadline).await;
        return serde_json::to_value(response).map_err(internal);
    }
    let detail_type = payload.get("detail-type").and_then(Value::as_str);
    if detail_type == Some("Scheduled Event") {
        let report = deps
            .executor
            .sweep(SWEEP_STALE_AFTER)
            .await
            .map_err(ApiError::from)?;
        info!(
            runs_checked = report.runs_checked,
            tasks_dispatched = report.tasks_dispatched,
            runs_finished = report.runs_finished,
            "sweep done"
        );
        return serde_json::to_value(report).map_err(internal);
    }
    Err(ApiError::new(
        400,
        "unsupported_event",
        "expected an SQS batch of step tasks or a scheduled sweep event",
    ))
}

/// Epoch milliseconds of 2001-09-09: Lambda's deadlines are epoch times far above this.
const PLAUSIBLE_EPOCH_MS: u64 = 1_000_000_000_000;

/// When this invocation must be done: Lambda's deadline (epoch milliseconds), or none
/// outside Lambda. Some emulators (`cargo lambda watch`) send the time budget itself rather
/// than an epoch time; a value too small to be an epoch time is read as that budget.
fn deadline_of(context: &lambda_runtime::Context) -> Option<SystemTime> {
    match context.deadline {
        0 => None,
        ms if ms < PLAUSIBLE_EPOCH_MS => Some(SystemTime::now() + Duration::from_millis(ms)),
        _ => Some(context.deadline()),
    }
}

/// Runs every record of the batch; answers with the ones to deliver again.
pub async fn handle_batch(
    deps: &Deps,
    batch: SqsEvent,
    deadline: Option<SystemTime>,
) -> SqsBatchResponse {
    let failures: Vec<BatchItemFailure> = futures::stream::iter(batch.records)
        .map(|record| {
            let id = record.message_id.clone().unwrap_or_default();
            let span = info_span!("record", message_id = %id);
            async move {
                match handle_record(deps, &record, deadline).await {
                    Ok(()) => None,
                    Err(reason) => {
                        warn!(message_id = %id, reason, "record handed back to SQS");
                        let mut failure = BatchItemFailure::default();
                        failure.item_identifier = id;
                        Some(failure)
                    }
                }
            }
            .instrument(span)
        })
        .buffer_unordered(CONCURRENCY)
        .filter_map(|failure| async move { failure })
        .collect()
        .await;
    let mut response = SqsBatchResponse::default();
    response.batch_item_failures = failures;
    response
}

async fn handle_record(
    deps: &Deps,
    record: &SqsMessage,
    deadline: Option<SystemTime>,
) -> Result<(), String> {
    let body = record.body.as_deref().unwrap_or_default();
    let task: StepTask = serde_json::from_str(body).map_err(|e| {
        error!(error = %e, "malformed step task; it will reach the dead-letter queue");
        format!("malformed step task: {e}")
    })?;
    let budget = deadline.map(|d| d.duration_since(SystemTime::now()).unwrap_or_default());
    if budget.is_some_and(|left| left < START_MARGIN) {
        return Err(format!(
            "too little time left to start the step ({} ms)",
            budget.unwrap_or_default().as_millis()
        ));
    }
    match deps.executor.execute(&task, budget).await {
        Ok(()) => Ok(()),
        // The run is gone (archived or deleted): no retry can help and nothing is lost.
        Err(EngineError::RunNotFound { run_id }) => {
            warn!(run_id = %run_id, "task for a run that no longer exists; dropped");
            Ok(())
        }
        Err(e) => Err(format!("{}: {e}", e.code())),
    }
}

//! execute-step: runs step tasks delivered by SQS, and sweeps stranded steps when the
//! EventBridge schedule fires.
//!
//! - Only SQS records (`eventSource` `aws:sqs`) and the sweep schedule are served; any other
//!   event is refused as a whole with `unsupported_event` ([`classify`]).
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
use wf_engine::{EngineError, StepTask, SweepCadence};
use wf_lambda::{ApiError, Deps, ErrorCode};

/// Records of one batch executed at the same time.
pub const CONCURRENCY: usize = 4;

/// A record is started only if at least this much of the invocation is left; otherwise
/// it is handed back to SQS untouched.
pub const START_MARGIN: Duration = Duration::from_secs(10);

/// Ready or retrying steps untouched for this long count as lost dispatches in a sweep.
pub const SWEEP_STALE_AFTER: Duration = Duration::from_secs(300);

/// The scheduled sweep looks at a young run every minute and at an old one (from about
/// two and a half hours) every 15 minutes, the interval at which a long sleep's message
/// hops anyway: a run that waits for days costs a read a quarter hour, not a minute.
pub const SWEEP_CADENCE: SweepCadence = SweepCadence {
    max_interval: Duration::from_secs(900),
};

/// The `eventSource` of every record SQS delivers.
pub const SQS_EVENT_SOURCE: &str = "aws:sqs";

/// What execute-step was sent, once checked.
#[derive(Debug)]
pub enum Delivery {
    /// A batch of step tasks from the step queue.
    Batch(SqsEvent),
    /// The EventBridge schedule that runs the sweep.
    Sweep,
}

/// Tells an SQS batch from the sweep schedule, and refuses anything else as a whole with
/// `unsupported_event`: a batch with one record from another source (S3, SNS, a DynamoDB
/// stream, ...) runs none of its records, since answering it per record would report empty
/// message ids, which fail a whole SQS batch and count as success on an asynchronous
/// invoke. `Records` that are SQS records but do not parse give `malformed_event`.
pub fn classify(payload: Value) -> Result<Delivery, ApiError> {
    if let Some(records) = payload.get("Records") {
        let records = records.as_array().ok_or_else(|| {
            ApiError::field(
                ErrorCode::MalformedEvent,
                "Records",
                "Records is not an array of SQS records",
            )
        })?;
        for (index, record) in records.iter().enumerate() {
            // SQS, S3 and DynamoDB streams write `eventSource`; SNS writes `EventSource`.
            let source = record
                .get("eventSource")
                .or_else(|| record.get("EventSource"))
                .and_then(Value::as_str);
            if source != Some(SQS_EVENT_SOURCE) {
                let shown =
                    source.map_or_else(|| "no eventSource".to_owned(), |s| format!("{s:?}"));
                return Err(ApiError::field(
                    ErrorCode::UnsupportedEvent,
                    format!("Records[{index}].eventSource"),
                    format!(
                        "record {index} comes from {shown}, not {SQS_EVENT_SOURCE:?}: execute-step \
                         only runs step tasks from its queue; no record of this event was run"
                    ),
                ));
            }
        }
        let batch: SqsEvent = serde_json::from_value(payload).map_err(|e| {
            ApiError::field(
                ErrorCode::MalformedEvent,
                "Records",
                format!("not an SQS event: {e}"),
            )
        })?;
        return Ok(Delivery::Batch(batch));
    }
    let detail_type = payload.get("detail-type").and_then(Value::as_str);
    let source = payload.get("source").and_then(Value::as_str);
    if detail_type == Some("Scheduled Event") && source == Some("aws.events") {
        return Ok(Delivery::Sweep);
    }
    Err(ApiError::new(
        ErrorCode::UnsupportedEvent,
        "expected an SQS batch of step tasks or the scheduled sweep event",
    ))
}

/// Handles an SQS batch or a scheduled sweep; refuses any other event as a whole with
/// `unsupported_event` (a Lambda error whose `errorType` is the code; see [`classify`]).
pub async fn handle(deps: &Deps, event: LambdaEvent<Value>) -> Result<Value, ApiError> {
    let deadline = deadline_of(&event.context);
    let internal =
        |e: serde_json::Error| ApiError::new(ErrorCode::InternalError, format!("serialise: {e}"));
    match classify(event.payload)? {
        Delivery::Batch(batch) => {
            let response = handle_batch(deps, batch, deadline).await;
            serde_json::to_value(response).map_err(internal)
        }
        Delivery::Sweep => {
            let report = deps
                .executor
                .sweep_at_cadence(SWEEP_STALE_AFTER, SWEEP_CADENCE)
                .await
                .map_err(ApiError::from)?;
            info!(
                runs_checked = report.runs_checked,
                runs_deferred = report.runs_deferred,
                tasks_dispatched = report.tasks_dispatched,
                runs_finished = report.runs_finished,
                "sweep done"
            );
            serde_json::to_value(report).map_err(internal)
        }
    }
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

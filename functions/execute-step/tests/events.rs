//! execute-step against every `events/execute-step-*.json` (with a real run's id in place
//! of the sample id), over SQLite in memory with a recording dispatcher standing in for
//! SQS: a run is driven to completion through SQS-shaped batches, bad records are
//! reported alone, the scheduled event sweeps, and S3, SNS and DynamoDB stream events are
//! refused as a whole.
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "tests: a failed expectation must panic"
)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use execute_step::handle;
use lambda_runtime::{Context, LambdaEvent};
use serde_json::{Value, json};
use wf_engine::{RecordingDispatcher, StartRequest};
use wf_lambda::Deps;
use wf_lambda::testing::{event, event_for_run, event_names};
use wf_store::{RunId, RunStatus, StoreError};

async fn invoke(deps: &Deps, payload: Value, context: Context) -> Value {
    handle(deps, LambdaEvent::new(payload, context))
        .await
        .unwrap()
}

/// A context whose deadline is `left` from now, as Lambda sets it.
fn context_with(left: Duration) -> Context {
    let mut context = Context::default();
    let deadline = SystemTime::now() + left;
    context.deadline =
        u64::try_from(deadline.duration_since(UNIX_EPOCH).unwrap().as_millis()).unwrap();
    context
}

async fn start_order(deps: &Deps) -> RunId {
    let request = StartRequest {
        workflow_id: "order-fulfilment".into(),
        input: event("start-run-direct")["input"].clone(),
        ..StartRequest::default()
    };
    deps.executor.start(request).await.unwrap().run.run_id
}

/// The tasks the dispatcher holds, as one SQS batch.
fn as_batch(dispatcher: &RecordingDispatcher) -> Option<Value> {
    let tasks = dispatcher.take();
    if tasks.is_empty() {
        return None;
    }
    let mut batch = event("execute-step-sqs");
    let template = batch["Records"][0].clone();
    batch["Records"] = tasks
        .iter()
        .enumerate()
        .map(|(i, (task, _))| {
            let mut record = template.clone();
            record["messageId"] = json!(format!("m-{i}"));
            record["body"] = json!(serde_json::to_string(task).unwrap());
            record
        })
        .collect();
    Some(batch)
}

#[tokio::test]
async fn sample_events_are_all_covered() {
    assert_eq!(
        event_names("execute-step"),
        [
            "execute-step-dynamodb-insert",
            "execute-step-s3-put",
            "execute-step-sns-notification",
            "execute-step-sqs",
            "execute-step-sqs-malformed",
            "execute-step-sqs-with-s3-record",
            "execute-step-sweep"
        ]
    );
}

#[tokio::test]
async fn a_run_completes_through_sqs_batches_with_no_failures() {
    let (deps, dispatcher) = Deps::in_memory();
    let run_id = start_order(&deps).await;
    let first = dispatcher.take();
    assert_eq!(first.len(), 1);
    // The shipped event, with this run's id: the first step's task.
    let mut batch = Some(event_for_run("execute-step-sqs", &run_id));
    let mut batches = 0;
    while let Some(payload) = batch {
        let response = invoke(&deps, payload, context_with(Duration::from_secs(300))).await;
        assert_eq!(response, json!({ "batchItemFailures": [] }));
        batches += 1;
        assert!(batches < 10, "the run should finish in a few batches");
        batch = as_batch(&dispatcher);
    }
    let run = deps.executor.store().get_run(&run_id).await.unwrap();
    assert_eq!(run.status, RunStatus::Completed, "{run:?}");
    assert_eq!(run.completed_steps, 4);
    // validate fans out to two parallel steps (one batch of two); the one that completes
    // the fan-in chains `ship` in the same invocation instead of a third batch.
    assert_eq!(batches, 2);
    let metrics = deps.metrics.lines();
    let completed = metrics
        .iter()
        .filter(|m| m["StepsCompleted"] == 1.0)
        .count();
    assert_eq!(completed, 4, "one StepsCompleted metric per step");
    assert_eq!(
        metrics.iter().filter(|m| m["RunsCompleted"] == 1.0).count(),
        1
    );
}

#[tokio::test]
async fn bad_records_are_reported_alone_and_the_rest_succeed() {
    let (deps, dispatcher) = Deps::in_memory();
    let run_id = start_order(&deps).await;
    let _ = dispatcher.take();
    let response = invoke(
        &deps,
        event_for_run("execute-step-sqs-malformed", &run_id),
        context_with(Duration::from_secs(300)),
    )
    .await;
    let failed: Vec<&str> = response["batchItemFailures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["itemIdentifier"].as_str().unwrap())
        .collect();
    let sample = event("execute-step-sqs-malformed");
    let ids: Vec<&str> = sample["Records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["messageId"].as_str().unwrap())
        .collect();
    let mut failed_sorted = failed.clone();
    failed_sorted.sort_unstable();
    assert_eq!(
        failed_sorted,
        [ids[1], ids[2]],
        "only the malformed records come back"
    );
    let validate = deps
        .executor
        .store()
        .get_step(&run_id, &"validate".parse().unwrap())
        .await
        .unwrap();
    assert_eq!(
        validate.status.to_string(),
        "COMPLETED",
        "the good record ran"
    );
}

/// The first step was never claimed: its claim would have created it.
async fn assert_never_claimed(deps: &Deps, run_id: &RunId) {
    let validate = deps
        .executor
        .store()
        .get_step(run_id, &"validate".parse().unwrap())
        .await;
    assert!(
        matches!(validate, Err(StoreError::NotFound { .. })),
        "never claimed: {validate:?}"
    );
}

#[tokio::test]
async fn with_too_little_time_left_every_record_goes_back_untouched() {
    let (deps, dispatcher) = Deps::in_memory();
    let run_id = start_order(&deps).await;
    let _ = dispatcher.take();
    let response = invoke(
        &deps,
        event_for_run("execute-step-sqs", &run_id),
        context_with(Duration::from_secs(2)),
    )
    .await;
    assert_eq!(response["batchItemFailures"].as_array().unwrap().len(), 1);
    assert_never_claimed(&deps, &run_id).await;
    assert!(dispatcher.take().is_empty());
}

#[tokio::test]
async fn a_task_for_a_run_that_is_gone_is_dropped_not_retried() {
    let (deps, _dispatcher) = Deps::in_memory();
    // The shipped event names a run that does not exist here.
    let response = invoke(&deps, event("execute-step-sqs"), Context::default()).await;
    assert_eq!(response, json!({ "batchItemFailures": [] }));
}

#[tokio::test]
async fn the_scheduled_event_sweeps_lost_dispatches() {
    let (deps, dispatcher) = Deps::in_memory();
    let run_id = start_order(&deps).await;
    // GIVEN the first task was lost (never delivered)
    let _ = dispatcher.take();
    // WHEN the sweep fires (the step is fresh, so it is not stale yet)
    let report = invoke(&deps, event("execute-step-sweep"), Context::default()).await;
    assert_eq!(report["runsChecked"], 1, "{report}");
    assert_eq!(
        report["runsDeferred"], 0,
        "a young run is looked at every minute: {report}"
    );
    assert_eq!(
        report["tasksDispatched"], 0,
        "a fresh step is not stale: {report}"
    );
    // THEN a sweep that treats everything as stale dispatches it again
    let report = deps.executor.sweep(Duration::ZERO).await.unwrap();
    assert_eq!(report.tasks_dispatched, 1);
    let tasks = dispatcher.take();
    assert_eq!(tasks[0].0.run_id, run_id);
}

#[tokio::test]
async fn events_from_other_sources_are_refused_as_a_whole_and_run_nothing() {
    let (deps, dispatcher) = Deps::in_memory();
    let run_id = start_order(&deps).await;
    let _ = dispatcher.take();
    let mut sweep_from_elsewhere = event("execute-step-sweep");
    sweep_from_elsewhere["source"] = json!("my.app");
    let mut records_not_a_list = event("execute-step-sqs");
    records_not_a_list["Records"] = json!({ "eventSource": "aws:sqs" });
    let mut sqs_record_of_the_wrong_shape = event_for_run("execute-step-sqs", &run_id);
    sqs_record_of_the_wrong_shape["Records"][0]["body"] = json!(42);
    // (sample or payload, error code, field)
    let cases: Vec<(&str, Value, &str, Option<&str>)> = vec![
        (
            "execute-step-s3-put",
            event_for_run("execute-step-s3-put", &run_id),
            "unsupported_event",
            Some("Records[0].eventSource"),
        ),
        (
            "execute-step-sns-notification",
            event_for_run("execute-step-sns-notification", &run_id),
            "unsupported_event",
            Some("Records[0].eventSource"),
        ),
        (
            "execute-step-dynamodb-insert",
            event_for_run("execute-step-dynamodb-insert", &run_id),
            "unsupported_event",
            Some("Records[0].eventSource"),
        ),
        (
            "execute-step-sqs-with-s3-record (the SQS record does not run either)",
            event_for_run("execute-step-sqs-with-s3-record", &run_id),
            "unsupported_event",
            Some("Records[1].eventSource"),
        ),
        (
            "a JSON object of no known source",
            json!({ "hello": "world" }),
            "unsupported_event",
            None,
        ),
        (
            "a Scheduled Event not from aws.events",
            sweep_from_elsewhere,
            "unsupported_event",
            None,
        ),
        (
            "Records that are not an array",
            records_not_a_list,
            "malformed_event",
            Some("Records"),
        ),
        (
            "an SQS record whose body is not a string",
            sqs_record_of_the_wrong_shape,
            "malformed_event",
            Some("Records"),
        ),
    ];
    for (name, payload, code, field) in cases {
        let error = handle(
            &deps,
            LambdaEvent::new(payload, context_with(Duration::from_secs(300))),
        )
        .await
        .unwrap_err();
        assert_eq!(error.code, code, "{name}: {error}");
        assert_eq!(error.field.as_deref(), field, "{name}: {error}");
        assert!(!error.message.is_empty(), "{name}");
        let diagnostic = lambda_runtime::Diagnostic::from(error);
        assert_eq!(diagnostic.error_type, code, "{name}: the Lambda error type");
    }
    // Nothing ran: the first step was never claimed and nothing was dispatched.
    assert_never_claimed(&deps, &run_id).await;
    assert!(dispatcher.take().is_empty());
}

#[tokio::test]
async fn an_emulator_budget_in_place_of_an_epoch_deadline_still_runs_the_step() {
    // cargo lambda watch sends the time budget (here 600 s) instead of an epoch deadline.
    let (deps, dispatcher) = Deps::in_memory();
    let run_id = start_order(&deps).await;
    let _ = dispatcher.take();
    let mut context = Context::default();
    context.deadline = 600_000;
    let response = invoke(&deps, event_for_run("execute-step-sqs", &run_id), context).await;
    assert_eq!(response, json!({ "batchItemFailures": [] }));
    assert_eq!(dispatcher.take().len(), 2, "validate ran and fanned out");
}

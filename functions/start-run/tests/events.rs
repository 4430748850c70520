//! start-run against every `events/start-run-*.json`, exactly as shipped, over SQLite in
//! memory with a recording dispatcher; and a table of bad requests, none of which writes
//! anything.
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "tests: a failed expectation must panic"
)]

use lambda_runtime::{Context, LambdaEvent};
use serde_json::{Value, json};
use start_run::handle;
use wf_lambda::Deps;
use wf_lambda::testing::{event, event_names};
use wf_store::{RunQuery, RunStatus};

async fn invoke(deps: &Deps, payload: Value) -> Result<Value, wf_lambda::ApiError> {
    handle(deps, LambdaEvent::new(payload, Context::default())).await
}

fn body(response: &Value) -> Value {
    serde_json::from_str(response["body"].as_str().unwrap()).unwrap()
}

async fn run_count(deps: &Deps) -> usize {
    deps.executor
        .store()
        .list_runs(&RunQuery::default())
        .await
        .unwrap()
        .items
        .len()
}

#[tokio::test]
async fn every_start_run_event_gives_its_documented_answer() {
    // (event, HTTP status or None for a non-HTTP trigger, error code, field)
    type Expected<'a> = (&'a str, Option<i64>, Option<&'a str>, Option<&'a str>);
    let expected: Vec<Expected> = vec![
        ("start-run-direct", None, None, None),
        ("start-run-eventbridge", None, None, None),
        ("start-run-http", Some(201), None, None),
        ("start-run-http-idempotent", Some(201), None, None),
        (
            "start-run-http-invalid-input",
            Some(422),
            Some("invalid_input"),
            Some("input.lines[0].quantity"),
        ),
        (
            "start-run-http-malformed-json",
            Some(400),
            Some("malformed_json"),
            Some("body"),
        ),
        (
            "start-run-http-unknown-workflow",
            Some(404),
            Some("unknown_workflow"),
            Some("workflowId"),
        ),
    ];
    let names: Vec<&str> = expected.iter().map(|(n, ..)| *n).collect();
    assert_eq!(
        event_names("start-run"),
        names,
        "every sample event is covered"
    );
    for (name, status, code, field) in expected {
        let (deps, dispatcher) = Deps::in_memory();
        let response = invoke(&deps, event(name)).await.unwrap();
        let written = run_count(&deps).await;
        match status {
            None => {
                assert_eq!(response["status"], "RUNNING", "{name}: {response}");
                assert_eq!(response["workflowId"], "order-fulfilment");
                assert_eq!(written, 1, "{name}");
                let tasks = dispatcher.take();
                assert_eq!(tasks.len(), 1, "{name}: the first step is dispatched");
                assert_eq!(tasks[0].0.step_id.as_str(), "validate");
            }
            Some(201) => {
                assert_eq!(response["statusCode"], 201, "{name}: {response}");
                let run = body(&response);
                let run_id = run["runId"].as_str().unwrap();
                assert_eq!(response["headers"]["location"], format!("/runs/{run_id}"));
                assert_eq!(run["links"]["steps"], format!("/runs/{run_id}/steps"));
                assert_eq!(run["replayed"], false);
                assert_eq!(written, 1);
            }
            Some(status) => {
                assert_eq!(response["statusCode"], status, "{name}: {response}");
                assert_eq!(
                    response["headers"]["content-type"],
                    "application/problem+json"
                );
                let problem = body(&response);
                assert_eq!(problem["code"], code.unwrap(), "{name}: {problem}");
                assert_eq!(problem["field"], field.unwrap(), "{name}: {problem}");
                assert!(!problem["message"].as_str().unwrap().is_empty());
                assert_eq!(written, 0, "{name}: nothing is written");
                assert!(
                    dispatcher.take().is_empty(),
                    "{name}: nothing is dispatched"
                );
            }
        }
    }
}

#[tokio::test]
async fn an_idempotency_key_replays_the_same_run_with_200() {
    let (deps, dispatcher) = Deps::in_memory();
    let first = invoke(&deps, event("start-run-http-idempotent"))
        .await
        .unwrap();
    let again = invoke(&deps, event("start-run-http-idempotent"))
        .await
        .unwrap();
    assert_eq!(
        (first["statusCode"].clone(), again["statusCode"].clone()),
        (json!(201), json!(200))
    );
    assert_eq!(body(&first)["runId"], body(&again)["runId"]);
    assert_eq!(body(&again)["replayed"], true);
    assert_eq!(run_count(&deps).await, 1);
    // The same key with another input is a conflict that names the key.
    let mut other = event("start-run-http-idempotent");
    let mut request = body(&other);
    request["input"]["customer"] = json!("someone-else@example.com");
    other["body"] = json!(request.to_string());
    let conflict = invoke(&deps, other).await.unwrap();
    assert_eq!(conflict["statusCode"], 409);
    assert_eq!(body(&conflict)["code"], "idempotency_conflict");
    assert_eq!(body(&conflict)["field"], "idempotencyKey");
    // EventBridge redelivers: its idempotency key makes that harmless.
    let delivered = invoke(&deps, event("start-run-eventbridge")).await.unwrap();
    let redelivered = invoke(&deps, event("start-run-eventbridge")).await.unwrap();
    assert_eq!(delivered["runId"], redelivered["runId"]);
    assert_eq!(redelivered["replayed"], true);
    assert_eq!(run_count(&deps).await, 2);
    let _ = dispatcher.take();
}

#[tokio::test]
async fn bad_direct_invokes_fail_with_a_code_and_the_field_and_write_nothing() {
    let order = event("start-run-direct")["input"].clone();
    let mut big_order = order.clone();
    big_order["customer"] = json!("x".repeat(wf_payloads::MAX_PAYLOAD_BYTES + 1));
    let many_tags: serde_json::Map<String, Value> =
        (0..51).map(|i| (format!("t{i}"), json!("v"))).collect();
    let cases: Vec<(Value, &str, &str)> = vec![
        (json!("just a string"), "invalid_request", "body"),
        (json!({ "input": order }), "invalid_request", "workflowId"),
        (
            json!({ "workflowId": 7, "input": order }),
            "invalid_request",
            "workflowId",
        ),
        (
            json!({ "workflowId": " ", "input": order }),
            "invalid_request",
            "workflowId",
        ),
        (
            json!({ "workflowId": "order-fulfilment", "input": order, "colour": "red" }),
            "invalid_request",
            "colour",
        ),
        (
            json!({ "workflowId": "order-fulfilment", "input": order, "tags": { "env": 1 } }),
            "invalid_request",
            "tags.env",
        ),
        (
            json!({ "workflowId": "order-fulfilment", "input": order, "tags": many_tags }),
            "invalid_request",
            "tags",
        ),
        (
            json!({ "workflowId": "order-fulfilment", "input": order, "resourceId": "" }),
            "invalid_request",
            "resourceId",
        ),
        (
            json!({ "workflowId": "order-fulfilment", "input": order, "retentionDays": 0 }),
            "invalid_request",
            "retentionDays",
        ),
        (
            json!({ "workflowId": "order-fulfilment", "input": order, "retentionDays": -3 }),
            "invalid_request",
            "retentionDays",
        ),
        (
            json!({ "workflowId": "order-fulfilment", "input": order, "idempotencyKey": "" }),
            // The store refuses the key: a 400 about the request, not the input's 422.
            "invalid_request",
            "idempotencyKey",
        ),
        (
            json!({ "workflowId": "order-fulfilment", "input": big_order }),
            "too_large",
            "input",
        ),
        (
            json!({ "workflowId": "order-fulfilment" }),
            "invalid_input",
            "input",
        ),
        (
            json!({ "workflowId": "order-fulfilment", "input": { "orderId": "o" } }),
            "invalid_input",
            "input",
        ),
        (
            json!({ "workflowId": "nope", "input": {} }),
            "unknown_workflow",
            "workflowId",
        ),
    ];
    let (deps, dispatcher) = Deps::in_memory();
    for (payload, code, field) in cases {
        let error = invoke(&deps, payload.clone()).await.unwrap_err();
        let shown: String = payload.to_string().chars().take(200).collect();
        assert_eq!(error.code, code, "{shown}: {error}");
        assert_eq!(error.field.as_deref(), Some(field), "{shown}: {error}");
        assert!(
            error.status() >= 400 && error.status() < 500,
            "{shown}: {error}"
        );
        let diagnostic = lambda_runtime::Diagnostic::from(error);
        assert_eq!(
            diagnostic.error_type, code,
            "the Lambda error type is the code"
        );
    }
    assert_eq!(run_count(&deps).await, 0, "nothing partial is written");
    assert!(dispatcher.take().is_empty());
    let mut wrong = event("start-run-eventbridge");
    wrong["detail-type"] = json!("Something Else");
    let error = invoke(&deps, wrong).await.unwrap_err();
    assert_eq!(
        (error.code.as_str(), error.field.as_deref()),
        ("unsupported_event", Some("detail-type"))
    );
}

#[tokio::test]
async fn a_started_run_is_visible_with_its_labels_and_counts_a_metric() {
    let (deps, _dispatcher) = Deps::in_memory();
    let response = invoke(&deps, event("start-run-http")).await.unwrap();
    let run_id = body(&response)["runId"].as_str().unwrap().parse().unwrap();
    let run = deps.executor.store().get_run(&run_id).await.unwrap();
    assert_eq!(
        run.status,
        RunStatus::Running,
        "a run is running once accepted"
    );
    assert_eq!(run.resource_id.as_deref(), Some("ord-1001"));
    assert_eq!(run.tags.get("channel").map(String::as_str), Some("web"));
    let metrics = deps.metrics.lines();
    assert_eq!(metrics.len(), 1);
    assert_eq!(metrics[0]["RunsStarted"], 1.0);
    assert_eq!(metrics[0]["runId"], run_id.to_string());
}

#[tokio::test]
async fn an_input_over_350_kb_is_accepted_and_read_back_whole() {
    let (deps, _dispatcher) = Deps::in_memory();
    let mut start = event("start-run-direct");
    // 2 MB of customer name: far over an item's 400 KB, under the 10 MiB limit.
    start["input"]["customer"] = json!("y".repeat(2_000_000));
    let started = invoke(&deps, start.clone()).await.unwrap();
    let run_id = started["runId"].as_str().unwrap().parse().unwrap();
    let run = deps.executor.store().get_run(&run_id).await.unwrap();
    assert_eq!(run.input, start["input"]);
}

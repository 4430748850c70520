//! runs-api against every `events/runs-api-*.json` (with a real run's id in place of the
//! sample id), over SQLite in memory, and a table of bad requests that each name the
//! parameter at fault.
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::too_many_lines,
    reason = "tests: a failed expectation must panic"
)]

use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use lambda_runtime::{Context, LambdaEvent};
use runs_api::handle;
use serde_json::{Value, json};
use wf_engine::StartRequest;
use wf_lambda::Deps;
use wf_lambda::testing::{drive, event, event_for_run, event_names};
use wf_store::RunId;

async fn call(deps: &Deps, payload: Value) -> (i64, Value) {
    let request: ApiGatewayV2httpRequest = serde_json::from_value(payload).unwrap();
    let response = handle(deps, LambdaEvent::new(request, Context::default()))
        .await
        .unwrap();
    let body = match response.body {
        Some(aws_lambda_events::encodings::Body::Text(text)) => {
            serde_json::from_str(&text).unwrap()
        }
        other => panic!("expected a text body, got {other:?}"),
    };
    (response.status_code, body)
}

async fn start(deps: &Deps, workflow: &str, input: Value) -> RunId {
    let request = StartRequest {
        workflow_id: workflow.into(),
        input,
        ..StartRequest::default()
    };
    deps.executor.start(request).await.unwrap().run.run_id
}

fn order(card: &str) -> Value {
    let mut input = event("start-run-direct")["input"].clone();
    input["card"] = json!(card);
    input
}

#[tokio::test]
async fn every_runs_api_event_gives_its_documented_answer() {
    let names = event_names("runs-api");
    assert_eq!(names.len(), 9, "each is exercised below: {names:?}");
    let (deps, dispatcher) = Deps::in_memory();
    // A completed order, a failed order and an approval parked on its signal.
    let completed = start(&deps, "order-fulfilment", order("4242-4242")).await;
    drive(&deps, &dispatcher, 50).await;
    let failed = start(&deps, "order-fulfilment", order("declined")).await;
    drive(&deps, &dispatcher, 50).await;
    let approval = start(
        &deps,
        "approval",
        json!({ "subject": "laptop", "requester": "grace@example.com", "amountCents": 189_900 }),
    )
    .await;
    drive(&deps, &dispatcher, 50).await;

    let (status, run) = call(&deps, event_for_run("runs-api-get-run", &completed)).await;
    assert_eq!(
        (status, run["status"].clone()),
        (200, json!("COMPLETED")),
        "{run}"
    );
    assert_eq!(run["runId"], completed.to_string());

    let (status, problem) = call(&deps, event("runs-api-get-run-unknown")).await;
    assert_eq!(status, 404);
    assert_eq!(
        (problem["code"].clone(), problem["field"].clone()),
        (json!("run_not_found"), json!("runId"))
    );

    let (status, page) = call(&deps, event("runs-api-list-runs")).await;
    assert_eq!(status, 200, "{page}");
    let ids: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["runId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [completed.to_string()], "only COMPLETED order runs");
    assert!(page["nextCursor"].is_null());

    let (status, problem) = call(&deps, event("runs-api-list-runs-bad-limit")).await;
    assert_eq!(
        (status, problem["field"].clone()),
        (400, json!("limit")),
        "{problem}"
    );

    let (status, steps) = call(&deps, event_for_run("runs-api-list-steps", &completed)).await;
    assert_eq!(status, 200);
    assert_eq!(steps["items"].as_array().unwrap().len(), 4);

    let (status, woke) = call(&deps, event_for_run("runs-api-signal", &approval)).await;
    assert_eq!(status, 202, "{woke}");
    assert_eq!(woke["stepsWoken"], 1);

    let (status, problem) = call(&deps, event_for_run("runs-api-redrive", &completed)).await;
    assert_eq!(
        (status, problem["code"].clone()),
        (409, json!("invalid_state")),
        "only failed runs redrive"
    );
    let (status, redriven) = call(&deps, event_for_run("runs-api-redrive", &failed)).await;
    assert_eq!(status, 200, "{redriven}");
    assert_eq!(redriven["status"], "RUNNING");

    let (status, cancelled) = call(&deps, event_for_run("runs-api-cancel", &approval)).await;
    assert_eq!(
        (status, cancelled["status"].clone()),
        (200, json!("CANCELLED")),
        "{cancelled}"
    );
    assert_eq!(cancelled["error"]["message"], "customer asked");
    let (status, problem) = call(&deps, event_for_run("runs-api-cancel", &approval)).await;
    assert_eq!(
        (status, problem["code"].clone()),
        (409, json!("invalid_state"))
    );

    let (status, workflows) = call(&deps, event("runs-api-list-workflows")).await;
    assert_eq!(status, 200);
    assert_eq!(workflows["workflows"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn bad_requests_name_the_parameter_and_change_nothing() {
    let (deps, dispatcher) = Deps::in_memory();
    let run_id = start(&deps, "order-fulfilment", order("4242-4242")).await;
    let _ = dispatcher.take();
    let before = deps.executor.store().get_run(&run_id).await.unwrap();
    let list = |query: Value| {
        let mut e = event("runs-api-list-runs");
        e["queryStringParameters"] = query;
        e
    };
    let at = |method: &str, path: &str, body: Option<&str>| {
        let mut e = event("runs-api-list-workflows");
        e["rawPath"] = json!(path);
        e["requestContext"]["http"]["method"] = json!(method);
        e["requestContext"]["http"]["path"] = json!(path);
        e["body"] = body.map_or(Value::Null, |b| json!(b));
        e
    };
    let id = run_id.to_string();
    let cases: Vec<(Value, i64, &str, Option<&str>)> = vec![
        (
            list(json!({ "status": "DONE" })),
            400,
            "invalid_parameter",
            Some("status"),
        ),
        (
            list(json!({ "limit": "0" })),
            400,
            "invalid_parameter",
            Some("limit"),
        ),
        (
            list(json!({ "limit": "ten" })),
            400,
            "invalid_parameter",
            Some("limit"),
        ),
        (
            list(json!({ "from": "yesterday" })),
            400,
            "invalid_parameter",
            Some("from"),
        ),
        (
            list(json!({ "to": "2026-13-01T00:00:00Z" })),
            400,
            "invalid_parameter",
            Some("to"),
        ),
        (
            list(json!({ "from": "2026-12-02T00:00:00Z", "to": "2026-12-01T00:00:00Z" })),
            400,
            "invalid_parameter",
            Some("from"),
        ),
        (
            list(json!({ "tag": "novalue" })),
            400,
            "invalid_parameter",
            Some("tag"),
        ),
        (
            list(json!({ "workflowId": "a#b" })),
            400,
            "invalid_parameter",
            Some("workflowId"),
        ),
        (
            list(json!({ "cursor": "not-a-cursor" })),
            400,
            "invalid_cursor",
            Some("cursor"),
        ),
        (
            at("GET", "/runs/not-a-ulid", None),
            400,
            "invalid_parameter",
            Some("runId"),
        ),
        (
            at("GET", "/runs/not-a-ulid/steps", None),
            400,
            "invalid_parameter",
            Some("runId"),
        ),
        (
            at("POST", &format!("/runs/{id}/cancel"), Some("{")),
            400,
            "malformed_json",
            Some("body"),
        ),
        (
            at(
                "POST",
                &format!("/runs/{id}/cancel"),
                Some(r#"{"why": "x"}"#),
            ),
            400,
            "invalid_request",
            Some("why"),
        ),
        (
            at(
                "POST",
                &format!("/runs/{id}/signals/approved"),
                Some("{oops"),
            ),
            400,
            "malformed_json",
            Some("body"),
        ),
        (
            at("DELETE", &format!("/runs/{id}"), None),
            405,
            "method_not_allowed",
            None,
        ),
        (
            at("GET", &format!("/runs/{id}/cancel"), None),
            405,
            "method_not_allowed",
            None,
        ),
        (at("GET", "/nowhere", None), 404, "route_not_found", None),
        // order-fulfilment never waits for a signal: any name is refused, none stored.
        (
            at(
                "POST",
                &format!("/runs/{id}/signals/approved"),
                Some(r#"{"approved": true}"#),
            ),
            422,
            "unknown_signal",
            Some("name"),
        ),
        (
            at("POST", "/runs/01JDXQ3M8Z6F00000000000000/cancel", None),
            404,
            "run_not_found",
            None,
        ),
    ];
    for (request, status, code, field) in cases {
        let shown = format!(
            "{} {} {}",
            request["requestContext"]["http"]["method"],
            request["rawPath"],
            request["queryStringParameters"]
        );
        let (got, problem) = call(&deps, request).await;
        assert_eq!(got, status, "{shown}: {problem}");
        assert_eq!(problem["code"], code, "{shown}: {problem}");
        if let Some(field) = field {
            assert_eq!(problem["field"], field, "{shown}: {problem}");
        }
        assert!(!problem["message"].as_str().unwrap().is_empty());
    }
    let after = deps.executor.store().get_run(&run_id).await.unwrap();
    assert_eq!(before, after, "no bad request changed the run");
    let state = deps.executor.store().all_state(&run_id).await.unwrap();
    assert!(state.is_empty(), "no bad request stored state: {state:?}");
}

#[tokio::test]
async fn listing_pages_with_a_cursor_and_filters_by_tag_and_time() {
    let (deps, _dispatcher) = Deps::in_memory();
    for _ in 0..3 {
        start(&deps, "order-fulfilment", order("4242-4242")).await;
    }
    let mut request = event("runs-api-list-runs");
    request["queryStringParameters"] = json!({ "limit": "2", "from": "2020-01-01T00:00:00Z" });
    let (status, first) = call(&deps, request.clone()).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["items"].as_array().unwrap().len(), 2);
    let cursor = first["nextCursor"].as_str().unwrap().to_owned();
    request["queryStringParameters"]["cursor"] = json!(cursor);
    let (_, second) = call(&deps, request).await;
    assert_eq!(second["items"].as_array().unwrap().len(), 1);
    assert!(second["nextCursor"].is_null());
    let mut tagged = event("runs-api-list-runs");
    tagged["queryStringParameters"] = json!({ "tag": "env:prod" });
    let (_, none) = call(&deps, tagged).await;
    assert_eq!(none["items"], json!([]));
}

#[tokio::test]
async fn forged_cursors_are_400_invalid_cursor_and_the_genuine_one_resumes() {
    let (deps, _dispatcher) = Deps::in_memory();
    for _ in 0..3 {
        start(&deps, "order-fulfilment", order("4242-4242")).await;
    }
    let mut request = event("runs-api-list-runs");
    request["queryStringParameters"] = json!({ "workflowId": "order-fulfilment", "limit": "2" });
    let (_, first) = call(&deps, request.clone()).await;
    let genuine = first["nextCursor"].as_str().unwrap().to_owned();
    let flipped = {
        use base64::Engine as _;
        let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let mut bytes = engine.decode(&genuine).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        engine.encode(bytes)
    };
    let foreign = {
        // A deployment with its own CURSOR_KEY, over the same runs.
        let store = wf_store::SqliteStore::in_memory(wf_store::Retention::default())
            .unwrap()
            .with_cursor_key(wf_store::CursorKey::derive(b"another deployment's key").unwrap());
        for run in deps
            .executor
            .store()
            .list_runs(&wf_store::RunQuery::default())
            .await
            .unwrap()
            .items
        {
            let record = deps.executor.store().export_run(&run.run_id).await.unwrap();
            wf_store::Store::import_run(&store, &record).await.unwrap();
        }
        let query = wf_store::RunQuery {
            workflow_id: Some("order-fulfilment".parse().unwrap()),
            limit: 2,
            ..wf_store::RunQuery::default()
        };
        let page = wf_store::Store::list_runs(&store, &query).await.unwrap();
        page.next.unwrap().as_str().to_owned()
    };
    // (case, query parameters)
    let cases = [
        (
            "one bit flipped",
            json!({ "workflowId": "order-fulfilment", "limit": "2", "cursor": flipped }),
        ),
        (
            "truncated",
            json!({ "workflowId": "order-fulfilment", "limit": "2", "cursor": genuine[..genuine.len() - 3] }),
        ),
        (
            "issued by another deployment",
            json!({ "workflowId": "order-fulfilment", "limit": "2", "cursor": foreign }),
        ),
        (
            "another query's filters",
            json!({ "workflowId": "approval", "limit": "2", "cursor": genuine }),
        ),
        (
            "another status partition",
            json!({ "workflowId": "order-fulfilment", "status": "PENDING", "limit": "2", "cursor": genuine }),
        ),
    ];
    for (name, query) in cases {
        let mut forged = request.clone();
        forged["queryStringParameters"] = query;
        let (status, problem) = call(&deps, forged).await;
        assert_eq!(status, 400, "{name}: {problem}");
        assert_eq!(problem["code"], "invalid_cursor", "{name}: {problem}");
        assert_eq!(problem["field"], "cursor", "{name}: {problem}");
    }
    request["queryStringParameters"]["cursor"] = json!(genuine);
    let (status, second) = call(&deps, request).await;
    assert_eq!(status, 200, "{second}");
    let ids = |page: &Value| -> Vec<String> {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["runId"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(ids(&second).len(), 1);
    assert!(!ids(&first).contains(&ids(&second)[0]));
}

#[tokio::test]
async fn a_signal_payload_over_10_mib_is_413_and_one_over_350_kb_wakes_the_run() {
    let (deps, dispatcher) = Deps::in_memory();
    let approval = start(
        &deps,
        "approval",
        json!({ "subject": "laptop", "requester": "grace@example.com", "amountCents": 189_900 }),
    )
    .await;
    drive(&deps, &dispatcher, 50).await;
    let signal = |approver: String| {
        let mut e = event_for_run("runs-api-signal", &approval);
        e["body"] = json!(json!({ "approver": approver, "approved": true }).to_string());
        e
    };
    let before = deps.executor.store().all_state(&approval).await.unwrap();
    let (status, problem) = call(&deps, signal("x".repeat(10 * 1024 * 1024))).await;
    assert_eq!(
        (status, problem["code"].clone(), problem["field"].clone()),
        (413, json!("too_large"), json!("body")),
        "{problem}"
    );
    let after = deps.executor.store().all_state(&approval).await.unwrap();
    assert_eq!(after, before, "nothing is stored");
    let big = "y".repeat(2_000_000);
    let (status, woke) = call(&deps, signal(big.clone())).await;
    assert_eq!((status, woke["stepsWoken"].clone()), (202, json!(1)));
    let state = deps.executor.store().all_state(&approval).await.unwrap();
    assert!(state.iter().any(|e| e.value["approver"] == json!(big)));
}

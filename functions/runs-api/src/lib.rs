//! runs-api: reading and steering runs over the HTTP API (payload format 2.0).
//!
//! | route | answer |
//! |---|---|
//! | `GET /runs/{runId}` | the run |
//! | `GET /runs?workflowId&status&resourceId&tag=k:v&from&to&limit&cursor` | a page of runs, newest first, and `nextCursor` |
//! | `GET /runs/{runId}/steps` | the run's step executions |
//! | `POST /runs/{runId}/cancel` (`{"reason"}` optional) | the cancelled run |
//! | `POST /runs/{runId}/signals/{name}` (body: the payload) | 202, how many steps woke |
//! | `POST /runs/{runId}/redrive` | the redriven run |
//! | `GET /workflows` | the workflows this deployment runs |
//!
//! Unknown runs give 404 `run_not_found`; a malformed id or query value gives 400 naming
//! the parameter; a cursor this deployment did not issue for the same filters gives 400
//! `invalid_cursor`; an action that does not fit the run's status gives 409 `invalid_state`.
//! Every code is a [`wf_lambda::ErrorCode`].
//! Routing reads the method and the raw path, so it works behind the HTTP API's routes, a
//! `$default` route, a named stage or `cargo lambda watch` alike.

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use chrono::{DateTime, Utc};
use lambda_runtime::LambdaEvent;
use serde::Deserialize;
use serde_json::{Value, json};
use wf_lambda::{
    ApiError, Deps, ErrorCode, json_body, json_response, problem_response, query_param,
};
use wf_store::{Cursor, MAX_PAGE_SIZE, RunId, RunQuery, RunStatus, WorkflowId};

/// Handles one HTTP API request; every outcome is a response.
pub async fn handle(
    deps: &Deps,
    event: LambdaEvent<ApiGatewayV2httpRequest>,
) -> Result<ApiGatewayV2httpResponse, std::convert::Infallible> {
    let request = event.payload;
    Ok(match route(deps, &request).await {
        Ok((status, body)) => json_response(status, &body),
        Err(error) => problem_response(&error),
    })
}

/// The path's segments, without the stage prefix a named stage adds.
fn segments(request: &ApiGatewayV2httpRequest) -> Vec<&str> {
    let path = request
        .raw_path
        .as_deref()
        .or(request.request_context.http.path.as_deref())
        .unwrap_or("/");
    let mut parts: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let stage = request
        .request_context
        .stage
        .as_deref()
        .unwrap_or("$default");
    if stage != "$default" && parts.first() == Some(&stage) {
        parts.remove(0);
    }
    parts
}

async fn route(deps: &Deps, request: &ApiGatewayV2httpRequest) -> Result<(u16, Value), ApiError> {
    let method = request.request_context.http.method.as_str();
    let segments = segments(request);
    match (method, segments.as_slice()) {
        ("GET", ["workflows"]) => Ok((200, json!({ "workflows": deps.executor.workflows_json() }))),
        ("GET", ["runs"]) => list_runs(deps, request).await,
        ("GET", ["runs", id]) => {
            let run = deps.executor.store().get_run(&run_id(id)?).await;
            Ok((200, json!(run.map_err(not_found)?)))
        }
        ("GET", ["runs", id, "steps"]) => {
            let run_id = run_id(id)?;
            deps.executor
                .store()
                .get_run(&run_id)
                .await
                .map_err(not_found)?;
            let steps = deps.executor.store().list_steps(&run_id).await?;
            Ok((200, json!({ "runId": run_id, "items": steps })))
        }
        ("POST", ["runs", id, "cancel"]) => {
            #[derive(Deserialize)]
            #[serde(deny_unknown_fields)]
            struct Cancel {
                reason: Option<String>,
            }
            let run_id = run_id(id)?;
            let body: Option<Cancel> = json_body(request)?;
            let reason = body
                .and_then(|b| b.reason)
                .unwrap_or_else(|| "cancelled through the API".to_owned());
            let run = deps.executor.cancel(&run_id, &reason).await?;
            Ok((200, json!(run)))
        }
        ("POST", ["runs", id, "signals", name]) => {
            let run_id = run_id(id)?;
            let payload: Value = json_body(request)?;
            let woken = deps
                .executor
                .signal(&run_id, name, &payload)
                .await
                .map_err(|e| {
                    // The payload is the request body (the store calls it a state value).
                    let mut error = ApiError::from(e);
                    if error.code == ErrorCode::TooLarge {
                        error.field = Some("body".to_owned());
                    }
                    error
                })?;
            Ok((
                202,
                json!({ "runId": run_id, "signal": name, "accepted": true, "stepsWoken": woken }),
            ))
        }
        ("POST", ["runs", id, "redrive"]) => {
            let run = deps.executor.redrive(&run_id(id)?).await?;
            Ok((200, json!(run)))
        }
        (
            _,
            ["workflows" | "runs"]
            | ["runs", _]
            | ["runs", _, "steps" | "cancel" | "redrive"]
            | ["runs", _, "signals", _],
        ) => Err(ApiError::new(
            ErrorCode::MethodNotAllowed,
            format!(
                "{method} is not allowed on {}",
                request.raw_path.as_deref().unwrap_or("/")
            ),
        )),
        _ => Err(ApiError::new(
            ErrorCode::RouteNotFound,
            format!(
                "no route for {method} {}",
                request.raw_path.as_deref().unwrap_or("/")
            ),
        )),
    }
}

fn run_id(raw: &str) -> Result<RunId, ApiError> {
    RunId::parse(raw).map_err(|_| {
        ApiError::field(
            ErrorCode::InvalidParameter,
            "runId",
            format!("runId {raw:?} is not a run id (a 26-character ULID)"),
        )
    })
}

/// A missing run as the API's 404.
fn not_found(error: wf_store::StoreError) -> ApiError {
    match error {
        wf_store::StoreError::NotFound { key, .. } => ApiError::field(
            ErrorCode::RunNotFound,
            "runId",
            format!("run {key} not found"),
        ),
        other => other.into(),
    }
}

fn invalid(parameter: &str, message: String) -> ApiError {
    ApiError::field(ErrorCode::InvalidParameter, parameter.to_owned(), message)
}

/// A time given as RFC 3339 or as epoch milliseconds.
fn time(parameter: &str, raw: &str) -> Result<DateTime<Utc>, ApiError> {
    if let Ok(at) = DateTime::parse_from_rfc3339(raw) {
        return Ok(at.with_timezone(&Utc));
    }
    raw.parse::<i64>()
        .ok()
        .and_then(DateTime::from_timestamp_millis)
        .ok_or_else(|| {
            invalid(
                parameter,
                format!("{parameter} {raw:?} is neither RFC 3339 nor epoch milliseconds"),
            )
        })
}

/// `GET /runs`: every filter of the store, validated with the parameter named.
pub fn run_query(request: &ApiGatewayV2httpRequest) -> Result<RunQuery, ApiError> {
    let mut query = RunQuery::default();
    if let Some(raw) = query_param(request, "workflowId") {
        query.workflow_id = Some(
            WorkflowId::parse(raw)
                .map_err(|e| invalid("workflowId", format!("workflowId {raw:?}: {e}")))?,
        );
    }
    if let Some(raw) = query_param(request, "status") {
        query.status = Some(raw.parse::<RunStatus>().map_err(|_| {
            invalid(
                "status",
                format!(
                    "status {raw:?} is not one of PENDING, RUNNING, WAITING, COMPLETED, FAILED, CANCELLED"
                ),
            )
        })?);
    }
    query.resource_id = query_param(request, "resourceId").map(str::to_owned);
    if let Some(raw) = query_param(request, "tag") {
        let (key, value) = raw
            .split_once(':')
            .or_else(|| raw.split_once('='))
            .filter(|(k, _)| !k.is_empty())
            .ok_or_else(|| invalid("tag", format!("tag {raw:?} must be key:value")))?;
        query.tag = Some((key.to_owned(), value.to_owned()));
    }
    query.created_from = query_param(request, "from")
        .map(|raw| time("from", raw))
        .transpose()?;
    query.created_to = query_param(request, "to")
        .map(|raw| time("to", raw))
        .transpose()?;
    if let (Some(from), Some(to)) = (query.created_from, query.created_to)
        && from > to
    {
        return Err(invalid("from", "from must not be after to".to_owned()));
    }
    if let Some(raw) = query_param(request, "limit") {
        query.limit = raw
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=MAX_PAGE_SIZE).contains(n))
            .ok_or_else(|| {
                invalid(
                    "limit",
                    format!("limit {raw:?} must be a whole number from 1 to {MAX_PAGE_SIZE}"),
                )
            })?;
    }
    query.cursor = query_param(request, "cursor").map(Cursor::parse);
    Ok(query)
}

async fn list_runs(
    deps: &Deps,
    request: &ApiGatewayV2httpRequest,
) -> Result<(u16, Value), ApiError> {
    let query = run_query(request)?;
    let page = deps.executor.store().list_runs(&query).await?;
    Ok((
        200,
        json!({
            "items": page.items,
            "nextCursor": page.next.as_ref().map(Cursor::as_str),
        }),
    ))
}

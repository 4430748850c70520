//! start-run: one handler for three triggers.
//!
//! - API Gateway HTTP API (payload 2.0) `POST /runs`: 201 with the run, its status and
//!   links; 200 when an idempotency key replays; problem JSON otherwise (400 malformed or
//!   invalid request, 404 unknown workflow, 409 idempotency conflict, 413 too large, 422
//!   input that does not fit the workflow's input type, 503 retry later).
//! - EventBridge, detail-type `Start Workflow Run`, detail = the request body.
//! - Direct invoke with the request body as the payload.
//!
//! Over EventBridge and direct invoke an error is returned as a Lambda error whose
//! `errorType` is the stable code, so the asynchronous invoke's bounded retries end in the
//! on-failure destination with the reason attached. Nothing is written unless the whole
//! request is valid.

use std::collections::BTreeMap;

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::http::{HeaderValue, header};
use lambda_runtime::LambdaEvent;
use serde::Deserialize;
use serde_json::{Value, json};
use tracing::info;
use wf_engine::{StartRequest, Started};
use wf_lambda::{
    ApiError, Deps, ErrorCode, from_json_value, json_body, json_response, problem_response,
};

/// The EventBridge detail-type this function starts runs for.
pub const START_DETAIL_TYPE: &str = "Start Workflow Run";

/// Upper bounds on the request's labels, so a run item stays small and listable.
const MAX_TAGS: usize = 50;
const MAX_TAG_KEY: usize = 128;
const MAX_LABEL: usize = 256;
const MAX_RETENTION_DAYS: u32 = 3650;

/// The request, as JSON body, EventBridge detail or direct-invoke payload.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct StartRunBody {
    /// The workflow to start.
    pub workflow_id: String,
    /// Its input (validated against the first step's input type).
    #[serde(default)]
    pub input: Value,
    /// Makes a retried start return the same run.
    #[serde(default)]
    pub idempotency_key: Option<String>,
    /// The business object the run is about.
    #[serde(default)]
    pub resource_id: Option<String>,
    /// Labels for listing.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Days to keep the run after it ends.
    #[serde(default)]
    pub retention_days: Option<u32>,
}

impl StartRunBody {
    /// Checks the labels, then turns the body into an engine request.
    fn into_request(self) -> Result<StartRequest, ApiError> {
        let invalid = |field: &str, message: String| {
            ApiError::field(ErrorCode::InvalidRequest, field.to_owned(), message)
        };
        if self.workflow_id.trim().is_empty() {
            return Err(invalid("workflowId", "workflowId must not be empty".into()));
        }
        if let Some(resource) = &self.resource_id
            && (resource.is_empty() || resource.len() > MAX_LABEL)
        {
            return Err(invalid(
                "resourceId",
                format!("resourceId must be 1 to {MAX_LABEL} bytes"),
            ));
        }
        if self.tags.len() > MAX_TAGS {
            return Err(invalid("tags", format!("at most {MAX_TAGS} tags")));
        }
        for (key, value) in &self.tags {
            if key.is_empty() || key.len() > MAX_TAG_KEY || value.len() > MAX_LABEL {
                return Err(invalid(
                    &format!("tags.{key}"),
                    format!("tag keys are 1 to {MAX_TAG_KEY} bytes, values at most {MAX_LABEL}"),
                ));
            }
        }
        if let Some(days) = self.retention_days
            && !(1..=MAX_RETENTION_DAYS).contains(&days)
        {
            return Err(invalid(
                "retentionDays",
                format!("retentionDays must be 1 to {MAX_RETENTION_DAYS}"),
            ));
        }
        Ok(StartRequest {
            workflow_id: self.workflow_id,
            input: self.input,
            idempotency_key: self.idempotency_key,
            resource_id: self.resource_id,
            tags: self.tags,
            retention_days: self.retention_days,
        })
    }
}

/// Which trigger sent an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// API Gateway HTTP API, payload format 2.0.
    Http,
    /// An EventBridge event.
    EventBridge,
    /// A direct invoke.
    Direct,
}

impl Trigger {
    /// Tells the trigger from the payload's shape.
    pub fn of(payload: &Value) -> Self {
        if payload.pointer("/requestContext/http").is_some() {
            Self::Http
        } else if payload.get("detail-type").is_some() && payload.get("source").is_some() {
            Self::EventBridge
        } else {
            Self::Direct
        }
    }
}

/// Handles one invocation from any trigger.
pub async fn handle(deps: &Deps, event: LambdaEvent<Value>) -> Result<Value, ApiError> {
    let payload = event.payload;
    match Trigger::of(&payload) {
        Trigger::Http => {
            let response = match serde_json::from_value::<ApiGatewayV2httpRequest>(payload) {
                Ok(request) => handle_http(deps, &request).await,
                Err(e) => problem_response(&ApiError::new(
                    ErrorCode::MalformedRequest,
                    format!("not an HTTP API request: {e}"),
                )),
            };
            serde_json::to_value(response).map_err(|e| {
                ApiError::new(
                    ErrorCode::InternalError,
                    format!("response did not serialise: {e}"),
                )
            })
        }
        Trigger::EventBridge => {
            let detail_type = payload
                .get("detail-type")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if detail_type != START_DETAIL_TYPE {
                return Err(ApiError::field(
                    ErrorCode::UnsupportedEvent,
                    "detail-type",
                    format!("detail-type {detail_type:?} is not {START_DETAIL_TYPE:?}"),
                ));
            }
            let detail = payload.get("detail").cloned().unwrap_or(Value::Null);
            let started = start(deps, parse_body(detail)?).await?;
            Ok(summary(&started))
        }
        Trigger::Direct => {
            let started = start(deps, parse_body(payload)?).await?;
            Ok(summary(&started))
        }
    }
}

/// `POST /runs`.
pub async fn handle_http(
    deps: &Deps,
    request: &ApiGatewayV2httpRequest,
) -> ApiGatewayV2httpResponse {
    match start_from_http(deps, request).await {
        Ok(started) => {
            let status = if started.replayed { 200 } else { 201 };
            let mut response = json_response(status, &summary(&started));
            if let Ok(location) = HeaderValue::from_str(&format!("/runs/{}", started.run.run_id)) {
                response.headers.insert(header::LOCATION, location);
            }
            response
        }
        Err(error) => problem_response(&error),
    }
}

async fn start_from_http(
    deps: &Deps,
    request: &ApiGatewayV2httpRequest,
) -> Result<Started, ApiError> {
    let method = request.request_context.http.method.as_str();
    if method != "POST" {
        return Err(ApiError::new(
            ErrorCode::MethodNotAllowed,
            format!("{method} is not allowed on /runs here; use POST"),
        ));
    }
    let mut body: StartRunBody = json_body(request)?;
    // The standard header works too; the body wins when both are given.
    if body.idempotency_key.is_none()
        && let Some(key) = request
            .headers
            .get("idempotency-key")
            .and_then(|v| v.to_str().ok())
    {
        body.idempotency_key = Some(key.to_owned());
    }
    start(deps, body).await
}

fn parse_body(value: Value) -> Result<StartRunBody, ApiError> {
    if !value.is_object() {
        return Err(ApiError::field(
            ErrorCode::InvalidRequest,
            "body",
            "the request must be a JSON object with workflowId and input",
        ));
    }
    from_json_value(value)
}

async fn start(deps: &Deps, body: StartRunBody) -> Result<Started, ApiError> {
    let request = body.into_request()?;
    let started = deps.executor.start(request).await?;
    let run = &started.run;
    if started.replayed {
        info!(run_id = %run.run_id, "start replayed by idempotency key");
    } else {
        info!(run_id = %run.run_id, workflow_id = %run.workflow_id, "run started");
        deps.metrics
            .run_started(run.workflow_id.as_str(), &run.run_id.to_string());
    }
    Ok(started)
}

/// What a start answers: the run id, workflow, status and links.
fn summary(started: &Started) -> Value {
    let run = &started.run;
    json!({
        "runId": run.run_id,
        "workflowId": run.workflow_id,
        "workflowVersion": run.workflow_version,
        "status": run.status,
        "createdAt": run.created_at,
        "replayed": started.replayed,
        "links": {
            "self": format!("/runs/{}", run.run_id),
            "steps": format!("/runs/{}/steps", run.run_id),
            "cancel": format!("/runs/{}/cancel", run.run_id),
        },
    })
}

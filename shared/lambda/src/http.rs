//! The HTTP edge (API Gateway HTTP API, payload format 2.0): JSON bodies in, JSON or
//! problem responses out. Every error response has the same body,
//! `{ "code", "message", "field" }`, with a stable `snake_case` `code` and, when one input
//! is to blame, the `field` (a body path like `input.lines[0].quantity`, a query or path
//! parameter like `limit`), served as `application/problem+json`.

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::encodings::Body;
use aws_lambda_events::http::{HeaderMap, HeaderValue, header};
use base64::Engine as _;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tracing::error;
use wf_engine::EngineError;
use wf_store::StoreError;

use crate::codes::ErrorCode;

/// A request that cannot be served, with what the caller needs to fix it. Its code comes
/// from the one list, [`ErrorCode`], and so does its status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ApiError {
    /// Stable machine code (with its HTTP status).
    pub code: ErrorCode,
    /// Human message naming what is wrong.
    pub message: String,
    /// The input at fault, when there is one.
    pub field: Option<String>,
}

impl ApiError {
    /// An error about one field.
    pub fn field(code: ErrorCode, field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            field: Some(field.into()),
        }
    }

    /// An error about no field in particular.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            field: None,
        }
    }

    /// HTTP status (4xx: the caller's to fix; 5xx: ours, retry later).
    pub fn status(&self) -> u16 {
        self.code.status()
    }

    /// The error's JSON body.
    pub fn body(&self) -> Value {
        json!({ "code": self.code.as_str(), "message": self.message, "field": self.field })
    }

    /// Whether delivering the same request again could succeed (5xx only).
    pub fn is_retryable(&self) -> bool {
        self.status() >= 500
    }
}

/// The code an engine (or store) error is answered with: its own, except the store's
/// `invalid_input` (an argument it refuses), which is the caller's `invalid_request`. A code
/// missing from [`ErrorCode`] (one no request can meet) becomes `internal_error`.
fn code_of(error: &EngineError) -> ErrorCode {
    if let EngineError::Store(StoreError::InvalidInput { .. }) = error {
        return ErrorCode::InvalidRequest;
    }
    ErrorCode::parse(error.code()).unwrap_or_else(|| {
        error!(code = error.code(), error = %error, "error code missing from ErrorCode");
        ErrorCode::InternalError
    })
}

impl From<EngineError> for ApiError {
    fn from(error: EngineError) -> Self {
        let code = code_of(&error);
        let field = match &error {
            EngineError::UnknownWorkflow { .. } => Some("workflowId".to_owned()),
            EngineError::RunNotFound { .. } => Some("runId".to_owned()),
            EngineError::UnknownSignal { .. } => Some("name".to_owned()),
            EngineError::InvalidInput(input) => Some(format!(
                "input{}",
                if input.path == "." { "" } else { &input.path }
            )),
            EngineError::IdempotencyConflict { .. } => Some("idempotencyKey".to_owned()),
            EngineError::Store(StoreError::InvalidInput { field, .. }) => Some((*field).to_owned()),
            EngineError::Store(StoreError::InvalidCursor { .. }) => Some("cursor".to_owned()),
            EngineError::Store(StoreError::TooLarge { what, .. }) => Some((*what).to_owned()),
            _ => None,
        };
        if code.status() >= 500 {
            // Details stay in the log; the caller gets a stable code and a retry hint.
            error!(error = %error, code = code.as_str(), "request failed");
            return Self {
                code,
                message: "the service could not complete the request; retry later".to_owned(),
                field: None,
            };
        }
        Self {
            code,
            message: error.to_string(),
            field,
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        EngineError::from(error).into()
    }
}

impl From<ApiError> for lambda_runtime::Diagnostic {
    fn from(error: ApiError) -> Self {
        let mut message = error.message;
        if let Some(field) = error.field {
            message = format!("{message} (field {field})");
        }
        Self {
            error_type: error.code.as_str().to_owned(),
            error_message: message,
        }
    }
}

/// A JSON response with `status`.
pub fn json_response(status: u16, body: &Value) -> ApiGatewayV2httpResponse {
    response(status, "application/json", body)
}

/// The problem response for `error`.
pub fn problem_response(error: &ApiError) -> ApiGatewayV2httpResponse {
    response(error.status(), "application/problem+json", &error.body())
}

fn response(status: u16, content_type: &'static str, body: &Value) -> ApiGatewayV2httpResponse {
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    let mut response = ApiGatewayV2httpResponse::default();
    response.status_code = i64::from(status);
    response.headers = headers;
    response.body = Some(Body::Text(body.to_string()));
    response
}

/// The request body decoded (base64 when API Gateway says so) and parsed as JSON into
/// `T`. An absent or empty body parses as `null` (so optional bodies can be `Option`).
/// Errors: `malformed_json` (400, field `body`), `invalid_request` (400, field = the JSON
/// path of the offending value, or the missing field's name).
pub fn json_body<T: DeserializeOwned>(request: &ApiGatewayV2httpRequest) -> Result<T, ApiError> {
    let raw = match request.body.as_deref() {
        None => Vec::new(),
        Some(body) if request.is_base64_encoded => base64::engine::general_purpose::STANDARD
            .decode(body)
            .map_err(|e| {
                ApiError::field(ErrorCode::MalformedBody, "body", format!("bad base64: {e}"))
            })?,
        Some(body) => body.as_bytes().to_vec(),
    };
    let raw: &[u8] = if raw.iter().all(u8::is_ascii_whitespace) {
        b"null"
    } else {
        &raw
    };
    let value: Value = serde_json::from_slice(raw).map_err(|e| {
        ApiError::field(
            ErrorCode::MalformedJson,
            "body",
            format!("the body is not valid JSON: {e}"),
        )
    })?;
    from_json_value(value)
}

/// Deserialises `value` into `T`, naming the JSON path (or the missing field) on error.
pub fn from_json_value<T: DeserializeOwned>(value: Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let inner = e.inner().to_string();
        let path = e.path().to_string();
        let field = missing_field(&inner).map_or_else(
            || path.trim_start_matches('.').to_owned(),
            |missing| {
                if path == "." {
                    missing.to_owned()
                } else {
                    format!("{}.{missing}", path.trim_start_matches('.'))
                }
            },
        );
        let field = if field.is_empty() {
            "body".to_owned()
        } else {
            field
        };
        ApiError::field(
            ErrorCode::InvalidRequest,
            field.clone(),
            format!("{field}: {inner}"),
        )
    })
}

/// The name in serde's "missing field `name`" message (the path points at its parent;
/// for unknown fields the path already ends with the field).
fn missing_field(message: &str) -> Option<&str> {
    message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next())
}

/// The first value of query parameter `name`, if given and not empty.
pub fn query_param<'r>(request: &'r ApiGatewayV2httpRequest, name: &str) -> Option<&'r str> {
    request
        .query_string_parameters
        .first(name)
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    #[allow(dead_code, reason = "only deserialised")]
    struct Body {
        workflow_id: String,
        count: Option<u32>,
    }

    fn request(body: &str) -> ApiGatewayV2httpRequest {
        let mut request = ApiGatewayV2httpRequest::default();
        request.body = Some(body.to_owned());
        request
    }

    #[test]
    fn bad_bodies_name_the_field() {
        let cases = [
            ("{", "malformed_json", "body"),
            (r#""text""#, "invalid_request", "body"),
            ("{}", "invalid_request", "workflowId"),
            (r#"{"workflowId": 3}"#, "invalid_request", "workflowId"),
            (
                r#"{"workflowId": "a", "count": -1}"#,
                "invalid_request",
                "count",
            ),
            (
                r#"{"workflowId": "a", "extra": 1}"#,
                "invalid_request",
                "extra",
            ),
        ];
        for (body, code, field) in cases {
            let error = json_body::<Body>(&request(body)).unwrap_err();
            assert_eq!(error.status(), 400, "{body}");
            assert_eq!(error.code, code, "{body}");
            assert_eq!(
                error.field.as_deref(),
                Some(field),
                "{body}: {}",
                error.message
            );
        }
    }

    #[test]
    fn base64_bodies_decode_and_empty_bodies_are_null() {
        let mut encoded = request("eyJ3b3JrZmxvd0lkIjoiYSJ9");
        encoded.is_base64_encoded = true;
        let body: Body = json_body(&encoded).unwrap();
        assert_eq!(body.workflow_id, "a");
        let empty: Option<Body> = json_body(&ApiGatewayV2httpRequest::default()).unwrap();
        assert!(empty.is_none());
    }

    #[test]
    fn server_errors_hide_details_and_are_retryable() {
        let error = ApiError::from(StoreError::Throttled);
        assert_eq!((error.status(), error.code), (503, ErrorCode::Throttled));
        assert!(error.is_retryable());
        assert!(!error.message.contains("throttled"));
        let diagnostic = lambda_runtime::Diagnostic::from(ApiError::field(
            ErrorCode::InvalidInput,
            "input.id",
            "bad",
        ));
        assert_eq!(diagnostic.error_type, "invalid_input");
        assert!(diagnostic.error_message.contains("input.id"));
    }

    #[test]
    #[expect(
        clippy::too_many_lines,
        reason = "one table row per engine and store error variant"
    )]
    fn engine_and_store_errors_keep_their_code_and_status_at_the_edge() {
        use wf_engine::InputError;
        use wf_store::{ItemKind, RunId, RunStatus};
        let run_id = RunId::generate();
        let store = |error: StoreError| EngineError::Store(error);
        // (error, code at the edge, field)
        let cases: Vec<(EngineError, ErrorCode, Option<&str>)> = vec![
            (
                EngineError::UnknownWorkflow {
                    workflow_id: "x".into(),
                    version: None,
                },
                ErrorCode::UnknownWorkflow,
                Some("workflowId"),
            ),
            (
                EngineError::InvalidInput(InputError {
                    path: ".lines[0]".into(),
                    message: "m".into(),
                }),
                ErrorCode::InvalidInput,
                Some("input.lines[0]"),
            ),
            (
                EngineError::IdempotencyConflict {
                    key: "k".into(),
                    run_id,
                },
                ErrorCode::IdempotencyConflict,
                Some("idempotencyKey"),
            ),
            (
                EngineError::RunNotFound { run_id },
                ErrorCode::RunNotFound,
                Some("runId"),
            ),
            (
                EngineError::InvalidState {
                    run_id,
                    status: RunStatus::Running,
                    action: "redrive",
                },
                ErrorCode::InvalidState,
                None,
            ),
            (
                EngineError::Dispatch {
                    message: "m".into(),
                    source: None,
                },
                ErrorCode::DispatchFailed,
                None,
            ),
            (
                store(StoreError::NotFound {
                    kind: ItemKind::Step,
                    key: "k".into(),
                }),
                ErrorCode::NotFound,
                None,
            ),
            (
                store(StoreError::Conflict {
                    kind: ItemKind::Run,
                    key: "k".into(),
                    reason: "r",
                }),
                ErrorCode::Conflict,
                None,
            ),
            (
                store(StoreError::InvalidInput {
                    field: "idempotencyKey",
                    reason: "r".into(),
                }),
                ErrorCode::InvalidRequest,
                Some("idempotencyKey"),
            ),
            (
                store(StoreError::InvalidCursor { reason: "r" }),
                ErrorCode::InvalidCursor,
                Some("cursor"),
            ),
            (
                store(StoreError::TooLarge {
                    what: "input",
                    size: 2,
                    limit: 1,
                }),
                ErrorCode::TooLarge,
                Some("input"),
            ),
            (
                store(StoreError::Corrupt {
                    kind: ItemKind::Run,
                    attribute: "a".into(),
                    reason: "r".into(),
                }),
                ErrorCode::CorruptItem,
                None,
            ),
            (store(StoreError::Throttled), ErrorCode::Throttled, None),
            (
                store(StoreError::Backend {
                    message: "m".into(),
                    retryable: true,
                    source: None,
                }),
                ErrorCode::BackendError,
                None,
            ),
            (
                EngineError::UnknownSignal {
                    run_id,
                    name: "approve".into(),
                    expected: "approved".into(),
                },
                ErrorCode::UnknownSignal,
                Some("name"),
            ),
            // None of these reaches a request (the engine answers a used key as a replay or
            // an idempotency_conflict; definitions are checked at cold start; only
            // execute-step starts steps, and it hands such a record back to SQS): should one
            // ever, it is a fault of ours.
            (
                store(StoreError::IdempotencyKeyUsed {
                    key: "k".into(),
                    run_id,
                }),
                ErrorCode::InternalError,
                None,
            ),
            (
                EngineError::Definition {
                    workflow_id: "w".into(),
                    reason: "r".into(),
                },
                ErrorCode::InternalError,
                None,
            ),
            (
                EngineError::NoTimeToStart {
                    step_id: "s".into(),
                    needed_ms: 2,
                    left_ms: 1,
                },
                ErrorCode::InternalError,
                None,
            ),
        ];
        for (error, code, field) in cases {
            let shown = error.to_string();
            let status = error.http_status();
            let api = ApiError::from(error);
            assert_eq!(api.code, code, "{shown}");
            if code != ErrorCode::InternalError {
                assert_eq!(api.status(), status, "{shown}: the engine's status");
            }
            assert_eq!(api.field.as_deref(), field, "{shown}");
        }
    }
}

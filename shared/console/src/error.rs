//! What a console request can fail with. Each error has a stable `snake_case` code (the
//! runs API's codes where the cause is the same), an HTTP status, and, when one input is
//! to blame, the field it names (the runs API's field names: `input.lines[0]`, `status`).
//! It renders as an HTML error page that shows the code, the message and the field; the
//! code is also in the `x-wf-error` header.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use wf_archive::ArchiveError;
use wf_engine::EngineError;
use wf_store::StoreError;

/// A failed console request.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConsoleError {
    /// A query parameter or form field is invalid; `field` names it.
    #[error("invalid {field}: {reason}")]
    InvalidInput {
        /// The offending field.
        field: String,
        /// Why.
        reason: String,
    },
    /// A JSON field does not parse; `field` names it.
    #[error("{field} is not valid JSON: {reason}")]
    MalformedJson {
        /// The offending field.
        field: String,
        /// Where and why it does not parse.
        reason: String,
    },
    /// A state-changing request came without the page's CSRF token, or with another one.
    #[error("the form's CSRF token is missing or wrong; reload the page and try again")]
    Csrf,
    /// The console was started with `--read-only`.
    #[error("the console is read-only (started with --read-only); use the wf CLI to act")]
    ReadOnly,
    /// The request's `Host` is not this console's (a DNS-rebinding page, say).
    #[error("host {host:?} is not allowed; open the console at 127.0.0.1 or localhost")]
    ForeignHost {
        /// The `Host` header received.
        host: String,
    },
    /// Archived runs were asked for, but the console has no archive source.
    #[error("no archive source: start the console with --bucket or --dir to open archived runs")]
    NoArchive,
    /// No page at this address.
    #[error("no page at {path}")]
    NotFound {
        /// The path asked for.
        path: String,
    },
    /// The executor refused or failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The store refused or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The archive could not be read.
    #[error(transparent)]
    Archive(#[from] ArchiveError),
}

impl ConsoleError {
    /// An invalid field.
    pub(crate) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::InvalidInput {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// Stable `snake_case` code, never renamed once shipped.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidInput { .. } => "invalid_parameter",
            Self::MalformedJson { .. } => "malformed_json",
            Self::Csrf => "csrf_token_invalid",
            Self::ReadOnly => "read_only",
            Self::ForeignHost { .. } => "host_not_allowed",
            Self::NoArchive => "archive_not_configured",
            Self::NotFound { .. } => "not_found",
            Self::Engine(error) => error.code(),
            Self::Store(error) => error.code(),
            Self::Archive(error) => error.code(),
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        let code = match self {
            Self::InvalidInput { .. }
            | Self::MalformedJson { .. }
            | Self::Store(StoreError::InvalidInput { .. }) => 400,
            Self::Csrf | Self::ReadOnly | Self::ForeignHost { .. } => 403,
            Self::NoArchive | Self::NotFound { .. } | Self::Store(StoreError::NotFound { .. }) => {
                404
            }
            Self::Engine(error) => error.http_status(),
            Self::Store(StoreError::Conflict { .. }) => 409,
            Self::Store(StoreError::Throttled) => 503,
            Self::Store(_) => 500,
            Self::Archive(error) => match error.code() {
                "archive_not_found" => 404,
                "invalid_input" => 400,
                _ => 500,
            },
        };
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// The input to blame, named as the runs API names it.
    pub fn field(&self) -> Option<String> {
        match self {
            Self::InvalidInput { field, .. } | Self::MalformedJson { field, .. } => {
                Some(field.clone())
            }
            Self::Engine(EngineError::UnknownWorkflow { .. }) => Some("workflowId".to_owned()),
            Self::Engine(EngineError::InvalidInput(input)) => Some(format!(
                "input{}",
                if input.path == "." { "" } else { &input.path }
            )),
            Self::Engine(EngineError::IdempotencyConflict { .. }) => {
                Some("idempotencyKey".to_owned())
            }
            Self::Engine(EngineError::Store(StoreError::InvalidInput { field, .. }))
            | Self::Store(StoreError::InvalidInput { field, .. }) => Some((*field).to_owned()),
            _ => None,
        }
    }

    /// What the user reads: the message for 4xx, a generic line for 5xx (details go to
    /// the log).
    pub(crate) fn public_message(&self) -> String {
        if self.status().is_server_error() {
            tracing::error!(error = %self, code = self.code(), "console request failed");
            "the console could not complete the request; see its log, then retry".to_owned()
        } else {
            self.to_string()
        }
    }
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        let page = crate::pages::error_page(&self);
        with_code((self.status(), page).into_response(), self.code())
    }
}

fn with_code(mut response: Response, code: &'static str) -> Response {
    response
        .headers_mut()
        .insert("x-wf-error", HeaderValue::from_static(code));
    response
}

//! What the Lambda functions share, so each handler stays thin: configuration read once
//! from the environment, the dependencies built once per cold start ([`Deps`]), the HTTP
//! edge (problem JSON with a stable code and the offending field, JSON bodies, responses),
//! and CloudWatch Embedded Metric Format lines.
//!
//! Invariants:
//! 1. Nothing here panics on an event or a request: every bad input becomes an
//!    [`ApiError`] with a 4xx status, a stable `code` and the `field` it is about.
//! 2. SDK clients are built once per process, in [`Deps::from_env`], never per request.
//! 3. Handlers hold no DynamoDB or SQS knowledge: they call the engine through [`Deps`].
//! 4. Every code a function answers with is an [`ErrorCode`], the one list the README's
//!    error table shows (a test compares them).

mod codes;
mod config;
mod deps;
mod http;
mod metrics;

pub use codes::ErrorCode;
pub use config::{
    CURSOR_KEY_VAR, Config, ConfigError, PAYLOAD_BUCKET_VAR, PAYLOAD_PREFIX_VAR,
    PAYLOAD_THRESHOLD_VAR, PayloadConfig,
};
pub use deps::Deps;
pub use http::{
    ApiError, from_json_value, json_body, json_response, problem_response, query_param,
};
pub use metrics::EmfMetrics;
#[cfg(feature = "test-util")]
pub mod testing;

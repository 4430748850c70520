//! Approval: a human in the loop. `submit` records the request, `await-approval` waits
//! for the `approved` signal (its payload says who decided) for up to a day, a durable
//! `cool-off` sleep follows, then `notify`. Send the signal with
//! `wf signal <runId> approved --payload '{"approver":"ada","approved":true}'`; a signal
//! sent before the wait starts is kept, and no signal within a day fails the run with
//! `signal_timeout`.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use wf_engine::{EngineError, StepContext, StepError, Workflow, sleep, step, wait_for_signal};

/// The workflow id.
pub const ID: &str = "approval";

/// The signal that resumes the run.
pub const SIGNAL: &str = "approved";

/// The run input.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Request {
    /// What needs approval.
    pub subject: String,
    /// Who asks.
    pub requester: String,
    /// Amount at stake, in cents.
    pub amount_cents: u64,
}

/// The signal's payload.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Decision {
    /// Who decided.
    pub approver: String,
    /// The decision.
    pub approved: bool,
}

/// The run output.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Notification {
    /// Who was told.
    pub to: String,
    /// What they were told.
    pub message: String,
}

async fn submit(ctx: StepContext, request: Request) -> Result<Request, StepError> {
    if request.subject.trim().is_empty() {
        return Err(StepError::terminal(
            "invalid_request",
            "the subject must not be empty",
        ));
    }
    ctx.set_state("request", &request).await?;
    Ok(request)
}

async fn notify(ctx: StepContext, decision: Decision) -> Result<Notification, StepError> {
    let request: Option<Request> = ctx.get_state("request").await?;
    let request = request
        .ok_or_else(|| StepError::terminal("missing_request", "the request was not recorded"))?;
    let verdict = if decision.approved {
        "approved"
    } else {
        "rejected"
    };
    Ok(Notification {
        to: request.requester,
        message: format!("{} was {verdict} by {}", request.subject, decision.approver),
    })
}

/// The definition.
pub fn workflow() -> Result<Workflow, EngineError> {
    Workflow::builder(ID, "1")
        .description("wait for an approval signal (1 day timeout), cool off, then notify")
        .then(step("submit", submit))
        .then(wait_for_signal(
            "await-approval",
            SIGNAL,
            Duration::from_secs(24 * 3600),
        ))
        .then(sleep("cool-off", Duration::from_secs(2)))
        .then(step("notify", notify))
        .build()
}

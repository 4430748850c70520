//! The timeline of a run's step executions: one row per execution, a bar from when it
//! was created (queued, waiting or sleeping: light) to when it started and then ended
//! (running: solid), placed on the run's time axis; with its attempts, retries, waits
//! and error.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use maud::{Markup, html};
use wf_store::{StepExecution, StepStatus, WorkflowRun};

use super::{badge, duration_ms};

fn percent(ms: i64, total: i64) -> f64 {
    #[allow(
        clippy::cast_precision_loss,
        reason = "milliseconds of one run fit f64"
    )]
    let share = ms as f64 / total.max(1) as f64;
    (share * 100.0).clamp(0.0, 100.0)
}

/// The timeline. `kinds` maps step ids to `task`, `sleep` or `wait-signal`.
pub(crate) fn timeline(
    run: &WorkflowRun,
    steps: &[StepExecution],
    kinds: &HashMap<String, &'static str>,
    now: DateTime<Utc>,
) -> Markup {
    let start = run.created_at;
    let end_of = |s: &StepExecution| {
        s.completed_at.unwrap_or(if s.status.is_terminal() {
            s.updated_at
        } else {
            now
        })
    };
    let end = run
        .completed_at
        .into_iter()
        .chain(steps.iter().map(end_of))
        .max()
        .unwrap_or(now)
        .max(start);
    let total = (end - start).num_milliseconds().max(1);
    let mut ordered: Vec<&StepExecution> = steps.iter().collect();
    ordered.sort_by_key(|s| (s.created_at, s.execution_index));
    html! {
        div class="timeline" {
            div class="axis" { span { "0" } span { (duration_ms(total)) } }
            @for step in ordered {
                @let created = (step.created_at - start).num_milliseconds();
                @let started = step.started_at.map(|t| (t - start).num_milliseconds());
                @let ended = (end_of(step) - start).num_milliseconds();
                @let kind = kinds.get(step.step_id.as_str()).copied().unwrap_or("task");
                div class="row" data-step=(step.step_id) {
                    div class="label" {
                        a href={ "#step-" (step.step_id) } { (step.step_id) }
                    }
                    div class="track" {
                        @let wait_to = started.unwrap_or(ended);
                        span class={ "wait k-" (kind) }
                            style={ "left:" (format!("{:.2}", percent(created, total))) "%;width:" (format!("{:.2}", percent(wait_to - created, total))) "%" } {}
                        @if let Some(s) = started {
                            span class={ "active s-" (step.status.as_str().to_lowercase()) }
                                style={ "left:" (format!("{:.2}", percent(s, total))) "%;width:" (format!("{:.2}", percent(ended - s, total).max(0.4))) "%" } {}
                        }
                    }
                    div class="facts" {
                        (badge(step.status.as_str()))
                        " +" (duration_ms(created))
                        @if let Some(ms) = step.duration_ms { " · ran " (duration_ms(i64::try_from(ms).unwrap_or(i64::MAX))) }
                        @if step.attempt > 1 { " · attempt " (step.attempt) " (" (step.attempt - 1) " retries)" }
                        @if let Some(signal) = &step.waiting_for {
                            @if step.status == StepStatus::Waiting { " · waiting for signal " } @else { " · waited for signal " }
                            code { (signal) }
                        } @else if kind == "sleep" {
                            " · durable sleep"
                        }
                        @if let (StepStatus::Retrying | StepStatus::Waiting, Some(at)) = (step.status, step.not_before) {
                            " · next at " (at.format("%H:%M:%S"))
                        }
                        @if let Some(error) = &step.error {
                            " · " span class="error-inline" { (error.code) ": " (error.message) }
                        }
                    }
                }
            }
        }
    }
}

//! A run's page: summary, actions, and a live part (graph, timeline, steps with input,
//! output, error and attempts, state entries) that refreshes until the run ends.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use maud::{Markup, html};
use serde_json::{Map, Value};
use wf_engine::Workflow;
use wf_store::{RunRecord, RunStatus, StepExecution, StepStatus};

use super::timeline::timeline;
use super::{badge, duration_ms, json_block, layout, time};
use crate::graph::{Graph, latest_by_step};

/// What a run's page shows.
#[derive(Debug)]
pub(crate) struct RunPage<'a> {
    pub(crate) record: &'a RunRecord,
    /// The definition the run runs on, when this build has that version.
    pub(crate) workflow: Option<&'a Workflow>,
    /// Read from the archive: read-only, no refresh.
    pub(crate) archived: bool,
    /// The CSRF token when actions are allowed.
    pub(crate) csrf: Option<&'a str>,
    pub(crate) now: DateTime<Utc>,
}

/// Each step's parents: from the definition, or (without it) as far as they finished.
fn parents_of(view: &RunPage<'_>) -> HashMap<String, Vec<String>> {
    match view.workflow {
        Some(workflow) => workflow
            .graph()
            .map(|(id, _, parents)| {
                (
                    id.to_string(),
                    parents.iter().map(ToString::to_string).collect(),
                )
            })
            .collect(),
        None => view
            .record
            .steps
            .iter()
            .map(|s| {
                (
                    s.step_id.to_string(),
                    s.parents_done.iter().map(ToString::to_string).collect(),
                )
            })
            .collect(),
    }
}

/// The input a step received, by the engine's data flow: the run input for a first
/// step, the parent's output for one parent, an object of outputs for several.
fn step_input(
    view: &RunPage<'_>,
    parents: &[String],
    outputs: &HashMap<&str, &Value>,
) -> Option<Value> {
    match parents {
        [] => Some(view.record.run.input.clone()),
        [parent] => outputs.get(parent.as_str()).map(|v| (*v).clone()),
        many => {
            let mut object = Map::new();
            for parent in many {
                object.insert(
                    parent.clone(),
                    outputs
                        .get(parent.as_str())
                        .map_or(Value::Null, |v| (*v).clone()),
                );
            }
            Some(Value::Object(object))
        }
    }
}

/// The whole page.
pub(crate) fn run_page(view: &RunPage<'_>) -> Markup {
    let run = &view.record.run;
    let live = !view.archived && !run.status.is_terminal();
    let body = html! {
        h1 { "Run " code { (run.run_id) } }
        @if view.archived {
            p class="notice" { "Archived run, read-only." }
        }
        @if let Some(csrf) = view.csrf {
            (actions(view, csrf))
        }
        section id="live" data-refresh=[live.then_some("1000")] data-reload-when-final="true"
            data-src={ "/runs/" (run.run_id) "?partial=1" } {
            (run_fragment(view))
        }
    };
    layout(&format!("Run {}", run.run_id), &body)
}

fn waiting_signal(steps: &[StepExecution]) -> Option<&str> {
    steps
        .iter()
        .find(|s| s.status == StepStatus::Waiting && s.waiting_for.is_some())
        .and_then(|s| s.waiting_for.as_deref())
}

fn actions(view: &RunPage<'_>, csrf: &str) -> Markup {
    let run = &view.record.run;
    let base = format!("/runs/{}", run.run_id);
    html! {
        section class="actions" {
            @if !run.status.is_terminal() {
                form id="signal-form" method="post" action={ (base) "/signal" } {
                    input type="hidden" name="csrf" value=(csrf);
                    label { "Signal " input type="text" name="name" required value=(waiting_signal(&view.record.steps).unwrap_or("")); }
                    label { "Payload (JSON) " textarea name="payload" rows="3" cols="40" { "{}" } }
                    button id="send-signal" type="submit" { "Send signal" }
                }
                form method="post" action={ (base) "/cancel" } data-confirm="Cancel this run?" {
                    input type="hidden" name="csrf" value=(csrf);
                    input type="text" name="reason" placeholder="reason" value="cancelled from the wf console";
                    button id="cancel-run" class="danger" type="submit" { "Cancel run" }
                }
            }
            @if run.status == RunStatus::Failed {
                form method="post" action={ (base) "/redrive" } {
                    input type="hidden" name="csrf" value=(csrf);
                    button id="redrive-run" type="submit" { "Redrive from failed steps" }
                }
            }
        }
    }
}

/// The run's summary: status, workflow, times, resource, tags, error.
fn summary(run: &wf_store::WorkflowRun) -> Markup {
    html! {
        dl class="summary" {
            dt { "Status" } dd { span id="run-status" data-status=(run.status.as_str()) { (badge(run.status.as_str())) } }
            dt { "Workflow" } dd { a href={ "/?workflow=" (run.workflow_id) } { (run.workflow_id) } " v" (run.workflow_version) }
            dt { "Steps" } dd { (run.completed_steps) " of " (run.total_steps) " done" }
            dt { "Created" } dd { (time(run.created_at)) " UTC" }
            @if let Some(at) = run.started_at { dt { "Started" } dd { (time(at)) } }
            @if let Some(at) = run.completed_at {
                dt { "Ended" } dd { (time(at)) " (" (duration_ms((at - run.started_at.unwrap_or(run.created_at)).num_milliseconds())) ")" }
            }
            @if let Some(resource) = &run.resource_id { dt { "Resource" } dd { (resource) } }
            @if !run.tags.is_empty() {
                dt { "Tags" } dd { @for (k, v) in &run.tags { span class="tag" { (k) "=" (v) } " " } }
            }
            @if let Some(key) = &run.idempotency_key { dt { "Idempotency key" } dd { code { (key) } } }
        }
        @if let Some(error) = &run.error {
            div class="error-box" { strong { (error.code) } ": " (error.message) }
        }
    }
}

/// Each step's details: parents, wait, lease, error, input and output.
fn step_details(view: &RunPage<'_>) -> Markup {
    let record = view.record;
    let parents = parents_of(view);
    let outputs: HashMap<&str, &Value> = record
        .outputs
        .iter()
        .map(|o| (o.step_id.as_str(), &o.output))
        .collect();
    let latest = latest_by_step(&record.steps);
    let order: Vec<String> = if let Some(w) = view.workflow {
        w.step_ids().map(ToString::to_string).collect()
    } else {
        let mut steps: Vec<&StepExecution> = latest.values().copied().collect();
        steps.sort_by_key(|s| s.created_at);
        steps.iter().map(|s| s.step_id.to_string()).collect()
    };
    html! {
        @for id in &order {
            @let step = latest.get(id.as_str()).copied();
            @let step_parents = parents.get(id).map_or(&[][..], Vec::as_slice);
            details id={ "step-" (id) } class="step" {
                summary {
                    code { (id) } " "
                    (badge(step.map_or("NOT-STARTED", |s| s.status.as_str())))
                    @if let Some(s) = step {
                        @if s.attempt > 0 { " attempt " (s.attempt) }
                        @if let Some(ms) = s.duration_ms { " · " (duration_ms(i64::try_from(ms).unwrap_or(i64::MAX))) }
                    }
                }
                @if let Some(s) = step {
                    @if !step_parents.is_empty() { p { "After: " @for p in step_parents { code { (p) } " " } } }
                    @if let Some(signal) = &s.waiting_for { p { "Signal: " code { (signal) } } }
                    @if let Some(at) = s.not_before { p { "Not before: " (time(at)) } }
                    @if let Some(lease) = &s.lease { p { "Lease: " (lease.owner) " until " (time(lease.until)) } }
                    @if let Some(error) = &s.error {
                        h4 { "Error" }
                        div class="error-box" { strong { (error.code) } ": " (error.message) }
                    }
                    h4 { "Input" }
                    @match step_input(view, step_parents, &outputs) {
                        Some(input) => (json_block(&input)),
                        None => p class="muted" { "(its parents' outputs are not stored yet)" },
                    }
                    h4 { "Output" }
                    @match outputs.get(id.as_str()) {
                        Some(output) => (json_block(output)),
                        None => p class="muted" { "(none yet)" },
                    }
                } @else {
                    p class="muted" { "Not started yet." }
                }
            }
        }
    }
}

/// The run's input, output and state entries.
fn data(record: &RunRecord) -> Markup {
    let run = &record.run;
    html! {
        h2 { "Run input" }
        (json_block(&run.input))
        @if let Some(output) = &run.output {
            h2 { "Run output" }
            (json_block(output))
        }
        h2 { "State" }
        @if record.state.is_empty() {
            p class="muted" { "No state entries." }
        } @else {
            table class="state" {
                thead { tr { th { "Key" } th { "Value" } th { "Updated" } } }
                tbody {
                    @for entry in &record.state {
                        tr { td { code { (entry.key) } } td { (json_block(&entry.value)) } td { (time(entry.updated_at)) } }
                    }
                }
            }
        }
    }
}

/// The part that refreshes.
pub(crate) fn run_fragment(view: &RunPage<'_>) -> Markup {
    let record = view.record;
    let run = &record.run;
    let graph = match view.workflow {
        Some(workflow) => Graph::from_definition(workflow, &record.steps),
        None => Graph::from_steps(&record.steps),
    };
    let kinds: HashMap<String, &'static str> = view
        .workflow
        .map(|w| {
            w.graph()
                .map(|(id, kind, _)| (id.to_string(), kind))
                .collect()
        })
        .unwrap_or_default();
    html! {
        @if run.status.is_terminal() || view.archived { span data-final="true" hidden {} }
        (summary(run))
        h2 { "Graph" }
        div class="graph-wrap" { (graph.render()) }
        p class="legend" {
            @for s in ["not-started", "pending", "ready", "running", "waiting", "retrying", "completed", "failed", "skipped", "cancelled"] {
                span class={ "badge s-" (s) } { (s) } " "
            }
        }
        h2 { "Timeline" }
        (timeline(run, &record.steps, &kinds, view.now))
        h2 { "Steps" }
        (step_details(view))
        (data(record))
    }
}

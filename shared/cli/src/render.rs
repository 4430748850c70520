//! How results look: data on standard output (JSON or tables), status lines on standard
//! error, so `wf run ... > out.json` captures just the output.

use std::process::ExitCode;
use std::time::Duration;

use serde_json::json;
use wf_engine::WorkflowInfo;
use wf_store::{Page, RunRecord, RunStatus, StepExecution, StepStatus, WorkflowRun};

fn pretty(value: &serde_json::Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
}

fn elapsed(run: &WorkflowRun) -> String {
    match (run.started_at.or(Some(run.created_at)), run.completed_at) {
        (Some(start), Some(end)) => format!("{} ms", (end - start).num_milliseconds()),
        _ => "-".to_owned(),
    }
}

/// Prints a finished run; non-zero exit unless it completed.
pub(crate) fn finished(run: &WorkflowRun) -> ExitCode {
    eprintln!(
        "run {} {} in {} ({}/{} steps)",
        run.run_id,
        run.status,
        elapsed(run),
        run.completed_steps,
        run.total_steps
    );
    if run.status == RunStatus::Completed {
        println!(
            "{}",
            pretty(run.output.as_ref().unwrap_or(&serde_json::Value::Null))
        );
        return ExitCode::SUCCESS;
    }
    if let Some(error) = &run.error {
        eprintln!("error {}: {}", error.code, error.message);
    }
    ExitCode::from(1)
}

/// Prints a parked run and how to go on.
pub(crate) fn parked(
    run: &WorkflowRun,
    steps: &[StepExecution],
    next_due_in: Duration,
) -> ExitCode {
    eprintln!(
        "run {} is parked ({}/{} steps done)",
        run.run_id, run.completed_steps, run.total_steps
    );
    for step in steps.iter().filter(|s| s.status == StepStatus::Waiting) {
        match &step.waiting_for {
            Some(signal) => eprintln!(
                "  {} waits for signal {signal:?}: wf signal {} {signal} --payload '<json>'",
                step.step_id, run.run_id
            ),
            None => eprintln!(
                "  {} sleeps for {} s more: wf resume {} then",
                step.step_id,
                next_due_in.as_secs(),
                run.run_id
            ),
        }
    }
    ExitCode::SUCCESS
}

/// Prints a page of runs.
pub(crate) fn list(page: &Page<WorkflowRun>, as_json: bool) {
    if as_json {
        let body =
            json!({ "runs": page.items, "next": page.next.as_ref().map(wf_store::Cursor::as_str) });
        println!("{}", pretty(&body));
        return;
    }
    println!(
        "{:<26}  {:<20}  {:<10}  {:>7}  {:<24}  RESOURCE",
        "RUN", "WORKFLOW", "STATUS", "STEPS", "CREATED"
    );
    for run in &page.items {
        println!(
            "{:<26}  {:<20}  {:<10}  {:>7}  {:<24}  {}",
            run.run_id,
            run.workflow_id,
            run.status,
            format!("{}/{}", run.completed_steps, run.total_steps),
            run.created_at.format("%Y-%m-%d %H:%M:%S%.3f"),
            run.resource_id.as_deref().unwrap_or("-")
        );
    }
    if let Some(next) = &page.next {
        println!("more: --cursor {}", next.as_str());
    }
}

/// Prints a run and the timeline of its steps.
pub(crate) fn show(record: &RunRecord, as_json: bool) {
    if as_json {
        println!("{}", pretty(&json!(record)));
        return;
    }
    let run = &record.run;
    println!("run       {}", run.run_id);
    println!("workflow  {} v{}", run.workflow_id, run.workflow_version);
    println!(
        "status    {} ({}/{} steps, {:.0}%)",
        run.status,
        run.completed_steps,
        run.total_steps,
        run.progress() * 100.0
    );
    println!("created   {}", run.created_at.to_rfc3339());
    if let Some(done) = run.completed_at {
        println!("ended     {} (took {})", done.to_rfc3339(), elapsed(run));
    }
    if let Some(resource) = &run.resource_id {
        println!("resource  {resource}");
    }
    if let Some(error) = &run.error {
        println!("error     {}: {}", error.code, error.message);
    }
    println!();
    println!(
        "{:<20}  {:<10}  {:>7}  {:<12}  {:>9}  NOTE",
        "STEP", "STATUS", "ATTEMPT", "STARTED", "DURATION"
    );
    let mut steps: Vec<&StepExecution> = record.steps.iter().collect();
    steps.sort_by_key(|s| (s.execution_index, s.step_id.clone()));
    for step in steps {
        let started = step.started_at.map_or_else(
            || "-".to_owned(),
            |t| format!("+{} ms", (t - run.created_at).num_milliseconds()),
        );
        let duration = step
            .duration_ms
            .map_or_else(|| "-".to_owned(), |d| format!("{d} ms"));
        let note = match (&step.error, &step.waiting_for) {
            (Some(error), _) => format!("{}: {}", error.code, error.message),
            (None, Some(signal)) if step.status == StepStatus::Waiting => {
                format!("waiting for {signal:?}")
            }
            _ => String::new(),
        };
        println!(
            "{:<20}  {:<10}  {:>7}  {:<12}  {:>9}  {}",
            step.step_id, step.status, step.attempt, started, duration, note
        );
    }
    if let Some(output) = &run.output {
        println!();
        println!("output");
        println!("{}", pretty(output));
    }
}

/// Prints the known workflows.
pub(crate) fn workflows(list: &[WorkflowInfo]) {
    for workflow in list {
        println!(
            "{} v{}: {}",
            workflow.workflow_id, workflow.version, workflow.description
        );
        println!("  steps: {}", workflow.steps.join(" -> "));
    }
}

//! CloudWatch Embedded Metric Format: one JSON line per metric event on standard output,
//! which Lambda ships to CloudWatch Logs and CloudWatch turns into metrics with no API call
//! and no extra latency. No dimensions, so no per-run custom-metric cost; the run and step
//! ids ride along as properties, searchable in Logs Insights.

use std::sync::Mutex;

use serde_json::{Map, Value, json};
use wf_engine::{Event, Observer};
use wf_store::{StepStatus, now_millis};

/// Writes EMF lines, to standard output or (in tests) to memory.
#[derive(Debug)]
pub struct EmfMetrics {
    namespace: String,
    captured: Option<Mutex<Vec<Value>>>,
}

impl EmfMetrics {
    /// Metrics printed on standard output, as Lambda expects.
    pub fn stdout(namespace: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            captured: None,
        }
    }

    /// Metrics kept in memory; read them with [`EmfMetrics::lines`].
    pub fn capture(namespace: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            captured: Some(Mutex::new(Vec::new())),
        }
    }

    /// The lines captured so far (empty when printing to standard output).
    pub fn lines(&self) -> Vec<Value> {
        self.captured.as_ref().map_or_else(Vec::new, |c| {
            c.lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone()
        })
    }

    /// One EMF line with `metrics` (name, unit, value) and string `properties`.
    pub fn emit(&self, metrics: &[(&str, &str, f64)], properties: &[(&str, String)]) {
        let definitions: Vec<Value> = metrics
            .iter()
            .map(|(name, unit, _)| json!({ "Name": name, "Unit": unit }))
            .collect();
        let mut line = Map::new();
        line.insert(
            "_aws".to_owned(),
            json!({
                "Timestamp": now_millis().timestamp_millis(),
                "CloudWatchMetrics": [{
                    "Namespace": self.namespace,
                    "Dimensions": [[]],
                    "Metrics": definitions,
                }],
            }),
        );
        for (name, _, value) in metrics {
            line.insert((*name).to_owned(), json!(value));
        }
        for (name, value) in properties {
            line.insert((*name).to_owned(), json!(value));
        }
        let line = Value::Object(line);
        match &self.captured {
            Some(captured) => captured
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(line),
            None => println!("{line}"),
        }
    }

    /// A run was started (not replayed).
    pub fn run_started(&self, workflow_id: &str, run_id: &str) {
        self.emit(
            &[("RunsStarted", "Count", 1.0)],
            &[
                ("workflowId", workflow_id.to_owned()),
                ("runId", run_id.to_owned()),
            ],
        );
    }
}

impl Observer for EmfMetrics {
    fn on_event(&self, event: &Event) {
        match event {
            Event::StepFinished {
                run_id,
                step_id,
                attempt,
                status,
                duration_ms,
                error,
            } => {
                let count = match status {
                    StepStatus::Completed | StepStatus::Skipped => "StepsCompleted",
                    StepStatus::Retrying => "StepRetries",
                    StepStatus::Failed => "StepFailures",
                    _ => return,
                };
                #[expect(
                    clippy::cast_precision_loss,
                    reason = "a step duration in ms is far below 2^52"
                )]
                let duration = *duration_ms as f64;
                let mut properties = vec![
                    ("runId", run_id.to_string()),
                    ("stepId", step_id.to_string()),
                    ("attempt", attempt.to_string()),
                ];
                if let Some(error) = error {
                    properties.push(("errorCode", error.code.clone()));
                }
                self.emit(
                    &[
                        (count, "Count", 1.0),
                        ("StepDuration", "Milliseconds", duration),
                    ],
                    &properties,
                );
            }
            Event::RunFinished { run_id, status } => {
                let name = match status {
                    wf_store::RunStatus::Completed => "RunsCompleted",
                    wf_store::RunStatus::Failed => "RunsFailed",
                    wf_store::RunStatus::Cancelled => "RunsCancelled",
                    _ => return,
                };
                self.emit(&[(name, "Count", 1.0)], &[("runId", run_id.to_string())]);
            }
            Event::RunNotRecovered { run_id, code } => self.emit(
                &[("RunsNotRecovered", "Count", 1.0)],
                &[("runId", run_id.to_string()), ("errorCode", code.clone())],
            ),
            Event::StepStarted { .. } => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_failure_is_one_emf_line_with_its_duration() {
        let metrics = EmfMetrics::capture("Test");
        metrics.on_event(&Event::StepFinished {
            run_id: wf_store::RunId::generate(),
            step_id: wf_store::StepId::parse("charge").unwrap(),
            attempt: 2,
            status: StepStatus::Failed,
            duration_ms: 42,
            error: Some(wf_store::ErrorInfo::new("card_declined", "no")),
        });
        let lines = metrics.lines();
        assert_eq!(lines.len(), 1);
        let line = &lines[0];
        assert_eq!(line["_aws"]["CloudWatchMetrics"][0]["Namespace"], "Test");
        assert_eq!(
            line["_aws"]["CloudWatchMetrics"][0]["Metrics"],
            json!([
                { "Name": "StepFailures", "Unit": "Count" },
                { "Name": "StepDuration", "Unit": "Milliseconds" }
            ])
        );
        assert_eq!(line["StepFailures"], 1.0);
        assert_eq!(line["StepDuration"], 42.0);
        assert_eq!(line["stepId"], "charge");
        assert_eq!(line["errorCode"], "card_declined");
        assert!(line["_aws"]["Timestamp"].as_i64().unwrap() > 1_600_000_000_000);
    }
}

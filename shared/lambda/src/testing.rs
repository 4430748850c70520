//! Helpers for handler tests (`test-util` feature): the sample events of `events/`, and a
//! driver that runs recorded step tasks the way SQS and execute-step would.
#![allow(
    clippy::expect_used,
    clippy::panic,
    clippy::missing_panics_doc,
    reason = "test helpers: a missing fixture or a failed step must fail the test"
)]

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;
use wf_engine::RecordingDispatcher;
use wf_store::RunId;

use crate::Deps;

/// The run id the sample events of `events/` use; tests put a real run's id in its place.
pub const SAMPLE_RUN_ID: &str = "01JDXQ3M8Z6F0000000000TEST";

/// The repository's `events/` folder.
pub fn events_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../events")
}

/// The sample event `events/<name>.json`, exactly as shipped.
pub fn event(name: &str) -> Value {
    let path = events_dir().join(format!("{name}.json"));
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parse {}: {e}", path.display()))
}

/// The sample event with [`SAMPLE_RUN_ID`] replaced by `run_id`.
pub fn event_for_run(name: &str, run_id: &RunId) -> Value {
    let text = event(name)
        .to_string()
        .replace(SAMPLE_RUN_ID, &run_id.to_string());
    serde_json::from_str(&text).expect("still JSON")
}

/// Names (without `.json`) of the sample events whose file name starts with `prefix`.
pub fn event_names(prefix: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(events_dir())
        .expect("list events/")
        .filter_map(|entry| {
            let name = entry.ok()?.file_name().into_string().ok()?;
            let stem = name.strip_suffix(".json")?;
            stem.starts_with(prefix).then(|| stem.to_owned())
        })
        .collect();
    names.sort();
    names
}

/// Executes every task the dispatcher recorded, and the tasks those dispatch, until none
/// is left or `max_tasks` ran. Tasks delayed up to a second wait their delay first; longer
/// ones (signal timeouts, long sleeps) are timers the test does not wait for, and are
/// dropped. Returns how many tasks ran.
pub async fn drive(deps: &Deps, dispatcher: &RecordingDispatcher, max_tasks: usize) -> usize {
    let mut ran = 0;
    while ran < max_tasks {
        let tasks = dispatcher.take();
        if tasks.is_empty() {
            break;
        }
        for (task, delay) in tasks {
            if delay > Duration::from_secs(1) {
                continue;
            }
            if delay > Duration::ZERO {
                tokio::time::sleep(delay).await;
            }
            deps.executor
                .execute(&task, None)
                .await
                .expect("execute a step task");
            ran += 1;
        }
    }
    ran
}

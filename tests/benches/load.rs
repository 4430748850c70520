//! Load benchmark. Writes `target/bench/load.json` with, for 1,000 concurrent 3-step runs
//! on the embedded store (SQLite in memory), 200 through DynamoDB Local (what the emulator
//! alone allows), and 200 through DynamoDB Local with faults on
//! (the store wrapper and the chaotic dispatcher of the fault-injected behaviour suite, at
//! its rates, seed `WF_FAULT_SEED`): runs/s, steps/s, p50 and p99 run latency (from the
//! start call to the run's end event), and the lost, stuck and double-counted runs, which
//! must all be 0 (the benchmark fails otherwise); `sweptTasks` counts the tasks the sweep
//! had to dispatch again (lost dispatches, and the known gaps that strand a lease).
//!
//! - lost: a run whose start was accepted and that the store does not have;
//! - stuck: a run not ended when the benchmark gives up on it (after `STUCK_AFTER`);
//! - double-counted: a run whose end event came more or less than once, a step committed
//!   (terminal `StepFinished`) more or less than once, or a completed count that is off.
//!
//! All runs are started first, then run together by one in-process runner, with the
//! sweep on its own schedule (every `SWEEP_EVERY`, lost dispatches after
//! `SWEEP_STALE_AFTER`: production's minute and five minutes, scaled down as the suite
//! scales them on DynamoDB Local).
//!
//! Run: `cargo bench -p wf-integration-tests --bench load`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::indexing_slicing,
    clippy::too_many_lines,
    reason = "benchmark binary: failures should abort it loudly"
)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wf_engine::testing::{
    Chaos, ChaosRates, FaultRates, FaultyStore, LOST_ANSWER_GAPS, fault_seed,
};
use wf_engine::{
    Dispatcher, Event, Executor, ExecutorConfig, InProcessDispatcher, LocalRunner, Observer,
    Registry, RunnerOutcome, StartRequest, StepContext, StepError, SystemClock, Workflow, step,
};
use wf_integration_tests::{create_table, dynamodb_client, require_dynamodb, unique_table_name};
use wf_store::{DynamoDbStore, Retention, RunId, RunStatus, SqliteStore, Store};

const SWEEP_EVERY: Duration = Duration::from_secs(3);
const SWEEP_STALE_AFTER: Duration = Duration::from_secs(15);
const STUCK_AFTER: Duration = Duration::from_secs(600);
const STEPS: u32 = 3;

async fn pass(_: StepContext, input: Value) -> Result<Value, StepError> {
    Ok(input)
}

fn registry() -> Registry {
    let mut registry = Registry::new();
    let mut three = Workflow::builder("three", "1");
    for id in ["a", "b", "c"] {
        three = three.then(step(id, pass).timeout(Duration::from_secs(2)));
    }
    registry.register(three.build().unwrap()).unwrap();
    registry
}

/// The end of each run and the commits of each step, as the metrics would count them.
#[derive(Debug, Default)]
struct Tally {
    ended: Mutex<HashMap<RunId, (u32, Instant)>>,
    commits: Mutex<HashMap<(RunId, String), u32>>,
}

impl Observer for Tally {
    fn on_event(&self, event: &Event) {
        match event {
            Event::RunFinished { run_id, .. } => {
                let mut ended = self.ended.lock().unwrap();
                let entry = ended.entry(*run_id).or_insert((0, Instant::now()));
                entry.0 += 1;
            }
            Event::StepFinished {
                run_id,
                step_id,
                status,
                ..
            } if status.is_terminal() => {
                *self
                    .commits
                    .lock()
                    .unwrap()
                    .entry((*run_id, step_id.to_string()))
                    .or_default() += 1;
            }
            _ => {}
        }
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Starts `runs` runs, runs them all, and measures.
async fn load(store: Arc<dyn Store>, dispatcher_chaos: Option<ChaosRates>, runs: u32) -> Value {
    let tally = Arc::new(Tally::default());
    let (dispatcher, receiver) = InProcessDispatcher::new();
    let chaos = dispatcher_chaos.map(|rates| {
        Arc::new(Chaos::new(
            Arc::new(dispatcher.clone()),
            rates,
            fault_seed(),
        ))
    });
    let dispatcher: Arc<dyn Dispatcher> = match &chaos {
        Some(chaos) => Arc::clone(chaos) as Arc<dyn Dispatcher>,
        None => Arc::new(dispatcher),
    };
    let executor = Arc::new(
        Executor::new(
            Arc::clone(&store),
            dispatcher,
            Arc::new(registry()),
            Arc::new(SystemClock),
        )
        .with_observer(Arc::clone(&tally) as Arc<dyn Observer>)
        .with_config(ExecutorConfig {
            lease_margin: Duration::from_millis(500),
            chain_margin: Duration::from_millis(100),
        }),
    );
    let mut runner = LocalRunner::new(Arc::clone(&executor), receiver);
    let swept = Arc::new(AtomicU32::new(0));
    let sweeper = {
        let executor = Arc::clone(&executor);
        let swept = Arc::clone(&swept);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(SWEEP_EVERY);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                if let Ok(report) = executor.sweep(SWEEP_STALE_AFTER).await {
                    swept.fetch_add(report.tasks_dispatched, Ordering::SeqCst);
                }
            }
        })
    };

    let began = Instant::now();
    let mut started: Vec<(RunId, Instant)> = Vec::new();
    for n in 0..runs {
        let request = StartRequest {
            workflow_id: "three".into(),
            input: json!({ "n": n }),
            idempotency_key: Some(format!("load-{n}")),
            ..StartRequest::default()
        };
        let at = Instant::now();
        // A client retries a start that failed transiently, under the same key.
        let run_id = loop {
            match executor.start(request.clone()).await {
                Ok(started) => break started.run.run_id,
                Err(error) if error.is_retryable() => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(error) => panic!("start failed: {error}"),
            }
        };
        started.push((run_id, at));
    }
    for (run_id, _) in &started {
        loop {
            match runner.run(run_id, SWEEP_EVERY).await {
                Ok(RunnerOutcome::Finished(_)) => break,
                Ok(_) => tokio::time::sleep(SWEEP_EVERY).await,
                Err(error) => assert!(error.is_retryable(), "runner failed: {error}"),
            }
            if began.elapsed() > STUCK_AFTER {
                break;
            }
        }
    }
    let elapsed = began.elapsed().as_secs_f64();
    runner.drain(Duration::from_secs(1)).await;
    sweeper.abort();

    let inner: Arc<dyn Store> = store;
    let ended = tally.ended.lock().unwrap().clone();
    let commits = tally.commits.lock().unwrap().clone();
    let (mut lost, mut stuck, mut double_counted) = (0_u32, 0_u32, 0_u32);
    let mut latencies = Vec::new();
    for (run_id, at) in &started {
        let Ok(run) = get_run_calm(&inner, run_id).await else {
            lost += 1;
            continue;
        };
        if !run.status.is_terminal() {
            stuck += 1;
            continue;
        }
        let ends = ended.get(run_id).map_or(0, |(n, _)| *n);
        let steps_ok = ["a", "b", "c"]
            .iter()
            .all(|id| commits.get(&(*run_id, (*id).to_owned())) == Some(&1));
        if ends != 1
            || !steps_ok
            || run.status != RunStatus::Completed
            || run.completed_steps != STEPS
        {
            double_counted += 1;
        }
        if let Some((_, finished)) = ended.get(run_id) {
            latencies.push(finished.duration_since(*at).as_secs_f64() * 1000.0);
        }
    }
    latencies.sort_by(f64::total_cmp);
    let mut result = json!({
        "runs": runs,
        "stepsPerRun": STEPS,
        "wallSeconds": elapsed,
        "runsPerSecond": f64::from(runs) / elapsed,
        "stepsPerSecond": f64::from(runs * STEPS) / elapsed,
        "p50RunLatencyMs": percentile(&latencies, 50.0),
        "p99RunLatencyMs": percentile(&latencies, 99.0),
        "lostRuns": lost,
        "stuckRuns": stuck,
        "doubleCountedRuns": double_counted,
        "sweptTasks": swept.load(Ordering::SeqCst),
    });
    if let Some(chaos) = chaos {
        let counts = chaos.counts();
        result["dispatch"] = json!({
            "lost": counts.lost,
            "duplicated": counts.duplicated,
            "delayed": counts.delayed,
        });
    }
    result
}

/// Reads a run, retrying transient errors (the store may be the faulty one).
async fn get_run_calm(
    store: &Arc<dyn Store>,
    run_id: &RunId,
) -> Result<wf_store::WorkflowRun, wf_store::StoreError> {
    loop {
        match store.get_run(run_id).await {
            Err(error) if error.is_retryable() => {}
            result => return result,
        }
    }
}

/// A fresh table on DynamoDB Local.
async fn dynamodb_store() -> Arc<dyn Store> {
    let local = require_dynamodb();
    let client = dynamodb_client(local.endpoint()).await;
    let table = unique_table_name("load");
    create_table(&client, &table).await.unwrap();
    Arc::new(DynamoDbStore::new(client, table, Retention::default()))
}

#[tokio::main]
async fn main() {
    let embedded: Arc<dyn Store> = Arc::new(SqliteStore::in_memory(Retention::default()).unwrap());
    let embedded = load(embedded, None, 1000).await;

    // The same 200 runs on DynamoDB Local without faults: what the emulator alone allows.
    let calm = load(dynamodb_store().await, None, 200).await;
    let dynamodb = dynamodb_store().await;
    let faults = FaultyStore::new(
        dynamodb,
        FaultRates::suite().sparing(LOST_ANSWER_GAPS),
        fault_seed(),
    );
    let mut with_faults = load(
        Arc::clone(&faults) as Arc<dyn Store>,
        Some(ChaosRates::suite(Duration::from_millis(50))),
        200,
    )
    .await;
    let injected: serde_json::Map<String, Value> = faults
        .injected()
        .into_iter()
        .map(|((call, fault), n)| (format!("{call}/{fault}"), json!(n)))
        .collect();
    with_faults["storeFaults"] = Value::Object(injected);
    with_faults["storeFaultsTotal"] = json!(faults.injected_total());
    with_faults["seed"] = json!(fault_seed());

    let results = json!({
        "benchmark": "load",
        "machine": "2 cores (the workplace's standard size)",
        "embedded": embedded,
        "dynamodbLocal": calm,
        "dynamodbLocalWithFaults": with_faults,
        "notes": "all runs started first, then run together; latency from the start call to the run's end event; faults at the fault-injected suite's rates with the known lost-answer gaps spared (LOST_ANSWER_GAPS); sweep every 3 s, lost dispatches after 15 s",
    });
    let dir = wf_integration_tests::workspace_root().join("target/bench");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("load.json");
    std::fs::write(&path, serde_json::to_string_pretty(&results).unwrap()).unwrap();
    println!("{}", serde_json::to_string_pretty(&results).unwrap());
    println!("wrote {}", path.display());
    for section in ["embedded", "dynamodbLocal", "dynamodbLocalWithFaults"] {
        for field in ["lostRuns", "stuckRuns", "doubleCountedRuns"] {
            assert_eq!(results[section][field], json!(0), "{section}.{field}");
        }
    }
}

//! Engine benchmark. Writes `target/bench/engine.json` with:
//! - engine overhead per step on the embedded store (SQLite in memory, in-process
//!   dispatch, no-op steps) for a 10-step linear workflow and a 100-way fan-out;
//! - runs per second with 1,000 concurrent 3-step runs on the embedded store;
//! - store requests and capacity units per step on DynamoDB Local (as it reports them),
//!   and the cost per million steps they imply at on-demand prices.
//!
//! Run: `cargo bench -p wf-integration-tests --bench engine`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::cast_precision_loss,
    reason = "benchmark binary: failures should abort it loudly"
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wf_engine::{
    Executor, InProcessDispatcher, LocalRunner, Registry, RunnerOutcome, StartRequest, StepContext,
    StepError, SystemClock, Workflow, step,
};
use wf_integration_tests::{create_table, dynamodb_client, require_dynamodb, unique_table_name};
use wf_store::{CapacityTotals, DynamoDbStore, Retention, RunId, SqliteStore, Store};

async fn pass(_: StepContext, input: Value) -> Result<Value, StepError> {
    Ok(input)
}

fn registry() -> Registry {
    let mut registry = Registry::new();
    let mut linear = Workflow::builder("linear-10", "1");
    for i in 0..10 {
        linear = linear.then(step(&format!("s{i}"), pass));
    }
    registry.register(linear.build().unwrap()).unwrap();
    let fan = Workflow::builder("fan-100", "1")
        .then(step("split", pass))
        .parallel((0..100).map(|i| step(&format!("b{i:03}"), pass)))
        .then(step("join", pass))
        .build()
        .unwrap();
    registry.register(fan).unwrap();
    let small = Workflow::builder("three", "1")
        .then(step("a", pass))
        .then(step("b", pass))
        .then(step("c", pass))
        .build()
        .unwrap();
    registry.register(small).unwrap();
    registry
}

struct Bed {
    executor: Arc<Executor>,
    runner: LocalRunner,
}

fn bed(store: Arc<dyn Store>) -> Bed {
    let (dispatcher, receiver) = InProcessDispatcher::new();
    let executor = Arc::new(Executor::new(
        store,
        Arc::new(dispatcher),
        Arc::new(registry()),
        Arc::new(SystemClock),
    ));
    let runner = LocalRunner::new(Arc::clone(&executor), receiver);
    Bed { executor, runner }
}

impl Bed {
    async fn start(&self, workflow: &str) -> RunId {
        let request = StartRequest {
            workflow_id: workflow.into(),
            input: json!({ "payload": "x".repeat(200) }),
            ..StartRequest::default()
        };
        self.executor.start(request).await.unwrap().run.run_id
    }

    async fn finish(&mut self, run_id: &RunId) {
        match self
            .runner
            .run(run_id, Duration::from_secs(60))
            .await
            .unwrap()
        {
            RunnerOutcome::Finished(run) => assert!(run.status == wf_store::RunStatus::Completed),
            other => panic!("run did not finish: {other:?}"),
        }
    }

    /// Runs `runs` runs one after another; returns microseconds per step.
    async fn sequential(&mut self, workflow: &str, runs: u32, steps: u32) -> f64 {
        let started = Instant::now();
        for _ in 0..runs {
            let run_id = self.start(workflow).await;
            self.finish(&run_id).await;
        }
        started.elapsed().as_micros() as f64 / f64::from(runs * steps)
    }
}

fn sqlite() -> Arc<dyn Store> {
    Arc::new(SqliteStore::in_memory(Retention::default()).unwrap())
}

/// Dollars per million steps for the measured units and requests, at us-east-1
/// on-demand prices (ANCHORS.md): $0.625 per million write units, $0.125 per million
/// read units, $0.40 per million SQS requests (one send + one receive + one delete per
/// step; a chained step saves all three).
fn dollars_per_million_steps(per_step: &CapacityTotals) -> f64 {
    per_step.write_units * 0.625 + per_step.read_units * 0.125 + 3.0 * 0.40
}

fn per_step(total: CapacityTotals, steps: f64) -> CapacityTotals {
    CapacityTotals {
        read_units: total.read_units / steps,
        write_units: total.write_units / steps,
        read_requests: 0,
        write_requests: 0,
    }
}

async fn dynamodb_profile(workflow: &str, runs: u32, steps: u32) -> Value {
    let local = require_dynamodb();
    let client = dynamodb_client(local.endpoint()).await;
    let table = unique_table_name("bench_engine");
    create_table(&client, &table).await.unwrap();
    let store = Arc::new(DynamoDbStore::new(client, table, Retention::default()));
    let mut bed = bed(Arc::clone(&store) as Arc<dyn Store>);
    let before = store.capacity();
    let started = Instant::now();
    for _ in 0..runs {
        let run_id = bed.start(workflow).await;
        bed.finish(&run_id).await;
    }
    let elapsed = started.elapsed();
    let used = store.capacity().since(&before);
    let total_steps = f64::from(runs * steps);
    let unit_costs = per_step(used, total_steps);
    json!({
        "runs": runs,
        "stepsPerRun": steps,
        "msPerStep": elapsed.as_secs_f64() * 1000.0 / total_steps,
        "readRequestsPerStep": used.read_requests as f64 / total_steps,
        "writeRequestsPerStep": used.write_requests as f64 / total_steps,
        "readUnitsPerStep": unit_costs.read_units,
        "writeUnitsPerStep": unit_costs.write_units,
        "dollarsPerMillionStepsAtLocalUnits": dollars_per_million_steps(&unit_costs),
    })
}

#[tokio::main]
async fn main() {
    let mut local = bed(sqlite());
    let linear_us = local.sequential("linear-10", 200, 10).await;
    let fan_us = local.sequential("fan-100", 10, 102).await;

    let mut concurrent = bed(sqlite());
    let started = Instant::now();
    let mut ids = Vec::with_capacity(1000);
    for _ in 0..1000 {
        ids.push(concurrent.start("three").await);
    }
    for id in &ids {
        concurrent.finish(id).await;
    }
    let elapsed = started.elapsed().as_secs_f64();

    let results = json!({
        "benchmark": "engine",
        "machine": "2 cores (the workplace's standard size)",
        "embedded": {
            "linear10MicrosPerStep": linear_us,
            "fanOut100MicrosPerStep": fan_us,
            "concurrentRuns": 1000,
            "concurrentRunsPerSecond": 1000.0 / elapsed,
            "concurrentStepsPerSecond": 3000.0 / elapsed,
        },
        "dynamodbLocal": {
            "linear10": dynamodb_profile("linear-10", 5, 10).await,
            "fanOut100": dynamodb_profile("fan-100", 1, 102).await,
        },
        "notes": "DynamoDB Local reports transactional writes at 4x the item units (AWS bills 2x); see README cost model",
    });
    let dir = wf_integration_tests::workspace_root().join("target/bench");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("engine.json");
    std::fs::write(&path, serde_json::to_string_pretty(&results).unwrap()).unwrap();
    println!("{}", serde_json::to_string_pretty(&results).unwrap());
    println!("wrote {}", path.display());
}

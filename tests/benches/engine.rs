//! Engine benchmark. Writes `target/bench/engine.json` with:
//! - engine overhead per step on the embedded store (SQLite in memory, in-process
//!   dispatch, no-op steps) for a 10-step linear workflow and a 100-way fan-out;
//! - runs per second with 1,000 concurrent 3-step runs on the embedded store;
//! - store requests and capacity units per step on DynamoDB Local (as it reports them),
//!   and the cost per million steps they imply at on-demand prices;
//! - `billed`: for linear-10, fan-100 and the three example workflows (with their sample
//!   inputs), every DynamoDB request billed by AWS's rules from the real item sizes
//!   (`DynamoDbStore::billed`), SQS requests and invocations as Lambda's SQS trigger makes
//!   them, and dollars per million steps all-in at 128 MB arm64, beside Step Functions
//!   Standard and Lambda durable functions.
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
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::{Value, json};
use wf_engine::{
    Dispatcher, EngineError, Executor, InProcessDispatcher, LocalRunner, Registry, RunnerOutcome,
    StartRequest, StepContext, StepError, StepTask, SystemClock, Workflow, step,
};
use wf_integration_tests::{create_table, dynamodb_client, require_dynamodb, unique_table_name};
use wf_store::{
    BilledTotals, CapacityTotals, DynamoDbStore, Retention, RunId, RunStatus, SqliteStore, Store,
};

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

/// Counts what the SQS dispatcher would send, and what Lambda's SQS trigger would then
/// receive, delete and invoke: tasks dispatched together go in one `SendMessageBatch` of
/// up to 10, arrive in one receive of up to 10, are deleted in one batch, and make one
/// execute-step invocation.
#[derive(Debug)]
struct Counting {
    inner: InProcessDispatcher,
    batches: AtomicU64,
    messages: AtomicU64,
}

#[async_trait]
impl Dispatcher for Counting {
    async fn dispatch(&self, tasks: &[StepTask], delay: Duration) -> Result<(), EngineError> {
        let batches = u64::try_from(tasks.len().div_ceil(10)).unwrap();
        self.batches.fetch_add(batches, Ordering::Relaxed);
        self.messages
            .fetch_add(u64::try_from(tasks.len()).unwrap(), Ordering::Relaxed);
        self.inner.dispatch(tasks, delay).await
    }
}

/// Prices (ANCHORS.md, us-east-1 on-demand) in dollars per million.
const WRU: f64 = 0.625;
const RRU: f64 = 0.125;
const SQS_REQUEST: f64 = 0.40;
const LAMBDA_REQUEST: f64 = 0.20;
/// Dollars per GB-second on arm64, and the memory of execute-step in this model.
const LAMBDA_GB_SECOND: f64 = 0.000_013_333_4;
const MEMORY_GB: f64 = 0.125;
/// The same steps elsewhere: one state transition per step at $25 per million, and
/// about $8.2 per million durable operations with their Lambda work (issue 11's figures).
const STEP_FUNCTIONS_STANDARD: f64 = 25.0;
const DURABLE_FUNCTIONS: f64 = 8.2;

/// An executor on a fresh DynamoDB Local table whose store bills what AWS would, a
/// dispatcher that counts what it sends, and a runner whose looks are not billed.
struct BilledBed {
    store: Arc<DynamoDbStore>,
    executor: Arc<Executor>,
    dispatcher: Arc<Counting>,
    runner: LocalRunner,
}

async fn billed_bed(registry: fn() -> Registry) -> BilledBed {
    let local = require_dynamodb();
    let client = dynamodb_client(local.endpoint()).await;
    let table = unique_table_name("bench_billed");
    create_table(&client, &table).await.unwrap();
    let store = Arc::new(DynamoDbStore::new(client, table, Retention::default()));
    let (inner, receiver) = InProcessDispatcher::new();
    let dispatcher = Arc::new(Counting {
        inner,
        batches: AtomicU64::new(0),
        messages: AtomicU64::new(0),
    });
    let executor = Arc::new(Executor::new(
        Arc::clone(&store) as Arc<dyn Store>,
        Arc::clone(&dispatcher) as Arc<dyn Dispatcher>,
        Arc::new(registry()),
        Arc::new(SystemClock),
    ));
    // Each task runs with a Lambda invocation's time, so single successors chain.
    // One task at a time, so each task's time is its own (Lambda instances do not share
    // cores); the runner's looks at the run go through a second, unbilled client.
    let watch = DynamoDbStore::new(
        dynamodb_client(local.endpoint()).await,
        store.table().to_owned(),
        Retention::default(),
    );
    let runner = LocalRunner::new(Arc::clone(&executor), receiver)
        .with_budget(Duration::from_secs(300))
        .with_max_running(1)
        .with_watch_store(Arc::new(watch));
    BilledBed {
        store,
        executor,
        dispatcher,
        runner,
    }
}

async fn billed_profile(
    registry: fn() -> Registry,
    workflow: &str,
    input: Value,
    runs: u32,
    signal: Option<(&str, Value)>,
) -> Value {
    let BilledBed {
        store,
        executor,
        dispatcher,
        mut runner,
    } = billed_bed(registry).await;
    let before = store.billed();
    let local_before = store.capacity();
    let mut starting = Duration::ZERO;
    let mut steps = 0_u32;
    for _ in 0..runs {
        let request = StartRequest {
            workflow_id: workflow.into(),
            input: input.clone(),
            ..StartRequest::default()
        };
        let started = Instant::now();
        let run_id = executor.start(request).await.unwrap().run.run_id;
        starting += started.elapsed();
        let mut outcome = runner.run(&run_id, Duration::from_secs(10)).await.unwrap();
        if let (Some((name, payload)), RunnerOutcome::Parked { .. }) = (&signal, &outcome) {
            executor.signal(&run_id, name, payload).await.unwrap();
            outcome = runner.run(&run_id, Duration::from_secs(10)).await.unwrap();
        }
        let RunnerOutcome::Finished(run) = outcome else {
            panic!("{workflow} did not finish: {outcome:?}");
        };
        assert_eq!(run.status, RunStatus::Completed, "{workflow}");
        steps += run.total_steps;
    }
    // Lambda bills the time start-run and execute-step run, not a durable sleep or a
    // wait for a signal (queue delays).
    let elapsed = (starting + runner.busy()).as_secs_f64();
    let billed: BilledTotals = store.billed().since(&before);
    let local_units = store.capacity().since(&local_before);
    let steps = f64::from(steps);
    let batches = dispatcher.batches.load(Ordering::Relaxed) as f64;
    // Send, receive and delete per batch; one execute-step invocation per batch, and one
    // start-run invocation per run.
    let sqs_requests = 3.0 * batches;
    let invocations = batches + f64::from(runs);
    let wru = billed.write_units / steps;
    let rru = billed.read_units / steps;
    let seconds_per_step = elapsed / steps;
    let dollars = wru * WRU
        + rru * RRU
        + sqs_requests / steps * SQS_REQUEST
        + invocations / steps * LAMBDA_REQUEST
        + seconds_per_step * MEMORY_GB * LAMBDA_GB_SECOND * 1e6;
    let requests: serde_json::Map<String, Value> = billed
        .requests
        .iter()
        .map(|(api, n)| ((*api).to_owned(), json!(*n as f64 / steps)))
        .collect();
    json!({
        "runs": runs,
        "stepsPerRun": steps / f64::from(runs),
        "inputBytes": serde_json::to_string(&input).unwrap().len(),
        "wruPerStep": wru,
        "rruPerStep": rru,
        "dynamodbRequestsPerStep": requests,
        "sqsRequestsPerStep": sqs_requests / steps,
        "sqsMessagesPerStep": dispatcher.messages.load(Ordering::Relaxed) as f64 / steps,
        "invocationsPerStep": invocations / steps,
        "secondsPerStepMeasured": seconds_per_step,
        "dollarsPerMillionSteps": dollars,
        "stepFunctionsStandardDollarsPerMillionSteps": STEP_FUNCTIONS_STANDARD,
        "durableFunctionsDollarsPerMillionSteps": DURABLE_FUNCTIONS,
        "dynamodbLocalReported": {
            "wruPerStep": local_units.write_units / steps,
            "rruPerStep": local_units.read_units / steps,
        },
    })
}

/// What the minute sweep bills for an open run with nothing to do: approval runs parked on
/// their signal wait (the sweep looks at every open run every minute).
async fn sweep_profile(runs: u32) -> Value {
    let BilledBed {
        store,
        executor,
        mut runner,
        ..
    } = billed_bed(examples).await;
    for _ in 0..runs {
        let request = StartRequest {
            workflow_id: "approval".into(),
            input: sample("approval.json"),
            ..StartRequest::default()
        };
        let run_id = executor.start(request).await.unwrap().run.run_id;
        let outcome = runner.run(&run_id, Duration::from_secs(10)).await.unwrap();
        assert!(
            matches!(outcome, RunnerOutcome::Parked { .. }),
            "{outcome:?}"
        );
    }
    let before = store.billed();
    let report = executor.sweep(Duration::from_secs(900)).await.unwrap();
    let billed = store.billed().since(&before);
    assert_eq!((report.runs_checked, report.tasks_dispatched), (runs, 0));
    let rru = billed.read_units / f64::from(runs);
    json!({
        "openRuns": runs,
        "rruPerOpenRun": rru,
        "wruPerOpenRun": billed.write_units / f64::from(runs),
        "dollarsPerMillionOpenRunDays": rru * RRU * 1440.0,
    })
}

fn sample(name: &str) -> Value {
    let path = wf_integration_tests::workspace_root()
        .join("shared/workflows/inputs")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn examples() -> Registry {
    wf_workflows::registry().unwrap()
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
        "billed": {
            "linear-10": billed_profile(registry, "linear-10", json!({ "payload": "x".repeat(200) }), 5, None).await,
            "fan-100": billed_profile(registry, "fan-100", json!({ "payload": "x".repeat(200) }), 1, None).await,
            "order-fulfilment": billed_profile(examples, "order-fulfilment", sample("order.json"), 5, None).await,
            "document-pipeline": billed_profile(examples, "document-pipeline", sample("document.json"), 5, None).await,
            "approval": billed_profile(
                examples,
                "approval",
                sample("approval.json"),
                3,
                Some(("approved", json!({ "approver": "ada", "approved": true }))),
            )
            .await,
        },
        "sweep": sweep_profile(20).await,
        "notes": "DynamoDB Local reports transactional writes at 4x the item units (AWS bills 2x); `billed` applies AWS's rules to the real item sizes; see README cost model",
    });
    let dir = wf_integration_tests::workspace_root().join("target/bench");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("engine.json");
    std::fs::write(&path, serde_json::to_string_pretty(&results).unwrap()).unwrap();
    println!("{}", serde_json::to_string_pretty(&results).unwrap());
    println!("wrote {}", path.display());
}

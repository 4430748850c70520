//! Store benchmark: latency per operation on SQLite (in memory) and DynamoDB Local, and
//! the DynamoDB read and write units each operation consumed, as DynamoDB reported them.
//! Writes `target/bench/store-ops.json`. Run: `cargo bench -p wf-integration-tests --bench store_ops`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::cast_precision_loss,
    reason = "benchmark binary: failures should abort it loudly"
)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::{TimeDelta, Utc};
use serde_json::{Value, json};
use wf_integration_tests::{create_table, dynamodb_client, require_dynamodb, unique_table_name};
use wf_store::{
    CapacityTotals, DynamoDbStore, NewRun, NewStep, Retention, RunId, RunStatus, RunTransition,
    SqliteStore, StepClaim, StepCommit, StepId, StepOutcome, StepStatus, Store, Successor,
    WorkflowId,
};

const ITERATIONS: u32 = 50;
const OPS: [&str; 4] = ["createRun", "claimStep", "commitStep", "finishRun"];

#[derive(Default)]
struct Tally {
    elapsed: BTreeMap<&'static str, Duration>,
    units: BTreeMap<&'static str, CapacityTotals>,
}

async fn one_run(store: &dyn Store, ddb: Option<&DynamoDbStore>, tally: &mut Tally) {
    let now = Utc::now();
    let run_id = RunId::generate();
    let a = StepId::parse("validate").unwrap();
    let mut timed = |op: &'static str, started: Instant, before: Option<CapacityTotals>| {
        *tally.elapsed.entry(op).or_default() += started.elapsed();
        if let (Some(ddb), Some(before)) = (ddb, before) {
            let delta = ddb.capacity().since(&before);
            let entry = tally.units.entry(op).or_default();
            entry.read_units += delta.read_units;
            entry.write_units += delta.write_units;
            entry.read_requests += delta.read_requests;
            entry.write_requests += delta.write_requests;
        }
    };
    let request = NewRun {
        run_id,
        workflow_id: WorkflowId::parse("orders").unwrap(),
        workflow_version: "1".into(),
        status: RunStatus::Running,
        total_steps: 2,
        input: json!({ "orderId": "o-1", "items": [1, 2, 3] }),
        resource_id: Some("order-1".into()),
        tags: BTreeMap::new(),
        idempotency_key: None,
        retention_days: None,
        created_at: now,
    };
    let first = NewStep {
        step_id: a.clone(),
        execution_index: 0,
        status: StepStatus::Ready,
        parents_total: 0,
        not_before: None,
    };
    let (started, before) = (Instant::now(), ddb.map(DynamoDbStore::capacity));
    let run = store.create_run(&request, &[first]).await.unwrap();
    timed("createRun", started, before);

    let claim = StepClaim {
        run_id,
        step_id: a.clone(),
        attempt: 1,
        owner: "bench".into(),
        now,
        lease_until: now + TimeDelta::seconds(60),
        if_absent: None,
        wake: None,
        park: None,
    };
    let (started, before) = (Instant::now(), ddb.map(DynamoDbStore::capacity));
    store.claim_step(&claim).await.unwrap();
    timed("claimStep", started, before);

    let commit = StepCommit {
        run_id,
        step_id: a,
        attempt: 1,
        lease_owner: "bench".into(),
        outcome: StepOutcome::Completed {
            output: json!({ "valid": true, "note": "x".repeat(900) }),
        },
        successors: vec![Successor {
            step_id: StepId::parse("ship").unwrap(),
            execution_index: 1,
            parents_total: 1,
        }],
        completed_steps: 1,
        duration_ms: 3,
        at: now,
    };
    let (started, before) = (Instant::now(), ddb.map(DynamoDbStore::capacity));
    store.commit_step(&commit).await.unwrap();
    timed("commitStep", started, before);

    let finish = RunTransition {
        expected_status: RunStatus::Running,
        expected_version: run.version + 1,
        status: RunStatus::Completed,
        at: now,
        output: Some(json!({ "shipped": true })),
        output_from: Vec::new(),
        error: None,
    };
    let (started, before) = (Instant::now(), ddb.map(DynamoDbStore::capacity));
    store.transition_run(&run_id, &finish).await.unwrap();
    timed("finishRun", started, before);
}

fn report(tally: &Tally) -> Value {
    let mut ops = serde_json::Map::new();
    for op in OPS {
        let mean_us = tally
            .elapsed
            .get(op)
            .copied()
            .unwrap_or_default()
            .as_micros()
            / u128::from(ITERATIONS);
        let mut entry = json!({ "meanMicros": mean_us });
        if let Some(units) = tally.units.get(op) {
            let n = f64::from(ITERATIONS);
            entry["readUnits"] = json!(units.read_units / n);
            entry["writeUnits"] = json!(units.write_units / n);
            entry["requests"] = json!((units.read_requests + units.write_requests) as f64 / n);
        }
        ops.insert(op.to_owned(), entry);
    }
    Value::Object(ops)
}

#[tokio::main]
async fn main() {
    let sqlite = SqliteStore::in_memory(Retention::default()).unwrap();
    let mut sqlite_tally = Tally::default();
    for _ in 0..ITERATIONS {
        one_run(&sqlite, None, &mut sqlite_tally).await;
    }

    let local = require_dynamodb();
    let client = dynamodb_client(local.endpoint()).await;
    let table = unique_table_name("bench");
    create_table(&client, &table).await.unwrap();
    let ddb = DynamoDbStore::new(client, table, Retention::default());
    let mut ddb_tally = Tally::default();
    for _ in 0..ITERATIONS {
        one_run(&ddb, Some(&ddb), &mut ddb_tally).await;
    }

    let results = json!({
        "benchmark": "store_ops",
        "iterations": ITERATIONS,
        "note": "units as DynamoDB Local reports them (ReturnConsumedCapacity TOTAL); transactional writes count double",
        "sqliteInMemory": report(&sqlite_tally),
        "dynamodbLocal": report(&ddb_tally),
    });
    let dir = wf_integration_tests::workspace_root().join("target/bench");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("store-ops.json");
    std::fs::write(&path, serde_json::to_string_pretty(&results).unwrap()).unwrap();
    println!("{}", serde_json::to_string_pretty(&results).unwrap());
    println!("wrote {}", path.display());
}

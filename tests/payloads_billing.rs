//! What a payload costs on the deployment's parts, billed as AWS bills it (the DynamoDB
//! backend's own accounting from the real item sizes, and one S3 request per blob call):
//! the item writes and reads of an offloaded payload do not grow with its size, and each
//! offloaded payload costs one `PutObject` when written and one `GetObject` when read.
//! Records the numbers for a 1 KB, 300 KB (inline), 1 MB and 10 MB payload in
//! `target/bench/payloads.json` (the README's payload table). DynamoDB Local and moto S3.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::cast_precision_loss,
    reason = "test code: a failed expectation must fail the test"
)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use chrono::{Duration, Utc};
use serde_json::{Value, json};
use wf_integration_tests::{
    create_table, dynamodb_client, emulator_config, require_dynamodb, require_s3,
    unique_table_name, workspace_root,
};
use wf_payloads::testing::{payload, start};
use wf_payloads::{OffloadStore, PayloadBlobs, S3Blobs};
use wf_store::{
    BilledTotals, DynamoDbStore, Retention, RunId, StateKey, StepClaim, StepCommit, StepId,
    StepOutcome, Store, StoreError,
};

/// S3 requests made through it.
#[derive(Debug)]
struct CountingBlobs {
    inner: S3Blobs,
    puts: AtomicU64,
    gets: AtomicU64,
}

#[async_trait]
impl PayloadBlobs for CountingBlobs {
    async fn put(&self, run_id: &RunId, digest: &str, bytes: Vec<u8>) -> Result<(), StoreError> {
        self.puts.fetch_add(1, Ordering::Relaxed);
        self.inner.put(run_id, digest, bytes).await
    }
    async fn get(&self, run_id: &RunId, digest: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.gets.fetch_add(1, Ordering::Relaxed);
        self.inner.get(run_id, digest).await
    }
    async fn delete(&self, run_id: &RunId, digests: &[String]) -> Result<(), StoreError> {
        self.inner.delete(run_id, digests).await
    }
    async fn delete_run(&self, run_id: &RunId) -> Result<usize, StoreError> {
        self.inner.delete_run(run_id).await
    }
}

struct Meter {
    dynamodb: DynamoDbStore,
    blobs: Arc<CountingBlobs>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Cost {
    wru: f64,
    rru: f64,
    s3_puts: u64,
    s3_gets: u64,
}

impl Meter {
    async fn cost<T>(&self, op: impl std::future::Future<Output = T>) -> (T, Cost) {
        let before: BilledTotals = self.dynamodb.billed();
        let (puts, gets) = (
            self.blobs.puts.load(Ordering::Relaxed),
            self.blobs.gets.load(Ordering::Relaxed),
        );
        let out = op.await;
        let billed = self.dynamodb.billed().since(&before);
        let cost = Cost {
            wru: billed.write_units,
            rru: billed.read_units,
            s3_puts: self.blobs.puts.load(Ordering::Relaxed) - puts,
            s3_gets: self.blobs.gets.load(Ordering::Relaxed) - gets,
        };
        (out, cost)
    }
}

fn as_json(cost: Cost) -> Value {
    json!({ "wru": cost.wru, "rru": cost.rru, "s3Puts": cost.s3_puts, "s3Gets": cost.s3_gets })
}

/// Starts a run with a `bytes` input, sets a `bytes` state value (as a signal does) and
/// commits a `bytes` output, metering each write and its read back.
async fn costs(store: &OffloadStore, meter: &Meter, bytes: usize) -> BTreeMap<&'static str, Cost> {
    let at = Utc::now();
    let value = payload(bytes, 7);
    let mut costs = BTreeMap::new();
    let (run_id, cost) = meter.cost(start(store, value.clone(), at)).await;
    costs.insert("createRun", cost);
    let (run, cost) = meter.cost(store.get_run(&run_id)).await;
    assert_eq!(run.unwrap().input, value);
    costs.insert("getRun", cost);
    let key = StateKey::parse("signal.approved").unwrap();
    let (done, cost) = meter.cost(store.set_state(&run_id, &key, &value, at)).await;
    done.unwrap();
    costs.insert("setState", cost);
    let (read, cost) = meter.cost(store.get_state(&run_id, &key)).await;
    assert_eq!(read.unwrap().as_ref(), Some(&value));
    costs.insert("getState", cost);
    let a = StepId::parse("a").unwrap();
    store
        .claim_step(&StepClaim {
            run_id,
            step_id: a.clone(),
            attempt: 1,
            owner: "w".into(),
            now: at,
            lease_until: at + Duration::seconds(60),
            if_absent: None,
            wake: None,
            park: None,
        })
        .await
        .unwrap();
    let commit = StepCommit {
        run_id,
        step_id: a.clone(),
        attempt: 1,
        lease_owner: "w".into(),
        outcome: StepOutcome::Completed {
            output: value.clone(),
        },
        successors: Vec::new(),
        completed_steps: 1,
        duration_ms: 1,
        at,
    };
    let (done, cost) = meter.cost(store.commit_step(&commit)).await;
    done.unwrap();
    costs.insert("commitStep", cost);
    let (read, cost) = meter.cost(store.load_output(&run_id, &a)).await;
    assert_eq!(read.unwrap().unwrap().output, value);
    costs.insert("loadOutput", cost);
    costs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offloaded_payload_costs_the_same_item_units_whatever_its_size() {
    let client = dynamodb_client(require_dynamodb().endpoint()).await;
    let table = unique_table_name("payload_billing");
    create_table(&client, &table).await.unwrap();
    let dynamodb = DynamoDbStore::new(client, table, Retention::default());
    let s3 = S3Blobs::client(&emulator_config(require_s3().endpoint()).await);
    let bucket = unique_table_name("payload-billing")
        .replace('_', "-")
        .to_lowercase();
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    let blobs = Arc::new(CountingBlobs {
        inner: S3Blobs::new(s3, bucket, "payloads/"),
        puts: AtomicU64::new(0),
        gets: AtomicU64::new(0),
    });
    let store = OffloadStore::new(Arc::new(dynamodb.clone()), blobs.clone());
    let meter = Meter { dynamodb, blobs };

    let sizes = [
        ("1KB", 1_000),
        ("300KB", 300_000),
        ("1MB", 1_000_000),
        ("10MB", 10_000_000),
    ];
    let mut report = serde_json::Map::new();
    let mut measured = BTreeMap::new();
    for (name, bytes) in sizes {
        let costs = costs(&store, &meter, bytes).await;
        let ops: serde_json::Map<String, Value> = costs
            .iter()
            .map(|(op, cost)| ((*op).to_owned(), as_json(*cost)))
            .collect();
        report.insert(
            name.to_owned(),
            json!({ "bytes": bytes, "offloaded": bytes > store.threshold(), "ops": ops }),
        );
        measured.insert(name, costs);
    }
    // Offloaded: the same item units at 1 MB and 10 MB, one PUT per write, one GET per read.
    assert_eq!(measured["1MB"], measured["10MB"]);
    for (op, cost) in &measured["10MB"] {
        let (puts, gets) = if ["createRun", "setState", "commitStep"].contains(op) {
            (1, 0)
        } else {
            (0, 1)
        };
        assert_eq!((cost.s3_puts, cost.s3_gets), (puts, gets), "{op}");
    }
    // Inline: no S3 request, and units that grow with the size.
    assert!(
        measured["300KB"]
            .values()
            .all(|c| c.s3_puts + c.s3_gets == 0)
    );
    // A 300 KB input inline costs about a unit per KB (it lives in its own item); by
    // reference, a few units whatever its size.
    assert!(measured["300KB"]["createRun"].wru >= 290.0);
    assert!(measured["300KB"]["createRun"].wru > 20.0 * measured["1MB"]["createRun"].wru);
    let dir = workspace_root().join("target/bench");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("payloads.json"),
        serde_json::to_string_pretty(&Value::Object(report)).unwrap(),
    )
    .unwrap();
}

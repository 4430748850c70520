//! Console benchmark on the embedded store (SQLite file): the runs list (the first 50 of
//! 10,000 runs, with counts by status) and the page of a finished 100-step run, each
//! rendered through the console's router (no socket), 200 times after 20 warm-ups.
//! Writes `target/bench/console.json` with `runs_list_ms` and `run_page_ms` (median, p95,
//! max). Run: `cargo bench -p wf-console --bench console`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::indexing_slicing,
    reason = "benchmark binary: failures should abort it loudly"
)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use serde_json::json;
use wf_console::Console;
use wf_engine::{RunnerOutcome, StartRequest};
use wf_store::{Retention, SqliteStore, Store};

const RUNS: usize = 10_000;
const SAMPLES: usize = 200;
const WARM_UP: usize = 20;

fn stats(mut samples: Vec<Duration>) -> serde_json::Value {
    samples.sort();
    let ms = |d: Duration| (d.as_secs_f64() * 1e5).round() / 100.0;
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    json!({ "median": ms(at(0.5)), "p95": ms(at(0.95)), "max": ms(at(1.0)) })
}

async fn measure(router: &axum::Router, uri: &str) -> (serde_json::Value, usize) {
    let mut samples = Vec::with_capacity(SAMPLES);
    let mut bytes = 0;
    for i in 0..WARM_UP + SAMPLES {
        let request = axum::http::Request::get(uri)
            .body(axum::body::Body::empty())
            .unwrap();
        let started = Instant::now();
        let response = support::send(router, request).await;
        let elapsed = started.elapsed();
        assert_eq!(response.status, StatusCode::OK, "{uri}: {}", response.body);
        bytes = response.body.len();
        if i >= WARM_UP {
            samples.push(elapsed);
        }
    }
    (stats(samples), bytes)
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(dir.path().join("bench.db"), Retention::default()).unwrap());
    let (executor, mut runner) = support::executor(Arc::clone(&store));

    // The 100-step run first, executed to the end (the 10,000 below are only started).
    let hundred = executor
        .start(StartRequest {
            workflow_id: support::HUNDRED.to_owned(),
            input: json!({ "order": 1, "note": "a payload of modest size" }),
            idempotency_key: None,
            resource_id: None,
            tags: std::collections::BTreeMap::new(),
            retention_days: None,
        })
        .await
        .unwrap()
        .run;
    let outcome = runner
        .run(&hundred.run_id, Duration::from_secs(60))
        .await
        .unwrap();
    let RunnerOutcome::Finished(finished) = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(
        finished.status,
        wf_store::RunStatus::Completed,
        "{finished:?}"
    );

    let seeded = Instant::now();
    for i in 0..RUNS {
        let workflow = ["approval", "order-fulfilment", "document-pipeline"][i % 3];
        executor
            .start(StartRequest {
                workflow_id: workflow.to_owned(),
                input: match workflow {
                    "approval" => support::approval_input(),
                    "order-fulfilment" => json!({ "orderId": format!("o-{i}"), "customer": "c-1", "lines": [{ "sku": "A", "quantity": 1, "unitPriceCents": 500 }], "card": "tok_visa" }),
                    _ => json!({ "documentId": format!("d-{i}"), "text": "one two three" }),
                },
                idempotency_key: None,
                resource_id: Some(format!("resource-{}", i % 97)),
                tags: [("team".to_owned(), format!("t{}", i % 5))].into(),
                retention_days: None,
            })
            .await
            .unwrap_or_else(|e| panic!("{workflow}: {e}"));
    }
    eprintln!("seeded {RUNS} runs in {:?}", seeded.elapsed());

    let router = Console::new(executor, runner).into_router().unwrap();
    let (list, list_bytes) = measure(&router, "/").await;
    let (page, page_bytes) = measure(&router, &format!("/runs/{}", hundred.run_id)).await;
    let report = json!({
        "store": "sqlite (file)",
        "runs": RUNS,
        "runs_list_ms": list,
        "runs_list_rows": 50,
        "runs_list_bytes": list_bytes,
        "run_page_ms": page,
        "run_page_steps": 100,
        "run_page_bytes": page_bytes,
        "samples": SAMPLES,
    });
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"),
        PathBuf::from,
    );
    let out = target.join("bench");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(
        out.join("console.json"),
        serde_json::to_string_pretty(&report).unwrap(),
    )
    .unwrap();
    println!("{}", serde_json::to_string_pretty(&report).unwrap());
}

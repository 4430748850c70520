//! The `wf` binary end to end on a fresh embedded store: the README's main job, bad
//! input, the approval signal round trip, listing and showing.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests"
)]

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

fn wf(db: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wf"))
        .args(args)
        .env("WF_DB", db)
        .env_remove("WF_STORE")
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .output()
        .expect("run wf")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn run_order_fulfilment_shows_progress_and_prints_the_output() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("wf.db");
    let out = wf(
        &db,
        &[
            "run",
            "order-fulfilment",
            "--input",
            "shared/workflows/inputs/order.json",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let output: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(output["chargedCents"], 17_397);
    let progress = stderr(&out);
    assert!(
        progress.contains("charge-payment attempt 1 failed"),
        "{progress}"
    );
    assert!(progress.contains("ship COMPLETED"), "{progress}");
    assert!(progress.contains("COMPLETED in"), "{progress}");

    let listed = wf(&db, &["list", "--json"]);
    let page: Value = serde_json::from_str(&stdout(&listed)).unwrap();
    let run_id = page["runs"][0]["runId"].as_str().unwrap().to_owned();
    let shown = wf(&db, &["show", &run_id]);
    let text = stdout(&shown);
    for step in ["validate", "reserve-stock", "charge-payment", "ship"] {
        assert!(text.contains(step), "{text}");
    }
    assert!(
        text.contains("gateway_unavailable"),
        "the retried error is on the timeline: {text}"
    );
}

#[test]
fn bad_input_is_a_clear_error_with_exit_code_2_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("wf.db");
    let cases: [(&[&str], &str); 4] = [
        (
            &["run", "no-such-flow", "--data", "{}"],
            "unknown workflow no-such-flow",
        ),
        (
            &["run", "order-fulfilment", "--data", "{not json"],
            "--data is not valid JSON",
        ),
        (
            &["run", "order-fulfilment", "--data", r#"{"orderId": 1}"#],
            "input at .orderId",
        ),
        (
            &["run", "order-fulfilment", "--input", "missing.json"],
            "could not read missing.json",
        ),
    ];
    for (args, message) in cases {
        let out = wf(&db, args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(message), "{args:?}: {}", stderr(&out));
    }
    let listed = wf(&db, &["list", "--json"]);
    let page: Value = serde_json::from_str(&stdout(&listed)).unwrap();
    assert_eq!(page["runs"], Value::Array(Vec::new()));
}

#[test]
fn a_failed_run_exits_1_and_approval_round_trips_a_signal() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("wf.db");
    let declined = wf(
        &db,
        &[
            "run",
            "order-fulfilment",
            "--data",
            r#"{"orderId":"o","customer":"c","lines":[{"sku":"a","quantity":1,"unitPriceCents":5}],"card":"declined"}"#,
        ],
    );
    assert_eq!(declined.status.code(), Some(1));
    assert!(
        stderr(&declined).contains("card_declined"),
        "{}",
        stderr(&declined)
    );

    let parked = wf(
        &db,
        &[
            "run",
            "approval",
            "--input",
            "shared/workflows/inputs/approval.json",
        ],
    );
    assert!(parked.status.success(), "{}", stderr(&parked));
    assert!(
        stderr(&parked).contains("waits for signal \"approved\""),
        "{}",
        stderr(&parked)
    );
    let page: Value = serde_json::from_str(&stdout(&wf(
        &db,
        &["list", "--workflow", "approval", "--json"],
    )))
    .unwrap();
    let run_id = page["runs"][0]["runId"].as_str().unwrap().to_owned();
    let signalled = wf(
        &db,
        &[
            "signal",
            &run_id,
            "approved",
            "--payload",
            r#"{"approver":"ada","approved":true}"#,
        ],
    );
    assert!(signalled.status.success(), "{}", stderr(&signalled));
    let output: Value = serde_json::from_str(&stdout(&signalled)).unwrap();
    assert_eq!(output["message"], "laptop purchase was approved by ada");
    let workflows = stdout(&wf(&db, &["workflows"]));
    assert!(
        workflows.contains("order-fulfilment v1") && workflows.contains("document-pipeline v1"),
        "{workflows}"
    );
}

//! The `wf` binary end to end on a fresh embedded store: the README's main job, bad
//! input, the approval signal round trip, listing (with forged cursors) and showing.
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

#[test]
fn list_cursors_page_with_no_configuration_and_forged_ones_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("wf.db");
    for _ in 0..3 {
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
    }
    let list = |extra: &[&str], env: Option<&str>| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_wf"));
        command
            .args(["list", "--limit", "2", "--json"])
            .args(extra)
            .env("WF_DB", &db)
            .env_remove("WF_STORE")
            .env_remove("WF_CURSOR_KEY");
        if let Some(key) = env {
            command.env("WF_CURSOR_KEY", key);
        }
        command.output().expect("run wf")
    };
    let first: Value = serde_json::from_str(&stdout(&list(&[], None))).unwrap();
    let cursor = first["next"].as_str().unwrap().to_owned();
    // Another process, still no configuration: the cursor resumes after the last run.
    let second: Value = serde_json::from_str(&stdout(&list(&["--cursor", &cursor], None))).unwrap();
    assert_eq!(second["runs"].as_array().unwrap().len(), 1);
    assert_ne!(second["runs"][0]["runId"], first["runs"][1]["runId"]);
    assert!(second["next"].is_null());

    let mut flipped = cursor.clone().into_bytes();
    flipped[5] = if flipped[5] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(flipped).unwrap();
    let truncated = &cursor[..cursor.len() - 2];
    let key = "a deployment's own cursor key";
    // (case, arguments, WF_CURSOR_KEY)
    let cases: [(&str, Vec<&str>, Option<&str>); 5] = [
        ("altered", vec!["--cursor", &flipped], None),
        ("truncated", vec!["--cursor", truncated], None),
        ("another key", vec!["--cursor", &cursor], Some(key)),
        (
            "other filters",
            vec!["--cursor", &cursor, "--workflow", "approval"],
            None,
        ),
        (
            "other status partition",
            vec!["--cursor", &cursor, "--status", "WAITING"],
            None,
        ),
    ];
    for (name, args, env) in cases {
        let out = list(&args, env);
        assert_eq!(out.status.code(), Some(2), "{name}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("invalid cursor"),
            "{name}: {}",
            stderr(&out)
        );
    }
    let short = list(&[], Some("short"));
    assert_eq!(short.status.code(), Some(2));
    assert!(
        stderr(&short).contains("at least 16 bytes"),
        "{}",
        stderr(&short)
    );
}

#[tokio::test]
async fn archive_get_and_restore_round_trip_an_archived_run() {
    use std::sync::Arc;
    use wf_archive::{ArchivePrefix, Archiver, FsArchiveSink};
    use wf_store::{Retention, SqliteStore, Store};

    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("wf.db");
    let archive_dir = dir.path().join("archives");
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
    let listed: Value = serde_json::from_str(&stdout(&wf(&db, &["list", "--json"]))).unwrap();
    let run_id = listed["runs"][0]["runId"].as_str().unwrap().to_owned();
    // GIVEN the run archived as the stream-archiver does once its run item expired
    {
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&db, Retention::default()).unwrap());
        let run = store.get_run(&run_id.parse().unwrap()).await.unwrap();
        let archiver = Archiver::new(
            Arc::clone(&store),
            Arc::new(FsArchiveSink::new(&archive_dir)),
            ArchivePrefix::parse("runs/").unwrap(),
        );
        archiver.archive_expired(&run, None).await.unwrap();
        store.delete_run(&run.run_id).await.unwrap();
    }
    let dir_arg = archive_dir.to_str().unwrap();
    assert!(
        !wf(&db, &["show", &run_id]).status.success(),
        "gone from the table"
    );
    // WHEN it is read back and restored
    let got = wf(&db, &["archive", "get", &run_id, "--dir", dir_arg]);
    assert!(got.status.success(), "{}", stderr(&got));
    let archive: Value = serde_json::from_str(&stdout(&got)).unwrap();
    assert_eq!(archive["schemaVersion"], 1);
    assert_eq!(archive["run"]["runId"], run_id.as_str());
    assert_eq!(archive["steps"].as_array().unwrap().len(), 4);
    let restored = wf(&db, &["archive", "restore", &run_id, "--dir", dir_arg]);
    assert!(restored.status.success(), "{}", stderr(&restored));
    // THEN the run is back, whole, and a second restore is refused
    let shown = stdout(&wf(&db, &["show", &run_id]));
    assert!(
        shown.contains("COMPLETED") && shown.contains("ship"),
        "{shown}"
    );
    let again = wf(&db, &["archive", "restore", &run_id, "--dir", dir_arg]);
    assert!(!again.status.success(), "the run exists already");
    let nowhere = wf(&db, &["archive", "get", &run_id]);
    assert_eq!(nowhere.status.code(), Some(2), "{}", stderr(&nowhere));
    assert!(
        stderr(&nowhere).contains("--bucket"),
        "{}",
        stderr(&nowhere)
    );
    let missing = wf(
        &db,
        &[
            "archive",
            "get",
            "01JDXQ3M8Z6F00000000000000",
            "--dir",
            dir_arg,
        ],
    );
    assert_eq!(missing.status.code(), Some(2), "{}", stderr(&missing));
}

#[test]
fn console_serves_the_runs_list_on_loopback() {
    use std::io::{BufRead as _, BufReader, Read as _, Write as _};

    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("wf.db");
    assert!(
        wf(
            &db,
            &[
                "run",
                "approval",
                "--input",
                "shared/workflows/inputs/approval.json"
            ]
        )
        .status
        .success()
    );
    let mut console = Command::new(env!("CARGO_BIN_EXE_wf"))
        .args(["console", "--port", "0", "--read-only"])
        .env("WF_DB", &db)
        .env_remove("WF_STORE")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The first line says where it listens: "wf console (read-only) on http://127.0.0.1:PORT/".
    let mut line = String::new();
    BufReader::new(console.stderr.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let address = line
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_owned();
    assert!(address.starts_with("127.0.0.1:"), "{line}");
    let mut stream = std::net::TcpStream::connect(&address).unwrap();
    write!(
        stream,
        "GET / HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    console.kill().unwrap();
    console.wait().unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("approval v1"), "the run is listed");
    assert!(!answer.contains("Start a run"), "read-only: no start links");
}

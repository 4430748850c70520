//! Every `events/stream-archiver-*.json` sample is parsed as the Lambda event and run
//! through `handle` against an embedded store and a folder sink.
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test code: a failed expectation must panic"
)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use aws_lambda_events::event::dynamodb::Event;
use lambda_runtime::{Context, LambdaEvent};
use stream_archiver::{Config, Deps, handle};
use wf_archive::{ArchivePrefix, Archiver, FsArchiveSink};
use wf_store::{Retention, SqliteStore};

fn events_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../events")
}

fn fixture(name: &str) -> Event {
    let text = std::fs::read_to_string(events_dir().join(name)).unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn deps(dir: &Path) -> Deps {
    Deps {
        archiver: Archiver::new(
            Arc::new(SqliteStore::in_memory(Retention::default()).unwrap()),
            Arc::new(FsArchiveSink::new(dir)),
            ArchivePrefix::default(),
        ),
    }
}

fn objects(dir: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, &mut out);
    out.sort();
    out
}

/// The failures reported and the objects written for one sample.
async fn run(name: &str) -> (Vec<String>, Vec<PathBuf>) {
    let dir =
        std::env::temp_dir().join(format!("wf-events-{}-{name}", wf_store::RunId::generate()));
    let response = handle(
        &deps(&dir),
        LambdaEvent::new(fixture(name), Context::default()),
    )
    .await
    .unwrap();
    let failures = response
        .batch_item_failures
        .into_iter()
        .map(|f| f.item_identifier.unwrap())
        .collect();
    let written = objects(&dir);
    let _ = std::fs::remove_dir_all(&dir);
    (failures, written)
}

#[tokio::test]
async fn every_sample_event_parses_and_runs_through_handle() {
    let mut seen = 0;
    for entry in std::fs::read_dir(events_dir()).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if name.starts_with("stream-archiver-")
            && Path::new(&name)
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("json"))
        {
            let (failures, _) = run(&name).await;
            if name != "stream-archiver-batch.json" {
                assert!(failures.is_empty(), "{name}: {failures:?}");
            }
            seen += 1;
        }
    }
    assert!(
        seen >= 4,
        "expected the stream-archiver samples, found {seen}"
    );
}

#[tokio::test]
async fn a_ttl_removal_of_a_run_item_writes_its_archive() {
    let (failures, written) = run("stream-archiver-ttl-remove.json").await;
    assert!(failures.is_empty());
    assert_eq!(written.len(), 1);
    let key = written[0].to_string_lossy().into_owned();
    assert!(
        key.ends_with(
            "runs/workflow=order-fulfilment/date=2026-01-01/01JGZ5N3Q0ABCDEFGHJKMNPQRS.json.gz"
        ),
        "{key}"
    );
}

#[tokio::test]
async fn user_deletes_and_child_removals_are_not_archived() {
    for name in [
        "stream-archiver-user-delete.json",
        "stream-archiver-child-remove.json",
    ] {
        let (failures, written) = run(name).await;
        assert!(failures.is_empty(), "{name}");
        assert!(written.is_empty(), "{name}: {written:?}");
    }
}

#[tokio::test]
async fn only_the_poisoned_record_of_a_batch_is_reported() {
    // The batch: an insert, a modify, a TTL removal of run R, a TTL removal of one of R's
    // outputs, a user delete, a TTL removal whose image is not a run item (poisoned), and
    // the TTL removal of R again (a duplicate).
    let (failures, written) = run("stream-archiver-batch.json").await;
    assert_eq!(failures, vec!["200000000000000000006".to_owned()]);
    assert_eq!(written.len(), 1, "{written:?}");
}

#[test]
fn configuration_names_the_missing_variable() {
    let lookup = |pairs: &'static [(&'static str, &'static str)]| {
        move |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    };
    let error = Config::from_lookup(lookup(&[("TABLE_NAME", "t")])).unwrap_err();
    assert!(error.to_string().contains("ARCHIVE_BUCKET"), "{error}");
    let config =
        Config::from_lookup(lookup(&[("TABLE_NAME", "t"), ("ARCHIVE_BUCKET", "b")])).unwrap();
    assert_eq!(config.prefix.as_str(), "runs/");
    let config = Config::from_lookup(lookup(&[
        ("TABLE_NAME", "t"),
        ("ARCHIVE_BUCKET", "b"),
        ("ARCHIVE_PREFIX", "archive/v1"),
    ]))
    .unwrap();
    assert_eq!(config.prefix.as_str(), "archive/v1/");
    let error = Config::from_lookup(lookup(&[
        ("TABLE_NAME", "t"),
        ("ARCHIVE_BUCKET", "b"),
        ("ARCHIVE_PREFIX", "../x"),
    ]))
    .unwrap_err();
    assert!(error.to_string().contains("ARCHIVE_PREFIX"), "{error}");
}

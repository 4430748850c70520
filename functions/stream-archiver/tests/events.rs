//! Every `events/stream-archiver-*.json` sample is parsed as the Lambda event and run
//! through `handle` against an embedded store and a folder sink, and matched against the
//! event source mapping's filters.
//!
//! The samples, one per kind of `REMOVE` record: `ttl-remove` (a TTL delete in this region:
//! the TTL identity), `replicated-ttl-remove` (a TTL delete made in a replica region, as it
//! arrives here: no identity, `ttl` passed), `user-delete` (no identity, `ttl` passed: the
//! same shape), `unexpired-user-delete` (no identity, `ttl` ahead), `child-remove` (a TTL
//! delete of a step item), and `batch` (a mix, with a poisoned record).
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test code: a failed expectation must panic"
)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use aws_lambda_events::event::dynamodb::Event;
use lambda_runtime::{Context, LambdaEvent};
use serde_json::Value;
use stream_archiver::{Config, Deps, handle};
use wf_archive::{
    ArchivePrefix, Archiver, FILTER_PATTERN, FsArchiveSink, REPLICATED_FILTER_PATTERN, TtlSources,
};
use wf_lambda::EmfMetrics;
use wf_store::{Retention, SqliteStore};

fn events_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../events")
}

fn fixture(name: &str) -> Event {
    let text = std::fs::read_to_string(events_dir().join(name)).unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn deps(dir: &Path, ttl_sources: TtlSources) -> Deps {
    Deps {
        archiver: Archiver::new(
            Arc::new(SqliteStore::in_memory(Retention::default()).unwrap()),
            Arc::new(FsArchiveSink::new(dir)),
            ArchivePrefix::default(),
        ),
        ttl_sources,
        metrics: Arc::new(EmfMetrics::capture("Test")),
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

/// The failures reported and the objects written for one sample, from a single-region table.
async fn run(name: &str) -> (Vec<String>, Vec<PathBuf>) {
    let (failures, written, _) = run_with(name, TtlSources::ThisRegion).await;
    (failures, written)
}

/// The failures reported, the objects written and the EMF lines for one sample.
async fn run_with(name: &str, sources: TtlSources) -> (Vec<String>, Vec<PathBuf>, Vec<Value>) {
    let dir =
        std::env::temp_dir().join(format!("wf-events-{}-{name}", wf_store::RunId::generate()));
    let deps = deps(&dir, sources);
    let response = handle(&deps, LambdaEvent::new(fixture(name), Context::default()))
        .await
        .unwrap();
    let failures = response
        .batch_item_failures
        .into_iter()
        .map(|f| f.item_identifier.unwrap())
        .collect();
    let written = objects(&dir);
    let _ = std::fs::remove_dir_all(&dir);
    (failures, written, deps.metrics.lines())
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
    assert_eq!(config.ttl_sources, TtlSources::ThisRegion);
    let config = Config::from_lookup(lookup(&[
        ("TABLE_NAME", "t"),
        ("ARCHIVE_BUCKET", "b"),
        ("TABLE_HAS_REPLICAS", "true"),
    ]))
    .unwrap();
    assert_eq!(config.ttl_sources, TtlSources::AllReplicas);
    let error = Config::from_lookup(lookup(&[
        ("TABLE_NAME", "t"),
        ("ARCHIVE_BUCKET", "b"),
        ("TABLE_HAS_REPLICAS", "yes"),
    ]))
    .unwrap_err();
    assert!(error.to_string().contains("TABLE_HAS_REPLICAS"), "{error}");
}

/// Lambda's event filtering, for the operators the archiver's patterns use: a list of
/// literals, `{"prefix": ..}` and `{"exists": ..}` (a missing parent counts as missing).
fn filter_matches(pattern: &Value, event: Option<&Value>) -> bool {
    match pattern {
        Value::Object(fields) => fields
            .iter()
            .all(|(key, inner)| filter_matches(inner, event.and_then(|e| e.get(key)))),
        Value::Array(options) => options.iter().any(|option| match option {
            Value::Object(op) => match (op.get("prefix"), op.get("exists")) {
                (Some(Value::String(prefix)), _) => event
                    .and_then(Value::as_str)
                    .is_some_and(|s| s.starts_with(prefix.as_str())),
                (_, Some(Value::Bool(exists))) => event.is_some() == *exists,
                _ => panic!("operator not modelled: {option}"),
            },
            literal => event == Some(literal),
        }),
        other => panic!("not a filter pattern: {other}"),
    }
}

#[test]
fn each_kind_of_removal_passes_the_filters_it_should() {
    let this_region: Value = serde_json::from_str(FILTER_PATTERN).unwrap();
    let replicated: Value = serde_json::from_str(REPLICATED_FILTER_PATTERN).unwrap();
    // (sample, passes the TTL-identity filter, passes the replicated-delete filter)
    let cases = [
        ("stream-archiver-ttl-remove.json", true, false),
        ("stream-archiver-replicated-ttl-remove.json", false, true),
        ("stream-archiver-user-delete.json", false, true),
        ("stream-archiver-unexpired-user-delete.json", false, true),
        ("stream-archiver-child-remove.json", false, false),
    ];
    for (name, first, second) in cases {
        let text = std::fs::read_to_string(events_dir().join(name)).unwrap();
        let event: Value = serde_json::from_str(&text).unwrap();
        let record = &event["Records"][0];
        assert_eq!(
            filter_matches(&this_region, Some(record)),
            first,
            "{name}: FILTER_PATTERN"
        );
        assert_eq!(
            filter_matches(&replicated, Some(record)),
            second,
            "{name}: REPLICATED_FILTER_PATTERN"
        );
    }
}

#[tokio::test]
async fn a_replicated_ttl_delete_is_archived_only_when_the_table_has_replicas() {
    let (failures, written, _) = run_with(
        "stream-archiver-replicated-ttl-remove.json",
        TtlSources::ThisRegion,
    )
    .await;
    assert!(failures.is_empty());
    assert!(written.is_empty(), "single region: {written:?}");

    let (failures, written, metrics) = run_with(
        "stream-archiver-replicated-ttl-remove.json",
        TtlSources::AllReplicas,
    )
    .await;
    assert!(failures.is_empty());
    assert_eq!(written.len(), 1, "{written:?}");
    assert_eq!(metrics.len(), 1, "{metrics:?}");
    assert_eq!(metrics[0]["RunsArchived"], 1.0);
    assert!(metrics[0]["ArchivedBytes"].as_f64().unwrap() > 0.0);
}

#[tokio::test]
async fn with_replicas_the_origin_delete_is_still_archived_and_unexpired_deletes_are_not() {
    let (failures, written, _) =
        run_with("stream-archiver-ttl-remove.json", TtlSources::AllReplicas).await;
    assert!(failures.is_empty());
    assert_eq!(written.len(), 1);
    for name in [
        "stream-archiver-unexpired-user-delete.json",
        "stream-archiver-child-remove.json",
    ] {
        let (failures, written, metrics) = run_with(name, TtlSources::AllReplicas).await;
        assert!(failures.is_empty(), "{name}");
        assert!(written.is_empty(), "{name}: {written:?}");
        assert!(metrics.is_empty(), "{name}: {metrics:?}");
    }
}

#[tokio::test]
async fn a_poisoned_record_counts_as_no_archive_failure_metric() {
    // The poisoned record is malformed (reported), not an archive attempt; the one run of
    // the batch that is archived is one RunsArchived line.
    let (_, _, metrics) = run_with("stream-archiver-batch.json", TtlSources::ThisRegion).await;
    let archived: Vec<&Value> = metrics
        .iter()
        .filter(|m| m.get("RunsArchived").is_some())
        .collect();
    assert_eq!(archived.len(), 1, "{metrics:?}");
    assert!(metrics.iter().all(|m| m.get("ArchiveFailures").is_none()));
}

//! The `stream-archiver` function: consumes the table's stream (`NEW_AND_OLD_IMAGES`) and,
//! for every TTL removal of a run item, archives the whole run to S3 and deletes its
//! remaining items ([`wf_archive::Archiver`] does the work; this crate wires it to Lambda).
//!
//! Contract:
//! 1. Only TTL removals of run items are archived ([`wf_archive::classify_from`]; the
//!    event source mapping filters with [`wf_archive::FILTER_PATTERN`] as well, and with
//!    [`wf_archive::REPLICATED_FILTER_PATTERN`] when the table has replicas).
//! 2. Partial batch failures (`ReportBatchItemFailures`): a record whose run could not be
//!    archived, or that is malformed, is reported by its sequence number and logged with
//!    its event id; the others succeed. Lambda retries from the first reported record, and
//!    records it redelivers that had succeeded are recognised and cost one `HEAD`.
//! 3. Records of the same run in one batch are archived once.
//! 4. Each batch emits EMF metrics: `RunsArchived` and `ArchivedBytes` per run written,
//!    `ArchiveFailures` per run not archived, and `CleanupFailures` among those when the
//!    table (reading or deleting the run's remaining items) failed.
//!
//! Configuration (read once by [`Config::from_env`]): `TABLE_NAME`, `ARCHIVE_BUCKET`,
//! optional `ARCHIVE_PREFIX` (default `runs/`), `TABLE_HAS_REPLICAS` (`true` for a global
//! table: replicated TTL deletes are archived too; default `false`), `METRICS_NAMESPACE`
//! (default `WorkflowRunner`); the AWS SDK's own variables
//! (`AWS_REGION`, `AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_S3`) for region and emulators.

use std::collections::BTreeMap;
use std::sync::Arc;

use aws_lambda_events::event::dynamodb::Event;
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use futures::StreamExt as _;
use lambda_runtime::{Error, LambdaEvent};
use tracing::{Instrument as _, debug, error, info_span};
use wf_archive::{ArchiveError, ArchivePrefix, Archiver, Decision, TtlSources, classify_from};
use wf_lambda::EmfMetrics;
use wf_store::{RunId, WorkflowRun};

/// The EMF namespace when `METRICS_NAMESPACE` is unset (the other functions' default).
pub const DEFAULT_METRICS_NAMESPACE: &str = "WorkflowRunner";

/// Runs archived at the same time within one batch.
pub const MAX_CONCURRENT_RUNS: usize = 4;

/// The function's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The table (`TABLE_NAME`).
    pub table_name: String,
    /// The archive bucket (`ARCHIVE_BUCKET`).
    pub bucket: String,
    /// The key prefix (`ARCHIVE_PREFIX`, default `runs/`).
    pub prefix: ArchivePrefix,
    /// Which TTL deletes to archive (`TABLE_HAS_REPLICAS`).
    pub ttl_sources: TtlSources,
    /// The CloudWatch namespace of the EMF metrics (`METRICS_NAMESPACE`).
    pub metrics_namespace: String,
}

/// A setting that is missing or invalid; names the variable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A required variable is unset or empty.
    #[error("environment variable {variable} is required")]
    Missing {
        /// The variable.
        variable: &'static str,
    },
    /// A variable has an unusable value.
    #[error("environment variable {variable} is invalid: {reason}")]
    Invalid {
        /// The variable.
        variable: &'static str,
        /// Why.
        reason: String,
    },
}

impl Config {
    /// Reads the settings from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the settings through `lookup` (tests, other sources).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let required = |variable: &'static str| {
            lookup(variable)
                .filter(|v| !v.trim().is_empty())
                .ok_or(ConfigError::Missing { variable })
        };
        let prefix = match lookup("ARCHIVE_PREFIX") {
            Some(prefix) if !prefix.trim().is_empty() => {
                ArchivePrefix::parse(&prefix).map_err(|e| ConfigError::Invalid {
                    variable: "ARCHIVE_PREFIX",
                    reason: e.to_string(),
                })?
            }
            _ => ArchivePrefix::default(),
        };
        let ttl_sources = match lookup("TABLE_HAS_REPLICAS").as_deref().map(str::trim) {
            None | Some("" | "false") => TtlSources::ThisRegion,
            Some("true") => TtlSources::AllReplicas,
            Some(other) => {
                return Err(ConfigError::Invalid {
                    variable: "TABLE_HAS_REPLICAS",
                    reason: format!("expected true or false, got {other:?}"),
                });
            }
        };
        let metrics_namespace = lookup("METRICS_NAMESPACE")
            .filter(|v| !v.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_METRICS_NAMESPACE.to_owned());
        Ok(Self {
            table_name: required("TABLE_NAME")?,
            bucket: required("ARCHIVE_BUCKET")?,
            prefix,
            ttl_sources,
            metrics_namespace,
        })
    }
}

/// What the handler needs, built once per process.
#[derive(Debug, Clone)]
pub struct Deps {
    /// Archives from the table to the bucket.
    pub archiver: Archiver,
    /// Which TTL deletes to archive.
    pub ttl_sources: TtlSources,
    /// Where the EMF metrics go.
    pub metrics: Arc<EmfMetrics>,
}

/// One run to archive and the records that asked for it.
struct Job {
    run: Box<WorkflowRun>,
    expired_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Sequence numbers (or event ids, when a record has none) of its records.
    records: Vec<String>,
}

/// How a record is reported: its sequence number, the checkpoint Lambda understands.
/// A record without one (never sent by DynamoDB Streams) is reported by event id, which
/// Lambda treats as a failure of the whole batch: safe, the batch is retried.
fn identifier(record: &aws_lambda_events::event::dynamodb::EventRecord) -> String {
    record
        .change
        .sequence_number
        .clone()
        .unwrap_or_else(|| record.event_id.clone())
}

fn failure(identifier: String) -> DynamoDbBatchItemFailure {
    let mut failure = DynamoDbBatchItemFailure::default();
    failure.item_identifier = Some(identifier);
    failure
}

/// One `ArchiveFailures` metric, with `CleanupFailures` when the table was the cause.
fn emit_failure(metrics: &EmfMetrics, run_id: &RunId, error: &ArchiveError) {
    let mut counts = vec![("ArchiveFailures", "Count", 1.0)];
    if matches!(error, ArchiveError::Store(_)) {
        counts.push(("CleanupFailures", "Count", 1.0));
    }
    metrics.emit(
        &counts,
        &[
            ("runId", run_id.to_string()),
            ("errorCode", error.code().to_owned()),
        ],
    );
}

/// Handles one batch of stream records; see the crate docs. Never fails as a whole: each
/// failure is a batch item failure.
pub async fn handle(
    deps: &Deps,
    event: LambdaEvent<Event>,
) -> Result<DynamoDbEventResponse, Error> {
    let records = event.payload.records;
    let mut failed: Vec<String> = Vec::new();
    let mut jobs: BTreeMap<RunId, Job> = BTreeMap::new();
    for record in &records {
        match classify_from(record, deps.ttl_sources) {
            Ok(Decision::Skip(reason)) => {
                debug!(event_id = %record.event_id, reason = reason.as_str(), "record skipped");
            }
            Ok(Decision::Archive { run, expired_at }) => {
                let job = jobs.entry(run.run_id).or_insert_with(|| Job {
                    run: run.clone(),
                    expired_at,
                    records: Vec::new(),
                });
                // Keep the newest image if a batch holds two of one run.
                if run.version > job.run.version {
                    job.run = run;
                }
                job.records.push(identifier(record));
            }
            Err(e) => {
                error!(
                    event_id = %record.event_id,
                    code = e.code(),
                    error = %e,
                    "malformed stream record"
                );
                failed.push(identifier(record));
            }
        }
    }
    let archiver = &deps.archiver;
    let metrics = &deps.metrics;
    let outcomes: Vec<(Vec<String>, bool)> = futures::stream::iter(jobs.into_values())
        .map(|job| {
            let span = info_span!("archive_run", run_id = %job.run.run_id);
            async move {
                match archiver.archive_expired(&job.run, job.expired_at).await {
                    Ok(outcome) => {
                        if outcome.written {
                            #[expect(
                                clippy::cast_precision_loss,
                                reason = "an archive's size is far below 2^52 bytes"
                            )]
                            let bytes = outcome.bytes as f64;
                            metrics.emit(
                                &[
                                    ("RunsArchived", "Count", 1.0),
                                    ("ArchivedBytes", "Bytes", bytes),
                                ],
                                &[("runId", job.run.run_id.to_string())],
                            );
                        }
                        (job.records, true)
                    }
                    Err(e) => {
                        emit_failure(metrics, &job.run.run_id, &e);
                        error!(
                            code = e.code(),
                            retryable = e.is_retryable(),
                            error = %e,
                            records = ?job.records,
                            "run not archived; its records are reported for retry"
                        );
                        (job.records, false)
                    }
                }
            }
            .instrument(span)
        })
        .buffer_unordered(MAX_CONCURRENT_RUNS)
        .collect()
        .await;
    for (ids, ok) in outcomes {
        if !ok {
            failed.extend(ids);
        }
    }
    // Report in stream order: Lambda resumes from the lowest reported record.
    let order: BTreeMap<&str, usize> = records
        .iter()
        .enumerate()
        .map(|(i, r)| {
            (
                r.change.sequence_number.as_deref().unwrap_or(&r.event_id),
                i,
            )
        })
        .collect();
    failed.sort_by_key(|id| order.get(id.as_str()).copied().unwrap_or(usize::MAX));
    failed.dedup();
    let mut response = DynamoDbEventResponse::default();
    response.batch_item_failures = failed.into_iter().map(failure).collect();
    Ok(response)
}

//! The archiver: turns an expired run into one archive object and removes what is left of
//! it in the table; reads archives back and restores them.
//!
//! Exactly once, with at-least-once delivery:
//! 1. Gather the run's remaining items (the run item comes from the stream's old image).
//! 2. `HEAD` the key. If an object of this run at this run version or later is there, a
//!    previous delivery wrote it from a complete gather (step 4 only ever runs after a
//!    complete write), so it is not written again. Otherwise write it whole (step 3).
//! 3. Write the object (deterministic bytes: the same items give the same object).
//! 4. Delete exactly the gathered child items, and the idempotency reservation.
//!
//! A delivery repeated after step 4 gathers nothing, finds the object, and deletes
//! nothing. A delivery that failed anywhere before step 4 is retried whole, and the
//! object a retry writes holds every item, because nothing was deleted yet.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use tracing::{debug, info};
use wf_store::{Retention, RunId, RunRecord, Store, WorkflowId, WorkflowRun};

use crate::error::ArchiveError;
use crate::format::{ArchivePrefix, RunArchive};
use crate::sink::ArchiveSink;

/// Chunk size of encoders handed to sinks that do not set their own (the S3 sink uses its
/// part size).
const CHUNK_SIZE: usize = 1024 * 1024;

/// Archives expired runs from one store into one sink.
#[derive(Debug, Clone)]
pub struct Archiver {
    store: Arc<dyn Store>,
    sink: Arc<dyn ArchiveSink>,
    prefix: ArchivePrefix,
}

/// What archiving one run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Archived {
    /// The object key.
    pub key: String,
    /// Whether this call wrote the object (`false`: an earlier delivery already had).
    pub written: bool,
    /// The object's size in bytes, when this call wrote it.
    pub bytes: u64,
    /// Items in the archive: the run item plus the children gathered.
    pub items: u64,
    /// Child items this call deleted from the table.
    pub deleted: usize,
}

impl Archiver {
    /// An archiver from `store` to `sink`, keys under `prefix`.
    pub fn new(store: Arc<dyn Store>, sink: Arc<dyn ArchiveSink>, prefix: ArchivePrefix) -> Self {
        Self {
            store,
            sink,
            prefix,
        }
    }

    /// The key prefix.
    pub fn prefix(&self) -> &ArchivePrefix {
        &self.prefix
    }

    /// Archives a run whose run item expired (`run` is its last image) and deletes its
    /// remaining items. Safe to repeat: see the module docs. Store and sink errors are
    /// returned as they are (check [`ArchiveError::is_retryable`]).
    #[tracing::instrument(skip_all, fields(run_id = %run.run_id, workflow_id = %run.workflow_id))]
    pub async fn archive_expired(
        &self,
        run: &WorkflowRun,
        expired_at: Option<DateTime<Utc>>,
    ) -> Result<Archived, ArchiveError> {
        let record = self.store.export_run_children(run).await?;
        let archive = RunArchive::new(record, expired_at);
        let info = archive.info();
        let key = self.prefix.key_for(run);
        let existing = self.sink.head(&key).await?;
        let already = existing.is_some_and(|e| {
            e.schema_version >= info.schema_version && e.run_version >= info.run_version
        });
        let bytes = if already {
            debug!(key, "archive already written by an earlier delivery");
            0
        } else {
            self.sink
                .put(&key, &info, &mut archive.encoder(CHUNK_SIZE))
                .await?
        };
        let record = &archive.record;
        let deleted = record.steps.len() + record.outputs.len() + record.state.len();
        if deleted > 0 || (record.run.idempotency_key.is_some() && !already) {
            self.store.delete_run_children(record).await?;
        }
        info!(
            key,
            written = !already,
            bytes,
            items = info.items,
            deleted,
            "run archived"
        );
        Ok(Archived {
            key,
            written: !already,
            bytes,
            items: info.items,
            deleted,
        })
    }

    /// The key of a run's archive. Looks under `workflow` when given, else under every
    /// workflow folder; the date comes from the run id's time (creation, to the ms), with
    /// the neighbouring days tried too. `NotFound` if there is none.
    pub async fn locate(
        &self,
        run_id: &RunId,
        workflow: Option<&WorkflowId>,
    ) -> Result<String, ArchiveError> {
        let created = run_id.timestamp();
        let dates: Vec<String> = [0, -1, 1]
            .into_iter()
            .map(|d| (created + Duration::days(d)).format("%Y-%m-%d").to_string())
            .collect();
        let candidates: Vec<String> = if let Some(workflow) = workflow {
            dates
                .iter()
                .map(|date| self.prefix.key(workflow.as_str(), date, run_id))
                .collect()
        } else {
            let folders = self.sink.list_folders(self.prefix.as_str()).await?;
            folders
                .iter()
                .filter(|f| ArchivePrefix::workflow_folder_name(f).is_some())
                .flat_map(|folder| {
                    dates.iter().map(move |date| {
                        format!(
                            "{}{folder}/date={date}/{run_id}.json.gz",
                            self.prefix.as_str()
                        )
                    })
                })
                .collect()
        };
        for key in candidates {
            if self.sink.head(&key).await?.is_some() {
                return Ok(key);
            }
        }
        Err(ArchiveError::NotFound { run_id: *run_id })
    }

    /// Reads a run's archive back. `NotFound`, `Corrupt` or `UnsupportedSchema` as the
    /// object is missing, unreadable or too new.
    pub async fn read(
        &self,
        run_id: &RunId,
        workflow: Option<&WorkflowId>,
    ) -> Result<RunArchive, ArchiveError> {
        let key = self.locate(run_id, workflow).await?;
        let bytes = self
            .sink
            .get(&key)
            .await?
            .ok_or(ArchiveError::NotFound { run_id: *run_id })?;
        let archive = RunArchive::decode(&key, &bytes)?;
        if archive.run_id() != *run_id {
            return Err(ArchiveError::Corrupt {
                key,
                reason: format!("holds run {} instead", archive.run_id()),
            });
        }
        Ok(archive)
    }

    /// Puts an archived run back into the store with fresh `ttl`s from `retention` (as if
    /// it had ended, or been written, at `now`), so it does not expire again at once.
    /// `Store(Conflict)` if the run is in the table already.
    pub async fn restore(
        &self,
        run_id: &RunId,
        workflow: Option<&WorkflowId>,
        retention: &Retention,
        now: DateTime<Utc>,
    ) -> Result<RunRecord, ArchiveError> {
        let mut record = self.read(run_id, workflow).await?.record;
        refresh_ttls(&mut record, retention, now);
        self.store.import_run(&record).await?;
        info!(run_id = %run_id, "run restored from its archive");
        Ok(record)
    }
}

/// Gives a restored run the `ttl`s a run ending (or being written) at `now` would get.
pub fn refresh_ttls(record: &mut RunRecord, retention: &Retention, now: DateTime<Utc>) {
    let run = &mut record.run;
    run.ttl = if run.status.is_terminal() {
        retention.finished_run_ttl(now, run.retention_days)
    } else {
        retention.open_run_ttl(now)
    };
    let child = retention.child_ttl(now);
    record.steps.iter_mut().for_each(|s| s.ttl = child);
    record.outputs.iter_mut().for_each(|o| o.ttl = child);
    record.state.iter_mut().for_each(|e| e.ttl = child);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{FsArchiveSink, SCHEMA_VERSION};
    use serde_json::json;
    use std::collections::BTreeMap;
    use wf_store::{
        NewRun, NewStep, RunStatus, RunTransition, SqliteStore, StateKey, StepClaim, StepCommit,
        StepId, StepOutcome, StepStatus,
    };

    fn temp_dir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("wf-archive-test-{}", RunId::generate()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// A completed one-step run with an output and a state entry.
    async fn finished_run(store: &dyn Store) -> WorkflowRun {
        let at = Utc::now();
        let run = store
            .create_run(
                &NewRun {
                    run_id: RunId::at(at),
                    workflow_id: WorkflowId::parse("orders").unwrap(),
                    workflow_version: "1".into(),
                    status: RunStatus::Running,
                    total_steps: 1,
                    input: json!({ "order": 1 }),
                    resource_id: None,
                    tags: BTreeMap::new(),
                    idempotency_key: Some("order-1".into()),
                    retention_days: None,
                    created_at: at,
                },
                &[NewStep {
                    step_id: StepId::parse("a").unwrap(),
                    execution_index: 0,
                    status: StepStatus::Ready,
                    parents_total: 0,
                    not_before: None,
                }],
            )
            .await
            .unwrap();
        let claim = StepClaim {
            run_id: run.run_id,
            step_id: StepId::parse("a").unwrap(),
            attempt: 1,
            owner: "w".into(),
            now: at,
            lease_until: at + Duration::seconds(30),
            if_absent: None,
            wake: None,
            park: None,
        };
        store.claim_step(&claim).await.unwrap();
        store
            .commit_step(&StepCommit {
                run_id: run.run_id,
                step_id: claim.step_id.clone(),
                attempt: 1,
                lease_owner: "w".into(),
                outcome: StepOutcome::Completed { output: json!(42) },
                successors: Vec::new(),
                completed_steps: 1,
                duration_ms: 1,
                at,
            })
            .await
            .unwrap();
        store
            .set_state(&run.run_id, &StateKey::parse("k").unwrap(), &json!("v"), at)
            .await
            .unwrap();
        let run = store.get_run(&run.run_id).await.unwrap();
        store
            .transition_run(
                &run.run_id,
                &RunTransition {
                    expected_status: run.status,
                    expected_version: run.version,
                    status: RunStatus::Completed,
                    at,
                    output: Some(json!(42)),
                    output_from: Vec::new(),
                    error: None,
                },
            )
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn an_expired_run_is_archived_once_and_its_children_deleted() {
        // GIVEN a finished run with a step, an output and a state entry
        let store: Arc<dyn Store> = Arc::new(SqliteStore::in_memory(Retention::default()).unwrap());
        let dir = temp_dir();
        let archiver = Archiver::new(
            store.clone(),
            Arc::new(FsArchiveSink::new(&dir)),
            ArchivePrefix::default(),
        );
        let run = finished_run(&*store).await;
        // WHEN its run item expires and the record is delivered twice
        let first = archiver.archive_expired(&run, None).await.unwrap();
        let second = archiver.archive_expired(&run, None).await.unwrap();
        // THEN one object holds every item, and the second delivery did nothing
        assert!(first.written && first.bytes > 0);
        assert_eq!((first.items, first.deleted), (4, 3));
        assert!(!second.written);
        assert_eq!((second.items, second.deleted), (1, 0));
        assert!(first.key.starts_with("runs/workflow=orders/date="));
        let archive = archiver.read(&run.run_id, None).await.unwrap();
        assert_eq!(archive.schema_version, SCHEMA_VERSION);
        assert_eq!(archive.record.run, run);
        assert_eq!(
            (
                archive.record.steps.len(),
                archive.record.outputs.len(),
                archive.record.state.len()
            ),
            (1, 1, 1)
        );
        assert_eq!(archive.record.outputs[0].output, json!(42));
        let left = store.export_run_children(&run).await.unwrap();
        assert!(left.steps.is_empty() && left.outputs.is_empty() && left.state.is_empty());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn a_restored_run_comes_back_with_fresh_ttls_and_cannot_be_restored_twice() {
        let store: Arc<dyn Store> = Arc::new(SqliteStore::in_memory(Retention::default()).unwrap());
        let dir = temp_dir();
        let archiver = Archiver::new(
            store.clone(),
            Arc::new(FsArchiveSink::new(&dir)),
            ArchivePrefix::parse("archive").unwrap(),
        );
        let run = finished_run(&*store).await;
        let before = store.export_run(&run.run_id).await.unwrap();
        archiver.archive_expired(&run, None).await.unwrap();
        store.delete_run(&run.run_id).await.unwrap();
        let now = Utc::now() + Duration::days(400);
        let restored = archiver
            .restore(
                &run.run_id,
                Some(&run.workflow_id),
                &Retention::default(),
                now,
            )
            .await
            .unwrap();
        let after = store.export_run(&run.run_id).await.unwrap();
        assert_eq!(after, restored);
        assert_eq!(after.steps.len(), before.steps.len());
        assert_eq!(
            after.run.ttl,
            Retention::default().finished_run_ttl(now, None)
        );
        assert!(
            after
                .steps
                .iter()
                .all(|s| s.ttl == Retention::default().child_ttl(now))
        );
        let error = archiver
            .restore(&run.run_id, None, &Retention::default(), now)
            .await
            .unwrap_err();
        assert_eq!(error.code(), "conflict");
        let missing = archiver.read(&RunId::generate(), None).await.unwrap_err();
        assert_eq!(missing.code(), "archive_not_found");
        std::fs::remove_dir_all(dir).unwrap();
    }
}

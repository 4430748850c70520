//! The embedded backend: SQLite (bundled) in a file or in memory, for the `wf` CLI and
//! fast tests. Same semantics as DynamoDB: each operation runs in one SQLite transaction
//! that reads, checks the expectation and writes, so a failed expectation writes nothing.
//!
//! Calls hold a mutex over one connection for the few microseconds a statement takes; the
//! embedded store serves one process, so this is simpler and faster than a pool.

mod query;
mod rows;
mod schema;

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde_json::Value;

use crate::CursorKey;
use crate::error::{ItemKind, StoreError};
use crate::ids::{RunId, StateKey, StepId};
use crate::model::{RunRecord, StateEntry, StepExecution, StepOutput, WorkflowRun, to_millis};
use crate::records::{self, check_payload};
use crate::store::{
    CommitReceipt, LeaseFence, NewRun, NewStep, Page, Retention, RunGuard, RunQuery, RunTransition,
    StepClaim, StepCommit, StepTransition, Store,
};

use rows::{
    children, db_error, decode, decode_all, encode, find_run, find_step, get_body, insert_output,
    insert_step, load_run, load_step, new_output, not_found, put_run, put_step,
};

/// A [`Store`] on SQLite.
#[derive(Debug)]
pub struct SqliteStore {
    connection: Mutex<Connection>,
    retention: Retention,
    cursor_key: CursorKey,
}

impl SqliteStore {
    /// Opens (creating if needed) a database file.
    pub fn open(path: impl AsRef<Path>, retention: Retention) -> Result<Self, StoreError> {
        Self::init(Connection::open(path).map_err(db_error)?, retention)
    }

    /// A private in-memory database, gone when the store is dropped.
    pub fn in_memory(retention: Retention) -> Result<Self, StoreError> {
        Self::init(Connection::open_in_memory().map_err(db_error)?, retention)
    }

    fn init(connection: Connection, retention: Retention) -> Result<Self, StoreError> {
        connection
            .busy_timeout(std::time::Duration::from_secs(5))
            .map_err(db_error)?;
        connection.execute_batch(schema::SCHEMA).map_err(db_error)?;
        Ok(Self {
            connection: Mutex::new(connection),
            retention,
            cursor_key: CursorKey::default(),
        })
    }

    /// Signs and checks listing cursors with `key` instead of the built-in default.
    #[must_use]
    pub fn with_cursor_key(mut self, key: CursorKey) -> Self {
        self.cursor_key = key;
        self
    }

    fn lock(&self) -> Result<MutexGuard<'_, Connection>, StoreError> {
        self.connection.lock().map_err(|_| StoreError::Backend {
            message: "sqlite connection mutex poisoned by an earlier panic".to_owned(),
            retryable: false,
            source: None,
        })
    }

    /// Runs `work` in one transaction; commits only if it returns `Ok`.
    fn write<T>(
        &self,
        work: impl FnOnce(&Transaction<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut connection = self.lock()?;
        let tx = connection.transaction().map_err(db_error)?;
        let value = work(&tx)?;
        tx.commit().map_err(db_error)?;
        Ok(value)
    }

    fn read<T>(
        &self,
        work: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let connection = self.lock()?;
        work(&connection)
    }

    fn write_state(
        &self,
        run_id: &RunId,
        key: &StateKey,
        value: &Value,
        at: DateTime<Utc>,
        lease: Option<&LeaseFence>,
    ) -> Result<(), StoreError> {
        check_payload("value", &encode(value)?)?;
        let at = to_millis(at);
        let entry = StateEntry {
            run_id: *run_id,
            key: key.clone(),
            value: value.clone(),
            updated_at: at,
            ttl: self.retention.child_ttl(at),
        };
        self.write(|tx| {
            if let Some(lease) = lease {
                records::check_lease(&load_step(tx, run_id, &lease.step_id)?, lease)?;
            }
            tx.execute(
                "INSERT OR REPLACE INTO state (run_id, key, body, ttl) VALUES (?1, ?2, ?3, ?4)",
                params![run_id.to_string(), key.as_str(), encode(&entry)?, entry.ttl],
            )
            .map_err(db_error)?;
            Ok(())
        })
    }

    fn remove_state(
        &self,
        run_id: &RunId,
        key: &StateKey,
        lease: Option<&LeaseFence>,
    ) -> Result<bool, StoreError> {
        self.write(|tx| {
            if let Some(lease) = lease {
                records::check_lease(&load_step(tx, run_id, &lease.step_id)?, lease)?;
            }
            let deleted = tx
                .execute(
                    "DELETE FROM state WHERE run_id = ?1 AND key = ?2",
                    params![run_id.to_string(), key.as_str()],
                )
                .map_err(db_error)?;
            Ok(deleted > 0)
        })
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn create_run(&self, run: &NewRun, steps: &[NewStep]) -> Result<WorkflowRun, StoreError> {
        check_payload("input", &encode(&run.input)?)?;
        records::validate_new_run(run)?;
        records::validate_new_steps(steps)?;
        let record = records::new_run(run, &self.retention);
        self.write(|tx| {
            if find_run(tx, &run.run_id)?.is_some() {
                return Err(StoreError::Conflict {
                    kind: ItemKind::Run,
                    key: run.run_id.to_string(),
                    reason: "the run already exists",
                });
            }
            if let Some(key) = &run.idempotency_key {
                let holder: Option<String> = tx
                    .query_row(
                        "SELECT run_id FROM idempotency WHERE key = ?1",
                        params![key],
                        |row| row.get(0),
                    )
                    .optional()
                    .map_err(db_error)?;
                if let Some(holder) = holder {
                    let run_id = RunId::parse(&holder)
                        .map_err(|_| StoreError::corrupt(ItemKind::Run, "runId", "not a ULID"))?;
                    return Err(StoreError::IdempotencyKeyUsed {
                        key: key.clone(),
                        run_id,
                    });
                }
                tx.execute(
                    "INSERT INTO idempotency (key, run_id, ttl) VALUES (?1, ?2, ?3)",
                    params![
                        key,
                        run.run_id.to_string(),
                        self.retention.child_ttl(run.created_at)
                    ],
                )
                .map_err(db_error)?;
            }
            put_run(tx, &record)?;
            for step in steps {
                put_step(
                    tx,
                    &records::new_step(&run.run_id, step, run.created_at, &self.retention),
                )?;
            }
            Ok(record.clone())
        })
    }

    async fn get_run(&self, run_id: &RunId) -> Result<WorkflowRun, StoreError> {
        self.read(|c| {
            let mut run = load_run(c, run_id)?;
            if run.status == crate::RunStatus::Completed {
                // The final count was stored when it completed.
                return Ok(run);
            }
            let steps: Vec<StepExecution> = decode_all(
                c,
                ItemKind::Step,
                "SELECT body FROM steps WHERE run_id = ?1",
                run_id,
            )?;
            run.completed_steps = records::progress(&steps);
            Ok(run)
        })
    }

    async fn get_run_head(&self, run_id: &RunId) -> Result<WorkflowRun, StoreError> {
        self.read(|c| load_run(c, run_id))
    }

    async fn transition_run(
        &self,
        run_id: &RunId,
        transition: &RunTransition,
    ) -> Result<WorkflowRun, StoreError> {
        if let Some(output) = &transition.output {
            check_payload("output", &encode(output)?)?;
        }
        self.write(|tx| {
            let run =
                records::transitioned_run(&load_run(tx, run_id)?, transition, &self.retention)?;
            put_run(tx, &run)?;
            Ok(run)
        })
    }

    async fn create_step(
        &self,
        run_id: &RunId,
        step: &NewStep,
        at: DateTime<Utc>,
    ) -> Result<StepExecution, StoreError> {
        self.write(|tx| {
            load_run(tx, run_id)?;
            insert_step(tx, run_id, step, at, &self.retention)
        })
    }

    async fn get_step(
        &self,
        run_id: &RunId,
        step_id: &StepId,
    ) -> Result<StepExecution, StoreError> {
        self.read(|c| load_step(c, run_id, step_id))
    }

    async fn list_steps(&self, run_id: &RunId) -> Result<Vec<StepExecution>, StoreError> {
        self.read(|c| {
            decode_all(
                c,
                ItemKind::Step,
                "SELECT body FROM steps WHERE run_id = ?1 ORDER BY step_id",
                run_id,
            )
        })
    }

    async fn claim_step(&self, claim: &StepClaim) -> Result<StepExecution, StoreError> {
        self.write(|tx| {
            let current = match (
                find_step(tx, &claim.run_id, &claim.step_id)?,
                &claim.if_absent,
            ) {
                (Some(current), _) => current,
                (None, Some(new)) => records::absent_step(claim, new, &self.retention),
                (None, None) => return load_step(tx, &claim.run_id, &claim.step_id),
            };
            let step = records::claimed_step(&current, claim)?;
            put_step(tx, &step)?;
            Ok(step)
        })
    }

    async fn transition_step(
        &self,
        transition: &StepTransition,
    ) -> Result<StepExecution, StoreError> {
        self.write(|tx| {
            if let Some(guard) = &transition.run_guard {
                records::check_run_guard(&load_run(tx, &transition.run_id)?, guard)?;
            }
            let current = load_step(tx, &transition.run_id, &transition.step_id)?;
            let step = records::transitioned_step(&current, transition)?;
            put_step(tx, &step)?;
            Ok(step)
        })
    }

    async fn commit_step(&self, commit: &StepCommit) -> Result<CommitReceipt, StoreError> {
        records::validate_commit(commit)?;
        let output = commit
            .outcome
            .output()
            .map(|output| {
                new_output(
                    &commit.run_id,
                    &commit.step_id,
                    output,
                    commit.at,
                    &self.retention,
                )
            })
            .transpose()?;
        self.write(|tx| {
            // One local transaction: a commit found already applied was applied whole, and
            // its successors are reported as they stand.
            let step =
                records::committed_step(&load_step(tx, &commit.run_id, &commit.step_id)?, commit)?;
            if let Some(step) = &step {
                put_step(tx, step)?;
                if let Some(output) = &output {
                    insert_output(tx, output)?;
                }
            }
            let mut receipt = CommitReceipt::default();
            for successor in &commit.successors {
                let existing = find_step(tx, &commit.run_id, &successor.step_id)?;
                let next = match step {
                    Some(_) => records::successor_after(
                        existing.as_ref(),
                        commit,
                        successor,
                        &self.retention,
                    ),
                    None => None,
                };
                if let Some(next) = &next {
                    put_step(tx, next)?;
                }
                if let Some(now) = next.or(existing)
                    && now.is_ready()
                {
                    receipt.ready.push((now.step_id, now.attempt));
                }
            }
            Ok(receipt)
        })
    }

    async fn create_step_guarded(
        &self,
        run_id: &RunId,
        step: &NewStep,
        guard: RunGuard,
        at: DateTime<Utc>,
    ) -> Result<StepExecution, StoreError> {
        self.write(|tx| {
            records::check_run_guard(&load_run(tx, run_id)?, &guard)?;
            insert_step(tx, run_id, step, at, &self.retention)
        })
    }

    async fn request_cancel(
        &self,
        run_id: &RunId,
        step_id: &StepId,
        guard: RunGuard,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.write(|tx| {
            records::check_run_guard(&load_run(tx, run_id)?, &guard)?;
            let step = records::cancel_requested_step(&load_step(tx, run_id, step_id)?, at)?;
            put_step(tx, &step)
        })
    }

    async fn save_output(
        &self,
        run_id: &RunId,
        step_id: &StepId,
        output: &Value,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let record = new_output(run_id, step_id, output, at, &self.retention)?;
        self.write(|tx| insert_output(tx, &record))
    }

    async fn load_output(
        &self,
        run_id: &RunId,
        step_id: &StepId,
    ) -> Result<Option<StepOutput>, StoreError> {
        self.read(|c| {
            get_body(
                c,
                "SELECT body FROM outputs WHERE run_id = ?1 AND step_id = ?2",
                run_id,
                Some(step_id.as_str()),
            )?
            .map(|body| decode(ItemKind::Output, &body))
            .transpose()
        })
    }

    async fn load_outputs(
        &self,
        run_id: &RunId,
        step_ids: &[StepId],
    ) -> Result<Vec<StepOutput>, StoreError> {
        let mut outputs = Vec::with_capacity(step_ids.len());
        for step_id in step_ids {
            if let Some(output) = self.load_output(run_id, step_id).await? {
                outputs.push(output);
            }
        }
        Ok(outputs)
    }

    async fn set_state(
        &self,
        run_id: &RunId,
        key: &StateKey,
        value: &Value,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.write_state(run_id, key, value, at, None)
    }

    async fn set_state_leased(
        &self,
        run_id: &RunId,
        key: &StateKey,
        value: &Value,
        at: DateTime<Utc>,
        lease: &LeaseFence,
    ) -> Result<(), StoreError> {
        self.write_state(run_id, key, value, at, Some(lease))
    }

    async fn delete_state_leased(
        &self,
        run_id: &RunId,
        key: &StateKey,
        lease: &LeaseFence,
    ) -> Result<bool, StoreError> {
        self.remove_state(run_id, key, Some(lease))
    }

    async fn get_state(&self, run_id: &RunId, key: &StateKey) -> Result<Option<Value>, StoreError> {
        self.read(|c| {
            get_body(
                c,
                "SELECT body FROM state WHERE run_id = ?1 AND key = ?2",
                run_id,
                Some(key.as_str()),
            )?
            .map(|body| decode::<StateEntry>(ItemKind::State, &body).map(|e| e.value))
            .transpose()
        })
    }

    async fn delete_state(&self, run_id: &RunId, key: &StateKey) -> Result<bool, StoreError> {
        self.remove_state(run_id, key, None)
    }

    async fn all_state(&self, run_id: &RunId) -> Result<Vec<StateEntry>, StoreError> {
        self.read(|c| {
            decode_all(
                c,
                ItemKind::State,
                "SELECT body FROM state WHERE run_id = ?1 ORDER BY key",
                run_id,
            )
        })
    }

    async fn list_runs(&self, query: &RunQuery) -> Result<Page<WorkflowRun>, StoreError> {
        self.list_page(query)
    }

    async fn export_run(&self, run_id: &RunId) -> Result<RunRecord, StoreError> {
        self.read(|c| {
            let run = load_run(c, run_id)?;
            let (steps, outputs, state) = children(c, run_id)?;
            Ok(RunRecord {
                run,
                steps,
                outputs,
                state,
            })
        })
    }

    async fn delete_run(&self, run_id: &RunId) -> Result<(), StoreError> {
        self.write(|tx| {
            let id = run_id.to_string();
            let mut deleted = 0;
            // The idempotency reservation goes with its run.
            tx.execute("DELETE FROM idempotency WHERE run_id = ?1", params![id])
                .map_err(db_error)?;
            for sql in [
                "DELETE FROM steps WHERE run_id = ?1",
                "DELETE FROM outputs WHERE run_id = ?1",
                "DELETE FROM state WHERE run_id = ?1",
                "DELETE FROM runs WHERE run_id = ?1",
            ] {
                deleted += tx.execute(sql, params![id]).map_err(db_error)?;
            }
            if deleted == 0 {
                return Err(not_found(ItemKind::Run, id));
            }
            Ok(())
        })
    }

    async fn export_run_children(&self, run: &WorkflowRun) -> Result<RunRecord, StoreError> {
        self.read(|c| {
            let (steps, outputs, state) = children(c, &run.run_id)?;
            Ok(RunRecord {
                run: run.clone(),
                steps,
                outputs,
                state,
            })
        })
    }

    async fn delete_run_children(&self, record: &RunRecord) -> Result<(), StoreError> {
        let id = record.run.run_id.to_string();
        self.write(|tx| {
            for step in &record.steps {
                tx.execute(
                    "DELETE FROM steps WHERE run_id = ?1 AND step_id = ?2",
                    params![id, step.step_id.as_str()],
                )
                .map_err(db_error)?;
            }
            for output in &record.outputs {
                tx.execute(
                    "DELETE FROM outputs WHERE run_id = ?1 AND step_id = ?2",
                    params![id, output.step_id.as_str()],
                )
                .map_err(db_error)?;
            }
            for entry in &record.state {
                tx.execute(
                    "DELETE FROM state WHERE run_id = ?1 AND key = ?2",
                    params![id, entry.key.as_str()],
                )
                .map_err(db_error)?;
            }
            if let Some(key) = &record.run.idempotency_key {
                tx.execute(
                    "DELETE FROM idempotency WHERE key = ?1 AND run_id = ?2",
                    params![key, id],
                )
                .map_err(db_error)?;
            }
            Ok(())
        })
    }

    async fn import_run(&self, record: &RunRecord) -> Result<(), StoreError> {
        records::check_record(record)?;
        let run = &record.run;
        self.write(|tx| {
            if find_run(tx, &run.run_id)?.is_some() {
                return Err(StoreError::Conflict {
                    kind: ItemKind::Run,
                    key: run.run_id.to_string(),
                    reason: "the run already exists",
                });
            }
            if let Some(key) = &run.idempotency_key {
                let inserted = tx
                    .execute(
                        "INSERT OR IGNORE INTO idempotency (key, run_id, ttl) VALUES (?1, ?2, ?3)",
                        params![
                            key,
                            run.run_id.to_string(),
                            self.retention.child_ttl(run.created_at)
                        ],
                    )
                    .map_err(db_error)?;
                if inserted == 0 {
                    return Err(StoreError::Conflict {
                        kind: ItemKind::Run,
                        key: run.run_id.to_string(),
                        reason: "its idempotency key is held by another run",
                    });
                }
            }
            put_run(tx, run)?;
            for step in &record.steps {
                put_step(tx, step)?;
            }
            for output in &record.outputs {
                tx.execute(
                    "INSERT OR REPLACE INTO outputs (run_id, step_id, body, ttl) VALUES (?1, ?2, ?3, ?4)",
                    params![
                        output.run_id.to_string(),
                        output.step_id.as_str(),
                        encode(output)?,
                        output.ttl
                    ],
                )
                .map_err(db_error)?;
            }
            for entry in &record.state {
                tx.execute(
                    "INSERT OR REPLACE INTO state (run_id, key, body, ttl) VALUES (?1, ?2, ?3, ?4)",
                    params![
                        entry.run_id.to_string(),
                        entry.key.as_str(),
                        encode(entry)?,
                        entry.ttl
                    ],
                )
                .map_err(db_error)?;
            }
            Ok(())
        })
    }
}

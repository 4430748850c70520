//! Rows of the embedded store: each item a JSON body in its table, read and written by
//! key, with SQLite errors mapped to the store's.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::{ItemKind, StoreError};
use crate::ids::{RunId, StepId};
use crate::keys;
use crate::model::{StateEntry, StepExecution, StepOutput, WorkflowRun, to_millis};
use crate::records::{self, check_payload, step_key};
use crate::store::{NewStep, Retention};

pub(super) fn db_error(error: rusqlite::Error) -> StoreError {
    let retryable = matches!(
        error.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    );
    StoreError::backend("sqlite call failed", retryable, error)
}

pub(super) fn encode<T: Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value)
        .map_err(|e| StoreError::backend("could not encode an item as JSON", false, e))
}

pub(super) fn decode<T: DeserializeOwned>(kind: ItemKind, body: &str) -> Result<T, StoreError> {
    serde_json::from_str(body).map_err(|e| StoreError::corrupt(kind, "body", e.to_string()))
}

pub(super) fn not_found(kind: ItemKind, key: String) -> StoreError {
    StoreError::NotFound { kind, key }
}

pub(super) fn get_body(
    connection: &Connection,
    sql: &str,
    run_id: &RunId,
    second_key: Option<&str>,
) -> Result<Option<String>, StoreError> {
    let run = run_id.to_string();
    let result = match second_key {
        Some(key) => connection
            .query_row(sql, params![run, key], |row| row.get(0))
            .optional(),
        None => connection
            .query_row(sql, params![run], |row| row.get(0))
            .optional(),
    };
    result.map_err(db_error)
}

pub(super) fn find_run(
    connection: &Connection,
    run_id: &RunId,
) -> Result<Option<WorkflowRun>, StoreError> {
    get_body(
        connection,
        "SELECT body FROM runs WHERE run_id = ?1",
        run_id,
        None,
    )?
    .map(|body| decode(ItemKind::Run, &body))
    .transpose()
}

pub(super) fn load_run(connection: &Connection, run_id: &RunId) -> Result<WorkflowRun, StoreError> {
    find_run(connection, run_id)?.ok_or_else(|| not_found(ItemKind::Run, run_id.to_string()))
}

pub(super) fn find_step(
    connection: &Connection,
    run_id: &RunId,
    step_id: &StepId,
) -> Result<Option<StepExecution>, StoreError> {
    get_body(
        connection,
        "SELECT body FROM steps WHERE run_id = ?1 AND step_id = ?2",
        run_id,
        Some(step_id.as_str()),
    )?
    .map(|body| decode(ItemKind::Step, &body))
    .transpose()
}

pub(super) fn load_step(
    connection: &Connection,
    run_id: &RunId,
    step_id: &StepId,
) -> Result<StepExecution, StoreError> {
    find_step(connection, run_id, step_id)?
        .ok_or_else(|| not_found(ItemKind::Step, step_key(run_id, step_id)))
}

pub(super) fn put_run(connection: &Connection, run: &WorkflowRun) -> Result<(), StoreError> {
    connection
        .execute(
            "INSERT INTO runs (run_id, workflow_id, status, resource_id, sort_key, body, ttl)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT (run_id) DO UPDATE SET status = excluded.status,
                 body = excluded.body, ttl = excluded.ttl",
            params![
                run.run_id.to_string(),
                run.workflow_id.as_str(),
                run.status.as_str(),
                run.resource_id,
                keys::listing_sort_key(run.created_at, &run.run_id),
                encode(run)?,
                run.ttl,
            ],
        )
        .map_err(db_error)?;
    Ok(())
}

/// Creates a step; `Conflict` if it exists.
pub(super) fn insert_step(
    connection: &Connection,
    run_id: &RunId,
    step: &NewStep,
    at: DateTime<Utc>,
    retention: &Retention,
) -> Result<StepExecution, StoreError> {
    if find_step(connection, run_id, &step.step_id)?.is_some() {
        return Err(StoreError::Conflict {
            kind: ItemKind::Step,
            key: step_key(run_id, &step.step_id),
            reason: "the step already exists",
        });
    }
    let record = records::new_step(run_id, step, at, retention);
    put_step(connection, &record)?;
    Ok(record)
}

pub(super) fn put_step(connection: &Connection, step: &StepExecution) -> Result<(), StoreError> {
    connection
        .execute(
            "INSERT OR REPLACE INTO steps (run_id, step_id, body, ttl) VALUES (?1, ?2, ?3, ?4)",
            params![
                step.run_id.to_string(),
                step.step_id.as_str(),
                encode(step)?,
                step.ttl
            ],
        )
        .map_err(db_error)?;
    Ok(())
}

pub(super) fn insert_output(
    connection: &Connection,
    output: &StepOutput,
) -> Result<(), StoreError> {
    let exists = get_body(
        connection,
        "SELECT body FROM outputs WHERE run_id = ?1 AND step_id = ?2",
        &output.run_id,
        Some(output.step_id.as_str()),
    )?
    .is_some();
    if exists {
        return Err(StoreError::Conflict {
            kind: ItemKind::Output,
            key: step_key(&output.run_id, &output.step_id),
            reason: "the step already has an output",
        });
    }
    connection
        .execute(
            "INSERT INTO outputs (run_id, step_id, body, ttl) VALUES (?1, ?2, ?3, ?4)",
            params![
                output.run_id.to_string(),
                output.step_id.as_str(),
                encode(output)?,
                output.ttl
            ],
        )
        .map_err(db_error)?;
    Ok(())
}

pub(super) fn decode_all<T: DeserializeOwned>(
    connection: &Connection,
    kind: ItemKind,
    sql: &str,
    run_id: &RunId,
) -> Result<Vec<T>, StoreError> {
    let mut statement = connection.prepare_cached(sql).map_err(db_error)?;
    let bodies = statement
        .query_map(params![run_id.to_string()], |row| row.get::<_, String>(0))
        .map_err(db_error)?;
    bodies
        .map(|body| decode(kind, &body.map_err(db_error)?))
        .collect()
}

pub(super) fn new_output(
    run_id: &RunId,
    step_id: &StepId,
    output: &Value,
    at: DateTime<Utc>,
    retention: &Retention,
) -> Result<StepOutput, StoreError> {
    check_payload("output", &encode(output)?)?;
    let at = to_millis(at);
    Ok(StepOutput {
        run_id: *run_id,
        step_id: step_id.clone(),
        output: output.clone(),
        created_at: at,
        ttl: retention.child_ttl(at),
    })
}

pub(super) type Children = (Vec<StepExecution>, Vec<StepOutput>, Vec<StateEntry>);

/// Every step, output and state item of a run, by key.
pub(super) fn children(c: &Connection, run_id: &RunId) -> Result<Children, StoreError> {
    Ok((
        decode_all(
            c,
            ItemKind::Step,
            "SELECT body FROM steps WHERE run_id = ?1 ORDER BY step_id",
            run_id,
        )?,
        decode_all(
            c,
            ItemKind::Output,
            "SELECT body FROM outputs WHERE run_id = ?1 ORDER BY step_id",
            run_id,
        )?,
        decode_all(
            c,
            ItemKind::State,
            "SELECT body FROM state WHERE run_id = ?1 ORDER BY key",
            run_id,
        )?,
    ))
}

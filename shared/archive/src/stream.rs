//! Which DynamoDB stream records the archiver acts on. The same filter is the event source
//! mapping's `FilterCriteria` (see [`FILTER_PATTERN`] and [`REPLICATED_FILTER_PATTERN`])
//! and is checked again here, because a filter can be edited, dropped or bypassed by a
//! replay.
//!
//! What a TTL delete produces (AWS's DynamoDB developer guide, "Time to Live" and "Global
//! tables"): in the region whose TTL process deleted the item, a `REMOVE` record whose
//! `userIdentity` is `{"type": "Service", "principalId": "dynamodb.amazonaws.com"}`; in
//! every other replica of a global table (version 2019.11.21), the replicated delete's
//! `REMOVE` record, which carries no `type` or `principalId`, like a user's delete. Any
//! region's TTL process may delete an item, and each delete reaches every replica once.
//!
//! So the functions consume the stream of one region only (the stack's), and per expired
//! run item that stream holds exactly one `REMOVE`: the local TTL delete, or the replicated
//! one. A record is archived only if all hold:
//! 1. `eventName` is `REMOVE`;
//! 2. it is a TTL delete: `userIdentity` is the TTL identity above or, when the table has
//!    replicas ([`TtlSources::AllReplicas`]), it has no identity and its old image's `ttl`
//!    had passed when the record was written (a replicated TTL delete);
//! 3. its `SK` is a run item's (`RUN#<runId>`), not a step's, output's or state entry's.
//!
//! With replicas, a user's delete of a run whose `ttl` had already passed looks exactly
//! like a replicated TTL delete and is archived too; the run had expired, so it would have
//! been archived anyway.
//!
//! A record that passes but cannot be read (no old image, an image that is not the run
//! item of its key) is malformed: an error naming its event id, never a skip, because
//! skipping would lose the run.

use aws_lambda_events::event::dynamodb::EventRecord;
use chrono::{DateTime, Utc};
use serde_json::Value;
use wf_store::{RunId, WorkflowRun, run_from_stream_image, run_id_from_sort_key};

use crate::error::ArchiveError;

/// The event source mapping's filter, as JSON: removals of run items by this region's TTL
/// process.
pub const FILTER_PATTERN: &str = r#"{"eventName":["REMOVE"],"userIdentity":{"type":["Service"],"principalId":["dynamodb.amazonaws.com"]},"dynamodb":{"Keys":{"SK":{"S":[{"prefix":"RUN#"}]}}}}"#;

/// The second filter of a table with replicas: removals of run items with no identity
/// (replicated TTL deletes, and user deletes, which [`classify_from`] tells apart by `ttl`).
pub const REPLICATED_FILTER_PATTERN: &str = r#"{"eventName":["REMOVE"],"userIdentity":{"type":[{"exists":false}]},"dynamodb":{"Keys":{"SK":{"S":[{"prefix":"RUN#"}]}}}}"#;

/// Where the TTL deletes this stream's consumer must archive are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum TtlSources {
    /// A single-region table: only records with the TTL identity (the default).
    #[default]
    ThisRegion,
    /// A global table: also replicated TTL deletes from the other replicas (no identity,
    /// `ttl` passed).
    AllReplicas,
}

/// The `userIdentity.principalId` of TTL deletions.
const TTL_PRINCIPAL: &str = "dynamodb.amazonaws.com";

/// Why a record is not archived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SkipReason {
    /// An `INSERT` or `MODIFY`.
    NotRemove,
    /// A removal by a user or an application (no TTL identity).
    UserDelete,
    /// A removal of a step, output, state or other item.
    NotRunItem,
}

impl SkipReason {
    /// A short stable name for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotRemove => "not_remove",
            Self::UserDelete => "user_delete",
            Self::NotRunItem => "not_run_item",
        }
    }
}

/// What to do with one stream record.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// A run item expired: archive the run.
    Archive {
        /// The run item as it was when it expired (the old image).
        run: Box<WorkflowRun>,
        /// The record's approximate creation time, if it has one.
        expired_at: Option<DateTime<Utc>>,
    },
    /// Not an expiry of a run item.
    Skip(SkipReason),
}

fn malformed(record: &EventRecord, reason: impl Into<String>) -> ArchiveError {
    ArchiveError::MalformedRecord {
        event_id: record.event_id.clone(),
        reason: reason.into(),
    }
}

/// A string key attribute of the record's `Keys` (DynamoDB JSON `{"S": ...}`).
fn key_string(keys: &Value, name: &str) -> Option<String> {
    keys.get(name)?.get("S")?.as_str().map(str::to_owned)
}

/// Decides what to do with `record` from a single-region table
/// ([`TtlSources::ThisRegion`]). `MalformedRecord` if it is a TTL removal of a run item that
/// cannot be read.
pub fn classify(record: &EventRecord) -> Result<Decision, ArchiveError> {
    classify_from(record, TtlSources::ThisRegion)
}

/// Decides what to do with `record`, a record of a table whose TTL deletes come from
/// `sources`. `MalformedRecord` if it is a TTL removal of a run item that cannot be read.
pub fn classify_from(record: &EventRecord, sources: TtlSources) -> Result<Decision, ArchiveError> {
    if record.event_name != "REMOVE" {
        return Ok(Decision::Skip(SkipReason::NotRemove));
    }
    let identity = record
        .user_identity
        .as_ref()
        .filter(|u| !u.type_.is_empty() || !u.principal_id.is_empty());
    let ttl_delete = match identity {
        Some(u) => u.type_ == "Service" && u.principal_id == TTL_PRINCIPAL,
        None => sources == TtlSources::AllReplicas && expired_when_removed(record),
    };
    if !ttl_delete {
        return Ok(Decision::Skip(SkipReason::UserDelete));
    }
    let keys = serde_json::to_value(&record.change.keys)
        .map_err(|e| malformed(record, format!("keys do not serialise: {e}")))?;
    // Read the keys by name: DynamoDB Local also sends the GSI key attributes.
    let sort_key = key_string(&keys, "SK").ok_or_else(|| malformed(record, "no string SK key"))?;
    let Some(run_id) = run_id_from_sort_key(&sort_key) else {
        return Ok(Decision::Skip(SkipReason::NotRunItem));
    };
    if key_string(&keys, "PK").as_deref() != Some(sort_key.as_str()) {
        // Some other item kind that happens to use a RUN# sort key.
        return Ok(Decision::Skip(SkipReason::NotRunItem));
    }
    let run = old_image_run(record, run_id)?;
    let expired_at =
        Some(record.change.approximate_creation_date_time).filter(|at| at.timestamp() > 0);
    Ok(Decision::Archive {
        run: Box::new(run),
        expired_at,
    })
}

/// Whether the old image's `ttl` (epoch seconds) had passed when the record was written: a
/// replicated TTL delete, as far as the record can tell.
fn expired_when_removed(record: &EventRecord) -> bool {
    let written = record.change.approximate_creation_date_time.timestamp();
    serde_json::to_value(&record.change.old_image)
        .ok()
        .and_then(|image| {
            image
                .get("ttl")?
                .get("N")?
                .as_str()
                .and_then(|n| n.parse::<i64>().ok())
        })
        .is_some_and(|ttl| written > 0 && ttl <= written)
}

fn old_image_run(record: &EventRecord, run_id: RunId) -> Result<WorkflowRun, ArchiveError> {
    let image = serde_json::to_value(&record.change.old_image)
        .map_err(|e| malformed(record, format!("old image does not serialise: {e}")))?;
    if image.as_object().is_none_or(serde_json::Map::is_empty) {
        return Err(malformed(
            record,
            "no old image: the stream must carry old images (`NEW_AND_OLD_IMAGES`)",
        ));
    }
    let run = run_from_stream_image(&image)
        .map_err(|e| malformed(record, format!("old image is not a run item: {e}")))?;
    if run.run_id != run_id {
        return Err(malformed(record, "old image is another run than its key"));
    }
    Ok(run)
}

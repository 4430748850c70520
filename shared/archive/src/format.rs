//! The archive object: one gzip-compressed JSON document per run, versioned, at a key
//! that partitions by workflow and creation date.
//!
//! Schema version 1 (camelCase, as the store's JSON):
//!
//! ```json
//! { "schemaVersion": 1, "expiredAt": "2026-03-01T10:00:00Z" | null,
//!   "run": { ... }, "steps": [ ... ], "outputs": [ ... ], "state": [ ... ] }
//! ```
//!
//! Invariants:
//! 1. Encoding is deterministic (no archive-time field, gzip header time 0), so archiving
//!    the same items twice gives byte-identical objects.
//! 2. The encoder streams: it compresses one item at a time and hands out compressed
//!    chunks of a bounded size, so an upload never needs the whole object in memory.
//! 3. Readers accept every version up to [`SCHEMA_VERSION`] and refuse newer ones with
//!    [`ArchiveError::UnsupportedSchema`]. Fields are only ever added.

use std::io::{Read, Write};

use chrono::{DateTime, Utc};
use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use serde::{Deserialize, Serialize};
use wf_store::{RunId, RunRecord, WorkflowRun};

use crate::error::ArchiveError;

/// The version of the archive document this build writes (and the newest it reads).
pub const SCHEMA_VERSION: u32 = 1;
/// `Content-Type` of archive objects.
pub const CONTENT_TYPE: &str = "application/json";
/// `Content-Encoding` of archive objects.
pub const CONTENT_ENCODING: &str = "gzip";
/// The key prefix when none is configured.
pub const DEFAULT_PREFIX: &str = "runs/";
/// Largest decompressed archive a reader accepts (1 GiB): a guard against gzip bombs.
const MAX_DECODED_BYTES: u64 = 1 << 30;

/// One archived run: every item it had when it expired.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunArchive {
    /// The document's schema version.
    pub schema_version: u32,
    /// When the run item expired (the stream record's approximate time), if known.
    pub expired_at: Option<DateTime<Utc>>,
    /// The run item (as last seen) and its steps, outputs and state.
    #[serde(flatten)]
    pub record: RunRecord,
}

/// What an archive object holds, as stored in its metadata (so a duplicate delivery needs
/// only a `HEAD`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectInfo {
    /// The document's schema version.
    pub schema_version: u32,
    /// The run item's version (its optimistic-lock counter) when archived.
    pub run_version: u64,
    /// Items archived: the run item plus its children.
    pub items: u64,
}

impl RunArchive {
    /// The archive of `record`, expired at `expired_at`.
    pub fn new(record: RunRecord, expired_at: Option<DateTime<Utc>>) -> Self {
        Self {
            schema_version: SCHEMA_VERSION,
            expired_at,
            record,
        }
    }

    /// The run's id.
    pub fn run_id(&self) -> RunId {
        self.record.run.run_id
    }

    /// Items held: the run item plus its steps, outputs and state entries.
    pub fn item_count(&self) -> u64 {
        let children =
            self.record.steps.len() + self.record.outputs.len() + self.record.state.len();
        u64::try_from(children).map_or(u64::MAX, |c| c.saturating_add(1))
    }

    /// The metadata stored with the object.
    pub fn info(&self) -> ObjectInfo {
        ObjectInfo {
            schema_version: self.schema_version,
            run_version: self.record.run.version,
            items: self.item_count(),
        }
    }

    /// A streaming encoder handing out compressed chunks of about `chunk_size` bytes.
    pub fn encoder(&self, chunk_size: usize) -> ArchiveEncoder<'_> {
        ArchiveEncoder {
            archive: self,
            chunk_size: chunk_size.max(1),
            gzip: Some(GzEncoder::new(Vec::new(), Compression::default())),
            section: Section::Header,
        }
    }

    /// The whole object in memory (small archives, tests, the file-system sink).
    pub fn encode(&self) -> Result<Vec<u8>, ArchiveError> {
        let mut encoder = self.encoder(usize::MAX);
        let mut out = Vec::new();
        while let Some(chunk) = encoder.next_chunk()? {
            out.extend(chunk);
        }
        Ok(out)
    }

    /// Decodes an object read from `key`. `Corrupt` if it is not a gzip JSON archive,
    /// `UnsupportedSchema` if it is newer than this build.
    pub fn decode(key: &str, bytes: &[u8]) -> Result<Self, ArchiveError> {
        let corrupt = |reason: String| ArchiveError::Corrupt {
            key: key.to_owned(),
            reason,
        };
        let mut json = Vec::new();
        GzDecoder::new(bytes)
            .take(MAX_DECODED_BYTES)
            .read_to_end(&mut json)
            .map_err(|e| corrupt(format!("not gzip: {e}")))?;
        let value: serde_json::Value =
            serde_json::from_slice(&json).map_err(|e| corrupt(format!("not JSON: {e}")))?;
        let found = value
            .get("schemaVersion")
            .and_then(serde_json::Value::as_u64)
            .ok_or_else(|| corrupt("no schemaVersion".to_owned()))?;
        if found > u64::from(SCHEMA_VERSION) || found == 0 {
            return Err(ArchiveError::UnsupportedSchema {
                key: key.to_owned(),
                found,
                supported: SCHEMA_VERSION,
            });
        }
        serde_path_to_error::deserialize(value).map_err(|e| corrupt(e.to_string()))
    }
}

/// Where the encoder is in the document.
#[derive(Debug, Clone, Copy)]
enum Section {
    Header,
    Steps(usize),
    Outputs(usize),
    State(usize),
    Footer,
    Done,
}

/// Produces an archive's gzip bytes in chunks; see [`RunArchive::encoder`].
pub struct ArchiveEncoder<'a> {
    archive: &'a RunArchive,
    chunk_size: usize,
    gzip: Option<GzEncoder<Vec<u8>>>,
    section: Section,
}

impl std::fmt::Debug for ArchiveEncoder<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArchiveEncoder")
            .field("run_id", &self.archive.run_id())
            .field("chunk_size", &self.chunk_size)
            .finish_non_exhaustive()
    }
}

fn encode_error(e: impl std::fmt::Display) -> ArchiveError {
    ArchiveError::InvalidInput {
        field: "archive",
        reason: format!("could not encode: {e}"),
    }
}

/// Writes `items` from `index` on as JSON array elements.
fn write_element<T: Serialize>(
    out: &mut impl Write,
    items: &[T],
    index: usize,
) -> Result<bool, ArchiveError> {
    let Some(item) = items.get(index) else {
        return Ok(false);
    };
    if index > 0 {
        out.write_all(b",").map_err(encode_error)?;
    }
    serde_json::to_writer(&mut *out, item).map_err(encode_error)?;
    Ok(true)
}

impl ArchiveEncoder<'_> {
    /// Writes the next piece of the document; `false` once everything is written.
    fn write_piece(&mut self, out: &mut GzEncoder<Vec<u8>>) -> Result<bool, ArchiveError> {
        let archive = self.archive;
        let record = &archive.record;
        self.section = match self.section {
            Section::Header => {
                write!(
                    out,
                    "{{\"schemaVersion\":{},\"expiredAt\":",
                    archive.schema_version
                )
                .map_err(encode_error)?;
                serde_json::to_writer(&mut *out, &archive.expired_at).map_err(encode_error)?;
                out.write_all(b",\"run\":").map_err(encode_error)?;
                serde_json::to_writer(&mut *out, &record.run).map_err(encode_error)?;
                out.write_all(b",\"steps\":[").map_err(encode_error)?;
                Section::Steps(0)
            }
            Section::Steps(i) => {
                if write_element(out, &record.steps, i)? {
                    Section::Steps(i + 1)
                } else {
                    out.write_all(b"],\"outputs\":[").map_err(encode_error)?;
                    Section::Outputs(0)
                }
            }
            Section::Outputs(i) => {
                if write_element(out, &record.outputs, i)? {
                    Section::Outputs(i + 1)
                } else {
                    out.write_all(b"],\"state\":[").map_err(encode_error)?;
                    Section::State(0)
                }
            }
            Section::State(i) => {
                if write_element(out, &record.state, i)? {
                    Section::State(i + 1)
                } else {
                    Section::Footer
                }
            }
            Section::Footer => {
                out.write_all(b"]}").map_err(encode_error)?;
                Section::Done
            }
            Section::Done => return Ok(false),
        };
        Ok(true)
    }

    /// Changes the size of the chunks still to come.
    pub fn set_chunk_size(&mut self, chunk_size: usize) {
        self.chunk_size = chunk_size.max(1);
    }

    /// The next compressed chunk (at least `chunk_size` bytes except the last), or `None`
    /// when the document is complete.
    pub fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, ArchiveError> {
        let Some(mut gzip) = self.gzip.take() else {
            return Ok(None);
        };
        while gzip.get_ref().len() < self.chunk_size {
            if !self.write_piece(&mut gzip)? {
                let last = gzip.finish().map_err(encode_error)?;
                return Ok(Some(last));
            }
        }
        let chunk = std::mem::take(gzip.get_mut());
        self.gzip = Some(gzip);
        Ok(Some(chunk))
    }
}

/// A normalised key prefix: empty, or ending in `/` with no leading `/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchivePrefix(String);

impl ArchivePrefix {
    /// Normalises `prefix` (`runs` and `/runs/` both become `runs/`). `InvalidInput` if a
    /// segment is `.` or `..`.
    pub fn parse(prefix: &str) -> Result<Self, ArchiveError> {
        let trimmed = prefix.trim_matches('/');
        if trimmed.split('/').any(|s| s == "." || s == "..") || trimmed.contains("//") {
            return Err(ArchiveError::InvalidInput {
                field: "prefix",
                reason: format!("{prefix:?} must be plain path segments"),
            });
        }
        Ok(Self(if trimmed.is_empty() {
            String::new()
        } else {
            format!("{trimmed}/")
        }))
    }

    /// The prefix as a string (empty or ending in `/`).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key of `run`'s archive:
    /// `<prefix>workflow=<workflowId>/date=<yyyy-mm-dd>/<runId>.json.gz`, the date being the
    /// run's creation date in UTC.
    pub fn key_for(&self, run: &WorkflowRun) -> String {
        self.key(
            run.workflow_id.as_str(),
            &run.created_at.format("%Y-%m-%d").to_string(),
            &run.run_id,
        )
    }

    /// The key of a run's archive from its parts; `workflow` is escaped.
    pub(crate) fn key(&self, workflow: &str, date: &str, run_id: &RunId) -> String {
        format!(
            "{}workflow={}/date={date}/{run_id}.json.gz",
            self.0,
            escape_segment(workflow)
        )
    }

    /// The folder holding every workflow's folder (this prefix itself).
    pub(crate) fn workflow_folder_name(folder: &str) -> Option<&str> {
        folder.strip_prefix("workflow=")
    }
}

impl Default for ArchivePrefix {
    fn default() -> Self {
        Self(DEFAULT_PREFIX.to_owned())
    }
}

/// Percent-escapes everything but `A-Z a-z 0-9 - _ .` (and `%` itself), so a workflow id
/// is always one safe key segment.
fn escape_segment(segment: &str) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.') {
            out.push(char::from(byte));
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::BTreeMap;
    use wf_store::{
        RunStatus, StateEntry, StateKey, StepExecution, StepId, StepOutput, StepStatus, WorkflowId,
    };

    pub(crate) fn sample_record(steps: usize) -> RunRecord {
        let at = DateTime::from_timestamp_millis(1_767_225_600_123).unwrap();
        let run_id = RunId::at(at);
        let run = WorkflowRun {
            run_id,
            workflow_id: WorkflowId::parse("order-fulfilment").unwrap(),
            workflow_version: "1".into(),
            status: RunStatus::Completed,
            total_steps: u32::try_from(steps).unwrap(),
            completed_steps: u32::try_from(steps).unwrap(),
            created_at: at,
            started_at: Some(at),
            completed_at: Some(at),
            updated_at: at,
            input: json!({ "orderId": "o-1" }),
            output: Some(json!({ "shipped": true })),
            output_from: Vec::new(),
            error: None,
            resource_id: Some("o-1".into()),
            tags: BTreeMap::from([("env".into(), "prod".into())]),
            idempotency_key: None,
            retention_days: None,
            version: 7,
            ttl: 1_769_817_600,
        };
        let step = |i: usize| StepExecution {
            run_id,
            step_id: StepId::parse(format!("s{i}")).unwrap(),
            execution_index: u32::try_from(i).unwrap(),
            status: StepStatus::Completed,
            attempt: 1,
            lease: None,
            parents_total: 0,
            parents_done: std::collections::BTreeSet::new(),
            not_before: None,
            waiting_for: None,
            created_at: at,
            started_at: Some(at),
            completed_at: Some(at),
            updated_at: at,
            duration_ms: Some(3),
            error: None,
            cancel_requested: false,
            committed_by: None,
            counts_done: false,
            ttl: 1_800_000_000,
        };
        RunRecord {
            steps: (0..steps).map(step).collect(),
            outputs: (0..steps)
                .map(|i| StepOutput {
                    run_id,
                    step_id: StepId::parse(format!("s{i}")).unwrap(),
                    output: json!({ "i": i, "text": "x".repeat(i * 10) }),
                    created_at: at,
                    ttl: 1_800_000_000,
                })
                .collect(),
            state: vec![StateEntry {
                run_id,
                key: StateKey::parse("customer").unwrap(),
                value: json!("ada"),
                updated_at: at,
                ttl: 1_800_000_000,
            }],
            run,
        }
    }

    fn gunzip(bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        GzDecoder::new(bytes).read_to_end(&mut out).unwrap();
        out
    }

    #[test]
    fn the_streamed_document_is_exactly_the_serde_document() {
        for steps in [0, 1, 10] {
            let archive = RunArchive::new(sample_record(steps), Some(Utc::now()));
            let streamed = gunzip(&archive.encode().unwrap());
            assert_eq!(
                streamed,
                serde_json::to_vec(&archive).unwrap(),
                "{steps} steps"
            );
            let back = RunArchive::decode("k", &archive.encode().unwrap()).unwrap();
            assert_eq!(back, archive);
            assert_eq!(back.item_count(), 1 + 2 * steps as u64 + 1);
        }
    }

    #[test]
    fn small_chunks_concatenate_to_the_same_object_and_encoding_is_deterministic() {
        // Incompressible outputs, so the compressor emits bytes before the end.
        let mut record = sample_record(50);
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        for output in &mut record.outputs {
            let text: String = (0..2048)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    char::from(b'a' + u8::try_from(seed % 26).unwrap())
                })
                .collect();
            output.output = json!(text);
        }
        let archive = RunArchive::new(record, None);
        let whole = archive.encode().unwrap();
        let mut encoder = archive.encoder(4096);
        let mut chunks = Vec::new();
        while let Some(chunk) = encoder.next_chunk().unwrap() {
            chunks.push(chunk);
        }
        assert!(chunks.len() > 1, "expected several chunks");
        assert!(chunks.iter().rev().skip(1).all(|c| c.len() >= 4096));
        assert_eq!(chunks.concat(), whole);
        assert_eq!(archive.encode().unwrap(), whole, "same items, same bytes");
        assert!(encoder.next_chunk().unwrap().is_none());
    }

    #[test]
    fn newer_schemas_and_garbage_are_refused() {
        let mut archive = RunArchive::new(sample_record(1), None);
        archive.schema_version = SCHEMA_VERSION + 1;
        let bytes = archive.encode().unwrap();
        assert!(matches!(
            RunArchive::decode("k", &bytes),
            Err(ArchiveError::UnsupportedSchema { found, .. }) if found == u64::from(SCHEMA_VERSION) + 1
        ));
        assert_eq!(
            RunArchive::decode("k", b"not gzip").unwrap_err().code(),
            "corrupt_archive"
        );
        let mut gz = GzEncoder::new(Vec::new(), Compression::default());
        gz.write_all(br#"{"schemaVersion":1,"run":{}}"#).unwrap();
        let error = RunArchive::decode("k", &gz.finish().unwrap()).unwrap_err();
        assert_eq!(error.code(), "corrupt_archive");
    }

    #[test]
    fn keys_partition_by_workflow_and_creation_date() {
        let record = sample_record(1);
        let key = ArchivePrefix::default().key_for(&record.run);
        assert_eq!(
            key,
            format!(
                "runs/workflow=order-fulfilment/date=2026-01-01/{}.json.gz",
                record.run.run_id
            )
        );
        let mut odd = record.run.clone();
        odd.workflow_id = WorkflowId::parse("a/b c").unwrap();
        assert!(
            ArchivePrefix::parse("/archive/v1/")
                .unwrap()
                .key_for(&odd)
                .starts_with("archive/v1/workflow=a%2Fb%20c/date=")
        );
        assert_eq!(ArchivePrefix::parse("").unwrap().as_str(), "");
        assert!(ArchivePrefix::parse("a/../b").is_err());
    }
}

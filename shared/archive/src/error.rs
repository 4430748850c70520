//! The archive's one error type. Codes are stable (logs, CLI output) and pinned by a test.

use wf_store::{RunId, StoreError};

/// Every way archiving, reading or restoring a run can fail.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ArchiveError {
    /// No archive object exists for this run.
    #[error("no archive of run {run_id} was found; check the bucket (or folder) and prefix")]
    NotFound {
        /// The run looked for.
        run_id: RunId,
    },
    /// A stream record cannot be understood (missing keys or image, an image that is not a
    /// run item). Retrying does not help; the record needs a look.
    #[error("stream record {event_id} is malformed: {reason}")]
    MalformedRecord {
        /// The record's `eventID`.
        event_id: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An archive object does not decode (not gzip, not JSON, or not the schema).
    #[error("archive object {key} does not decode: {reason}")]
    Corrupt {
        /// The object key.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An archive object was written by a newer schema than this build reads.
    #[error(
        "archive object {key} has schema version {found}; this build reads up to {supported}: upgrade wf"
    )]
    UnsupportedSchema {
        /// The object key.
        key: String,
        /// The object's version.
        found: u64,
        /// The newest version this build reads.
        supported: u32,
    },
    /// The store failed (reading the run's items, deleting them, or restoring them).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The archive sink (S3 or the file system) failed.
    #[error("archive sink {operation} failed for {key}")]
    Sink {
        /// The failed operation, e.g. `PutObject`.
        operation: &'static str,
        /// The object key (or prefix) it was about.
        key: String,
        /// Whether a retry may succeed.
        retryable: bool,
        /// The underlying error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A key or setting is not acceptable (for example a key that leaves the archive
    /// folder, or a part size below S3's minimum).
    #[error("invalid {field}: {reason}")]
    InvalidInput {
        /// What is invalid.
        field: &'static str,
        /// Why.
        reason: String,
    },
}

impl ArchiveError {
    /// A stable `snake_case` code for logs and CLI output. Never renamed once shipped.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotFound { .. } => "archive_not_found",
            Self::MalformedRecord { .. } => "malformed_record",
            Self::Corrupt { .. } => "corrupt_archive",
            Self::UnsupportedSchema { .. } => "unsupported_schema",
            Self::Store(e) => e.code(),
            Self::Sink { .. } => "sink_error",
            Self::InvalidInput { .. } => "invalid_input",
        }
    }

    /// Whether the same call may succeed if retried later unchanged.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Store(e) => e.is_retryable(),
            Self::Sink { retryable, .. } => *retryable,
            _ => false,
        }
    }

    pub(crate) fn sink(
        operation: &'static str,
        key: impl Into<String>,
        retryable: bool,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Self::Sink {
            operation,
            key: key.into(),
            retryable,
            source: source.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_are_pinned() {
        let run_id = RunId::generate();
        let cases = [
            (ArchiveError::NotFound { run_id }, "archive_not_found"),
            (
                ArchiveError::MalformedRecord {
                    event_id: "e".into(),
                    reason: "r".into(),
                },
                "malformed_record",
            ),
            (
                ArchiveError::Corrupt {
                    key: "k".into(),
                    reason: "r".into(),
                },
                "corrupt_archive",
            ),
            (
                ArchiveError::UnsupportedSchema {
                    key: "k".into(),
                    found: 9,
                    supported: 1,
                },
                "unsupported_schema",
            ),
            (ArchiveError::Store(StoreError::Throttled), "throttled"),
            (
                ArchiveError::sink("PutObject", "k", true, "boom"),
                "sink_error",
            ),
            (
                ArchiveError::InvalidInput {
                    field: "f",
                    reason: "r".into(),
                },
                "invalid_input",
            ),
        ];
        for (error, code) in cases {
            assert_eq!(error.code(), code, "{error}");
        }
        assert!(ArchiveError::Store(StoreError::Throttled).is_retryable());
        assert!(!ArchiveError::NotFound { run_id }.is_retryable());
    }
}

//! The store's one error type. Codes are stable: they appear in API responses and logs,
//! and a test pins every one of them.

use std::fmt;

/// What kind of item an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemKind {
    /// A workflow run item (`SK = RUN#<runId>`).
    Run,
    /// A step execution item (`SK = STEP#<stepId>`).
    Step,
    /// A step output item (`SK = OUTPUT#<stepId>`).
    Output,
    /// A run-scoped state item (`SK = STATE#<key>`).
    State,
}

impl fmt::Display for ItemKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Run => "run",
            Self::Step => "step",
            Self::Output => "output",
            Self::State => "state entry",
        })
    }
}

/// Every way a store operation can fail.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The item does not exist.
    #[error("{kind} {key} not found")]
    NotFound {
        /// The kind of the missing item.
        kind: ItemKind,
        /// The item's id (run id, or `runId/stepId`).
        key: String,
    },
    /// A conditional write lost: the item was not in the expected state (another writer got
    /// there first, a lease is held, or the item already exists). Re-read and decide again.
    #[error("{kind} {key} changed concurrently or is not in the expected state: {reason}")]
    Conflict {
        /// The kind of the contested item.
        kind: ItemKind,
        /// The item's id.
        key: String,
        /// Which expectation failed.
        reason: &'static str,
    },
    /// A run was already started with this idempotency key; `run_id` is that run.
    #[error("idempotency key {key:?} was already used by run {run_id}")]
    IdempotencyKeyUsed {
        /// The key.
        key: String,
        /// The run that holds it.
        run_id: crate::ids::RunId,
    },
    /// An argument is invalid; `field` names it.
    #[error("invalid {field}: {reason}")]
    InvalidInput {
        /// The offending field (camelCase, as in the JSON API).
        field: &'static str,
        /// Why it is invalid.
        reason: String,
    },
    /// A listing cursor was not issued by this store for this query: altered, truncated,
    /// signed under another key, or given back with other filters. Start again without it.
    #[error("invalid cursor: it {reason}; list again without a cursor")]
    InvalidCursor {
        /// Why it was refused.
        reason: &'static str,
    },
    /// A write would exceed a hard limit of the backend (DynamoDB's 400 KB item, 100 actions
    /// or 4 MB per transaction). Nothing was written.
    #[error(
        "{what} is {size} bytes or items, over the limit of {limit}; store large payloads by reference"
    )]
    TooLarge {
        /// What is too large.
        what: &'static str,
        /// Its size.
        size: usize,
        /// The limit it exceeds.
        limit: usize,
    },
    /// An item read back does not decode: an attribute is missing or has the wrong type.
    #[error("stored {kind} item is corrupt: attribute {attribute}: {reason}")]
    Corrupt {
        /// The kind of the item.
        kind: ItemKind,
        /// The attribute that failed to decode.
        attribute: String,
        /// What was wrong with it.
        reason: String,
    },
    /// The backend was throttled and retries ran out. Safe to retry later.
    #[error("the store is throttled; retry later")]
    Throttled,
    /// The backend failed (network, service or database error).
    #[error("store backend error: {message}")]
    Backend {
        /// A short description of the failed call.
        message: String,
        /// Whether a retry may succeed.
        retryable: bool,
        /// The underlying error.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
}

impl StoreError {
    /// A stable `snake_case` code for logs and API responses. Never renamed once shipped.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotFound { .. } => "not_found",
            Self::Conflict { .. } => "conflict",
            Self::IdempotencyKeyUsed { .. } => "idempotency_key_used",
            Self::InvalidInput { .. } => "invalid_input",
            Self::InvalidCursor { .. } => "invalid_cursor",
            Self::TooLarge { .. } => "too_large",
            Self::Corrupt { .. } => "corrupt_item",
            Self::Throttled => "throttled",
            Self::Backend { .. } => "backend_error",
        }
    }

    /// Whether the same call may succeed if retried later unchanged.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Throttled => true,
            Self::Backend { retryable, .. } => *retryable,
            _ => false,
        }
    }

    /// Whether this is a lost conditional write.
    pub fn is_conflict(&self) -> bool {
        matches!(self, Self::Conflict { .. })
    }

    /// Whether this is a missing item.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::NotFound { .. })
    }

    pub(crate) fn backend(
        message: impl Into<String>,
        retryable: bool,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self::Backend {
            message: message.into(),
            retryable,
            source: Some(Box::new(source)),
        }
    }

    pub(crate) fn corrupt(kind: ItemKind, attribute: &str, reason: impl Into<String>) -> Self {
        Self::Corrupt {
            kind,
            attribute: attribute.to_owned(),
            reason: reason.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_are_pinned() {
        let cases = [
            (
                StoreError::NotFound {
                    kind: ItemKind::Run,
                    key: "r".into(),
                },
                "not_found",
            ),
            (
                StoreError::Conflict {
                    kind: ItemKind::Step,
                    key: "s".into(),
                    reason: "x",
                },
                "conflict",
            ),
            (
                StoreError::IdempotencyKeyUsed {
                    key: "k".into(),
                    run_id: crate::ids::RunId::generate(),
                },
                "idempotency_key_used",
            ),
            (
                StoreError::InvalidInput {
                    field: "f",
                    reason: "r".into(),
                },
                "invalid_input",
            ),
            (StoreError::InvalidCursor { reason: "r" }, "invalid_cursor"),
            (
                StoreError::TooLarge {
                    what: "w",
                    size: 2,
                    limit: 1,
                },
                "too_large",
            ),
            (
                StoreError::corrupt(ItemKind::Output, "a", "b"),
                "corrupt_item",
            ),
            (StoreError::Throttled, "throttled"),
            (
                StoreError::Backend {
                    message: "m".into(),
                    retryable: true,
                    source: None,
                },
                "backend_error",
            ),
        ];
        for (error, code) in cases {
            assert_eq!(error.code(), code, "{error}");
        }
    }
}

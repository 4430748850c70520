//! Identifier newtypes. Ids cross crate boundaries as these types, never as bare strings,
//! and every one of them is validated once, where it is parsed.
//!
//! Invariant: no id contains `#`, the separator of the table's composite keys, or a
//! control character, and none is longer than [`MAX_ID_LEN`] bytes.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::StoreError;

/// Longest workflow id, step id or state key accepted, in bytes.
pub const MAX_ID_LEN: usize = 128;

fn validate(field: &'static str, value: &str) -> Result<(), StoreError> {
    let reason = if value.is_empty() {
        "must not be empty"
    } else if value.len() > MAX_ID_LEN {
        "must be at most 128 bytes"
    } else if value.contains('#') {
        "must not contain '#'"
    } else if value.chars().any(char::is_control) {
        "must not contain control characters"
    } else {
        return Ok(());
    };
    Err(StoreError::InvalidInput {
        field,
        reason: reason.to_owned(),
    })
}

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident, $field:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Validates and wraps `value`; fails with `InvalidInput` naming the field.
            pub fn parse(value: impl Into<String>) -> Result<Self, StoreError> {
                let value = value.into();
                validate($field, &value)?;
                Ok(Self(value))
            }

            /// The id as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.pad(&self.0)
            }
        }

        impl FromStr for $name {
            type Err = StoreError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }

        impl TryFrom<String> for $name {
            type Error = StoreError;
            fn try_from(value: String) -> Result<Self, Self::Error> {
                Self::parse(value)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }
    };
}

string_id!(
    /// Names a workflow definition, e.g. `order-fulfilment`.
    WorkflowId,
    "workflowId"
);
string_id!(
    /// Names a step inside a workflow definition, e.g. `charge-payment`.
    StepId,
    "stepId"
);
string_id!(
    /// Names one run-scoped state entry.
    StateKey,
    "key"
);

/// Identifies one run. A ULID: 26 characters that sort by creation time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RunId(ulid::Ulid);

impl RunId {
    /// A new id for a run created now.
    pub fn generate() -> Self {
        Self(ulid::Ulid::new())
    }

    /// A new id whose time part is `at` (for imports and deterministic tests).
    pub fn at(at: chrono::DateTime<chrono::Utc>) -> Self {
        Self(ulid::Ulid::from_datetime(at.into()))
    }

    /// The time part of the id: when the run was created, to the millisecond, for ids
    /// made by [`RunId::generate`] or [`RunId::at`].
    pub fn timestamp(&self) -> chrono::DateTime<chrono::Utc> {
        chrono::DateTime::from(self.0.datetime())
    }

    /// Parses the 26-character ULID form; fails with `InvalidInput` on anything else.
    pub fn parse(value: &str) -> Result<Self, StoreError> {
        ulid::Ulid::from_string(value)
            .map(Self)
            .map_err(|_| StoreError::InvalidInput {
                field: "runId",
                reason: "must be a 26-character ULID".to_owned(),
            })
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0.to_string())
    }
}

impl FromStr for RunId {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for RunId {
    type Error = StoreError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<RunId> for String {
    fn from(id: RunId) -> String {
        id.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_reject_separator_and_empty() {
        assert!(StepId::parse("a#b").is_err());
        assert!(WorkflowId::parse("").is_err());
        assert!(StateKey::parse("x".repeat(129)).is_err());
        assert_eq!(
            StepId::parse("charge-payment").unwrap().as_str(),
            "charge-payment"
        );
    }

    #[test]
    fn run_ids_sort_by_time_and_round_trip() {
        let early = RunId::at(chrono::DateTime::from_timestamp_millis(1_000).unwrap());
        let late = RunId::at(chrono::DateTime::from_timestamp_millis(2_000).unwrap());
        assert!(early.to_string() < late.to_string());
        assert_eq!(RunId::parse(&early.to_string()).unwrap(), early);
        let err = RunId::parse("nope").unwrap_err();
        assert_eq!(err.code(), "invalid_input");
    }
}

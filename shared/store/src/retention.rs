//! Deployment-level retention settings read from the environment, so every function of a
//! deployment computes the same `ttl`s.
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `RETENTION_DAYS` | days a finished run stays in the table (a run's own `retentionDays` wins) | 30 |
//! | `MAX_RUN_LIFETIME_DAYS` | days after creation a run that never ends expires | 365 |

use std::time::Duration;

use crate::store::Retention;

/// Names the variable for a finished run's retention in days.
pub const RETENTION_DAYS_VAR: &str = "RETENTION_DAYS";
/// Names the variable for the maximum lifetime of a run in days.
pub const MAX_RUN_LIFETIME_DAYS_VAR: &str = "MAX_RUN_LIFETIME_DAYS";

const DAY: u64 = 24 * 60 * 60;
/// Largest accepted number of days (about 100 years): keeps every `ttl` far from overflow.
const MAX_DAYS: u64 = 36_500;

/// A retention variable that is set but not a whole number of days in range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "environment variable {variable} must be a whole number of days from 0 to {MAX_DAYS}, got {value:?}"
)]
pub struct RetentionConfigError {
    /// The variable.
    pub variable: &'static str,
    /// Its value.
    pub value: String,
}

impl RetentionConfigError {
    /// Stable code for logs: `invalid_retention`.
    pub fn code(&self) -> &'static str {
        "invalid_retention"
    }
}

impl Retention {
    /// The defaults overridden by `RETENTION_DAYS` and `MAX_RUN_LIFETIME_DAYS` where they
    /// are set. An empty variable counts as unset.
    pub fn from_env() -> Result<Self, RetentionConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// As [`Retention::from_env`], reading variables through `lookup` (for tests and for
    /// callers with their own configuration source).
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, RetentionConfigError> {
        let days = |variable: &'static str| -> Result<Option<Duration>, RetentionConfigError> {
            match lookup(variable) {
                Some(value) if !value.trim().is_empty() => value
                    .trim()
                    .parse::<u64>()
                    .ok()
                    .filter(|d| *d <= MAX_DAYS)
                    .map(|d| Some(Duration::from_secs(d * DAY)))
                    .ok_or(RetentionConfigError { variable, value }),
                _ => Ok(None),
            }
        };
        let mut retention = Self::default();
        if let Some(keep) = days(RETENTION_DAYS_VAR)? {
            retention.finished_run = keep;
        }
        if let Some(lifetime) = days(MAX_RUN_LIFETIME_DAYS_VAR)? {
            retention.max_lifetime = lifetime;
        }
        Ok(retention)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        }
    }

    #[test]
    fn unset_variables_keep_the_defaults() {
        assert_eq!(
            Retention::from_lookup(lookup(&[])).unwrap(),
            Retention::default()
        );
        assert_eq!(
            Retention::from_lookup(lookup(&[("RETENTION_DAYS", " ")])).unwrap(),
            Retention::default()
        );
    }

    #[test]
    fn variables_override_retention_and_lifetime() {
        let retention = Retention::from_lookup(lookup(&[
            ("RETENTION_DAYS", "7"),
            ("MAX_RUN_LIFETIME_DAYS", "90"),
        ]))
        .unwrap();
        assert_eq!(retention.finished_run, Duration::from_secs(7 * DAY));
        assert_eq!(retention.max_lifetime, Duration::from_secs(90 * DAY));
        assert_eq!(retention.child_grace, Retention::default().child_grace);
    }

    #[test]
    fn a_bad_value_names_its_variable() {
        for bad in ["-1", "ten", "1.5", "36501"] {
            let error =
                Retention::from_lookup(lookup(&[("MAX_RUN_LIFETIME_DAYS", bad)])).unwrap_err();
            assert_eq!(error.variable, "MAX_RUN_LIFETIME_DAYS");
            assert_eq!(error.code(), "invalid_retention");
            assert!(
                error.to_string().contains("MAX_RUN_LIFETIME_DAYS"),
                "{error}"
            );
        }
    }
}

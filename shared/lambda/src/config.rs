//! Configuration of the functions, read once per cold start. A missing or malformed
//! variable is a typed error that names it, so a bad deployment fails at init with a clear
//! message instead of at the first request.

use wf_store::Retention;

/// Why the configuration could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A required variable is not set.
    #[error("environment variable {name} is not set; the template sets it")]
    Missing {
        /// The variable.
        name: &'static str,
    },
    /// A variable does not parse.
    #[error("environment variable {name} is invalid: {reason}")]
    Invalid {
        /// The variable.
        name: &'static str,
        /// Why.
        reason: String,
    },
}

/// Settings shared by start-run, execute-step and runs-api.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `TABLE_NAME`: the workflow table.
    pub table_name: String,
    /// `STEP_QUEUE_URL`: the queue step tasks go to.
    pub step_queue_url: String,
    /// `RETENTION_DAYS` (default 30) and `MAX_RUN_LIFETIME_DAYS` (default 365).
    pub retention: Retention,
    /// `METRICS_NAMESPACE` (default `WorkflowRunner`): the CloudWatch namespace of the
    /// EMF metrics.
    pub metrics_namespace: String,
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup` (the environment, or a map in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let required = |name: &'static str| {
            lookup(name)
                .filter(|v| !v.trim().is_empty())
                .ok_or(ConfigError::Missing { name })
        };
        let retention = Retention::from_lookup(&lookup).map_err(|e| ConfigError::Invalid {
            name: e.variable,
            reason: e.to_string(),
        })?;
        if retention.finished_run > retention.max_lifetime {
            return Err(ConfigError::Invalid {
                name: "RETENTION_DAYS",
                reason: "must not exceed MAX_RUN_LIFETIME_DAYS".to_owned(),
            });
        }
        Ok(Self {
            table_name: required("TABLE_NAME")?,
            step_queue_url: required("STEP_QUEUE_URL")?,
            retention,
            metrics_namespace: lookup("METRICS_NAMESPACE")
                .filter(|v| !v.trim().is_empty())
                .unwrap_or_else(|| "WorkflowRunner".to_owned()),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use std::time::Duration;

    use super::*;

    const DAY: u64 = 24 * 60 * 60;

    fn read(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Config::from_lookup(|name| vars.get(name).cloned())
    }

    #[test]
    fn defaults_apply_and_required_variables_are_named() {
        let config = read(&[("TABLE_NAME", "t"), ("STEP_QUEUE_URL", "q")]).unwrap();
        assert_eq!(config.retention.finished_run, Duration::from_secs(30 * DAY));
        assert_eq!(
            config.retention.max_lifetime,
            Duration::from_secs(365 * DAY)
        );
        assert_eq!(config.metrics_namespace, "WorkflowRunner");
        assert_eq!(
            read(&[("STEP_QUEUE_URL", "q")]),
            Err(ConfigError::Missing { name: "TABLE_NAME" })
        );
        assert_eq!(
            read(&[("TABLE_NAME", "t"), ("STEP_QUEUE_URL", " ")]),
            Err(ConfigError::Missing {
                name: "STEP_QUEUE_URL"
            })
        );
    }

    #[test]
    fn bad_retention_names_the_variable() {
        for (value, name) in [
            ("RETENTION_DAYS=x", "RETENTION_DAYS"),
            ("MAX_RUN_LIFETIME_DAYS=-1", "MAX_RUN_LIFETIME_DAYS"),
            ("RETENTION_DAYS=400", "RETENTION_DAYS"),
        ] {
            let (key, v) = value.split_once('=').unwrap();
            let error =
                read(&[("TABLE_NAME", "t"), ("STEP_QUEUE_URL", "q"), (key, v)]).unwrap_err();
            assert!(
                matches!(error, ConfigError::Invalid { name: n, .. } if n == name),
                "{value}: {error}"
            );
        }
    }
}

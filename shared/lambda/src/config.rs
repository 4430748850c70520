//! Configuration of the functions, read once per cold start. A missing or malformed
//! variable is a typed error that names it, so a bad deployment fails at init with a clear
//! message instead of at the first request.

use wf_store::{CursorKey, Retention};

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

/// The variable that holds the secret listing cursors are signed with.
pub const CURSOR_KEY_VAR: &str = "CURSOR_KEY";

/// The variable that names the bucket of offloaded payloads.
pub const PAYLOAD_BUCKET_VAR: &str = "PAYLOAD_BUCKET";
/// The variable that names their key prefix.
pub const PAYLOAD_PREFIX_VAR: &str = "PAYLOAD_PREFIX";

/// The variable that sets the size above which payloads go to the bucket.
pub const PAYLOAD_THRESHOLD_VAR: &str = "PAYLOAD_THRESHOLD_BYTES";

/// Where payloads over 350 KB go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayloadConfig {
    /// `PAYLOAD_BUCKET`: the bucket.
    pub bucket: String,
    /// `PAYLOAD_PREFIX` (default `payloads/`): the key prefix, empty or ending in `/`.
    pub prefix: String,
    /// `PAYLOAD_THRESHOLD_BYTES` (default and most 358400, 350 KiB): payloads over this many
    /// bytes of JSON go to the bucket. Lower it to keep mid-sized payloads out of items
    /// (each rewrite of an item pays for every KB it holds).
    pub threshold: usize,
}

impl PayloadConfig {
    /// The wrapper over `inner` that keeps payloads as configured, in `blobs`.
    pub fn offload(
        &self,
        inner: std::sync::Arc<dyn wf_store::Store>,
        blobs: std::sync::Arc<dyn wf_payloads::PayloadBlobs>,
    ) -> wf_payloads::OffloadStore {
        wf_payloads::OffloadStore::new(inner, blobs).with_threshold(self.threshold)
    }
}

impl PayloadConfig {
    /// Reads `PAYLOAD_BUCKET` and `PAYLOAD_PREFIX`; `None` without a bucket.
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Self>, ConfigError> {
        let Some(bucket) = lookup(PAYLOAD_BUCKET_VAR).filter(|v| !v.trim().is_empty()) else {
            return Ok(None);
        };
        let prefix = lookup(PAYLOAD_PREFIX_VAR)
            .unwrap_or_else(|| wf_payloads::DEFAULT_PAYLOAD_PREFIX.to_owned());
        if !(prefix.is_empty() || prefix.ends_with('/')) || prefix.starts_with('/') {
            return Err(ConfigError::Invalid {
                name: PAYLOAD_PREFIX_VAR,
                reason: "must be empty or a relative prefix ending in /".to_owned(),
            });
        }
        let threshold = match lookup(PAYLOAD_THRESHOLD_VAR).filter(|v| !v.trim().is_empty()) {
            None => wf_payloads::DEFAULT_OFFLOAD_THRESHOLD,
            Some(value) => value
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|n| *n <= wf_payloads::DEFAULT_OFFLOAD_THRESHOLD)
                .ok_or_else(|| ConfigError::Invalid {
                    name: PAYLOAD_THRESHOLD_VAR,
                    reason: format!(
                        "must be a number of bytes from 0 to {}, got {value:?}",
                        wf_payloads::DEFAULT_OFFLOAD_THRESHOLD
                    ),
                })?,
        };
        Ok(Some(Self {
            bucket,
            prefix,
            threshold,
        }))
    }
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
    /// `CURSOR_KEY`: the secret (16 bytes or more) listing cursors are signed with, so a
    /// cursor is refused once altered or reused with other filters. The template sets it
    /// to the stack's id, which is unique per deployment and never shown to API callers;
    /// unset (local runs), the built-in key of [`CursorKey::default`] applies.
    pub cursor_key: CursorKey,
    /// `PAYLOAD_BUCKET` and `PAYLOAD_PREFIX`: where payloads over 350 KB go (up to 10
    /// MiB). Unset (local runs without S3), payloads over 350 KB are refused with 413.
    pub payloads: Option<PayloadConfig>,
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
        let cursor_key = match lookup(CURSOR_KEY_VAR).filter(|v| !v.is_empty()) {
            None => CursorKey::default(),
            Some(secret) => {
                CursorKey::derive(secret.as_bytes()).ok_or_else(|| ConfigError::Invalid {
                    name: CURSOR_KEY_VAR,
                    reason: format!("must be at least {} bytes long", CursorKey::MIN_SECRET_LEN),
                })?
            }
        };
        Ok(Self {
            table_name: required("TABLE_NAME")?,
            step_queue_url: required("STEP_QUEUE_URL")?,
            retention,
            metrics_namespace: lookup("METRICS_NAMESPACE")
                .filter(|v| !v.trim().is_empty())
                .unwrap_or_else(|| "WorkflowRunner".to_owned()),
            cursor_key,
            payloads: PayloadConfig::from_lookup(&lookup)?,
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
        assert_eq!(config.cursor_key, CursorKey::default());
        assert_eq!(config.payloads, None);
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

    #[test]
    fn the_cursor_key_comes_from_cursor_key_and_must_be_long_enough() {
        let base = [("TABLE_NAME", "t"), ("STEP_QUEUE_URL", "q")];
        let with = |value: &'static str| {
            let mut vars = base.to_vec();
            vars.push(("CURSOR_KEY", value));
            read(&vars)
        };
        let stack = "arn:aws:cloudformation:us-east-1:123456789012:stack/wf/3c5b7f60-0000-11ef";
        assert_eq!(
            with(stack).unwrap().cursor_key,
            CursorKey::derive(stack.as_bytes()).unwrap()
        );
        assert_eq!(with("").unwrap().cursor_key, CursorKey::default());
        assert!(matches!(
            with("too short"),
            Err(ConfigError::Invalid {
                name: "CURSOR_KEY",
                ..
            })
        ));
    }

    #[test]
    fn payloads_go_to_the_named_bucket_under_a_valid_prefix() {
        let base = [("TABLE_NAME", "t"), ("STEP_QUEUE_URL", "q")];
        let with = |extra: &[(&'static str, &'static str)]| {
            let mut vars = base.to_vec();
            vars.extend_from_slice(extra);
            read(&vars)
        };
        assert_eq!(
            with(&[("PAYLOAD_BUCKET", "b")]).unwrap().payloads,
            Some(PayloadConfig {
                bucket: "b".into(),
                prefix: "payloads/".into(),
                threshold: 350 * 1024,
            })
        );
        assert_eq!(
            with(&[("PAYLOAD_BUCKET", "b"), ("PAYLOAD_THRESHOLD_BYTES", "4096")])
                .unwrap()
                .payloads
                .unwrap()
                .threshold,
            4096
        );
        for bad in ["-1", "lots", "358401"] {
            assert!(matches!(
                with(&[("PAYLOAD_BUCKET", "b"), ("PAYLOAD_THRESHOLD_BYTES", bad)]),
                Err(ConfigError::Invalid {
                    name: "PAYLOAD_THRESHOLD_BYTES",
                    ..
                })
            ));
        }
        assert_eq!(
            with(&[("PAYLOAD_BUCKET", "b"), ("PAYLOAD_PREFIX", "p/")])
                .unwrap()
                .payloads
                .unwrap()
                .prefix,
            "p/"
        );
        for bad in ["p", "/p/"] {
            assert!(matches!(
                with(&[("PAYLOAD_BUCKET", "b"), ("PAYLOAD_PREFIX", bad)]),
                Err(ConfigError::Invalid {
                    name: "PAYLOAD_PREFIX",
                    ..
                })
            ));
        }
    }
}

//! Typed steps and what they see while they run. A step is an async function from a serde
//! input type to a serde output type, given a [`StepContext`]; the registry erases it to
//! `serde_json::Value` so workflows of any types share one executor.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use futures::future::BoxFuture;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use wf_store::{LeaseFence, RunId, StateKey, StepId, Store};

use crate::clock::Clock;
use crate::error::{InputError, StepError};

/// What a running step may see and do: its identity, the run's shared state, and whether
/// the run was cancelled.
#[derive(Debug, Clone)]
pub struct StepContext {
    run_id: RunId,
    /// The claim this attempt runs under: every state write is fenced by it.
    lease: LeaseFence,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
}

fn state_key(key: &str) -> Result<StateKey, StepError> {
    StateKey::parse(key).map_err(|e| StepError::terminal("invalid_state_key", e.to_string()))
}

fn store_error(error: &wf_store::StoreError) -> StepError {
    if let wf_store::StoreError::Conflict {
        kind: wf_store::ItemKind::Step,
        ..
    } = error
    {
        // Another worker holds the step now; this attempt can no longer commit either.
        return StepError::retryable("lease_lost", error.to_string());
    }
    StepError::retryable(error.code(), error.to_string())
}

impl StepContext {
    pub(crate) fn new(
        run_id: RunId,
        lease: LeaseFence,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            run_id,
            lease,
            store,
            clock,
        }
    }

    /// The run.
    pub fn run_id(&self) -> &RunId {
        &self.run_id
    }

    /// This step.
    pub fn step_id(&self) -> &StepId {
        &self.lease.step_id
    }

    /// The attempt, from 1.
    pub fn attempt(&self) -> u32 {
        self.lease.attempt
    }

    /// Sets a run-scoped state entry (last writer wins), only while this attempt holds
    /// its lease: an attempt that lost the step to another worker gets `lease_lost` and
    /// writes nothing.
    pub async fn set_state<T: Serialize + Sync>(
        &self,
        key: &str,
        value: &T,
    ) -> Result<(), StepError> {
        let value = serde_json::to_value(value)
            .map_err(|e| StepError::terminal("invalid_state", e.to_string()))?;
        self.store
            .set_state_leased(
                &self.run_id,
                &state_key(key)?,
                &value,
                self.clock.now(),
                &self.lease,
            )
            .await
            .map_err(|e| store_error(&e))
    }

    /// A state entry, decoded into `T`, if set.
    pub async fn get_state<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, StepError> {
        let value = self
            .store
            .get_state(&self.run_id, &state_key(key)?)
            .await
            .map_err(|e| store_error(&e))?;
        value
            .map(|v| {
                serde_json::from_value(v)
                    .map_err(|e| StepError::terminal("invalid_state", e.to_string()))
            })
            .transpose()
    }

    /// Deletes a state entry (under the lease, as `set_state`); returns whether it existed.
    pub async fn delete_state(&self, key: &str) -> Result<bool, StepError> {
        self.store
            .delete_state_leased(&self.run_id, &state_key(key)?, &self.lease)
            .await
            .map_err(|e| store_error(&e))
    }

    /// Whether a state entry is set.
    pub async fn has_state(&self, key: &str) -> Result<bool, StepError> {
        self.store
            .has_state(&self.run_id, &state_key(key)?)
            .await
            .map_err(|e| store_error(&e))
    }

    /// Every state entry of the run.
    pub async fn all_state(&self) -> Result<BTreeMap<String, Value>, StepError> {
        let entries = self
            .store
            .all_state(&self.run_id)
            .await
            .map_err(|e| store_error(&e))?;
        Ok(entries
            .into_iter()
            .map(|e| (e.key.to_string(), e.value))
            .collect())
    }

    /// Whether the run was cancelled. Long steps call this at checkpoints.
    pub async fn is_cancelled(&self) -> Result<bool, StepError> {
        let run = self
            .store
            .get_run_head(&self.run_id)
            .await
            .map_err(|e| store_error(&e))?;
        Ok(run.status == wf_store::RunStatus::Cancelled)
    }

    /// Returns `Err(StepError::cancelled())` if the run was cancelled.
    pub async fn check_cancelled(&self) -> Result<(), StepError> {
        if self.is_cancelled().await? {
            return Err(StepError::cancelled());
        }
        Ok(())
    }
}

/// A step body with its types erased.
pub(crate) type ErasedStep =
    Arc<dyn Fn(StepContext, Value) -> BoxFuture<'static, Result<Value, StepError>> + Send + Sync>;
/// Checks that a value deserialises into a step's input type.
pub(crate) type InputCheck = Arc<dyn Fn(&Value) -> Result<(), InputError> + Send + Sync>;
/// A step's condition with its input type erased.
pub(crate) type ErasedCondition = Arc<dyn Fn(&Value) -> Result<bool, InputError> + Send + Sync>;

/// Deserialises `value` into `T`, naming the JSON path of the first mismatch.
pub(crate) fn decode<T: DeserializeOwned>(value: &Value) -> Result<T, InputError> {
    serde_path_to_error::deserialize(value).map_err(|error| {
        let path = error.path().to_string();
        InputError {
            path: if path == "." || path.is_empty() {
                ".".to_owned()
            } else {
                format!(".{path}")
            },
            message: error.into_inner().to_string(),
        }
    })
}

pub(crate) fn erase<I, O, F, Fut>(body: F) -> (ErasedStep, InputCheck)
where
    I: DeserializeOwned + Send + 'static,
    O: Serialize + 'static,
    F: Fn(StepContext, I) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<O, StepError>> + Send + 'static,
{
    let body = Arc::new(body);
    let run: ErasedStep = Arc::new(move |ctx, input| {
        let body = Arc::clone(&body);
        Box::pin(async move {
            let typed: I = decode(&input)
                .map_err(|e| StepError::terminal("invalid_step_input", e.to_string()))?;
            let output = body(ctx, typed).await?;
            serde_json::to_value(output)
                .map_err(|e| StepError::terminal("invalid_step_output", e.to_string()))
        })
    });
    let check: InputCheck = Arc::new(|value| decode::<I>(value).map(|_| ()));
    (run, check)
}

pub(crate) fn erase_condition<I, P>(predicate: P) -> ErasedCondition
where
    I: DeserializeOwned + 'static,
    P: Fn(&I) -> bool + Send + Sync + 'static,
{
    Arc::new(move |value| decode::<I>(value).map(|input| predicate(&input)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code, reason = "fields exist to be deserialised")]
    struct Order {
        id: String,
        items: Vec<Item>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code, reason = "fields exist to be deserialised")]
    struct Item {
        quantity: u32,
    }

    #[test]
    fn decode_names_the_json_path() {
        let bad =
            serde_json::json!({ "id": "o-1", "items": [{ "quantity": 1 }, { "quantity": "two" }] });
        let error = decode::<Order>(&bad).unwrap_err();
        assert_eq!(error.path, ".items[1].quantity");
        assert!(error.message.contains("expected u32"), "{}", error.message);
        let missing = decode::<Order>(&serde_json::json!({ "items": [] })).unwrap_err();
        assert!(
            missing.message.contains("missing field `id`"),
            "{}",
            missing.message
        );
    }
}

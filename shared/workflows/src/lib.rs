//! The workflows that ship with the runner, one per file, each a pattern to copy:
//!
//! - [`order_fulfilment`]: validate, then reserve stock and charge payment in parallel,
//!   then ship (fan-in); a flaky payment gateway retried with backoff; a declined card as
//!   a terminal error.
//! - [`document_pipeline`]: split a document into chunks, process them in parallel
//!   (fan-out), merge the results (fan-in); large payloads and run-scoped state.
//! - [`approval`]: wait for a human's signal with a timeout, a durable cool-off sleep,
//!   then notify.
//!
//! [`registry`] registers them all; the `wf` CLI and the Lambda functions use it.

pub mod approval;
pub mod document_pipeline;
pub mod order_fulfilment;

use wf_engine::{EngineError, Registry};

/// A registry with every example workflow.
pub fn registry() -> Result<Registry, EngineError> {
    let mut registry = Registry::new();
    registry.register(order_fulfilment::workflow()?)?;
    registry.register(document_pipeline::workflow()?)?;
    registry.register(approval::workflow()?)?;
    Ok(registry)
}

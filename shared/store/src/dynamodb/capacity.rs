//! Running totals of the capacity units DynamoDB reports, so benchmarks can give units
//! per operation from real responses rather than estimates.

use std::sync::Mutex;

use aws_sdk_dynamodb::types::ConsumedCapacity;

use super::billing::{Billed, BilledTotals, Billing};

/// Whether a request reads or writes.
#[derive(Debug, Clone, Copy)]
pub(crate) enum OpKind {
    Read,
    Write,
}

/// Units and requests consumed so far.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CapacityTotals {
    /// Read capacity units.
    pub read_units: f64,
    /// Write capacity units (transactional writes count double, as DynamoDB bills them).
    pub write_units: f64,
    /// Read requests sent.
    pub read_requests: u64,
    /// Write requests sent.
    pub write_requests: u64,
}

impl CapacityTotals {
    /// The change from `earlier` to `self`.
    #[must_use]
    pub fn since(&self, earlier: &CapacityTotals) -> CapacityTotals {
        CapacityTotals {
            read_units: self.read_units - earlier.read_units,
            write_units: self.write_units - earlier.write_units,
            read_requests: self.read_requests.saturating_sub(earlier.read_requests),
            write_requests: self.write_requests.saturating_sub(earlier.write_requests),
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct Capacity(Mutex<CapacityTotals>, Mutex<Billing>);

fn units(consumed: &ConsumedCapacity) -> f64 {
    consumed.capacity_units().unwrap_or_else(|| {
        consumed.read_capacity_units().unwrap_or(0.0)
            + consumed.write_capacity_units().unwrap_or(0.0)
    })
}

impl Capacity {
    /// Records one request and the capacity it reported.
    pub(crate) fn record(&self, kind: OpKind, consumed: Option<&ConsumedCapacity>) {
        self.record_all(kind, consumed.map(std::slice::from_ref).unwrap_or_default());
    }

    /// Records one request that reported capacity per table.
    pub(crate) fn record_all(&self, kind: OpKind, consumed: &[ConsumedCapacity]) {
        let total: f64 = consumed.iter().map(units).sum();
        // A poisoned lock only means another thread panicked mid-update of plain numbers.
        let mut totals = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match kind {
            OpKind::Read => {
                totals.read_units += total;
                totals.read_requests += 1;
            }
            OpKind::Write => {
                totals.write_units += total;
                totals.write_requests += 1;
            }
        }
    }

    /// Bills one request by AWS's rules (see `billing`).
    pub(crate) fn bill(&self, request: &Billed<'_>) {
        self.1
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .bill(request);
    }

    pub(crate) fn billed(&self) -> BilledTotals {
        self.1
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .totals()
    }

    pub(crate) fn totals(&self) -> CapacityTotals {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

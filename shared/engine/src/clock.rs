//! Time, behind a trait, so tests control it. [`TokioClock`] follows tokio's clock: under
//! `tokio::time::pause()` it stands still and jumps with the timers, so durable sleeps,
//! backoff and lease expiry are tested without real waiting.

use std::fmt::Debug;

use chrono::{DateTime, TimeDelta, Utc};

/// A source of the current UTC time.
pub trait Clock: Send + Sync + Debug {
    /// Now, at millisecond precision.
    fn now(&self) -> DateTime<Utc>;
}

/// The system's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        wf_store::now_millis()
    }
}

/// Wall time at creation plus tokio's elapsed time since: pausable and advanceable.
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    base: DateTime<Utc>,
    started: tokio::time::Instant,
}

impl TokioClock {
    /// A clock starting at `base`.
    pub fn starting_at(base: DateTime<Utc>) -> Self {
        Self {
            base,
            started: tokio::time::Instant::now(),
        }
    }
}

impl Clock for TokioClock {
    fn now(&self) -> DateTime<Utc> {
        let elapsed = TimeDelta::from_std(self.started.elapsed()).unwrap_or(TimeDelta::MAX);
        wf_store::to_millis(self.base + elapsed)
    }
}

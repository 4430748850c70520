//! A dispatcher wrapper that delivers tasks the way a queue under stress does, drawn from
//! a seeded RNG: some are lost (the send said yes, nothing arrives), some arrive twice,
//! some arrive late. Lost tasks are the sweep's to recover.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;

use crate::{Dispatcher, EngineError, StepTask};

/// How often each mishap happens, as a probability per task.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChaosRates {
    /// The task is dropped without a word.
    pub lose: f64,
    /// The task is delivered twice (the copy after its own random delay).
    pub duplicate: f64,
    /// The task is delivered up to `max_delay` late.
    pub delay: f64,
    /// The longest extra delay.
    pub max_delay: Duration,
}

impl ChaosRates {
    /// No mishaps.
    pub fn none() -> Self {
        Self {
            lose: 0.0,
            duplicate: 0.0,
            delay: 0.0,
            max_delay: Duration::ZERO,
        }
    }

    /// The rates of the fault-injected behaviour suite; delays scale with `unit`.
    pub fn suite(unit: Duration) -> Self {
        Self {
            lose: 0.03,
            duplicate: 0.1,
            delay: 0.1,
            max_delay: unit * 5,
        }
    }
}

/// The wrapper.
#[derive(Debug)]
pub struct Chaos {
    inner: Arc<dyn Dispatcher>,
    rates: ChaosRates,
    rng: Mutex<fastrand::Rng>,
    lost: AtomicU32,
    duplicated: AtomicU32,
    delayed: AtomicU32,
}

/// What the wrapper did, for a scenario to show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ChaosCounts {
    /// Tasks dropped.
    pub lost: u32,
    /// Tasks delivered twice.
    pub duplicated: u32,
    /// Tasks delivered late.
    pub delayed: u32,
}

impl Chaos {
    /// Wraps `inner`, drawing mishaps at `rates` from an RNG seeded with `seed`.
    pub fn new(inner: Arc<dyn Dispatcher>, rates: ChaosRates, seed: u64) -> Self {
        Self {
            inner,
            rates,
            rng: Mutex::new(fastrand::Rng::with_seed(seed)),
            lost: AtomicU32::new(0),
            duplicated: AtomicU32::new(0),
            delayed: AtomicU32::new(0),
        }
    }

    /// What was done so far.
    pub fn counts(&self) -> ChaosCounts {
        ChaosCounts {
            lost: self.lost.load(Ordering::SeqCst),
            duplicated: self.duplicated.load(Ordering::SeqCst),
            delayed: self.delayed.load(Ordering::SeqCst),
        }
    }

    /// For one task: whether it is lost, its extra delay, and its copy's delay if any.
    fn draw(&self) -> (bool, Duration, Option<Duration>) {
        let mut rng = self
            .rng
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let max = u64::try_from(self.rates.max_delay.as_millis()).unwrap_or(u64::MAX);
        let lost = rng.f64() < self.rates.lose;
        let extra = if rng.f64() < self.rates.delay {
            Duration::from_millis(rng.u64(0..=max))
        } else {
            Duration::ZERO
        };
        let copy =
            (rng.f64() < self.rates.duplicate).then(|| Duration::from_millis(rng.u64(0..=max)));
        (lost, extra, copy)
    }
}

#[async_trait]
impl Dispatcher for Chaos {
    async fn dispatch(&self, tasks: &[StepTask], delay: Duration) -> Result<(), EngineError> {
        for task in tasks {
            let (lost, extra, copy) = self.draw();
            if lost {
                self.lost.fetch_add(1, Ordering::SeqCst);
                continue;
            }
            if !extra.is_zero() {
                self.delayed.fetch_add(1, Ordering::SeqCst);
            }
            self.inner
                .dispatch(std::slice::from_ref(task), delay + extra)
                .await?;
            if let Some(copy) = copy {
                self.duplicated.fetch_add(1, Ordering::SeqCst);
                self.inner
                    .dispatch(std::slice::from_ref(task), delay + copy)
                    .await?;
            }
        }
        Ok(())
    }
}

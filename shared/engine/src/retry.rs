//! Per-step execution policy: attempts, backoff with full jitter, timeout, and whether a
//! terminal failure stops the run.

use std::time::Duration;

/// How the delay grows between attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backoff {
    /// The same delay every time.
    None,
    /// `initial * attempt`.
    Linear,
    /// `initial * 2^(attempt - 1)`.
    Exponential,
}

/// Retry and timeout settings of one step. Build with [`RetryPolicy::default`] and the
/// consuming setters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    max_attempts: u32,
    initial_delay: Duration,
    backoff: Backoff,
    jitter: bool,
    max_delay: Duration,
}

impl Default for RetryPolicy {
    /// Three attempts, exponential from 1 s, full jitter, at most 5 minutes apart.
    fn default() -> Self {
        Self {
            max_attempts: 3,
            initial_delay: Duration::from_secs(1),
            backoff: Backoff::Exponential,
            jitter: true,
            max_delay: Duration::from_secs(300),
        }
    }
}

impl RetryPolicy {
    /// One attempt, no retries.
    pub fn none() -> Self {
        Self::default().max_attempts(1)
    }

    /// Total attempts, including the first (at least 1).
    #[must_use]
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// Delay before the second attempt.
    #[must_use]
    pub fn initial_delay(mut self, delay: Duration) -> Self {
        self.initial_delay = delay;
        self
    }

    /// How the delay grows.
    #[must_use]
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Full jitter: the delay is uniform in `[0, computed]`.
    #[must_use]
    pub fn jitter(mut self, on: bool) -> Self {
        self.jitter = on;
        self
    }

    /// Upper bound of any delay.
    #[must_use]
    pub fn max_delay(mut self, delay: Duration) -> Self {
        self.max_delay = delay;
        self
    }

    /// Total attempts allowed.
    pub fn attempts(&self) -> u32 {
        self.max_attempts
    }

    /// Whether a retryable failure of `attempt` (from 1) gets another attempt.
    pub fn allows_retry_after(&self, attempt: u32) -> bool {
        attempt < self.max_attempts
    }

    /// The delay before the attempt after `attempt` (from 1), before jitter.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let attempt = attempt.max(1);
        let delay = match self.backoff {
            Backoff::None => self.initial_delay,
            Backoff::Linear => self.initial_delay.saturating_mul(attempt),
            Backoff::Exponential => self
                .initial_delay
                .saturating_mul(2_u32.saturating_pow(attempt.saturating_sub(1).min(31))),
        };
        delay.min(self.max_delay)
    }

    /// The delay to wait after a failed `attempt`: the ceiling, or with jitter a uniform
    /// draw in `[0, ceiling]`.
    pub fn delay_after(&self, attempt: u32) -> Duration {
        let ceiling = self.ceiling(attempt);
        if !self.jitter {
            return ceiling;
        }
        let millis = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(fastrand::u64(0..=millis))
    }
}

/// Everything configurable about one step's execution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepConfig {
    /// Retries and backoff.
    pub retry: RetryPolicy,
    /// How long one attempt may run.
    pub timeout: Duration,
    /// Whether a terminal failure lets the flow go on (successors see `null` for this
    /// parent) instead of failing the run.
    pub continue_on_error: bool,
}

impl Default for StepConfig {
    fn default() -> Self {
        Self {
            retry: RetryPolicy::default(),
            timeout: Duration::from_secs(60),
            continue_on_error: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exponential_backoff_doubles_up_to_the_cap() {
        let policy = RetryPolicy::default()
            .initial_delay(Duration::from_millis(100))
            .max_delay(Duration::from_secs(1))
            .jitter(false);
        let delays: Vec<_> = (1..=6).map(|a| policy.delay_after(a).as_millis()).collect();
        assert_eq!(delays, [100, 200, 400, 800, 1_000, 1_000]);
    }

    #[test]
    fn linear_and_constant_backoff() {
        let linear = RetryPolicy::default()
            .backoff(Backoff::Linear)
            .initial_delay(Duration::from_secs(2))
            .jitter(false);
        assert_eq!(linear.delay_after(3), Duration::from_secs(6));
        let constant = linear.backoff(Backoff::None);
        assert_eq!(constant.delay_after(7), Duration::from_secs(2));
    }

    #[test]
    fn full_jitter_stays_within_bounds_and_varies() {
        let policy = RetryPolicy::default().initial_delay(Duration::from_millis(500));
        let draws: Vec<_> = (0..200).map(|_| policy.delay_after(3)).collect();
        assert!(draws.iter().all(|d| *d <= Duration::from_secs(2)));
        assert!(
            draws.iter().any(|d| *d != draws[0]),
            "jitter varies the delay"
        );
    }

    #[test]
    fn attempts_bound_retries() {
        let policy = RetryPolicy::default().max_attempts(3);
        assert!(policy.allows_retry_after(2));
        assert!(!policy.allows_retry_after(3));
        assert_eq!(RetryPolicy::none().attempts(), 1);
    }
}

//! Recovery: the scheduled sweep and `wf resume` dispatch stranded work again.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use tracing::error;
use wf_store::{RunQuery, RunStatus, StepId, StepStatus, WorkflowRun};

use crate::dispatch::StepTask;
use crate::error::EngineError;
use crate::telemetry::Event;

use super::{Executor, SweepCadence, SweepReport, to_std};

impl Executor {
    /// Finds stranded work in open runs and dispatches it again: ready or retrying steps
    /// untouched for `stale_after` (a lost dispatch), running steps whose lease lapsed (a
    /// dead worker), waiting steps whose time has come, first steps and successors never
    /// created, and runs
    /// whose steps are all done. It also ends runs that cannot go on (a step failed and
    /// stopped it, its workflow version is not deployed). Safe to run at any time and
    /// concurrently: every action is a conditional write or an idempotent task. A run it
    /// cannot handle is logged, reported (`runs_skipped`, and an
    /// [`Event::RunNotRecovered`]) and passed over; only a failure to list runs is an error.
    pub async fn sweep(&self, stale_after: Duration) -> Result<SweepReport, EngineError> {
        self.sweep_at_cadence(stale_after, SweepCadence::EVERY_SWEEP)
            .await
    }

    /// [`Self::sweep`], looking at each open run only as often as `cadence` says (the
    /// scheduled sweep of the Lambda functions spreads old runs over 15 minutes).
    pub async fn sweep_at_cadence(
        &self,
        stale_after: Duration,
        cadence: SweepCadence,
    ) -> Result<SweepReport, EngineError> {
        let mut report = SweepReport::default();
        let now = self.clock.now();
        for status in [RunStatus::Pending, RunStatus::Running, RunStatus::Waiting] {
            let mut query = RunQuery {
                status: Some(status),
                limit: 100,
                ..RunQuery::default()
            };
            loop {
                let page = self.store.list_runs(&query).await?;
                for run in &page.items {
                    if !cadence.looks_at(&run.run_id, run.created_at, now) {
                        report.runs_deferred += 1;
                        continue;
                    }
                    report.runs_checked += 1;
                    match self.sweep_run(run, stale_after).await {
                        Ok((dispatched, finished)) => {
                            report.tasks_dispatched += dispatched;
                            report.runs_finished += u32::from(finished);
                        }
                        // One bad run never stops the recovery of the others.
                        Err(error) => {
                            report.runs_skipped += 1;
                            self.not_recovered(run, &error);
                        }
                    }
                }
                match page.next {
                    Some(cursor) => query.cursor = Some(cursor),
                    None => break,
                }
            }
        }
        Ok(report)
    }

    /// Sweeps one run; returns the tasks dispatched and whether it was finished.
    pub async fn sweep_run(
        &self,
        run: &WorkflowRun,
        stale_after: Duration,
    ) -> Result<(u32, bool), EngineError> {
        let now = self.clock.now();
        let stale_before = now - TimeDelta::from_std(stale_after).unwrap_or(TimeDelta::MAX);
        self.redispatch(run, now, Some(stale_before)).await
    }

    /// Takes over a run another process left unfinished (`wf resume`): dispatches every
    /// step that can still make progress, each at the time it becomes due: now for ready
    /// steps, at their wake time for sleeps and retries, and at the end of its lease for a
    /// step the dead process was running. Returns the tasks dispatched and whether the run
    /// was found finished.
    pub async fn resume_run(&self, run: &WorkflowRun) -> Result<(u32, bool), EngineError> {
        self.redispatch(run, self.clock.now(), None).await
    }

    /// With `stale_before`, dispatches only stranded work that is due now (the sweep);
    /// without, everything outstanding, delayed until due (resume).
    pub(super) async fn redispatch(
        &self,
        run: &WorkflowRun,
        now: DateTime<Utc>,
        stale_before: Option<DateTime<Utc>>,
    ) -> Result<(u32, bool), EngineError> {
        let Some(workflow) = self.workflow_of(run).await? else {
            return Ok((0, true));
        };
        let steps = self.store.list_steps(&run.run_id).await?;
        if self.fail_if_stopped(run, &workflow, &steps).await? {
            return Ok((0, true));
        }
        let existing: HashSet<&StepId> = steps
            .iter()
            .filter(|s| s.status != StepStatus::Pending)
            .map(|s| &s.step_id)
            .collect();
        // The steps that flowed on, with the time they did.
        let done: HashMap<&StepId, DateTime<Utc>> = steps
            .iter()
            .filter(|s| Self::flowed_on(&workflow, s))
            .map(|s| (&s.step_id, s.updated_at))
            .collect();
        let mut scheduled: Vec<(StepTask, Duration)> = Vec::new();
        for step in &steps {
            let due_in = step.not_before.map_or(Duration::ZERO, |t| to_std(t - now));
            // Claims need the lease strictly lapsed: aim just past its end.
            let lease_ends_in = step
                .lease
                .as_ref()
                .filter(|l| l.until >= now)
                .map_or(Duration::ZERO, |l| {
                    to_std(l.until - now) + Duration::from_millis(1)
                });
            let delay = match (step.status, stale_before) {
                (StepStatus::Ready | StepStatus::Retrying, Some(stale)) => {
                    (due_in.is_zero() && step.updated_at <= stale).then_some(Duration::ZERO)
                }
                (StepStatus::Waiting, Some(_)) => due_in.is_zero().then_some(Duration::ZERO),
                (StepStatus::Running, Some(_)) => lease_ends_in.is_zero().then_some(Duration::ZERO),
                (StepStatus::Ready | StepStatus::Retrying, None) => Some(due_in),
                (StepStatus::Waiting, None) => step.not_before.map(|_| due_in),
                (StepStatus::Running, None) => Some(lease_ends_in),
                _ => None,
            };
            if let Some(delay) = delay {
                let task = StepTask {
                    run_id: run.run_id,
                    step_id: step.step_id.clone(),
                    attempt: step.attempt,
                };
                scheduled.push((task, delay));
            }
        }
        // A step missing or still pending although its parents all flowed on (for a first
        // step: although the run started) as long ago as a stale ready step: a lost task,
        // or a commit cut short before it told its successors. Until then its task is
        // probably under way (first steps and single-parent ones are created by their
        // claims). Its task creates or readies it.
        let stale = |at: &DateTime<Utc>| stale_before.is_none_or(|stale| *at <= stale);
        for node in workflow.nodes() {
            let due = if node.parents.is_empty() {
                stale(&run.created_at)
            } else {
                node.parents.iter().all(|p| done.get(p).is_some_and(&stale))
            };
            if due && !existing.contains(&node.id) {
                let task = StepTask {
                    run_id: run.run_id,
                    step_id: node.id.clone(),
                    attempt: 1,
                };
                scheduled.push((task, Duration::ZERO));
            }
        }
        for (task, delay) in &scheduled {
            self.dispatcher
                .dispatch(std::slice::from_ref(task), *delay)
                .await?;
        }
        // The listing (a consistent read) already shows whether every leaf flowed on: only
        // then is the run's end worth its reads. Most open runs are not done, and the sweep
        // looks at each of them every minute.
        let leaves_done = workflow.leaves().all(|leaf| done.contains_key(&leaf.id));
        let finished = leaves_done && self.finish_if_done(&run.run_id, &workflow, None).await?;
        Ok((u32::try_from(scheduled.len()).unwrap_or(u32::MAX), finished))
    }

    /// Reports a run a recovery pass could not handle: an error log and an event.
    pub(crate) fn not_recovered(&self, run: &WorkflowRun, error: &EngineError) {
        error!(run_id = %run.run_id, code = error.code(), error = %error, "run not recovered; passed over");
        self.observer.on_event(&Event::RunNotRecovered {
            run_id: run.run_id,
            code: error.code().to_owned(),
        });
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    reason = "test code: a failed expectation must panic"
)]
mod tests {
    use chrono::{DateTime, TimeDelta, Utc};
    use wf_store::RunId;

    use super::SweepCadence;

    const QUARTER_HOUR: SweepCadence = SweepCadence {
        max_interval: std::time::Duration::from_secs(900),
    };

    /// How many of `minutes` consecutive sweeps from `from` look at a run `age` old at each
    /// of them (a fixed age, so a fixed interval).
    fn looks(
        cadence: SweepCadence,
        run_id: &RunId,
        age: TimeDelta,
        from: DateTime<Utc>,
        minutes: i64,
    ) -> usize {
        (0..minutes)
            .filter(|m| {
                let now = from + TimeDelta::minutes(*m);
                cadence.looks_at(run_id, now - age, now)
            })
            .count()
    }

    #[test]
    fn young_runs_are_looked_at_by_every_sweep() {
        let from = DateTime::from_timestamp(1_790_000_000, 0).unwrap();
        for n in 0..50 {
            let run_id = RunId::at(from - TimeDelta::seconds(n));
            assert_eq!(
                looks(QUARTER_HOUR, &run_id, TimeDelta::minutes(19), from, 30),
                30
            );
        }
    }

    #[test]
    fn old_runs_are_looked_at_once_per_interval_each_on_its_own_minutes() {
        let from = DateTime::from_timestamp(1_790_000_000, 0).unwrap();
        let mut offsets = std::collections::BTreeSet::new();
        for n in 0..50 {
            let run_id = RunId::at(from - TimeDelta::days(5) - TimeDelta::seconds(n));
            // Days old: once in every 15 minutes, never two sweeps in a row.
            for start in 0..15 {
                let window = from + TimeDelta::minutes(start);
                assert_eq!(
                    looks(QUARTER_HOUR, &run_id, TimeDelta::days(5), window, 15),
                    1
                );
            }
            // An hour old: every sixth minute.
            assert_eq!(
                looks(QUARTER_HOUR, &run_id, TimeDelta::hours(1), from, 60),
                10
            );
            let first = (0..15)
                .find(|m| {
                    looks(
                        QUARTER_HOUR,
                        &run_id,
                        TimeDelta::days(5),
                        from + TimeDelta::minutes(*m),
                        1,
                    ) == 1
                })
                .unwrap();
            offsets.insert(first);
        }
        assert!(
            offsets.len() > 5,
            "runs are spread over the minutes: {offsets:?}"
        );
    }

    #[test]
    fn every_sweep_looks_at_every_run() {
        let from = DateTime::from_timestamp(1_790_000_000, 0).unwrap();
        let run_id = RunId::at(from - TimeDelta::days(30));
        assert_eq!(
            looks(
                SweepCadence::EVERY_SWEEP,
                &run_id,
                TimeDelta::days(30),
                from,
                60
            ),
            60
        );
    }
}

//! The conditional updates of a step's status outside a commit: a claim, and a plain
//! transition (alone or under a run guard).

use super::expr::Expr;
use super::item::{self, millis, n, s};
use crate::error::StoreError;
use crate::model::{StepStatus, to_millis};
use crate::records;
use crate::store::{Retention, StepClaim, StepTransition};

/// The update and condition of a claim: `RUNNING` under a lease, from `READY`, `RETRYING`,
/// a joined `PENDING` (or `WAITING` for a wake) at the claimed attempt, or from `RUNNING` once its lease
/// lapsed; creating the step when `if_absent` says so and it is absent.
pub(super) fn claim_expr(claim: &StepClaim, retention: &Retention) -> Result<Expr, StoreError> {
    let now = to_millis(claim.now);
    let mut expr = Expr::default();
    expr.set_if_absent("startedAt", millis(now))
        .set("updatedAt", millis(now))
        .remove("cancelRequested");
    match &claim.park {
        None => {
            expr.set("status", s(StepStatus::Running.as_str()))
                .set("leaseOwner", s(claim.owner.clone()))
                .set("leaseUntil", millis(to_millis(claim.lease_until)))
                .remove("committedBy");
        }
        // Parked by the claim itself: no lease, and this claim's token to know it by.
        Some(park) => {
            expr.set("status", s(StepStatus::Waiting.as_str()))
                .set("notBefore", millis(to_millis(park.until)))
                .set_or_remove("waitingFor", park.signal.clone().map(s))
                .set("committedBy", s(claim.owner.clone()))
                .remove("leaseOwner")
                .remove("leaseUntil");
        }
    }
    if let Some(new) = &claim.if_absent {
        // Created by this update when absent: the new step's own attributes, kept
        // as they are when it exists.
        let created = item::step_item(&records::absent_step(claim, new, retention))?;
        for (attr, value) in created {
            // Not those the claim sets itself: one update may not name a path twice.
            if !matches!(
                attr.as_str(),
                "PK" | "SK"
                    | "status"
                    | "updatedAt"
                    | "startedAt"
                    | "notBefore"
                    | "waitingFor"
                    | "committedBy"
                    | "leaseOwner"
                    | "leaseUntil"
                    | "cancelRequested"
            ) {
                expr.set_if_absent(&attr, value);
            }
        }
    }
    let (status, lease_until, attempt, parents_done, parents_total) = (
        expr.name("status"),
        expr.name("leaseUntil"),
        expr.name("attempt"),
        expr.name("parentsDone"),
        expr.name("parentsTotal"),
    );
    let (ready, retrying, pending, running, now_value, claimed_attempt) = (
        expr.value(s(StepStatus::Ready.as_str())),
        expr.value(s(StepStatus::Retrying.as_str())),
        expr.value(s(StepStatus::Pending.as_str())),
        expr.value(s(StepStatus::Running.as_str())),
        expr.value(millis(now)),
        expr.value(n(claim.attempt)),
    );
    // A wake also claims from WAITING, and records when it woke.
    let waiting = match claim.wake {
        Some(woke) => {
            expr.set("notBefore", millis(to_millis(woke)));
            format!(", {}", expr.value(s(StepStatus::Waiting.as_str())))
        }
        None => String::new(),
    };
    // A join every parent has told is claimed from PENDING (`StepExecution::joined`).
    let claimable = format!(
        "({attempt} = {claimed_attempt} AND ({status} IN ({ready}, {retrying}{waiting}) OR \
             ({status} = {pending} AND size({parents_done}) >= {parents_total}) OR \
             ({status} = {running} AND \
             (attribute_not_exists({lease_until}) OR {lease_until} < {now_value}))))"
    );
    expr.condition(if claim.if_absent.is_some() {
        format!("(attribute_not_exists(PK) OR {claimable})")
    } else {
        claimable
    });
    Ok(expr)
}

/// The update and condition of a step transition (without its run guard).
pub(super) fn transition_expr(transition: &StepTransition) -> Result<Expr, StoreError> {
    let at = to_millis(transition.at);
    let mut expr = Expr::default();
    expr.set("status", s(transition.status.as_str()))
        .set("updatedAt", millis(at))
        .set_or_remove(
            "notBefore",
            transition.not_before.map(|t| millis(to_millis(t))),
        )
        .set_or_remove("waitingFor", transition.waiting_for.clone().map(s))
        .set_or_remove(
            "error",
            transition.error.as_ref().map(item::json).transpose()?,
        )
        .remove("leaseOwner")
        .remove("leaseUntil")
        .require_in(
            "status",
            transition
                .from
                .iter()
                .map(|status| s(status.as_str()))
                .collect(),
        );
    if let Some(attempt) = transition.attempt {
        expr.set("attempt", n(attempt));
    }
    if transition.status.is_terminal() {
        expr.set("completedAt", millis(at));
    }
    Ok(expr)
}

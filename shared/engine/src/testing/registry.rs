//! Every workflow the behaviour scenarios run, with their durations scaled by `unit`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Recorder, failures};
use crate::{
    Registry, RetryPolicy, StepContext, StepError, Workflow, sleep, step, wait_for_signal,
};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Order {
    id: String,
    amount: u32,
    #[serde(default)]
    gift: bool,
}

/// Every workflow the scenarios use, with durations scaled by `unit`.
pub(super) fn registry(recorder: &Arc<Recorder>, unit: Duration) -> Registry {
    let mut registry = Registry::new();
    let r = Arc::clone(recorder);
    let counted = move |name: &'static str| {
        let r = Arc::clone(&r);
        move |_ctx: StepContext, input: Value| {
            let r = Arc::clone(&r);
            async move {
                r.call(name);
                Ok::<Value, StepError>(input)
            }
        }
    };
    let r = Arc::clone(recorder);
    registry
        .register(
            Workflow::builder("linear", "1")
                .then(step("add-one", {
                    let r = Arc::clone(&r);
                    move |_ctx: StepContext, x: i64| {
                        let r = Arc::clone(&r);
                        async move {
                            r.call("add-one");
                            Ok::<i64, StepError>(x + 1)
                        }
                    }
                }))
                .then(step("double", |_ctx: StepContext, x: i64| async move {
                    Ok::<i64, StepError>(x * 2)
                }))
                .then(step("minus-three", |ctx: StepContext, x: i64| async move {
                    ctx.set_state("last", &x).await?;
                    Ok::<i64, StepError>(x - 3)
                }))
                .build()
                .unwrap(),
        )
        .unwrap();
    registry
        .register(
            Workflow::builder("fan-in", "1")
                .then(step("split", counted("split")))
                .parallel([
                    step("p1", |_c: StepContext, x: i64| async move {
                        Ok::<i64, StepError>(x + 1)
                    }),
                    step("p2", |_c: StepContext, x: i64| async move {
                        Ok::<i64, StepError>(x + 2)
                    }),
                    step("p3", |_c: StepContext, x: i64| async move {
                        Ok::<i64, StepError>(x + 3)
                    }),
                ])
                .then(step("join", {
                    let r = Arc::clone(&r);
                    move |_c: StepContext, parts: BTreeMap<String, i64>| {
                        let r = Arc::clone(&r);
                        async move {
                            r.call("join");
                            Ok::<Value, StepError>(
                                json!({ "parts": parts.len(), "sum": parts.values().sum::<i64>() }),
                            )
                        }
                    }
                }))
                .build()
                .unwrap(),
        )
        .unwrap();
    registry
        .register(
            Workflow::builder("flaky", "1")
                .then(
                    step("flaky", {
                        let r = Arc::clone(&r);
                        move |ctx: StepContext, input: Value| {
                            let r = Arc::clone(&r);
                            async move {
                                r.call("flaky");
                                if ctx.attempt() < 3 {
                                    return Err(StepError::retryable("unavailable", "try again"));
                                }
                                Ok(input)
                            }
                        }
                    })
                    .retry(RetryPolicy::default().max_attempts(4).initial_delay(unit)),
                )
                .build()
                .unwrap(),
        )
        .unwrap();
    registry
        .register(
            Workflow::builder("payment", "1")
                .then(step("validate", {
                    let r = Arc::clone(&r);
                    move |_c: StepContext, order: Order| {
                        let r = Arc::clone(&r);
                        async move {
                            r.call("validate");
                            Ok::<Order, StepError>(order)
                        }
                    }
                }))
                .then(step("charge", {
                    let r = Arc::clone(&r);
                    move |_c: StepContext, order: Order| {
                        let r = Arc::clone(&r);
                        async move {
                            if r.call("charge") == 1 {
                                return Err(StepError::terminal(
                                    "card_declined",
                                    "the card was declined",
                                ));
                            }
                            Ok::<Order, StepError>(order)
                        }
                    }
                }))
                .then(step("ship", counted("ship")))
                .build()
                .unwrap(),
        )
        .unwrap();
    registry
        .register(
            Workflow::builder("gift", "1")
                .then(step("validate", |_c: StepContext, o: Order| async move {
                    Ok::<Order, StepError>(o)
                }))
                .then(
                    step("gift-wrap", counted("gift-wrap"))
                        .when(|o: &Value| o["gift"] == json!(true)),
                )
                .then(step("ship", |_c: StepContext, o: Order| async move {
                    Ok::<String, StepError>(format!("shipped {}", o.id))
                }))
                .build()
                .unwrap(),
        )
        .unwrap();
    let slow = move |name: &'static str| {
        let r = Arc::clone(recorder);
        move |ctx: StepContext, input: Value| {
            let r = Arc::clone(&r);
            async move {
                r.call(name);
                for _ in 0..40 {
                    tokio::time::sleep(unit / 4).await;
                    ctx.check_cancelled().await?;
                }
                Ok::<Value, StepError>(input)
            }
        }
    };
    registry
        .register(
            Workflow::builder("slow-parallel", "1")
                .then(step("start", counted("start")))
                .parallel([
                    step("slow-a", slow("slow-a")).timeout(unit * 60),
                    step("slow-b", slow("slow-b")).timeout(unit * 60),
                ])
                .then(step("after", counted("after")))
                .build()
                .unwrap(),
        )
        .unwrap();
    registry
        .register(
            Workflow::builder("approval", "1")
                .then(wait_for_signal("await-approval", "approved", unit * 3600))
                .then(step("notify", counted("notify")))
                .build()
                .unwrap(),
        )
        .unwrap();
    registry
        .register(
            Workflow::builder("cool-off", "1")
                .then(sleep("cool-off", unit * 86_400))
                .then(step("notify", counted("notify")))
                .build()
                .unwrap(),
        )
        .unwrap();
    registry
        .register(
            Workflow::builder("crashy", "1")
                .then(
                    step("slow", {
                        let r = Arc::clone(recorder);
                        move |_c: StepContext, input: Value| {
                            let r = Arc::clone(&r);
                            async move {
                                r.call("slow");
                                tokio::time::sleep(unit * 6).await;
                                Ok::<Value, StepError>(input)
                            }
                        }
                    })
                    .timeout(unit * 10),
                )
                .then(step("after", counted("after")))
                .build()
                .unwrap(),
        )
        .unwrap();
    let mut wide = Workflow::builder("wide", "1").then(step("root", counted("root")));
    wide = wide.parallel((0..100).map(|i| {
        step(
            &format!("branch-{i:03}"),
            |_c: StepContext, x: i64| async move { Ok::<i64, StepError>(x) },
        )
    }));
    registry
        .register(
            wide.then(step(
                "total",
                |_c: StepContext, parts: BTreeMap<String, i64>| async move {
                    Ok::<usize, StepError>(parts.len())
                },
            ))
            .build()
            .unwrap(),
        )
        .unwrap();
    failures::register(&mut registry, recorder, unit);
    registry
}

//! Order fulfilment: the classic saga shape. `validate` checks the order (a bad order is a
//! terminal error: retrying cannot fix it); `reserve-stock` and `charge-payment` run in
//! parallel; `ship` waits for both and receives both outputs. The payment gateway is
//! flaky (set `flakyPayment` to see a retry with exponential backoff), and a card number
//! of `"declined"` fails the run with `card_declined`.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use wf_engine::{EngineError, RetryPolicy, StepContext, StepError, Workflow, step};

/// The workflow id.
pub const ID: &str = "order-fulfilment";

/// One order line.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Line {
    /// Stock keeping unit.
    pub sku: String,
    /// How many.
    pub quantity: u32,
    /// Price of one, in cents.
    pub unit_price_cents: u64,
}

/// The run input.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Order {
    /// The order id.
    pub order_id: String,
    /// The customer.
    pub customer: String,
    /// What was ordered.
    pub lines: Vec<Line>,
    /// The card to charge (`"declined"` is always declined).
    pub card: String,
    /// Make the first payment attempt fail with a retryable error.
    #[serde(default)]
    pub flaky_payment: bool,
}

/// A validated order with its total.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Validated {
    /// The order.
    pub order: Order,
    /// Total in cents.
    pub total_cents: u64,
}

/// Stock held for the order.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Reservation {
    /// Reservation reference.
    pub reservation_id: String,
    /// Units held.
    pub units: u32,
}

/// A captured payment.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Payment {
    /// Payment reference.
    pub payment_id: String,
    /// Amount captured, in cents.
    pub amount_cents: u64,
    /// Attempts it took.
    pub attempts: u32,
}

/// What `ship` receives: both parents' outputs, by step id.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShipInput {
    /// From `reserve-stock`.
    #[serde(rename = "reserve-stock")]
    pub reservation: Reservation,
    /// From `charge-payment`.
    #[serde(rename = "charge-payment")]
    pub payment: Payment,
}

/// The run output.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Shipment {
    /// Tracking number.
    pub tracking_number: String,
    /// Units shipped.
    pub units: u32,
    /// Amount charged, in cents.
    pub charged_cents: u64,
}

async fn validate(ctx: StepContext, order: Order) -> Result<Validated, StepError> {
    if order.lines.is_empty() {
        return Err(StepError::terminal(
            "invalid_order",
            "an order needs at least one line",
        ));
    }
    if let Some(line) = order.lines.iter().find(|l| l.quantity == 0) {
        return Err(StepError::terminal(
            "invalid_order",
            format!("line {} has quantity 0", line.sku),
        ));
    }
    let total_cents = order
        .lines
        .iter()
        .map(|l| l.unit_price_cents.saturating_mul(u64::from(l.quantity)))
        .fold(0_u64, u64::saturating_add);
    ctx.set_state("customer", &order.customer).await?;
    Ok(Validated { order, total_cents })
}

async fn reserve_stock(ctx: StepContext, validated: Validated) -> Result<Reservation, StepError> {
    let units = validated.order.lines.iter().map(|l| l.quantity).sum();
    Ok(Reservation {
        reservation_id: format!("rsv-{}", ctx.run_id()),
        units,
    })
}

async fn charge_payment(ctx: StepContext, validated: Validated) -> Result<Payment, StepError> {
    if validated.order.card == "declined" {
        return Err(StepError::terminal(
            "card_declined",
            "the card was declined by the issuer",
        ));
    }
    if validated.order.flaky_payment && ctx.attempt() == 1 {
        return Err(StepError::retryable(
            "gateway_unavailable",
            "the payment gateway timed out",
        ));
    }
    Ok(Payment {
        payment_id: format!("pay-{}", ctx.run_id()),
        amount_cents: validated.total_cents,
        attempts: ctx.attempt(),
    })
}

async fn ship(ctx: StepContext, input: ShipInput) -> Result<Shipment, StepError> {
    let customer: Option<String> = ctx.get_state("customer").await?;
    Ok(Shipment {
        tracking_number: format!(
            "TRK-{}-{}",
            customer.unwrap_or_default().len(),
            ctx.run_id()
        ),
        units: input.reservation.units,
        charged_cents: input.payment.amount_cents,
    })
}

/// The definition.
pub fn workflow() -> Result<Workflow, EngineError> {
    Workflow::builder(ID, "1")
        .description("validate, reserve stock and charge payment in parallel, then ship")
        .then(step("validate", validate).retry(RetryPolicy::none()))
        .parallel([
            step("reserve-stock", reserve_stock),
            step("charge-payment", charge_payment).retry(
                RetryPolicy::default()
                    .max_attempts(4)
                    .initial_delay(Duration::from_millis(200))
                    .max_delay(Duration::from_secs(5)),
            ),
        ])
        .then(step("ship", ship))
        .build()
}

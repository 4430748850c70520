//! Items as DynamoDB Streams and Lambda deliver them: attribute maps in DynamoDB JSON
//! (`{"S": "..."}`, `{"N": "12"}`, ...). Decodes a stream record's image of a run item into
//! a [`WorkflowRun`], with the same checks as an item read from the table, so no other
//! crate handles attribute values.

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use base64::Engine as _;
use serde_json::Value;

use super::item::{self, Item};
use crate::error::{ItemKind, StoreError};
use crate::ids::RunId;
use crate::keys;
use crate::model::WorkflowRun;

fn corrupt(attribute: &str, reason: impl Into<String>) -> StoreError {
    StoreError::corrupt(ItemKind::Run, attribute, reason)
}

fn string_list(name: &str, value: &Value) -> Result<Vec<String>, StoreError> {
    value
        .as_array()
        .ok_or_else(|| corrupt(name, "expected a list"))?
        .iter()
        .map(|v| {
            v.as_str()
                .map(str::to_owned)
                .ok_or_else(|| corrupt(name, "expected strings in the set"))
        })
        .collect()
}

fn blob(name: &str, text: &str) -> Result<Blob, StoreError> {
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map(Blob::new)
        .map_err(|_| corrupt(name, "binary value is not base64"))
}

/// One attribute value in DynamoDB JSON.
fn attribute(name: &str, value: &Value) -> Result<AttributeValue, StoreError> {
    let object = value
        .as_object()
        .filter(|o| o.len() == 1)
        .ok_or_else(|| corrupt(name, "expected an object with one type key"))?;
    let Some((tag, inner)) = object.iter().next() else {
        return Err(corrupt(name, "expected an object with one type key"));
    };
    let text = || {
        inner
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| corrupt(name, format!("{tag} value must be a string")))
    };
    Ok(match tag.as_str() {
        "S" => AttributeValue::S(text()?),
        "N" => AttributeValue::N(text()?),
        "B" => AttributeValue::B(blob(name, &text()?)?),
        "BOOL" => AttributeValue::Bool(
            inner
                .as_bool()
                .ok_or_else(|| corrupt(name, "BOOL value must be a boolean"))?,
        ),
        "NULL" => AttributeValue::Null(true),
        "SS" => AttributeValue::Ss(string_list(name, inner)?),
        "NS" => AttributeValue::Ns(string_list(name, inner)?),
        "BS" => AttributeValue::Bs(
            string_list(name, inner)?
                .iter()
                .map(|b| blob(name, b))
                .collect::<Result<_, _>>()?,
        ),
        "L" => AttributeValue::L(
            inner
                .as_array()
                .ok_or_else(|| corrupt(name, "L value must be a list"))?
                .iter()
                .map(|v| attribute(name, v))
                .collect::<Result<_, _>>()?,
        ),
        "M" => AttributeValue::M(image_item(inner)?),
        other => return Err(corrupt(name, format!("unknown attribute type {other}"))),
    })
}

fn image_item(image: &Value) -> Result<Item, StoreError> {
    image
        .as_object()
        .ok_or_else(|| corrupt("image", "expected an attribute map"))?
        .iter()
        .map(|(name, value)| Ok((name.clone(), attribute(name, value)?)))
        .collect()
}

/// Decodes a stream record's image of a run item (DynamoDB JSON, as in a Lambda event's
/// `dynamodb.OldImage`). `Corrupt` naming the attribute if it is not a run item this
/// store wrote.
pub fn run_from_stream_image(image: &Value) -> Result<WorkflowRun, StoreError> {
    let item = image_item(image)?;
    let run = item::run_from_item(&item)?;
    let expected = keys::run_sk(&run.run_id);
    for key in ["PK", "SK"] {
        match item.get(key) {
            Some(AttributeValue::S(value)) if *value == expected => {}
            _ => return Err(corrupt(key, "is not this run's key")),
        }
    }
    Ok(run)
}

/// The run a sort key belongs to if it is a run item's (`RUN#<runId>`); `None` for step,
/// output and state items and anything else.
pub fn run_id_from_sort_key(sort_key: &str) -> Option<RunId> {
    RunId::parse(sort_key.strip_prefix(keys::RUN_PREFIX)?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::RunStatus;
    use chrono::DateTime;
    use serde_json::json;
    use std::collections::BTreeMap;

    fn to_json(value: &AttributeValue) -> Value {
        match value {
            AttributeValue::S(s) => json!({ "S": s }),
            AttributeValue::N(n) => json!({ "N": n }),
            AttributeValue::Bool(b) => json!({ "BOOL": b }),
            AttributeValue::Null(_) => json!({ "NULL": true }),
            AttributeValue::Ss(v) => json!({ "SS": v }),
            AttributeValue::M(m) => {
                json!({ "M": m.iter().map(|(k, v)| (k.clone(), to_json(v))).collect::<serde_json::Map<_, _>>() })
            }
            AttributeValue::L(l) => json!({ "L": l.iter().map(to_json).collect::<Vec<_>>() }),
            other => panic!("unexpected {other:?}"),
        }
    }

    fn sample_run() -> WorkflowRun {
        let at = DateTime::from_timestamp_millis(1_767_225_600_123).unwrap();
        WorkflowRun {
            run_id: RunId::at(at),
            workflow_id: crate::WorkflowId::parse("orders").unwrap(),
            workflow_version: "1".into(),
            status: RunStatus::Completed,
            total_steps: 2,
            completed_steps: 2,
            created_at: at,
            started_at: Some(at),
            completed_at: Some(at),
            updated_at: at,
            input: json!({ "a": [1, 2] }),
            output: Some(json!("done")),
            output_from: Vec::new(),
            error: None,
            resource_id: Some("order-1".into()),
            tags: BTreeMap::from([("team".into(), "ops".into())]),
            idempotency_key: Some("k".into()),
            retention_days: Some(3),
            version: 4,
            ttl: 1_800_000_000,
        }
    }

    #[test]
    fn a_run_image_decodes_to_the_run_that_was_written() {
        let run = sample_run();
        let item = item::run_item(&run).unwrap();
        let image = Value::Object(item.iter().map(|(k, v)| (k.clone(), to_json(v))).collect());
        assert_eq!(run_from_stream_image(&image).unwrap(), run);
    }

    #[test]
    fn images_that_are_not_run_items_are_corrupt() {
        let run = sample_run();
        let mut item = item::run_item(&run).unwrap();
        item.insert("SK".into(), AttributeValue::S("STEP#a".into()));
        let image = Value::Object(item.iter().map(|(k, v)| (k.clone(), to_json(v))).collect());
        assert!(matches!(
            run_from_stream_image(&image),
            Err(StoreError::Corrupt { attribute, .. }) if attribute == "SK"
        ));
        assert!(run_from_stream_image(&json!({ "PK": { "X": 1 } })).is_err());
        assert!(run_from_stream_image(&json!([])).is_err());
        assert!(run_from_stream_image(&json!({})).is_err());
    }

    #[test]
    fn only_run_sort_keys_name_a_run() {
        let id = RunId::generate();
        assert_eq!(run_id_from_sort_key(&format!("RUN#{id}")), Some(id));
        assert_eq!(run_id_from_sort_key("STEP#a"), None);
        assert_eq!(run_id_from_sort_key("RUN#not-a-ulid"), None);
    }
}

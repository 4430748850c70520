//! What each request costs as on-demand DynamoDB bills it, from the real item sizes, next
//! to the units DynamoDB (Local) reports. Rules (AWS pricing and developer guide):
//! - reads: 4 KB units, rounded up per item for `GetItem`/`BatchGetItem` and over the
//!   summed result of a `Query`; at least 1 per item asked for; eventually consistent
//!   reads (every GSI query) cost half;
//! - writes: 1 KB units of the larger of the item before and after, at least 1; a write
//!   whose condition fails still pays for the item; transactional actions pay double;
//! - every GSI whose key the item carries pays its own write of the projected entry (the
//!   keys and [`crate::LISTING_ATTRIBUTES`]) when the entry changes, nothing when no
//!   projected attribute changed; a GSI key that changes pays a delete of the old entry
//!   and a put of the new one.
//!
//! The size before a write is the last size this store saw for the key (a shadow of every
//! item read or written). An `Update` inside a transaction does not return the new item,
//! so it is billed at the old size. Condition checks in a transaction are billed as
//! transactional writes of the checked item.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem, WriteRequest};

use super::item::{Item, item_size};

/// Billed units and requests so far.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BilledTotals {
    /// Write request units, as billed.
    pub write_units: f64,
    /// Read request units, as billed.
    pub read_units: f64,
    /// Requests sent, by API name.
    pub requests: BTreeMap<&'static str, u64>,
}

impl BilledTotals {
    /// The change from `earlier` to `self`.
    #[must_use]
    pub fn since(&self, earlier: &BilledTotals) -> BilledTotals {
        let mut requests = self.requests.clone();
        for (api, n) in &mut requests {
            *n = n.saturating_sub(earlier.requests.get(api).copied().unwrap_or(0));
        }
        requests.retain(|_, n| *n > 0);
        BilledTotals {
            write_units: self.write_units - earlier.write_units,
            read_units: self.read_units - earlier.read_units,
            requests,
        }
    }
}

/// A request to bill, with the items it read or wrote.
pub(crate) enum Billed<'a> {
    GetItem {
        found: Option<&'a Item>,
        consistent: bool,
    },
    BatchGetItem {
        requested: usize,
        found: &'a [Item],
    },
    Query {
        items: &'a [Item],
        consistent: bool,
    },
    PutItem {
        item: &'a Item,
        applied: bool,
    },
    UpdateItem {
        key: &'a Item,
        new: Option<&'a Item>,
    },
    DeleteItem {
        key: &'a Item,
    },
    TransactWriteItems {
        actions: &'a [TransactWriteItem],
        applied: bool,
    },
    BatchWriteItem {
        requests: &'a [WriteRequest],
    },
}

/// What the billing needs to know of an item: its size and its GSI entries.
#[derive(Debug, Clone, PartialEq, Default)]
struct Shape {
    size: usize,
    gsi: [Option<IndexEntry>; 2],
}

/// An item's entry in one GSI: its key and what the index projects.
#[derive(Debug, Clone, PartialEq)]
struct IndexEntry {
    key: (String, String),
    projected: BTreeMap<String, AttributeValue>,
    size: usize,
}

fn index_entry(item: &Item, pk: &str, sk: &str) -> Option<IndexEntry> {
    let key = (text(item, pk)?, text(item, sk)?);
    let kept = |name: &str| {
        ["PK", "SK", pk, sk].contains(&name) || crate::LISTING_ATTRIBUTES.contains(&name)
    };
    let projected: BTreeMap<String, AttributeValue> = item
        .iter()
        .filter(|(name, _)| kept(name))
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect();
    let size = item_size(&projected.clone().into_iter().collect());
    Some(IndexEntry {
        key,
        projected,
        size,
    })
}

fn text(item: &Item, name: &str) -> Option<String> {
    match item.get(name) {
        Some(AttributeValue::S(v)) => Some(v.clone()),
        _ => None,
    }
}

fn shape(item: &Item) -> Shape {
    Shape {
        size: item_size(item),
        gsi: [
            index_entry(item, "GSI1PK", "GSI1SK"),
            index_entry(item, "GSI2PK", "GSI2SK"),
        ],
    }
}

fn key_of(item: &Item) -> (String, String) {
    (
        text(item, "PK").unwrap_or_default(),
        text(item, "SK").unwrap_or_default(),
    )
}

fn kb(size: usize) -> f64 {
    f64::from(u32::try_from(size.div_ceil(1024).max(1)).unwrap_or(u32::MAX))
}

fn read_units(size: usize) -> f64 {
    f64::from(u32::try_from(size.div_ceil(4096).max(1)).unwrap_or(u32::MAX))
}

/// The running bill, and the shadow of item shapes it prices writes with.
#[derive(Debug, Default)]
pub(crate) struct Billing {
    totals: BilledTotals,
    shadow: HashMap<(String, String), Shape>,
}

impl Billing {
    pub(crate) fn totals(&self) -> BilledTotals {
        self.totals.clone()
    }

    pub(crate) fn bill(&mut self, request: &Billed<'_>) {
        let (api, read, write) = match request {
            Billed::GetItem { found, consistent } => {
                let units = found.map_or(1.0, |item| read_units(self.seen(item)));
                (
                    "GetItem",
                    if *consistent { units } else { units / 2.0 },
                    0.0,
                )
            }
            Billed::BatchGetItem { requested, found } => {
                let mut units: f64 = found.iter().map(|item| read_units(self.seen(item))).sum();
                let missing = requested.saturating_sub(found.len());
                units += f64::from(u32::try_from(missing).unwrap_or(u32::MAX));
                ("BatchGetItem", units, 0.0)
            }
            Billed::Query { items, consistent } => {
                let total: usize = items.iter().map(|item| self.seen(item)).sum();
                let units = read_units(total);
                ("Query", if *consistent { units } else { units / 2.0 }, 0.0)
            }
            Billed::PutItem { item, applied } => ("PutItem", 0.0, self.put(item, *applied, 1.0)),
            Billed::UpdateItem { key, new } => {
                let units = match new {
                    Some(item) => self.put(item, true, 1.0),
                    None => self.failed(key, 1.0),
                };
                ("UpdateItem", 0.0, units)
            }
            Billed::DeleteItem { key } => ("DeleteItem", 0.0, self.delete(key, 1.0)),
            Billed::TransactWriteItems { actions, applied } => {
                let units = actions.iter().map(|a| self.action(a, *applied)).sum();
                ("TransactWriteItems", 0.0, units)
            }
            Billed::BatchWriteItem { requests } => {
                let mut units = 0.0;
                for request in *requests {
                    if let Some(item) = request
                        .put_request()
                        .map(aws_sdk_dynamodb::types::PutRequest::item)
                    {
                        units += self.put(item, true, 1.0);
                    } else if let Some(key) = request
                        .delete_request()
                        .map(aws_sdk_dynamodb::types::DeleteRequest::key)
                    {
                        units += self.delete(key, 1.0);
                    }
                }
                ("BatchWriteItem", 0.0, units)
            }
        };
        self.totals.read_units += read;
        self.totals.write_units += write;
        *self.totals.requests.entry(api).or_default() += 1;
    }

    /// Records an item read; returns its size.
    fn seen(&mut self, item: &Item) -> usize {
        let shape = shape(item);
        let size = shape.size;
        self.shadow.insert(key_of(item), shape);
        size
    }

    /// A write of `item` (over whatever the key held before).
    fn put(&mut self, item: &Item, applied: bool, factor: f64) -> f64 {
        let key = key_of(item);
        let new = shape(item);
        let old = self.shadow.get(&key).cloned();
        let base = kb(new.size.max(old.as_ref().map_or(0, |o| o.size))) * factor;
        if !applied {
            return base;
        }
        let mut indexes = 0.0;
        for (i, entry) in new.gsi.iter().enumerate() {
            let before = old.as_ref().and_then(|o| o.gsi.get(i).cloned().flatten());
            indexes += match (&before, entry) {
                (None, None) => 0.0,
                (None, Some(b)) => kb(b.size),
                (Some(a), None) => kb(a.size),
                (Some(a), Some(b)) if a == b => 0.0,
                (Some(a), Some(b)) if a.key == b.key => kb(a.size.max(b.size)),
                (Some(a), Some(b)) => kb(a.size) + kb(b.size),
            };
        }
        self.shadow.insert(key, new);
        base + indexes
    }

    /// A write whose condition failed, or whose new item is not known: the old size.
    fn failed(&self, key: &Item, factor: f64) -> f64 {
        kb(self.shadow.get(&key_of(key)).map_or(0, |o| o.size)) * factor
    }

    fn delete(&mut self, key: &Item, factor: f64) -> f64 {
        let Some(old) = self.shadow.remove(&key_of(key)) else {
            return factor;
        };
        kb(old.size) * factor + old.gsi.iter().flatten().map(|e| kb(e.size)).sum::<f64>()
    }

    fn action(&mut self, action: &TransactWriteItem, applied: bool) -> f64 {
        if let Some(put) = action.put() {
            self.put(put.item(), applied, 2.0)
        } else if let Some(update) = action.update() {
            // The new item is not returned: billed at the size last seen, GSIs unchanged.
            let key = update.key();
            let units = self.failed(key, 2.0);
            let indexes = self
                .shadow
                .get(&key_of(key))
                .filter(|_| applied)
                .map_or(0.0, |o| o.gsi.iter().flatten().map(|e| kb(e.size)).sum());
            units + indexes
        } else if let Some(delete) = action.delete() {
            if applied {
                self.delete(delete.key(), 2.0)
            } else {
                self.failed(delete.key(), 2.0)
            }
        } else if let Some(check) = action.condition_check() {
            self.failed(check.key(), 2.0)
        } else {
            0.0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(pk: &str, sk: &str, bytes: usize, gsi: Option<&str>) -> Item {
        let mut item = Item::new();
        item.insert("PK".into(), AttributeValue::S(pk.into()));
        item.insert("SK".into(), AttributeValue::S(sk.into()));
        item.insert("body".into(), AttributeValue::S("x".repeat(bytes)));
        if let Some(status) = gsi {
            item.insert("GSI2PK".into(), AttributeValue::S(status.into()));
            item.insert("GSI2SK".into(), AttributeValue::S("1".into()));
        }
        item
    }

    #[test]
    fn writes_pay_the_larger_size_and_each_changed_index_entry() {
        let mut billing = Billing::default();
        // A new 1.5 KB run item in one GSI: 2 units for the table, 1 for the index entry
        // (its keys and listing attributes only; the body is not projected).
        let mut run = item("RUN#1", "RUN#1", 1500, Some("STATUS#RUNNING"));
        run.insert("status".into(), AttributeValue::S("RUNNING".into()));
        billing.bill(&Billed::PutItem {
            item: &run,
            applied: true,
        });
        assert!((billing.totals().write_units - 3.0).abs() < f64::EPSILON);
        // Only an attribute the index does not project changes: the table alone pays.
        run.insert("body".into(), AttributeValue::S("y".repeat(1500)));
        billing.bill(&Billed::PutItem {
            item: &run,
            applied: true,
        });
        assert!((billing.totals().write_units - 5.0).abs() < f64::EPSILON);
        // Its status changes: the index pays a delete and a put.
        let mut done = item("RUN#1", "RUN#1", 500, Some("STATUS#COMPLETED"));
        done.insert("status".into(), AttributeValue::S("COMPLETED".into()));
        billing.bill(&Billed::PutItem {
            item: &done,
            applied: true,
        });
        assert!((billing.totals().write_units - 5.0 - 2.0 - 1.0 - 1.0).abs() < f64::EPSILON);
        // A failed condition still pays for the item.
        billing.bill(&Billed::PutItem {
            item: &item("RUN#2", "STEP#a", 100, None),
            applied: false,
        });
        assert!((billing.totals().write_units - 10.0).abs() < f64::EPSILON);
        assert_eq!(billing.totals().requests["PutItem"], 4);
    }

    #[test]
    fn reads_round_per_item_or_per_query() {
        let mut billing = Billing::default();
        let small = [item("R", "A", 100, None), item("R", "B", 100, None)];
        billing.bill(&Billed::BatchGetItem {
            requested: 3,
            found: &small,
        });
        assert!((billing.totals().read_units - 3.0).abs() < f64::EPSILON);
        billing.bill(&Billed::Query {
            items: &small,
            consistent: false,
        });
        assert!((billing.totals().read_units - 3.5).abs() < f64::EPSILON);
    }
}

//! A small builder for update and condition expressions. Every attribute name goes through
//! a placeholder, because `status`, `ttl`, `key`, `value` and friends are reserved words.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

#[derive(Debug, Default)]
pub(crate) struct Expr {
    sets: Vec<String>,
    removes: Vec<String>,
    adds: Vec<String>,
    conditions: Vec<String>,
    names: HashMap<String, String>,
    values: HashMap<String, AttributeValue>,
}

impl Expr {
    /// The placeholder of attribute `attr` (may contain dots for map paths of one level).
    pub(crate) fn name(&mut self, attr: &str) -> String {
        let placeholder = format!(
            "#{}",
            attr.replace(|c: char| !c.is_ascii_alphanumeric(), "_")
        );
        self.names.insert(placeholder.clone(), attr.to_owned());
        placeholder
    }

    /// A fresh placeholder for `value`.
    pub(crate) fn value(&mut self, value: AttributeValue) -> String {
        let placeholder = format!(":v{}", self.values.len());
        self.values.insert(placeholder.clone(), value);
        placeholder
    }

    pub(crate) fn set(&mut self, attr: &str, value: AttributeValue) -> &mut Self {
        let (name, value) = (self.name(attr), self.value(value));
        self.sets.push(format!("{name} = {value}"));
        self
    }

    pub(crate) fn set_if_absent(&mut self, attr: &str, value: AttributeValue) -> &mut Self {
        let (name, value) = (self.name(attr), self.value(value));
        self.sets
            .push(format!("{name} = if_not_exists({name}, {value})"));
        self
    }

    pub(crate) fn set_or_remove(&mut self, attr: &str, value: Option<AttributeValue>) -> &mut Self {
        match value {
            Some(value) => self.set(attr, value),
            None => self.remove(attr),
        }
    }

    pub(crate) fn remove(&mut self, attr: &str) -> &mut Self {
        let name = self.name(attr);
        self.removes.push(name);
        self
    }

    pub(crate) fn add(&mut self, attr: &str, value: AttributeValue) -> &mut Self {
        let (name, value) = (self.name(attr), self.value(value));
        self.adds.push(format!("{name} {value}"));
        self
    }

    /// The condition "no item with this key exists yet".
    pub(crate) fn absent() -> Self {
        let mut expr = Self::default();
        expr.condition("attribute_not_exists(PK)".to_owned());
        expr
    }

    /// Adds one clause to the condition; clauses are joined with AND.
    pub(crate) fn condition(&mut self, clause: String) -> &mut Self {
        self.conditions.push(clause);
        self
    }

    /// `#attr = :value` as a condition clause.
    pub(crate) fn require_eq(&mut self, attr: &str, value: AttributeValue) -> &mut Self {
        let (name, value) = (self.name(attr), self.value(value));
        self.condition(format!("{name} = {value}"))
    }

    /// `#attr IN (:a, :b, ...)` as a condition clause.
    pub(crate) fn require_in(&mut self, attr: &str, values: Vec<AttributeValue>) -> &mut Self {
        let name = self.name(attr);
        let list: Vec<String> = values.into_iter().map(|v| self.value(v)).collect();
        self.condition(format!("{name} IN ({})", list.join(", ")))
    }

    pub(crate) fn update_expression(&self) -> Option<String> {
        let mut parts = Vec::new();
        if !self.sets.is_empty() {
            parts.push(format!("SET {}", self.sets.join(", ")));
        }
        if !self.removes.is_empty() {
            parts.push(format!("REMOVE {}", self.removes.join(", ")));
        }
        if !self.adds.is_empty() {
            parts.push(format!("ADD {}", self.adds.join(", ")));
        }
        (!parts.is_empty()).then(|| parts.join(" "))
    }

    pub(crate) fn condition_expression(&self) -> Option<String> {
        (!self.conditions.is_empty()).then(|| self.conditions.join(" AND "))
    }

    pub(crate) fn names(&self) -> Option<HashMap<String, String>> {
        (!self.names.is_empty()).then(|| self.names.clone())
    }

    pub(crate) fn values(&self) -> Option<HashMap<String, AttributeValue>> {
        (!self.values.is_empty()).then(|| self.values.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_update_and_condition_with_placeholders() {
        let mut expr = Expr::default();
        expr.set("status", AttributeValue::S("RUNNING".into()))
            .remove("leaseOwner")
            .add("version", AttributeValue::N("1".into()))
            .require_eq("attempt", AttributeValue::N("2".into()));
        assert_eq!(
            expr.update_expression().unwrap(),
            "SET #status = :v0 REMOVE #leaseOwner ADD #version :v1"
        );
        assert_eq!(expr.condition_expression().unwrap(), "#attempt = :v2");
        assert_eq!(expr.names().unwrap()["#status"], "status");
    }
}

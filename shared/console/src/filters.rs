//! The runs list's filters, from the query string. HTML forms send empty fields, so an
//! empty value means "no filter"; anything else must parse, or the request fails naming
//! the parameter.

use std::fmt::Write as _;

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Deserialize;
use wf_store::{Cursor, RunQuery, RunStatus, WorkflowId};

use crate::error::ConsoleError;

/// Runs per page unless `limit` says otherwise.
pub(crate) const DEFAULT_PAGE: u32 = 50;
/// The largest page the console shows.
pub(crate) const MAX_PAGE: u32 = 200;

/// The list's query string, as typed (every value optional, all text).
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct ListParams {
    pub(crate) workflow: Option<String>,
    pub(crate) status: Option<String>,
    pub(crate) resource: Option<String>,
    pub(crate) tag: Option<String>,
    pub(crate) from: Option<String>,
    pub(crate) to: Option<String>,
    pub(crate) cursor: Option<String>,
    pub(crate) limit: Option<String>,
}

fn present(value: Option<&String>) -> Option<&str> {
    value.map(|v| v.trim()).filter(|v| !v.is_empty())
}

/// RFC 3339, or the `YYYY-MM-DDTHH:MM[:SS]` of an `<input type="datetime-local">` (UTC).
fn parse_time(field: &str, text: &str) -> Result<DateTime<Utc>, ConsoleError> {
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Ok(at.with_timezone(&Utc));
    }
    ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"]
        .iter()
        .find_map(|format| NaiveDateTime::parse_from_str(text, format).ok())
        .map(|naive| naive.and_utc())
        .ok_or_else(|| {
            ConsoleError::invalid(
                field,
                format!("{text:?} is not a time; use RFC 3339, e.g. 2026-01-31T09:00:00Z"),
            )
        })
}

impl ListParams {
    /// The store query these parameters ask for.
    pub(crate) fn to_query(&self) -> Result<RunQuery, ConsoleError> {
        let workflow_id = present(self.workflow.as_ref())
            .map(|w| {
                WorkflowId::parse(w).map_err(|e| ConsoleError::invalid("workflow", e.to_string()))
            })
            .transpose()?;
        let status = present(self.status.as_ref())
            .map(|s| {
                s.to_ascii_uppercase().parse::<RunStatus>().map_err(|_| {
                    ConsoleError::invalid(
                        "status",
                        format!(
                            "{s:?} is not a run status; use one of {}",
                            RunStatus::ALL.map(RunStatus::as_str).join(", ")
                        ),
                    )
                })
            })
            .transpose()?;
        let tag = present(self.tag.as_ref())
            .map(|t| {
                t.split_once('=')
                    .filter(|(k, _)| !k.is_empty())
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .ok_or_else(|| {
                        ConsoleError::invalid("tag", format!("{t:?} must look like key=value"))
                    })
            })
            .transpose()?;
        let created_from = present(self.from.as_ref())
            .map(|t| parse_time("from", t))
            .transpose()?;
        let created_to = present(self.to.as_ref())
            .map(|t| parse_time("to", t))
            .transpose()?;
        if let (Some(from), Some(to)) = (created_from, created_to)
            && from > to
        {
            return Err(ConsoleError::invalid("to", "must not be before from"));
        }
        let limit = match present(self.limit.as_ref()) {
            None => DEFAULT_PAGE,
            Some(text) => text
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=MAX_PAGE).contains(n))
                .ok_or_else(|| {
                    ConsoleError::invalid("limit", format!("must be a number from 1 to {MAX_PAGE}"))
                })?,
        };
        Ok(RunQuery {
            workflow_id,
            status,
            resource_id: present(self.resource.as_ref()).map(str::to_owned),
            tag,
            created_from,
            created_to,
            limit,
            cursor: present(self.cursor.as_ref()).map(Cursor::parse),
        })
    }

    /// The query string of these filters (no cursor), with `extra` pairs appended.
    pub(crate) fn query_string(&self, extra: &[(&str, &str)]) -> String {
        let pairs = [
            ("workflow", self.workflow.as_ref()),
            ("status", self.status.as_ref()),
            ("resource", self.resource.as_ref()),
            ("tag", self.tag.as_ref()),
            ("from", self.from.as_ref()),
            ("to", self.to.as_ref()),
            ("limit", self.limit.as_ref()),
        ];
        let mut out = String::new();
        let kept = pairs
            .iter()
            .filter_map(|(k, v)| present(*v).map(|v| (*k, v)))
            .chain(extra.iter().copied());
        for (key, value) in kept {
            if !out.is_empty() {
                out.push('&');
            }
            out.push_str(key);
            out.push('=');
            out.push_str(&encode(value));
        }
        out
    }
}

/// Percent-encodes a query value (unreserved characters stay as they are).
pub(crate) fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(byte));
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> ListParams {
        let mut p = ListParams::default();
        for (k, v) in pairs {
            let v = Some((*v).to_owned());
            match *k {
                "workflow" => p.workflow = v,
                "status" => p.status = v,
                "tag" => p.tag = v,
                "from" => p.from = v,
                "to" => p.to = v,
                "limit" => p.limit = v,
                _ => p.resource = v,
            }
        }
        p
    }

    #[test]
    fn empty_values_mean_no_filter() {
        let query = params(&[("status", ""), ("workflow", " ")])
            .to_query()
            .unwrap();
        assert!(query.status.is_none() && query.workflow_id.is_none());
        assert_eq!(query.limit, DEFAULT_PAGE);
    }

    #[test]
    fn bad_values_name_their_parameter() {
        for (pairs, field) in [
            (&[("status", "DONE")][..], "status"),
            (&[("tag", "nokey")][..], "tag"),
            (&[("from", "yesterday")][..], "from"),
            (&[("limit", "0")][..], "limit"),
            (&[("limit", "x")][..], "limit"),
            (
                &[("from", "2026-02-01T00:00"), ("to", "2026-01-01T00:00")][..],
                "to",
            ),
        ] {
            let error = params(pairs).to_query().unwrap_err();
            assert_eq!(error.field().as_deref(), Some(field), "{pairs:?}");
        }
    }

    #[test]
    fn datetime_local_and_rfc3339_both_parse() {
        let query = params(&[("from", "2026-01-31T09:00"), ("to", "2026-02-01T00:00:00Z")])
            .to_query()
            .unwrap();
        assert!(query.created_from.is_some() && query.created_to.is_some());
    }

    #[test]
    fn query_string_encodes_values() {
        let p = params(&[("tag", "team=a&b")]);
        assert_eq!(
            p.query_string(&[("cursor", "x y")]),
            "tag=team%3Da%26b&cursor=x%20y"
        );
    }
}

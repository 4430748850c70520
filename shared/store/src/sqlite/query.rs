//! Listing runs: one indexed scan of the runs table in the listing order, filtered by
//! the query and paged with a signed cursor.

use rusqlite::params;

use crate::Cursor;
use crate::error::{ItemKind, StoreError};
use crate::keys;
use crate::model::WorkflowRun;
use crate::store::{Page, RunQuery};

use super::SqliteStore;
use super::rows::{db_error, decode};

impl SqliteStore {
    /// One page of runs matching `query`, newest first, resuming after its cursor.
    pub(super) fn list_page(&self, query: &RunQuery) -> Result<Page<WorkflowRun>, StoreError> {
        let limit = query.page_size()?;
        let lower = query
            .created_from
            .map_or_else(String::new, keys::listing_lower_bound);
        let mut upper = query
            .created_to
            .map_or_else(|| "~".to_owned(), keys::listing_upper_bound);
        let cursor_key = query
            .cursor
            .as_ref()
            .map(|cursor| cursor.position(&self.cursor_key, query))
            .transpose()?;
        if let Some(key) = &cursor_key {
            upper = upper.min(key.clone());
        }
        self.read(|c| {
            let mut statement = c
                .prepare_cached(
                    "SELECT body FROM runs
                     WHERE (?1 IS NULL OR workflow_id = ?1)
                       AND (?2 IS NULL OR status = ?2)
                       AND (?3 IS NULL OR resource_id = ?3)
                       AND sort_key >= ?4 AND sort_key <= ?5
                     ORDER BY sort_key DESC",
                )
                .map_err(db_error)?;
            let rows = statement
                .query_map(
                    params![
                        query.workflow_id.as_ref().map(crate::WorkflowId::as_str),
                        query.status.map(crate::RunStatus::as_str),
                        query.resource_id,
                        lower,
                        upper,
                    ],
                    |row| row.get::<_, String>(0),
                )
                .map_err(db_error)?;
            let mut items = Vec::new();
            let mut more = false;
            for body in rows {
                let run: WorkflowRun = decode(ItemKind::Run, &body.map_err(db_error)?)?;
                let key = keys::listing_sort_key(run.created_at, &run.run_id);
                if cursor_key.as_ref() == Some(&key) || !query.matches(&run) {
                    continue;
                }
                if items.len() == limit {
                    more = true;
                    break;
                }
                items.push(run.summary());
            }
            let next = more
                .then(|| {
                    items.last().map(|r| {
                        Cursor::issue(
                            &self.cursor_key,
                            query,
                            &keys::listing_sort_key(r.created_at, &r.run_id),
                        )
                    })
                })
                .flatten();
            Ok(Page { items, next })
        })
    }
}

//! The embedded schema: one table per item kind, each row the item's JSON plus the
//! columns that listings filter on. Every row carries `ttl`, like every DynamoDB item.

/// Applied on open; idempotent.
pub(super) const SCHEMA: &str = "
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
PRAGMA foreign_keys = ON;
CREATE TABLE IF NOT EXISTS runs (
    run_id      TEXT PRIMARY KEY,
    workflow_id TEXT NOT NULL,
    status      TEXT NOT NULL,
    resource_id TEXT,
    sort_key    TEXT NOT NULL UNIQUE,
    body        TEXT NOT NULL,
    ttl         INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_by_workflow ON runs (workflow_id, sort_key);
CREATE INDEX IF NOT EXISTS runs_by_status ON runs (status, sort_key);
CREATE INDEX IF NOT EXISTS runs_by_resource ON runs (resource_id, sort_key);
CREATE TABLE IF NOT EXISTS steps (
    run_id  TEXT NOT NULL,
    step_id TEXT NOT NULL,
    body    TEXT NOT NULL,
    ttl     INTEGER NOT NULL,
    PRIMARY KEY (run_id, step_id)
);
CREATE TABLE IF NOT EXISTS outputs (
    run_id  TEXT NOT NULL,
    step_id TEXT NOT NULL,
    body    TEXT NOT NULL,
    ttl     INTEGER NOT NULL,
    PRIMARY KEY (run_id, step_id)
);
CREATE TABLE IF NOT EXISTS idempotency (
    key    TEXT PRIMARY KEY,
    run_id TEXT NOT NULL,
    ttl    INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS state (
    run_id TEXT NOT NULL,
    key    TEXT NOT NULL,
    body   TEXT NOT NULL,
    ttl    INTEGER NOT NULL,
    PRIMARY KEY (run_id, key)
);
";

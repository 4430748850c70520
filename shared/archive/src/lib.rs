//! The run archive: when a run item expires by TTL, the whole run (its last run item plus
//! every step, output and state item still stored) becomes one gzip JSON object in S3,
//! and its remaining items are deleted. Retention in DynamoDB stays short and cheap; every
//! run stays auditable for years.
//!
//! - [`format`](RunArchive): the versioned document ([`SCHEMA_VERSION`]) and its key,
//!   `runs/workflow=<workflowId>/date=<yyyy-mm-dd>/<runId>.json.gz`.
//! - [`ArchiveSink`]: where objects go; [`S3ArchiveSink`] and [`FsArchiveSink`].
//! - [`classify`] / [`classify_from`]: which stream records are TTL removals of run items,
//!   made in this region or (global tables) replicated from another.
//! - [`Archiver`]: archive an expired run exactly once, read an archive back, restore it.
//!
//! Invariants:
//! 1. Nothing is deleted from the table before its archive object is written whole.
//! 2. Re-delivering a record writes no second, different object and deletes nothing twice.
//! 3. Removals of child items are never archived; nor are user deletes, except (global
//!    tables) a delete of a run whose `ttl` had passed, which looks like a replicated TTL
//!    delete.

mod archiver;
mod error;
mod format;
mod sink;
mod stream;

pub use archiver::{Archived, Archiver, refresh_ttls};
pub use error::ArchiveError;
pub use format::{
    ArchiveEncoder, ArchivePrefix, CONTENT_ENCODING, CONTENT_TYPE, DEFAULT_PREFIX, ObjectInfo,
    RunArchive, SCHEMA_VERSION,
};
pub use sink::{ArchiveSink, FsArchiveSink, MIN_PART_SIZE, S3ArchiveSink};
pub use stream::{
    Decision, FILTER_PATTERN, REPLICATED_FILTER_PATTERN, SkipReason, TtlSources, classify,
    classify_from,
};

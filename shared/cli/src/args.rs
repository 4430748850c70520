//! Command-line arguments. Every global flag has a `WF_` environment twin; doc comments
//! are the `--help` text.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// Run and inspect durable workflows: locally on an embedded SQLite store, or on the
/// DynamoDB table your Lambda functions use.
#[derive(Debug, Parser)]
#[command(name = "wf", version, about)]
pub(crate) struct Cli {
    /// Which store to use.
    #[arg(long, global = true, env = "WF_STORE", value_enum, default_value_t = StoreKind::Sqlite)]
    pub(crate) store: StoreKind,
    /// SQLite database file (default: wf.db in your data directory).
    #[arg(long, global = true, env = "WF_DB")]
    pub(crate) db: Option<PathBuf>,
    /// DynamoDB table name (with --store dynamodb; honours `AWS_ENDPOINT_URL`).
    #[arg(
        long,
        global = true,
        env = "WF_TABLE",
        default_value = "workflow_executions"
    )]
    pub(crate) table: String,
    /// With --store dynamodb: the bucket of the deployment's payloads over 350 KB (its
    /// `PAYLOAD_BUCKET`), so that they read back as values. The SQLite store keeps them in
    /// a folder beside its file (`<db>.payloads`).
    #[arg(long, global = true, env = "WF_PAYLOAD_BUCKET")]
    pub(crate) payload_bucket: Option<String>,
    /// Key prefix of the payloads in that bucket.
    #[arg(
        long,
        global = true,
        env = "WF_PAYLOAD_PREFIX",
        default_value = wf_payloads::DEFAULT_PAYLOAD_PREFIX
    )]
    pub(crate) payload_prefix: String,
    /// Secret (16 bytes or more) that signs and checks `wf list` cursors; set it to a
    /// deployment's `CURSOR_KEY` to page that deployment's cursors. Default: a built-in key.
    #[arg(
        long,
        global = true,
        env = "WF_CURSOR_KEY",
        hide_env_values = true,
        value_parser = parse_cursor_key
    )]
    pub(crate) cursor_key: Option<wf_store::CursorKey>,
    /// More log output (-v: debug, -vv: trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub(crate) verbose: u8,
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// Where runs are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum StoreKind {
    /// Embedded SQLite file: no AWS account needed.
    Sqlite,
    /// A DynamoDB table (the same one the Lambda functions use).
    Dynamodb,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Start a run and execute it here, with live progress; prints the output.
    Run(RunArgs),
    /// List the workflows this build knows.
    Workflows,
    /// List runs, newest first.
    List(ListArgs),
    /// Read or restore runs the stream-archiver archived (S3 bucket or a local folder).
    #[command(subcommand)]
    Archive(ArchiveCommand),
    /// Show a run with a timeline of its steps.
    Show {
        /// The run id.
        run_id: String,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Cancel a run.
    Cancel {
        /// The run id.
        run_id: String,
        /// Why (stored on the run).
        #[arg(long, default_value = "cancelled from the wf CLI")]
        reason: String,
    },
    /// Send a signal to a run, then continue it here.
    Signal {
        /// The run id.
        run_id: String,
        /// The signal name, e.g. `approved`.
        name: String,
        /// The payload, as JSON.
        #[arg(long, default_value = "null")]
        payload: String,
    },
    /// Restart a failed run from its failed steps, then continue it here.
    Redrive {
        /// The run id.
        run_id: String,
    },
    /// Serve the web console on 127.0.0.1: runs, graphs, timelines and actions.
    Console(ConsoleArgs),
    /// Finish runs left unfinished by a process that died (or one run).
    Resume {
        /// Only this run.
        run_id: Option<String>,
    },
}

#[derive(Debug, clap::Args)]
pub(crate) struct RunArgs {
    /// The workflow id (see `wf workflows`).
    pub(crate) workflow: String,
    /// Input JSON file, or `-` for standard input.
    #[arg(long, short, conflicts_with = "data")]
    pub(crate) input: Option<PathBuf>,
    /// Input as inline JSON.
    #[arg(long)]
    pub(crate) data: Option<String>,
    /// Makes a repeated start return the same run.
    #[arg(long)]
    pub(crate) idempotency_key: Option<String>,
    /// The business object this run is about.
    #[arg(long)]
    pub(crate) resource_id: Option<String>,
    /// A label, `key=value` (repeatable).
    #[arg(long = "tag", value_parser = parse_tag)]
    pub(crate) tags: Vec<(String, String)>,
    /// Longest wait, in seconds, for the next step before the command returns and leaves
    /// the run parked (a long sleep, a signal wait).
    #[arg(long, default_value_t = 30)]
    pub(crate) wait: u64,
}

#[derive(Debug, clap::Args)]
pub(crate) struct ListArgs {
    /// Only runs of this workflow.
    #[arg(long)]
    pub(crate) workflow: Option<String>,
    /// Only runs in this status (PENDING, RUNNING, WAITING, COMPLETED, FAILED, CANCELLED).
    #[arg(long)]
    pub(crate) status: Option<String>,
    /// Only runs about this resource.
    #[arg(long)]
    pub(crate) resource: Option<String>,
    /// Only runs with this tag, `key=value`.
    #[arg(long, value_parser = parse_tag)]
    pub(crate) tag: Option<(String, String)>,
    /// Only runs created at or after this time (RFC 3339).
    #[arg(long)]
    pub(crate) from: Option<chrono::DateTime<chrono::Utc>>,
    /// Only runs created at or before this time (RFC 3339).
    #[arg(long)]
    pub(crate) to: Option<chrono::DateTime<chrono::Utc>>,
    /// Page size.
    #[arg(long, default_value_t = 20)]
    pub(crate) limit: u32,
    /// Resume after a previous page (the cursor it printed).
    #[arg(long)]
    pub(crate) cursor: Option<String>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub(crate) json: bool,
}

fn parse_cursor_key(text: &str) -> Result<wf_store::CursorKey, String> {
    wf_store::CursorKey::derive(text.as_bytes()).ok_or_else(|| {
        format!(
            "a cursor key must be at least {} bytes long",
            wf_store::CursorKey::MIN_SECRET_LEN
        )
    })
}

fn parse_tag(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .or_else(|| text.split_once(':'))
        .filter(|(k, _)| !k.is_empty())
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("tag {text:?} must look like key=value"))
}

/// `wf archive ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum ArchiveCommand {
    /// Print an archived run (schema version, run, steps, outputs, state) as JSON.
    Get {
        /// The run id.
        run_id: String,
        #[command(flatten)]
        from: ArchiveSource,
    },
    /// Put an archived run back into the store, with fresh expiry times.
    Restore {
        /// The run id.
        run_id: String,
        #[command(flatten)]
        from: ArchiveSource,
    },
}

/// Where archives are: an S3 bucket or a local folder.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct ArchiveSource {
    /// The archive bucket (the stack's `ArchiveBucketName` output).
    #[arg(long, env = "WF_ARCHIVE_BUCKET", conflicts_with = "dir")]
    pub(crate) bucket: Option<String>,
    /// A local folder of archives instead of a bucket.
    #[arg(long, env = "WF_ARCHIVE_DIR")]
    pub(crate) dir: Option<std::path::PathBuf>,
    /// The key prefix archives are under.
    #[arg(long, env = "WF_ARCHIVE_PREFIX", default_value = "runs/")]
    pub(crate) prefix: String,
    /// The run's workflow, to look in one folder only (faster on big buckets).
    #[arg(long)]
    pub(crate) workflow: Option<String>,
}

/// `wf console ...`.
#[derive(Debug, clap::Args)]
pub(crate) struct ConsoleArgs {
    /// The port to listen on (0: any free port).
    #[arg(long, env = "WF_CONSOLE_PORT", default_value_t = 8080)]
    pub(crate) port: u16,
    /// The address to listen on. Anything but loopback exposes the console, which has
    /// no login of its own, to the network.
    #[arg(long, env = "WF_CONSOLE_BIND", default_value = "127.0.0.1")]
    pub(crate) bind: std::net::IpAddr,
    /// Only look: no start, cancel, signal or redrive.
    #[arg(long, env = "WF_CONSOLE_READ_ONLY")]
    pub(crate) read_only: bool,
    /// The archive bucket, to open archived runs (the stack's `ArchiveBucketName`).
    #[arg(long, env = "WF_ARCHIVE_BUCKET", conflicts_with = "dir")]
    pub(crate) bucket: Option<String>,
    /// A local folder of archives instead of a bucket.
    #[arg(long, env = "WF_ARCHIVE_DIR")]
    pub(crate) dir: Option<std::path::PathBuf>,
    /// The key prefix archives are under.
    #[arg(long, env = "WF_ARCHIVE_PREFIX", default_value = "runs/")]
    pub(crate) prefix: String,
}

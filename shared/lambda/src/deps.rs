//! The dependencies of a function, built once per cold start and borrowed by every
//! invocation: the executor over the DynamoDB store (wrapped to keep payloads over 350 KB
//! in S3 when `PAYLOAD_BUCKET` is set) and the SQS dispatcher, and the metrics sink. Tests build the same struct over SQLite in memory and a recording
//! dispatcher (`test-util` feature).

use std::sync::Arc;

use wf_engine::{Dispatcher, Executor, Observer, SqsDispatcher, SystemClock};
use wf_payloads::S3Blobs;
use wf_store::{DynamoDbStore, LazyClient, Store};

use crate::config::Config;
use crate::metrics::EmfMetrics;

/// What a handler needs. Cheap to borrow; built once in `main`.
#[derive(Debug, Clone)]
pub struct Deps {
    /// The engine: store, dispatcher, registry of the shipped workflows, clock.
    pub executor: Arc<Executor>,
    /// Where EMF metric lines go.
    pub metrics: Arc<EmfMetrics>,
}

impl Deps {
    /// Reads [`Config`], loads the AWS configuration once (credential chain, region,
    /// `AWS_ENDPOINT_URL*` for emulators), and builds the DynamoDB store, the SQS
    /// dispatcher and the executor. Fails with the name of a missing variable. The SQS and
    /// S3 clients are built on their first use: an invocation that sends no task and
    /// offloads no payload does not pay for them at a cold start.
    pub async fn from_env() -> Result<Self, lambda_runtime::Error> {
        let config = Config::from_env()?;
        let aws = wf_store::load_aws_config().await;
        let store = DynamoDbStore::new(
            aws_sdk_dynamodb::Client::new(&aws),
            config.table_name.clone(),
            config.retention,
        )
        .with_cursor_key(config.cursor_key.clone());
        let store: Arc<dyn Store> = match &config.payloads {
            Some(payloads) => Arc::new(payloads.offload(
                Arc::new(store),
                Arc::new(S3Blobs::with_lazy_client(
                    LazyClient::on_first_use(&aws, S3Blobs::client),
                    payloads.bucket.clone(),
                    payloads.prefix.clone(),
                )),
            )),
            None => Arc::new(store),
        };
        let dispatcher = SqsDispatcher::with_lazy_client(
            LazyClient::on_first_use(&aws, aws_sdk_sqs::Client::new),
            config.step_queue_url.clone(),
        );
        let metrics = Arc::new(EmfMetrics::stdout(config.metrics_namespace.clone()));
        Ok(Self::new(store, Arc::new(dispatcher), metrics)?)
    }

    /// Dependencies over any store and dispatcher, serving the workflows of
    /// `wf-workflows`.
    pub fn new(
        store: Arc<dyn Store>,
        dispatcher: Arc<dyn Dispatcher>,
        metrics: Arc<EmfMetrics>,
    ) -> Result<Self, wf_engine::EngineError> {
        let executor = Executor::new(
            store,
            dispatcher,
            Arc::new(wf_workflows::registry()?),
            Arc::new(SystemClock),
        )
        .with_observer(Arc::clone(&metrics) as Arc<dyn Observer>);
        Ok(Self {
            executor: Arc::new(executor),
            metrics,
        })
    }

    /// Dependencies over SQLite in memory (payloads over 350 KB in memory, as the
    /// deployment keeps them in S3), a recording dispatcher and captured metrics, for
    /// handler tests.
    ///
    /// # Panics
    /// If SQLite cannot open in memory or a shipped workflow is invalid.
    #[cfg(feature = "test-util")]
    pub fn in_memory() -> (Self, Arc<wf_engine::RecordingDispatcher>) {
        #[expect(
            clippy::expect_used,
            reason = "test helper: an in-memory SQLite that cannot open must fail the test"
        )]
        let store = wf_store::SqliteStore::in_memory(wf_store::Retention::default())
            .expect("open SQLite in memory");
        let dispatcher = Arc::new(wf_engine::RecordingDispatcher::default());
        #[expect(
            clippy::expect_used,
            reason = "test helper: the shipped workflows are valid (wf-workflows tests it)"
        )]
        let deps = Self::new(
            Arc::new(wf_payloads::OffloadStore::new(
                Arc::new(store),
                Arc::new(wf_payloads::MemoryBlobs::new()),
            )),
            Arc::clone(&dispatcher) as Arc<dyn Dispatcher>,
            Arc::new(EmfMetrics::capture("WorkflowRunner")),
        )
        .expect("build the shipped workflows");
        (deps, dispatcher)
    }
}

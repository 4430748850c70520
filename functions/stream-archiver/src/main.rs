//! Lambda entry point of `stream-archiver`: wiring only. Reads the configuration once,
//! loads the AWS configuration once, builds the store (with payloads over 350 KB in S3 when
//! `PAYLOAD_BUCKET` is set), the S3 sink (sharing one S3 client) and the archiver once,
//! and hands every batch to [`stream_archiver::handle`].

use std::sync::Arc;

use lambda_runtime::{Error, run, service_fn};
use stream_archiver::{Config, Deps, handle};
use wf_archive::{Archiver, S3ArchiveSink};
use wf_lambda::{EmfMetrics, PayloadConfig};
use wf_payloads::S3Blobs;
use wf_store::{DynamoDbStore, Retention, Store};

// One thread: Lambda runs one invocation per process, and at this memory size gives the
// function less than one vCPU, so worker threads would add init time (spawning them) and
// memory, not throughput. Records of a batch still run concurrently on it.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = Config::from_env()?;
    let retention = Retention::from_env()?;
    let aws = wf_store::load_aws_config().await;
    let store = DynamoDbStore::new(
        aws_sdk_dynamodb::Client::new(&aws),
        config.table_name,
        retention,
    );
    // One S3 client for the archive and the payload blobs (the same settings): each client
    // built costs init time.
    let s3 = S3ArchiveSink::client(&aws);
    // Archives hold payloads as values: the archiver reads through the wrapper, which also
    // deletes a run's payload blobs with its children.
    let store: Arc<dyn Store> = match PayloadConfig::from_lookup(|name| std::env::var(name).ok())? {
        Some(payloads) => Arc::new(payloads.offload(
            Arc::new(store),
            Arc::new(S3Blobs::new(
                s3.clone(),
                payloads.bucket.clone(),
                payloads.prefix.clone(),
            )),
        )),
        None => Arc::new(store),
    };
    let sink = S3ArchiveSink::new(s3, config.bucket);
    let deps = Deps {
        archiver: Archiver::new(store, Arc::new(sink), config.prefix),
        ttl_sources: config.ttl_sources,
        metrics: Arc::new(EmfMetrics::stdout(config.metrics_namespace)),
    };
    run(service_fn(|event| handle(&deps, event))).await
}

//! Blobs in an S3 bucket: `<prefix><runId>/<sha256>.json`, `Content-Type:
//! application/json`, encrypted at rest by the bucket's default encryption (the template's
//! bucket: SSE-KMS under the stack's key when one is configured, with an S3 bucket key so
//! writes make no KMS call each). A blob is one `PutObject` (at most 10 MB, well under the
//! 5 GB single-put limit), read with one `GetObject`; deleting a run's blobs is one
//! `ListObjectsV2` and one `DeleteObject` per blob (deletes are not billed).
//!
//! IAM: `s3:PutObject`, `s3:GetObject` on `arn:aws:s3:::<bucket>/<prefix>*`; for deletes
//! also `s3:DeleteObject` there and `s3:ListBucket` on the bucket for the prefix.

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use futures::{StreamExt as _, TryStreamExt as _};
use wf_store::{LazyClient, RunId, StoreError};

use crate::blobs::{PayloadBlobs, blob_error};

/// The key prefix when none is configured.
pub const DEFAULT_PAYLOAD_PREFIX: &str = "payloads/";

/// How many deletes run at once.
const DELETE_CONCURRENCY: usize = 8;

/// A [`PayloadBlobs`] on an S3 bucket.
#[derive(Debug, Clone)]
pub struct S3Blobs {
    client: LazyClient<Client>,
    bucket: String,
    prefix: String,
}

/// Sorts an SDK error: transport faults, timeouts, throttling (`SlowDown`) and 5xx are
/// retryable; everything else (access denied, no such bucket) is not.
fn sdk_error<E>(operation: &str, key: &str, error: SdkError<E, HttpResponse>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let retryable = matches!(
        error,
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_)
    ) || error
        .raw_response()
        .is_some_and(|r| r.status().is_server_error())
        || matches!(
            error
                .as_service_error()
                .and_then(ProvideErrorMetadata::code),
            Some("SlowDown" | "InternalError" | "ServiceUnavailable" | "RequestTimeout")
        );
    blob_error(operation, key, retryable, error)
}

impl S3Blobs {
    /// Blobs in `bucket` under `prefix` (empty, or ending in `/`).
    pub fn new(client: Client, bucket: impl Into<String>, prefix: impl Into<String>) -> Self {
        Self {
            client: LazyClient::ready(client),
            bucket: bucket.into(),
            prefix: prefix.into(),
        }
    }

    /// Blobs whose client is built on the first blob read, written or deleted
    /// ([`LazyClient::on_first_use`] with [`S3Blobs::client`]): most runs never offload a
    /// payload, and their invocations need not build an S3 client at a cold start.
    pub fn with_lazy_client(
        client: LazyClient<Client>,
        bucket: impl Into<String>,
        prefix: impl Into<String>,
    ) -> Self {
        Self {
            client,
            bucket: bucket.into(),
            prefix: prefix.into(),
        }
    }

    /// A client from the shared AWS configuration. Path-style addressing is used when an
    /// endpoint override is set (`AWS_ENDPOINT_URL` or `AWS_ENDPOINT_URL_S3`, for S3
    /// emulators such as moto), virtual-hosted style otherwise.
    pub fn client(config: &aws_config::SdkConfig) -> Client {
        let overridden = config.endpoint_url().is_some()
            || std::env::var_os("AWS_ENDPOINT_URL_S3").is_some_and(|v| !v.is_empty());
        let s3 = aws_sdk_s3::config::Builder::from(config)
            .force_path_style(overridden)
            .build();
        Client::from_conf(s3)
    }

    /// The bucket.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    fn run_prefix(&self, run_id: &RunId) -> String {
        format!("{}{run_id}/", self.prefix)
    }

    fn key(&self, run_id: &RunId, digest: &str) -> String {
        format!("{}{digest}.json", self.run_prefix(run_id))
    }

    async fn delete_keys(&self, keys: Vec<String>) -> Result<(), StoreError> {
        futures::stream::iter(keys)
            .map(|key| async move {
                self.client
                    .get()
                    .delete_object()
                    .bucket(&self.bucket)
                    .key(&key)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| sdk_error("DeleteObject", &key, e))
            })
            .buffer_unordered(DELETE_CONCURRENCY)
            .try_collect()
            .await
    }
}

#[async_trait]
impl PayloadBlobs for S3Blobs {
    async fn put(&self, run_id: &RunId, digest: &str, bytes: Vec<u8>) -> Result<(), StoreError> {
        let key = self.key(run_id, digest);
        self.client
            .get()
            .put_object()
            .bucket(&self.bucket)
            .key(&key)
            .content_type("application/json")
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map_err(|e| sdk_error("PutObject", &key, e))?;
        Ok(())
    }

    async fn get(&self, run_id: &RunId, digest: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let key = self.key(run_id, digest);
        let output = match self
            .client
            .get()
            .get_object()
            .bucket(&self.bucket)
            .key(&key)
            .send()
            .await
        {
            Ok(output) => output,
            Err(e)
                if e.as_service_error().is_some_and(
                    aws_sdk_s3::operation::get_object::GetObjectError::is_no_such_key,
                ) =>
            {
                return Ok(None);
            }
            Err(e) => return Err(sdk_error("GetObject", &key, e)),
        };
        let bytes = output
            .body
            .collect()
            .await
            .map_err(|e| blob_error("GetObject", &key, true, e))?;
        Ok(Some(bytes.into_bytes().to_vec()))
    }

    async fn delete(&self, run_id: &RunId, digests: &[String]) -> Result<(), StoreError> {
        self.delete_keys(digests.iter().map(|d| self.key(run_id, d)).collect())
            .await
    }

    async fn delete_run(&self, run_id: &RunId) -> Result<usize, StoreError> {
        let prefix = self.run_prefix(run_id);
        let mut keys = Vec::new();
        let mut pages = self
            .client
            .get()
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(&prefix)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| sdk_error("ListObjectsV2", &prefix, e))?;
            keys.extend(
                page.contents()
                    .iter()
                    .filter_map(|o| o.key().map(str::to_owned)),
            );
        }
        let count = keys.len();
        self.delete_keys(keys).await?;
        Ok(count)
    }
}

//! Archive objects in an S3 bucket: SSE-S3 (AES256, so the writer needs no KMS
//! permission), `Content-Type: application/json`, `Content-Encoding: gzip`, and the
//! [`ObjectInfo`] as user metadata. Objects up to one part are one `PutObject`; bigger
//! ones are a multipart upload of [`S3ArchiveSink::part_size`] parts, aborted on failure,
//! so memory stays at about one part whatever the archive's size.
//!
//! IAM: `s3:PutObject`, `s3:GetObject` (HEAD needs it too), `s3:AbortMultipartUpload` on
//! `arn:aws:s3:::<bucket>/<prefix>*`; `s3:ListBucket` on the bucket only for reading an
//! archive back by run id (the CLI).

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, ServerSideEncryption};

use super::{ArchiveSink, meta};
use crate::error::ArchiveError;
use crate::format::{ArchiveEncoder, CONTENT_ENCODING, CONTENT_TYPE, ObjectInfo};

/// S3's smallest part (except the last) of a multipart upload.
pub const MIN_PART_SIZE: usize = 5 * 1024 * 1024;
/// Default part size: 8 MiB.
const DEFAULT_PART_SIZE: usize = 8 * 1024 * 1024;

/// An [`ArchiveSink`] on an S3 bucket.
#[derive(Debug, Clone)]
pub struct S3ArchiveSink {
    client: Client,
    bucket: String,
    part_size: usize,
}

/// Sorts an SDK error: transport faults, timeouts, throttling (`SlowDown`) and 5xx are
/// retryable; everything else (access denied, no such bucket) is not.
fn sdk_error<E>(
    operation: &'static str,
    key: &str,
    error: SdkError<E, HttpResponse>,
) -> ArchiveError
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
    ArchiveError::sink(operation, key, retryable, error)
}

impl S3ArchiveSink {
    /// A sink on `bucket` with an existing client.
    pub fn new(client: Client, bucket: impl Into<String>) -> Self {
        Self {
            client,
            bucket: bucket.into(),
            part_size: DEFAULT_PART_SIZE,
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

    /// Uses parts of `bytes` for multipart uploads (at least [`MIN_PART_SIZE`]).
    pub fn with_part_size(mut self, bytes: usize) -> Result<Self, ArchiveError> {
        if bytes < MIN_PART_SIZE {
            return Err(ArchiveError::InvalidInput {
                field: "partSize",
                reason: format!("must be at least {MIN_PART_SIZE} bytes"),
            });
        }
        self.part_size = bytes;
        Ok(self)
    }

    /// The bucket.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The multipart part size in bytes.
    pub fn part_size(&self) -> usize {
        self.part_size
    }

    fn metadata(info: &ObjectInfo) -> HashMap<String, String> {
        HashMap::from([
            (
                meta::SCHEMA_VERSION.to_owned(),
                info.schema_version.to_string(),
            ),
            (meta::RUN_VERSION.to_owned(), info.run_version.to_string()),
            (meta::ITEMS.to_owned(), info.items.to_string()),
        ])
    }

    async fn put_single(
        &self,
        key: &str,
        info: &ObjectInfo,
        bytes: Vec<u8>,
    ) -> Result<u64, ArchiveError> {
        let size = bytes.len() as u64;
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .body(ByteStream::from(bytes))
            .content_type(CONTENT_TYPE)
            .content_encoding(CONTENT_ENCODING)
            .server_side_encryption(ServerSideEncryption::Aes256)
            .set_metadata(Some(Self::metadata(info)))
            .send()
            .await
            .map_err(|e| sdk_error("PutObject", key, e))?;
        Ok(size)
    }

    async fn upload_parts(
        &self,
        key: &str,
        upload_id: &str,
        first: Vec<u8>,
        second: Vec<u8>,
        body: &mut ArchiveEncoder<'_>,
    ) -> Result<u64, ArchiveError> {
        let mut parts = Vec::new();
        let mut size = 0_u64;
        let mut next = Some(first);
        let mut second = Some(second);
        let mut number = 1_i32;
        while let Some(chunk) = next {
            size += chunk.len() as u64;
            let uploaded = self
                .client
                .upload_part()
                .bucket(&self.bucket)
                .key(key)
                .upload_id(upload_id)
                .part_number(number)
                .body(ByteStream::from(chunk))
                .send()
                .await
                .map_err(|e| sdk_error("UploadPart", key, e))?;
            parts.push(
                CompletedPart::builder()
                    .part_number(number)
                    .set_e_tag(uploaded.e_tag().map(str::to_owned))
                    .build(),
            );
            number = number
                .checked_add(1)
                .ok_or_else(|| ArchiveError::InvalidInput {
                    field: "archive",
                    reason: "more parts than a multipart upload allows".to_owned(),
                })?;
            next = match second.take() {
                Some(chunk) => Some(chunk),
                None => body.next_chunk()?,
            };
        }
        self.client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| sdk_error("CompleteMultipartUpload", key, e))?;
        Ok(size)
    }
}

#[async_trait]
impl ArchiveSink for S3ArchiveSink {
    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, ArchiveError> {
        let output = match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(output) => output,
            Err(e)
                if e.as_service_error().is_some_and(
                    aws_sdk_s3::operation::head_object::HeadObjectError::is_not_found,
                ) =>
            {
                return Ok(None);
            }
            Err(e) => return Err(sdk_error("HeadObject", key, e)),
        };
        let metadata = output.metadata();
        let number = |name: &str| -> u64 {
            metadata
                .and_then(|m| m.get(name))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        Ok(Some(ObjectInfo {
            schema_version: u32::try_from(number(meta::SCHEMA_VERSION)).unwrap_or(0),
            run_version: number(meta::RUN_VERSION),
            items: number(meta::ITEMS),
        }))
    }

    async fn put(
        &self,
        key: &str,
        info: &ObjectInfo,
        body: &mut ArchiveEncoder<'_>,
    ) -> Result<u64, ArchiveError> {
        body.set_chunk_size(self.part_size);
        let first = body.next_chunk()?.unwrap_or_default();
        let Some(second) = body.next_chunk()? else {
            return self.put_single(key, info, first).await;
        };
        let created = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .content_type(CONTENT_TYPE)
            .content_encoding(CONTENT_ENCODING)
            .server_side_encryption(ServerSideEncryption::Aes256)
            .set_metadata(Some(Self::metadata(info)))
            .send()
            .await
            .map_err(|e| sdk_error("CreateMultipartUpload", key, e))?;
        let upload_id = created.upload_id().unwrap_or_default().to_owned();
        match self
            .upload_parts(key, &upload_id, first, second, body)
            .await
        {
            Ok(size) => Ok(size),
            Err(error) => {
                // Leave no invisible parts behind (they would be billed until a lifecycle
                // rule removes them).
                if let Err(abort) = self
                    .client
                    .abort_multipart_upload()
                    .bucket(&self.bucket)
                    .key(key)
                    .upload_id(&upload_id)
                    .send()
                    .await
                {
                    tracing::warn!(key, error = %abort, "could not abort a failed multipart upload");
                }
                Err(error)
            }
        }
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, ArchiveError> {
        let output = match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
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
            Err(e) => return Err(sdk_error("GetObject", key, e)),
        };
        let bytes = output
            .body
            .collect()
            .await
            .map_err(|e| ArchiveError::sink("GetObject", key, true, e))?;
        Ok(Some(bytes.into_bytes().to_vec()))
    }

    async fn list_folders(&self, prefix: &str) -> Result<Vec<String>, ArchiveError> {
        let mut names = Vec::new();
        let mut token = None;
        loop {
            let output = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(prefix)
                .delimiter("/")
                .set_continuation_token(token)
                .send()
                .await
                .map_err(|e| sdk_error("ListObjectsV2", prefix, e))?;
            names.extend(output.common_prefixes().iter().filter_map(|p| {
                p.prefix()
                    .and_then(|p| p.strip_prefix(prefix))
                    .map(|p| p.trim_end_matches('/').to_owned())
            }));
            token = output.next_continuation_token().map(str::to_owned);
            if token.is_none() {
                return Ok(names);
            }
        }
    }
}

//! Archive objects as files under a root folder, keys as relative paths. Writes go to a
//! temporary file in the same folder and are renamed into place, so a reader never sees
//! half an object.

use std::path::{Component, Path, PathBuf};

use async_trait::async_trait;
use tokio::io::AsyncWriteExt;

use super::ArchiveSink;
use crate::error::ArchiveError;
use crate::format::{ArchiveEncoder, ObjectInfo, RunArchive};

/// An [`ArchiveSink`] on a local folder (the CLI's `--dir`, tests).
#[derive(Debug, Clone)]
pub struct FsArchiveSink {
    root: PathBuf,
}

/// Numbers temporary files, so concurrent writes of one key never share one.
static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn io_error(operation: &'static str, key: &str, error: std::io::Error) -> ArchiveError {
    let retryable = matches!(
        error.kind(),
        std::io::ErrorKind::Interrupted | std::io::ErrorKind::WouldBlock
    );
    ArchiveError::sink(operation, key, retryable, error)
}

impl FsArchiveSink {
    /// A sink writing under `root` (created on first write).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The root folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The path of `key`; `InvalidInput` if it would leave the root.
    fn path(&self, key: &str) -> Result<PathBuf, ArchiveError> {
        let relative = Path::new(key);
        if key.is_empty()
            || !relative
                .components()
                .all(|c| matches!(c, Component::Normal(_)))
        {
            return Err(ArchiveError::InvalidInput {
                field: "key",
                reason: format!("{key:?} is not a relative path inside the archive folder"),
            });
        }
        Ok(self.root.join(relative))
    }
}

#[async_trait]
impl ArchiveSink for FsArchiveSink {
    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, ArchiveError> {
        // No side channel for metadata: read it from the document itself.
        match self.get(key).await? {
            Some(bytes) => Ok(Some(RunArchive::decode(key, &bytes)?.info())),
            None => Ok(None),
        }
    }

    async fn put(
        &self,
        key: &str,
        _info: &ObjectInfo,
        body: &mut ArchiveEncoder<'_>,
    ) -> Result<u64, ArchiveError> {
        let path = self.path(key)?;
        if let Some(parent) = path.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(|e| io_error("create_dir_all", key, e))?;
        }
        let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let temporary = path.with_extension(format!("tmp-{}-{n}", std::process::id()));
        let written = async {
            let mut file = tokio::fs::File::create(&temporary).await?;
            let mut size = 0_u64;
            while let Some(chunk) = body.next_chunk().map_err(std::io::Error::other)? {
                file.write_all(&chunk).await?;
                size += chunk.len() as u64;
            }
            file.sync_all().await?;
            tokio::fs::rename(&temporary, &path).await?;
            Ok::<u64, std::io::Error>(size)
        }
        .await;
        match written {
            Ok(size) => Ok(size),
            Err(e) => {
                let _ = tokio::fs::remove_file(&temporary).await;
                Err(io_error("write", key, e))
            }
        }
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, ArchiveError> {
        match tokio::fs::read(self.path(key)?).await {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_error("read", key, e)),
        }
    }

    async fn list_folders(&self, prefix: &str) -> Result<Vec<String>, ArchiveError> {
        let folder = if prefix.is_empty() {
            self.root.clone()
        } else {
            self.path(prefix.trim_end_matches('/'))?
        };
        let mut entries = match tokio::fs::read_dir(&folder).await {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_error("read_dir", prefix, e)),
        };
        let mut names = Vec::new();
        while let Some(entry) = entries
            .next_entry()
            .await
            .map_err(|e| io_error("read_dir", prefix, e))?
        {
            let is_dir = entry
                .file_type()
                .await
                .map_err(|e| io_error("read_dir", prefix, e))?
                .is_dir();
            if let (true, Some(name)) = (is_dir, entry.file_name().to_str()) {
                names.push(name.to_owned());
            }
        }
        names.sort();
        Ok(names)
    }
}

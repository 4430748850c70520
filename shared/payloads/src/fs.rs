//! Blobs as files: `<root>/<runId>/<sha256>.json`. A write goes to a temporary file in the
//! same folder and is renamed into place, so a reader never sees half a blob. The CLI keeps
//! them beside its SQLite file.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use wf_store::{RunId, StoreError};

use crate::blobs::{PayloadBlobs, blob_error};

/// A [`PayloadBlobs`] on a local folder.
#[derive(Debug, Clone)]
pub struct FsBlobs {
    root: PathBuf,
}

/// Numbers temporary files, so concurrent writes of one blob never share one.
static WRITES: AtomicU64 = AtomicU64::new(0);

fn io_error(operation: &str, path: &Path, error: std::io::Error) -> StoreError {
    let retryable = matches!(
        error.kind(),
        std::io::ErrorKind::Interrupted | std::io::ErrorKind::WouldBlock
    );
    blob_error(operation, &path.display().to_string(), retryable, error)
}

impl FsBlobs {
    /// Blobs under `root` (created on first write).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The folder of the blobs beside a SQLite file: `<file>.payloads`.
    pub fn beside(database: &Path) -> Self {
        let mut name = database.as_os_str().to_owned();
        name.push(".payloads");
        Self::new(PathBuf::from(name))
    }

    /// The root folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn run_dir(&self, run_id: &RunId) -> PathBuf {
        self.root.join(run_id.to_string())
    }

    /// The file of a blob. Digests are hex (checked by the caller), so never a path.
    fn path(&self, run_id: &RunId, digest: &str) -> PathBuf {
        self.run_dir(run_id).join(format!("{digest}.json"))
    }
}

#[async_trait]
impl PayloadBlobs for FsBlobs {
    async fn put(&self, run_id: &RunId, digest: &str, bytes: Vec<u8>) -> Result<(), StoreError> {
        let dir = self.run_dir(run_id);
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(|e| io_error("create folder", &dir, e))?;
        let path = self.path(run_id, digest);
        let n = WRITES.fetch_add(1, Ordering::Relaxed);
        let temp = dir.join(format!(".{digest}.{}.{n}.tmp", std::process::id()));
        if let Err(error) = tokio::fs::write(&temp, bytes).await {
            let _ = tokio::fs::remove_file(&temp).await;
            return Err(io_error("write", &temp, error));
        }
        tokio::fs::rename(&temp, &path)
            .await
            .map_err(|e| io_error("rename", &path, e))
    }

    async fn get(&self, run_id: &RunId, digest: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let path = self.path(run_id, digest);
        match tokio::fs::read(&path).await {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_error("read", &path, e)),
        }
    }

    async fn delete(&self, run_id: &RunId, digests: &[String]) -> Result<(), StoreError> {
        for digest in digests {
            let path = self.path(run_id, digest);
            match tokio::fs::remove_file(&path).await {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_error("delete", &path, e)),
            }
        }
        Ok(())
    }

    async fn delete_run(&self, run_id: &RunId) -> Result<usize, StoreError> {
        let dir = self.run_dir(run_id);
        let mut entries = match tokio::fs::read_dir(&dir).await {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(io_error("list", &dir, e)),
        };
        let mut count = 0;
        while let Some(entry) = entries
            .next_entry()
            .await
            .map_err(|e| io_error("list", &dir, e))?
        {
            if entry.file_name().to_string_lossy().ends_with(".json") {
                count += 1;
            }
        }
        match tokio::fs::remove_dir_all(&dir).await {
            Ok(()) => Ok(count),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(io_error("delete", &dir, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn blobs_round_trip_and_go_with_their_run() {
        let root = std::env::temp_dir().join(format!("wf-blobs-{}", RunId::generate()));
        let blobs = FsBlobs::new(&root);
        let (run, other) = (RunId::generate(), RunId::generate());
        blobs.put(&run, "aa", b"1".to_vec()).await.unwrap();
        blobs.put(&run, "bb", b"2".to_vec()).await.unwrap();
        blobs.put(&other, "aa", b"3".to_vec()).await.unwrap();
        assert_eq!(blobs.get(&run, "aa").await.unwrap(), Some(b"1".to_vec()));
        assert_eq!(blobs.get(&run, "cc").await.unwrap(), None);
        blobs
            .delete(&run, &["aa".into(), "zz".into()])
            .await
            .unwrap();
        assert_eq!(blobs.get(&run, "aa").await.unwrap(), None);
        assert_eq!(blobs.delete_run(&run).await.unwrap(), 1);
        assert_eq!(blobs.delete_run(&run).await.unwrap(), 0);
        assert_eq!(blobs.get(&other, "aa").await.unwrap(), Some(b"3".to_vec()));
        std::fs::remove_dir_all(root).unwrap();
    }
}

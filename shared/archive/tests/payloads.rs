//! Archiving a run whose payloads went to the blob store: the archive holds the values
//! (the archiver reads through the offload wrapper), the blobs are deleted with the
//! children, a redelivery finds nothing to do, and a restore puts the blobs back.
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "tests: a failed expectation must fail the test"
)]

use std::sync::Arc;

use chrono::{Duration, Utc};
use wf_archive::{ArchivePrefix, Archiver, FsArchiveSink, SCHEMA_VERSION};
use wf_payloads::testing::{every_payload_round_trips, payload};
use wf_payloads::{MemoryBlobs, OffloadStore};
use wf_store::{Retention, SqliteStore, StateKey, Store};

#[tokio::test]
async fn an_archived_run_keeps_its_offloaded_payloads_and_its_blobs_go() {
    // GIVEN a finished run whose input, output and state went to the blob store
    let blobs = Arc::new(MemoryBlobs::new());
    let inner = Arc::new(SqliteStore::in_memory(Retention::default()).unwrap());
    let store = OffloadStore::new(inner, blobs.clone()).with_threshold(64);
    let run_id = every_payload_round_trips(&store, 6000, 4000).await;
    assert_eq!(blobs.count(&run_id), 3);
    let store: Arc<dyn Store> = Arc::new(store);
    let dir = std::env::temp_dir().join(format!("wf-archive-payloads-{run_id}"));
    let archiver = Archiver::new(
        Arc::clone(&store),
        Arc::new(FsArchiveSink::new(&dir)),
        ArchivePrefix::default(),
    );
    // WHEN its run item expires (the stream's old image, past its ttl)
    let mut image = store.get_run(&run_id).await.unwrap();
    image.ttl = Utc::now().timestamp() - 1;
    let first = archiver.archive_expired(&image, None).await.unwrap();
    // THEN the archive holds the values and every blob of the run is gone
    assert!(first.written);
    let archive = archiver.read(&run_id, None).await.unwrap();
    assert_eq!(archive.schema_version, SCHEMA_VERSION);
    assert_eq!(archive.record.run.input, payload(6000, 1));
    assert_eq!(archive.record.outputs[0].output, payload(4000, 2));
    let big = StateKey::parse("big").unwrap();
    let state = archive.record.state.iter().find(|e| e.key == big).unwrap();
    assert_eq!(state.value, payload(2000, 3));
    assert_eq!(blobs.count(&run_id), 0);
    // A redelivery writes nothing and fails on nothing.
    let second = archiver.archive_expired(&image, None).await.unwrap();
    assert!(!second.written);
    // A restore puts the run back, payloads and all.
    store.delete_run(&run_id).await.unwrap();
    archiver
        .restore(
            &run_id,
            None,
            &Retention::default(),
            Utc::now() + Duration::days(1),
        )
        .await
        .unwrap();
    assert_eq!(
        store.get_run(&run_id).await.unwrap().input,
        payload(6000, 1)
    );
    assert_eq!(blobs.count(&run_id), 3);
    std::fs::remove_dir_all(dir).unwrap();
}

//! The journal's WAL under a steady stream of commits.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::{Copy, Destination, Journal, JournalConfig};
use crate::config::SyncMode;
use crate::events::store::WAL_SIZE_LIMIT;

/// Appenders that never let the writer go idle: the case where SQLite never restarts the WAL on
/// its own (it grew to gigabytes in the ingest benchmark). Events are written until a WAL that
/// never started over would be twice the size a restarted one is cut to.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wal_starts_over_under_a_steady_stream_of_commits() {
    let dir = tempfile::tempdir().expect("temp dir");
    let wal = dir.path().join("events.db-wal");
    let (journal, thread) = Journal::start(JournalConfig {
        path: dir.path().join("events.db"),
        sync: SyncMode::Normal,
        retention: Duration::from_secs(3600),
        max_bytes: u64::MAX,
        queue_capacity: 1024,
        max_batch: 64,
        wal_restart_frames: 64,
    })
    .expect("journal starts");
    let target = 2 * u64::try_from(WAL_SIZE_LIMIT).unwrap_or(u64::MAX);
    let written = Arc::new(AtomicU64::new(0));
    let give_up = Instant::now() + Duration::from_secs(120);
    let appenders: Vec<_> = (0..8)
        .map(|i| {
            let (journal, written) = (journal.clone(), Arc::clone(&written));
            tokio::spawn(async move {
                while written.load(Ordering::Relaxed) < target && Instant::now() < give_up {
                    let copy = Copy {
                        destination: Destination::Events,
                        payload: vec![b'x'; 8192],
                    };
                    journal
                        .append(0, &format!("dev{i}"), vec![copy])
                        .await
                        .expect("appended");
                    written.fetch_add(8192, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for appender in appenders {
        appender.await.expect("appender");
    }
    let written = written.load(Ordering::Relaxed);
    let wal_size = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
    drop(journal);
    thread.join().expect("writer thread");
    assert!(
        written >= target,
        "the test wrote only {written} bytes in two minutes"
    );
    assert!(
        wal_size <= target / 2,
        "the WAL is {wal_size} bytes after {written} bytes of events: it never started over"
    );
}

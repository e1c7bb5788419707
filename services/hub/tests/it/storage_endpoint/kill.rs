//! SIGKILL during a local write: the blob is visible whole or not at all.
//!
//! The test runs this test binary again as a child that only writes one large blob (the
//! `kill_child_writer` test, which does nothing unless the parent set [`CHILD_DIR`]). The parent
//! watches the container directory for the staging file (`name#N`) that the local backend writes
//! before linking it to its name, and kills the child with SIGKILL the moment it appears. Then
//! nothing is listed under the blob's name, the staging file is left behind (proof the kill landed
//! mid-write), and the next write of the same batch takes the plain name with the whole content.
//! Should the child win the race and finish, its blob must be whole, and the test tries again.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hub::endpoints::storage::{Encoding, StorageSink, encode_blob};
use iothub_protocol::Message;

use super::{local_sink, stamped, time};

/// Set by the parent on the child: the root directory to write into.
const CHILD_DIR: &str = "HUB_TEST_STORAGE_KILL_CHILD_DIR";
const FORMAT: &str = "{iothub}/{partition}/{YYYY}/{MM}/{DD}/{HH}/{mm}";
const BLOB: &str = "ContosoTestHub/0/2018/10/30/10/56";
const OPENED: &str = "2018-10-30T10:56:00Z";

/// About 128 MB of Avro: long enough to write that the parent sees the staging file.
fn big_batch() -> Vec<Message> {
    (0..512u32)
        .map(|i| {
            let mut body = vec![0x5a; 256 * 1024];
            body[..4].copy_from_slice(&i.to_le_bytes());
            stamped(&body, "big-device", "1", "2018-10-30T10:56:01.0000000Z")
        })
        .collect()
}

/// The child: writes the big batch, unless this is an ordinary test run.
#[tokio::test]
async fn kill_child_writer() {
    let Some(root) = std::env::var_os(CHILD_DIR) else {
        return;
    };
    let sink = StorageSink::connect(local_sink(Path::new(&root), FORMAT, Encoding::Avro))
        .await
        .unwrap();
    sink.write_blob(&big_batch(), time(OPENED)).await.unwrap();
}

/// Every file under `dir`, recursively.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(files(&path));
        } else {
            found.push(path);
        }
    }
    found
}

fn is_staging(path: &Path) -> bool {
    path.file_name()
        .and_then(|name| name.to_str())
        .and_then(|name| name.rsplit_once('#'))
        .is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

#[tokio::test]
async fn a_writer_killed_mid_write_leaves_no_partial_blob() {
    let batch = big_batch();
    let whole = encode_blob(&batch, Encoding::Avro).unwrap();
    for attempt in 1..=5 {
        let root = tempfile::tempdir().unwrap();
        let container = root.path().join("storagecontainer");
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "storage_endpoint::kill::kill_child_writer",
                "--test-threads=1",
                "--quiet",
            ])
            .env(CHILD_DIR, root.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut staged = None;
        while Instant::now() < deadline {
            if let Some(path) = files(&container).into_iter().find(|path| is_staging(path)) {
                child.kill().unwrap(); // SIGKILL
                staged = Some(path);
                break;
            }
            if child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        child.wait().unwrap();

        let sink = StorageSink::new(local_sink(root.path(), FORMAT, Encoding::Avro)).unwrap();
        let listed = sink.list_blobs().await.unwrap();
        if !listed.is_empty() {
            // The child finished (or linked) first: whatever is visible is whole.
            assert_eq!(listed.len(), 1, "attempt {attempt}: {listed:?}");
            assert_eq!(
                sink.read_blob(BLOB).await.unwrap(),
                whole,
                "attempt {attempt}: a visible blob is whole"
            );
            continue;
        }
        let staged = staged.unwrap_or_else(|| panic!("attempt {attempt}: the child wrote nothing"));
        // Killed mid-write: the name is not there, only the staging file, which listings skip.
        assert!(!container.join(BLOB).exists(), "attempt {attempt}");
        assert!(
            staged.exists(),
            "attempt {attempt}: the staging file stays behind"
        );
        assert!(std::fs::metadata(&staged).unwrap().len() <= whole.len() as u64);

        // The retry after a restart writes the same batch under the plain name, whole.
        let written = sink.write_blob(&batch, time(OPENED)).await.unwrap();
        assert_eq!((written.name.as_str(), written.already_existed), (BLOB, false));
        assert_eq!(std::fs::read(container.join(BLOB)).unwrap(), whole);
        let names: Vec<String> = sink
            .list_blobs()
            .await
            .unwrap()
            .into_iter()
            .map(|blob| blob.name)
            .collect();
        assert_eq!(names, [BLOB]);
        return;
    }
    panic!("the child finished before it could be killed mid-write, 5 times");
}

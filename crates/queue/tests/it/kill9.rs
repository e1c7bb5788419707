//! Durability of the SQLite backend under `kill -9`: a child process sends and consumes while the
//! test kills it with SIGKILL, three times over; afterwards nothing whose send returned is lost and
//! nothing whose complete returned comes back.
//!
//! The child is this test binary run again on `child_process_entry_point`, which does nothing unless
//! `QUEUE_KILL9_CHILD` is set.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::process::Stdio;
use std::time::Duration;

use queue::{Message, QueueClient, QueueOptions};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use crate::support::{drain_ids, unique_name};

const CHILD_ENV: &str = "QUEUE_KILL9_CHILD";

/// In the child: send batches and receive+complete forever, reporting each step on stdout only after
/// the call returned. Killed from outside.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_process_entry_point() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let (connection, name) = spec.split_once('|').unwrap();
    let client = QueueClient::connect(connection).await.unwrap();
    let queue = client.queue(name).await.unwrap();
    let tag = std::process::id();
    let sender = {
        let queue = queue.clone();
        tokio::spawn(async move {
            for batch in 0u64.. {
                let ids: Vec<String> = (0..10).map(|k| format!("{tag}-{batch}-{k}")).collect();
                let messages = ids
                    .iter()
                    .map(|id| Message::new(id.clone().into_bytes()).with_message_id(id))
                    .collect();
                queue.send_batch(messages).await.unwrap();
                report(ids.iter().map(|id| format!("sent {id}")));
            }
        })
    };
    loop {
        for m in queue.receive(8, Duration::from_secs(1)).await.unwrap() {
            let id = m.message.message_id.clone().unwrap();
            report([format!("recv {id}")]);
            queue.complete(&m.lock_token).await.unwrap();
            report([format!("done {id}")]);
        }
        if sender.is_finished() {
            break;
        }
    }
}

fn report(lines: impl IntoIterator<Item = String>) {
    let mut out = std::io::stdout().lock();
    for line in lines {
        writeln!(out, "{line}").unwrap();
    }
    out.flush().unwrap();
}

/// `sent <id>` etc.; libtest may have printed its `test … ... ` header on the same line.
fn event(line: &str) -> Option<(&str, &str)> {
    let mut words = line.rsplit(' ');
    let id = words.next()?;
    let what = words.next()?;
    Some((what, id))
}

#[derive(Default)]
struct Seen {
    sent: BTreeSet<String>,
    received: BTreeSet<String>,
    done: BTreeSet<String>,
}

async fn run_and_kill(connection: &str, name: &str, seen: &mut Seen) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "kill9::child_process_entry_point",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, format!("{connection}|{name}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut sent, mut done) = (0, 0);
    // Let it run until it has both sent and completed a good number, then kill it mid-flight.
    while sent < 400 || done < 100 {
        let Some(line) = lines.next_line().await.unwrap() else {
            panic!("child exited early: {:?}", child.wait().await);
        };
        if let Some((what, id)) = event(&line) {
            let set = match what {
                "sent" => {
                    sent += 1;
                    &mut seen.sent
                }
                "recv" => &mut seen.received,
                "done" => {
                    done += 1;
                    &mut seen.done
                }
                _ => continue,
            };
            set.insert(id.to_owned());
        }
    }
    child.start_kill().unwrap(); // SIGKILL
    // Whatever it had already written before dying still counts as acknowledged.
    while let Some(line) = lines.next_line().await.unwrap() {
        if let Some((what, id)) = event(&line) {
            match what {
                "sent" => seen.sent.insert(id.to_owned()),
                "recv" => seen.received.insert(id.to_owned()),
                "done" => seen.done.insert(id.to_owned()),
                _ => false,
            };
        }
    }
    let status = child.wait().await.unwrap();
    assert!(!status.success(), "child was killed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_loses_nothing_sent_and_revives_nothing_completed() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return; // this binary is running as someone's child
    }
    let dir = tempfile::tempdir().unwrap();
    // Synchronous=normal is the weaker setting; kill -9 durability must hold even there.
    let connection = format!(
        "sqlite://{}?synchronous=normal&poll_interval=20ms",
        dir.path().join("q.db").display()
    );
    let name = unique_name("kill9");
    let client = QueueClient::connect(&connection).await.unwrap();
    let options = QueueOptions {
        lock_duration: Duration::from_millis(500),
        max_delivery_count: 100,
    };
    client.create_queue(&name, &options).await.unwrap();

    let mut seen = Seen::default();
    for _round in 0..3 {
        run_and_kill(&connection, &name, &mut seen).await;
    }

    let queue = client.queue(&name).await.unwrap();
    let left: Vec<String> = drain_ids(&*queue, Duration::from_secs(3)).await;
    let left_set: BTreeSet<String> = left.iter().cloned().collect();
    assert_eq!(left.len(), left_set.len(), "no message is in the queue twice");

    let revived: Vec<_> = seen.done.intersection(&left_set).collect();
    assert!(revived.is_empty(), "completed messages came back: {revived:?}");

    let lost: Vec<_> = seen
        .sent
        .iter()
        .filter(|id| !left_set.contains(*id) && !seen.received.contains(*id))
        .collect();
    assert!(
        lost.is_empty(),
        "acknowledged sends lost: {} e.g. {:?}",
        lost.len(),
        lost.first()
    );
    assert!(
        seen.done.len() >= 300 && seen.sent.len() >= 1200,
        "the children did real work"
    );
}

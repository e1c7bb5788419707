//! Kill -9 the handler while webhook calls are in flight, restart it: no message lost, no duplicate
//! ticket (the CRM deduplicates by the idempotency key, which is the message id).

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use queue::QueueOptions;

use crate::crm::{Crm, SECRET};
use crate::support::{Kind, TestQueue, init_tracing};

fn spawn(queue: &TestQueue, crm: &Crm) -> Child {
    Command::new(env!("CARGO_BIN_EXE_critical-handler"))
        .arg("serve")
        .env("CRITICAL_HANDLER_QUEUE__CONNECTION_STRING", &queue.connection)
        .env("CRITICAL_HANDLER_QUEUE__NAME", &queue.name)
        .env("CRITICAL_HANDLER_WEBHOOK__URL", crm.url())
        .env("CRITICAL_HANDLER_WEBHOOK__SIGNING_SECRET", SECRET)
        .env("CRITICAL_HANDLER_ADMIN", "127.0.0.1:0")
        .env("CRITICAL_HANDLER_TELEMETRY__LOG_LEVEL", "warn")
        .stdout(Stdio::null())
        .stderr(if std::env::var_os("TEST_LOG").is_some() {
            Stdio::inherit()
        } else {
            Stdio::null()
        })
        .spawn()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_call_loses_nothing_and_duplicates_nothing() {
    init_tracing();
    let options = QueueOptions {
        lock_duration: Duration::from_secs(2),
        max_delivery_count: 10,
    };
    let queue = TestQueue::new(Kind::Sqlite, options).await;
    let crm = Crm::start();
    crm.set_delay(Duration::from_millis(300));
    let ids = queue.send_critical("kill", 150).await;

    let mut first = spawn(&queue, &crm);
    crm.wait_for_tickets(30, Duration::from_secs(60)).await;
    first.kill().unwrap(); // SIGKILL, with up to 16 calls in flight
    first.wait().unwrap();
    let before_restart = crm.tickets().len();
    assert!(before_restart < ids.len(), "killed mid-run");

    let mut second = spawn(&queue, &crm);
    crm.wait_for_tickets(ids.len(), Duration::from_secs(120)).await;
    // Redelivered messages whose ticket exists get 409 and are completed: wait for the queue to empty.
    let started = std::time::Instant::now();
    while queue.queue.len().await.unwrap() > 0 {
        assert!(started.elapsed() < Duration::from_secs(30), "the queue drains");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    second.kill().unwrap();
    second.wait().unwrap();

    let tickets = crm.tickets();
    assert_eq!(tickets.len(), ids.len(), "every message is one ticket");
    let mut created: BTreeMap<String, usize> = BTreeMap::new();
    for request in crm.seen().iter().filter(|r| r.status == 201) {
        *created.entry(request.key.clone().unwrap()).or_default() += 1;
    }
    assert!(created.values().all(|&n| n == 1), "no ticket created twice");
    assert_eq!(queue.queue.dead_letter_len().await.unwrap(), 0);
}

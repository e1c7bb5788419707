//! Send and receive+complete rates of the sqlite backend and of the amqp backend on RabbitMQ, for
//! 200 B and 8 KB messages, each beside a baseline measured in the same run:
//! - sqlite: raw rusqlite on the same kind of table (perf-baselines §2.4): insert 100 rows per
//!   transaction, and dequeue (select + delete) 100 rows per transaction, synchronous=FULL;
//! - amqp: raw fe2o3-amqp on the same broker: pipelined unsettled send, and receive + accept with
//!   credit 100, TCP_NODELAY.
//!
//! `cargo bench -p queue --bench throughput` prints the table; with `QUEUE_BENCH_WRITE=1` it also
//! writes docs/PERFORMANCE-queue.md. `QUEUE_BENCH_RUNS` (default 5) sets runs per figure; RabbitMQ
//! must be up (`scripts/services/rabbitmq`), else its rows are skipped. `QUEUE_BENCH_SQLITE_OPTS`
//! (e.g. `?synchronous=normal`) is appended to the sqlite connection string.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    clippy::print_stderr
)]

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fe2o3_amqp::link::receiver::CreditMode;
use fe2o3_amqp::sasl_profile::SaslProfile;
use fe2o3_amqp::types::definitions::{ReceiverSettleMode, SenderSettleMode};
use fe2o3_amqp::types::messaging::{Body, Message as AmqpMessage};
use fe2o3_amqp::types::primitives::{Binary, Value};
use fe2o3_amqp::{Connection, Receiver, Sender, Session};
use queue::{Message, Queue, QueueClient, QueueOptions};

const BATCH: usize = 100;
const CONSUMERS: usize = 16;
const RECEIVE_MAX: usize = 32;

fn runs() -> usize {
    std::env::var("QUEUE_BENCH_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5)
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(|a, b| a.total_cmp(b));
    xs[xs.len() / 2]
}

fn body(size: usize) -> Vec<u8> {
    (0..size).map(|i| b"0123456789abcdef"[i % 16]).collect()
}

fn message(size: usize, n: usize) -> Message {
    Message::new(body(size))
        .with_message_id(format!("m-{n}"))
        .with_content_type("application/json")
        .with_property("level", "critical")
        .with_property("deviceId", "turbine-0042")
}

/// One row of the results: what, our rate, the baseline's rate.
struct Row {
    backend: &'static str,
    op: &'static str,
    size: usize,
    ours: f64,
    baseline: f64,
    baseline_name: &'static str,
}

async fn send_all(q: &dyn Queue, size: usize, count: usize) -> f64 {
    let batches: Vec<Vec<Message>> = (0..count)
        .collect::<Vec<_>>()
        .chunks(BATCH)
        .map(|c| c.iter().map(|n| message(size, *n)).collect())
        .collect();
    let start = Instant::now();
    for batch in batches {
        q.send_batch(batch).await.unwrap();
    }
    count as f64 / start.elapsed().as_secs_f64()
}

async fn receive_all(client: &QueueClient, name: &str, count: usize) -> f64 {
    let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut handles = Vec::new();
    for _ in 0..CONSUMERS {
        handles.push(client.queue(name).await.unwrap());
    }
    let start = Instant::now();
    let tasks: Vec<_> = handles
        .into_iter()
        .map(|q| {
            let done = Arc::clone(&done);
            tokio::spawn(async move {
                while done.load(std::sync::atomic::Ordering::Relaxed) < count {
                    // Each message is completed on its own, the batch's completions in flight together
                    // (as a handler that processes a received batch concurrently does).
                    let mut completions = tokio::task::JoinSet::new();
                    for m in q.receive(RECEIVE_MAX, Duration::from_millis(200)).await.unwrap() {
                        let q = Arc::clone(&q);
                        completions.spawn(async move { q.complete(&m.lock_token).await.unwrap() });
                    }
                    let n = completions.join_all().await.len();
                    done.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    count as f64 / start.elapsed().as_secs_f64()
}

// ---- sqlite ----

async fn sqlite_rows(size: usize, count: usize) -> Vec<Row> {
    let (mut send, mut recv, mut base_send, mut base_recv) = (vec![], vec![], vec![], vec![]);
    for _ in 0..runs() {
        let dir = tempfile::tempdir().unwrap();
        let client = QueueClient::connect(&format!(
            "sqlite://{}{}",
            dir.path().join("q.db").display(),
            std::env::var("QUEUE_BENCH_SQLITE_OPTS").unwrap_or_default()
        ))
        .await
        .unwrap();
        client
            .create_queue("bench", &QueueOptions::default())
            .await
            .unwrap();
        let q = client.queue("bench").await.unwrap();
        send.push(send_all(&*q, size, count).await);
        recv.push(receive_all(&client, "bench", count).await);
        let (bs, br) = tokio::task::spawn_blocking(move || raw_sqlite(size, count))
            .await
            .unwrap();
        eprintln!(
            "sqlite {size} B: send {:.0} recv {:.0} | raw {bs:.0} {br:.0}",
            send[send.len() - 1],
            recv[recv.len() - 1]
        );
        base_send.push(bs);
        base_recv.push(br);
    }
    vec![
        Row {
            backend: "sqlite",
            op: "send (batches of 100)",
            size,
            ours: median(send),
            baseline: median(base_send),
            baseline_name: "rusqlite insert, 100 rows/tx, FULL",
        },
        Row {
            backend: "sqlite",
            op: "receive+complete (16 consumers)",
            size,
            ours: median(recv),
            baseline: median(base_recv),
            baseline_name: "rusqlite select+delete, 100 rows/tx, FULL",
        },
    ]
}

/// §2.4's queue table with rusqlite alone: inserts then dequeues, both 100 rows per transaction.
fn raw_sqlite(size: usize, count: usize) -> (f64, f64) {
    let dir = tempfile::tempdir().unwrap();
    let mut conn = rusqlite::Connection::open(dir.path().join("raw.db")).unwrap();
    conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    conn.pragma_update(None, "synchronous", "FULL").unwrap();
    conn.execute_batch(
        "CREATE TABLE q (id INTEGER PRIMARY KEY, queue TEXT, enqueued_at INTEGER, props TEXT, body BLOB,
                         locked_until INTEGER, delivery_count INTEGER)",
    )
    .unwrap();
    let props = r#"{"level":"critical","deviceId":"turbine-0042","messageId":"m-000000","contentType":"application/json"}"#;
    let payload = body(size);
    let start = Instant::now();
    for chunk in 0..count.div_ceil(BATCH) {
        let tx = conn.transaction().unwrap();
        {
            let mut insert = tx
                .prepare_cached("INSERT INTO q (queue, enqueued_at, props, body, locked_until, delivery_count) VALUES ('bench', ?1, ?2, ?3, 0, 0)")
                .unwrap();
            for i in 0..BATCH.min(count - chunk * BATCH) {
                insert
                    .execute(rusqlite::params![i as i64, props, payload])
                    .unwrap();
            }
        }
        tx.commit().unwrap();
    }
    let insert_rate = count as f64 / start.elapsed().as_secs_f64();
    let start = Instant::now();
    let mut taken = 0;
    while taken < count {
        let tx = conn.transaction().unwrap();
        let ids: Vec<(i64, Vec<u8>)> = tx
            .prepare_cached("SELECT id, body FROM q ORDER BY id LIMIT ?1")
            .unwrap()
            .query_map([BATCH as i64], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let max = ids.last().unwrap().0;
        tx.execute("DELETE FROM q WHERE id <= ?1", [max]).unwrap();
        tx.commit().unwrap();
        taken += ids.len();
    }
    (insert_rate, count as f64 / start.elapsed().as_secs_f64())
}

// ---- amqp / RabbitMQ ----

fn rabbitmq_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/services/rabbitmq")
}

fn rabbitmq_up() -> bool {
    std::net::TcpStream::connect_timeout(&"127.0.0.1:5672".parse().unwrap(), Duration::from_secs(1)).is_ok()
}

struct Declared(String);

impl Declared {
    fn new() -> Self {
        let name = format!("bench-{:016x}", fastrand::u64(..));
        assert!(
            Command::new(rabbitmq_script())
                .args(["declare", &name, "10"])
                .status()
                .unwrap()
                .success()
        );
        Self(name)
    }
}

impl Drop for Declared {
    fn drop(&mut self) {
        let _ = Command::new(rabbitmq_script()).args(["delete", &self.0]).status();
    }
}

async fn amqp_rows(size: usize, count: usize) -> Vec<Row> {
    let (mut send, mut recv, mut base_send, mut base_recv) = (vec![], vec![], vec![], vec![]);
    for _ in 0..runs() {
        let declared = Declared::new();
        let client = QueueClient::connect("amqp://guest:guest@127.0.0.1:5672")
            .await
            .unwrap();
        let q = client.queue(&declared.0).await.unwrap();
        send.push(send_all(&*q, size, count).await);
        recv.push(receive_all(&client, &declared.0, count).await);
        client.close().await;
        let raw = Declared::new();
        let (bs, br) = raw_amqp(&raw.0, size, count).await;
        eprintln!(
            "amqp {size} B: send {:.0} recv {:.0} | raw {bs:.0} {br:.0}",
            send[send.len() - 1],
            recv[recv.len() - 1]
        );
        base_send.push(bs);
        base_recv.push(br);
    }
    vec![
        Row {
            backend: "amqp (RabbitMQ)",
            op: "send (batches of 100)",
            size,
            ours: median(send),
            baseline: median(base_send),
            baseline_name: "fe2o3-amqp pipelined send, one link",
        },
        Row {
            backend: "amqp (RabbitMQ)",
            op: "receive+complete (16 consumers)",
            size,
            ours: median(recv),
            baseline: median(base_recv),
            baseline_name: "fe2o3-amqp receive+accept, credit 100, one link",
        },
    ]
}

async fn raw_amqp(queue: &str, size: usize, count: usize) -> (f64, f64) {
    let stream = tokio::net::TcpStream::connect("127.0.0.1:5672").await.unwrap();
    stream.set_nodelay(true).unwrap();
    let mut connection = Connection::builder()
        .container_id("bench-raw")
        .hostname("vhost:/")
        .sasl_profile(SaslProfile::Plain {
            username: "guest".into(),
            password: "guest".into(),
        })
        .scheme("amqp")
        .open_with_stream(stream)
        .await
        .unwrap();
    let address = format!("/amq/queue/{queue}");
    let mut session = Session::begin(&mut connection).await.unwrap();
    let mut sender = Sender::builder()
        .name("raw-sender")
        .target(address.as_str())
        .sender_settle_mode(SenderSettleMode::Unsettled)
        .attach(&mut session)
        .await
        .unwrap();
    let payload = body(size);
    let start = Instant::now();
    for chunk in 0..count.div_ceil(BATCH) {
        let mut pending = Vec::new();
        for _ in 0..BATCH.min(count - chunk * BATCH) {
            let m = AmqpMessage::builder().data(Binary::from(payload.clone())).build();
            pending.push(sender.send_batchable(m).await.unwrap());
        }
        for p in pending {
            p.await.unwrap();
        }
    }
    let send_rate = count as f64 / start.elapsed().as_secs_f64();
    let _ = tokio::time::timeout(Duration::from_secs(5), sender.close()).await;
    let mut session2 = Session::begin(&mut connection).await.unwrap();
    let mut receiver = Receiver::builder()
        .name("raw-receiver")
        .source(address.as_str())
        .sender_settle_mode(SenderSettleMode::Unsettled)
        .receiver_settle_mode(ReceiverSettleMode::First)
        .credit_mode(CreditMode::Auto(100))
        .attach(&mut session2)
        .await
        .unwrap();
    let start = Instant::now();
    for _ in 0..count {
        let d = receiver.recv::<Body<Value>>().await.unwrap();
        receiver.accept(&d).await.unwrap();
    }
    let recv_rate = count as f64 / start.elapsed().as_secs_f64();
    // Bounded: fe2o3-amqp's session engine can wait forever for the broker's `end`.
    let quick = Duration::from_secs(5);
    let _ = tokio::time::timeout(quick, receiver.close()).await;
    let _ = tokio::time::timeout(quick, session.end()).await;
    let _ = tokio::time::timeout(quick, session2.end()).await;
    let _ = tokio::time::timeout(quick, connection.close()).await;
    (send_rate, recv_rate)
}

fn table(rows: &[Row]) -> String {
    let mut out = String::new();
    writeln!(
        out,
        "| backend | operation | size | msg/s (median) | baseline | baseline msg/s | ratio |"
    )
    .unwrap();
    writeln!(out, "|---|---|---|---|---|---|---|").unwrap();
    for r in rows {
        let size = if r.size >= 1024 {
            format!("{} KB", r.size / 1024)
        } else {
            format!("{} B", r.size)
        };
        writeln!(
            out,
            "| {} | {} | {} | {:.0} | {} | {:.0} | {:.2} |",
            r.backend,
            r.op,
            size,
            r.ours,
            r.baseline_name,
            r.baseline,
            r.ours / r.baseline
        )
        .unwrap();
    }
    out
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` passes nothing: run a tiny smoke pass then.
    let full = std::env::args().any(|a| a == "--bench");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (sqlite_200, sqlite_8k, amqp_n) = if full {
        (50_000, 20_000, 5_000)
    } else {
        (500, 200, 200)
    };
    let mut rows = Vec::new();
    rt.block_on(async {
        rows.extend(sqlite_rows(200, sqlite_200).await);
        rows.extend(sqlite_rows(8 * 1024, sqlite_8k).await);
        if rabbitmq_up() {
            rows.extend(amqp_rows(200, amqp_n).await);
            rows.extend(amqp_rows(8 * 1024, amqp_n).await);
        } else {
            println!("RabbitMQ not reachable on 127.0.0.1:5672: amqp rows skipped");
        }
    });
    let table = table(&rows);
    println!("{table}");
    if full && std::env::var_os("QUEUE_BENCH_WRITE").is_some() {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/PERFORMANCE-queue.md");
        std::fs::write(&path, report(&table)).unwrap();
        println!("wrote {}", path.display());
    }
}

fn report(table: &str) -> String {
    format!(
        "## Queue (crates/queue)\n\n\
         Measured by `QUEUE_BENCH_WRITE=1 cargo bench -p queue --bench throughput` on this project's 2-core machine, \
         {runs} runs per figure, medians; each row's baseline ran in the same run on the same machine. sqlite uses \
         its default synchronous=FULL and group commit; sends go in batches of {BATCH}; receive+complete uses \
         {CONSUMERS} consumers, each with its own queue handle, receiving up to {RECEIVE_MAX} at a time and completing \
         each message with its own call, a batch's completions in flight together. RabbitMQ 3.10 quorum queue, credit 100 per consumer link.\n\n{table}\n\
         Goals (issue 3, sqlite on this machine): batched send >= 100,000 msg/s; receive+complete >= 30,000 msg/s \
         with 16 consumers.\n",
        runs = runs(),
    )
}

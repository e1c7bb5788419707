//! Records per second to make a container of IoT Hub JSON blobs queryable, into SQLite and
//! PostgreSQL, beside DuckDB loading the same files in the same run
//! (`CREATE TABLE t AS SELECT * FROM read_json(..., format='newline_delimited')`), and the p99
//! latency of a device + one-hour query over the result.
//!
//! `cargo bench -p storage-archiver --bench index`. `BLOBS` (default 1000) × `RECORDS` (1000)
//! records of ~200-byte bodies; `WORKERS` (default 2) indexing workers; `POSTGRES` (default the
//! local one; `skip` to leave it out); `DUCKDB=skip` leaves the baseline out (for profiling). DuckDB comes from PyPI into `target/bench-venv` (created on
//! first use); without Python or network the baseline is skipped and said so.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    clippy::print_stderr
)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use iothub_protocol::{Message, Timestamp};
use storage_archiver::indexer::{IndexSettings, Indexer};
use storage_archiver::metrics::ArchiverMetrics;
use storage_archiver::store::{QueryFilter, Store};

/// The archiver binary's allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// 2026-11-26T00:00:00Z.
const T0: i64 = 1_795_651_200_000;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn generate(container: &Path, blobs: u64, records: u64) {
    for b in 0..blobs {
        let mut out = Vec::new();
        for i in 0..records {
            let n = b * records + i;
            let device = format!("turbine-{}", n % 100);
            let body = format!(
                "{{\"deviceId\":\"{device}\",\"windSpeed\":{:.2},\"temperature\":{:.1},\"status\":\"running\",\"rotorRpm\":{},\"note\":\"routine telemetry from the north field\"}}",
                10.0 + (n % 50) as f64 / 3.0,
                20.0 + (n % 17) as f64,
                900 + n % 300
            );
            let mut m = Message::new(body.into_bytes());
            m.system.message_id = Some(format!("m-{n}"));
            m.system.content_type = Some("application/json".to_owned());
            m.system.content_encoding = Some("utf-8".to_owned());
            m.system.connection_device_id = Some(device);
            // Spread over 24 hours.
            m.system.enqueued_time = Some(
                Timestamp::from_unix_millis(T0 + (n as i64 * 86_400_000) / (blobs * records) as i64).unwrap(),
            );
            m.app_properties
                .push(("level".to_owned(), Some("storage".to_owned())));
            iothub_protocol::storage_record::write_record(&m, &mut out).unwrap();
        }
        let path = container.join(format!("hub/0/2026/11/26/{:02}/{b:05}.json", b * 24 / blobs));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, out).unwrap();
    }
}

/// DuckDB's load time in seconds, or `None` when it cannot run here.
fn duckdb_seconds(container: &Path) -> Option<f64> {
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/bench-venv");
    let python = venv.join("bin/python");
    if !python.exists() {
        let made = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .ok()?;
        if !made.success() {
            return None;
        }
        let pip = Command::new(&python)
            .args(["-m", "pip", "install", "-q", "duckdb"])
            .status()
            .ok()?;
        if !pip.success() {
            return None;
        }
    }
    let script = format!(
        "import duckdb,time\ncon=duckdb.connect()\nt=time.perf_counter()\ncon.execute(\"CREATE TABLE t AS SELECT * FROM read_json('{}/**/*.json', format='newline_delimited')\")\nprint(time.perf_counter()-t)\nprint(con.execute('select count(*) from t').fetchone()[0])\n",
        container.display()
    );
    let out = Command::new(&python).args(["-c", &script]).output().ok()?;
    if !out.status.success() {
        eprintln!("duckdb failed: {}", String::from_utf8_lossy(&out.stderr));
        return None;
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()?
        .trim()
        .parse()
        .ok()
}

/// Seconds to index the whole container into `index`.
async fn index_seconds(root: &Path, index: Arc<dyn Store>, workers: usize, blobs: u64) -> f64 {
    let connection = blob_store::StorageConnection::parse(&format!("file://{}", root.display())).unwrap();
    let container = blob_store::open(&connection, "archive").unwrap();
    let metrics = ArchiverMetrics::register(&service_kit::Metrics::new("bench"));
    let started = Instant::now();
    let discovery = storage_archiver::discovery::Discovery::new(
        Arc::clone(&container),
        Arc::clone(&index),
        "archive",
        "",
        2,
        Duration::from_secs(600),
        None,
    );
    let found = discovery.poll().await.unwrap();
    assert_eq!(found.new, blobs);
    let indexer = Indexer {
        container,
        index,
        settings: IndexSettings {
            worker: "bench".to_owned(),
            lease: Duration::from_secs(300),
            max_attempts: 3,
            batch_records: 1000,
            max_record_bytes: 4 << 20,
            max_body_bytes: 64 << 10,
        },
        metrics,
    };
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..workers {
        let indexer = indexer.clone();
        set.spawn(async move { while indexer.index_one().await.unwrap() {} });
    }
    while set.join_next().await.is_some() {}
    started.elapsed().as_secs_f64()
}

/// Every record of the container, read and parsed as the indexer does, and the seconds that took
/// (one thread): the parsing side of indexing alone.
async fn parse_all(container: &Path) -> (Vec<Vec<storage_archiver::store::IndexRecord>>, f64) {
    let mut files = Vec::new();
    let mut dirs = vec![container.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files.sort();
    let started = Instant::now();
    let mut batches = Vec::new();
    for path in files {
        let name = path.strip_prefix(container).unwrap().display().to_string();
        let file = tokio::fs::File::open(&path).await.unwrap();
        let mut batch = Vec::new();
        storage_archiver::records::read_records(file, None, Default::default(), |record| {
            batch.push(storage_archiver::indexer::index_record(&name, record, 64 << 10));
            std::ops::ControlFlow::Continue(())
        })
        .await
        .unwrap();
        batches.push(batch);
    }
    (batches, started.elapsed().as_secs_f64())
}

/// Seconds for the store alone to insert ready records, one batch per blob, from `workers` tasks.
async fn insert_seconds(
    index: Arc<dyn Store>,
    batches: Vec<Vec<storage_archiver::store::IndexRecord>>,
    workers: usize,
) -> f64 {
    let batches = Arc::new(std::sync::Mutex::new(batches));
    let started = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..workers {
        let (index, batches) = (Arc::clone(&index), Arc::clone(&batches));
        set.spawn(async move {
            loop {
                let Some(batch) = batches.lock().unwrap().pop() else {
                    break;
                };
                index.insert_records(&batch).await.unwrap();
            }
        });
    }
    while set.join_next().await.is_some() {}
    started.elapsed().as_secs_f64()
}

/// p50 and p99 of a device + one-hour query (first page of 100), in milliseconds.
async fn query_latency(index: &Arc<dyn Store>) -> (f64, f64) {
    let mut samples = Vec::new();
    for q in 0..200 {
        let hour = (q % 23) as i64;
        let filter = QueryFilter {
            device_id: Some(format!("turbine-{}", q % 100)),
            from_ms: Some(T0 + hour * 3_600_000),
            to_ms: Some(T0 + (hour + 1) * 3_600_000),
            message_id: None,
        };
        let started = Instant::now();
        let rows = index.query(&filter, 100, None).await.unwrap();
        samples.push(started.elapsed().as_secs_f64() * 1000.0);
        assert!(!rows.is_empty());
    }
    samples.sort_by(f64::total_cmp);
    (samples[samples.len() / 2], samples[samples.len() * 99 / 100])
}

fn main() {
    let blobs: u64 = env_or("BLOBS", 1000);
    let records: u64 = env_or("RECORDS", 1000);
    let workers: usize = env_or("WORKERS", 2);
    let postgres: String = env_or("POSTGRES", "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let total = (blobs * records) as f64;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("blobs");
    let container = root.join("archive");
    eprintln!("generating {blobs} blobs x {records} records");
    generate(&container, blobs, records);
    let duck = if std::env::var("DUCKDB").is_ok_and(|v| v == "skip") {
        None
    } else {
        duckdb_seconds(&container)
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut rows = Vec::new();
    let mut parts = Vec::new();
    runtime.block_on(async {
        let sqlite =
            storage_archiver::store::open(&format!("sqlite://{}", dir.path().join("index.db").display()))
                .await
                .unwrap();
        let seconds = index_seconds(&root, Arc::clone(&sqlite), workers, blobs).await;
        let (p50, p99) = query_latency(&sqlite).await;
        rows.push(("SQLite", seconds, p50, p99));
        // Where the time goes: parsing alone, and the store alone given ready records.
        let (batches, parse) = parse_all(&container).await;
        parts.push(("reading + parsing the records only (1 thread)", parse));
        let bare =
            storage_archiver::store::open(&format!("sqlite://{}", dir.path().join("bare.db").display()))
                .await
                .unwrap();
        parts.push((
            "inserting ready records into SQLite only",
            insert_seconds(bare, batches, workers).await,
        ));
        if postgres != "skip" {
            let url = format!("{postgres}?schema=bench_{:08x}", fastrand::u32(..));
            let pg = storage_archiver::store::open(&url).await.unwrap();
            let seconds = index_seconds(&root, Arc::clone(&pg), workers, blobs).await;
            let (p50, p99) = query_latency(&pg).await;
            rows.push(("PostgreSQL", seconds, p50, p99));
        }
    });
    println!("| index | records | records/s | ÷ DuckDB | device + 1 h query p50 / p99 ms |");
    println!("|---|---|---|---|---|");
    let duck_rate = duck.map(|s| total / s);
    if let Some(rate) = duck_rate {
        println!("| DuckDB `read_json` (baseline) | {total:.0} | {rate:.0} | 1.00× | – |");
    } else {
        println!("| DuckDB (baseline) | skipped: python3 -m venv / pip install duckdb failed | | | |");
    }
    for (name, seconds, p50, p99) in rows {
        let rate = total / seconds;
        let ratio = duck_rate.map_or_else(|| "–".to_owned(), |d| format!("{:.2}×", rate / d));
        println!("| {name} | {total:.0} | {rate:.0} | {ratio} | {p50:.2} / {p99:.2} |");
    }
    println!();
    println!("| part of the SQLite row | records/s | ÷ DuckDB |");
    println!("|---|---|---|");
    for (name, seconds) in parts {
        let rate = total / seconds;
        let ratio = duck_rate.map_or_else(|| "–".to_owned(), |d| format!("{:.2}×", rate / d));
        println!("| {name} | {rate:.0} | {ratio} |");
    }
}

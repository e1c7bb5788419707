//! Tickets per second from the SQLite queue to a fast local webhook, beside the raw request rate a
//! plain client gets from the same server in the same run.
//!
//! - server: actix-web on 127.0.0.1, answering 201 to every POST after reading the body (no
//!   verification: the server's cost is the same in both measurements);
//! - baseline: reqwest with `N` tasks posting the same request (a rendered generic ticket, ~1 KB)
//!   in a loop, for 1.5 s just before and 1.5 s just after each handler run (their mean is that
//!   run's baseline, so a machine that speeds up or slows down during the run does not skew it);
//! - ours: `MESSAGES` critical messages already in a SQLite queue (synchronous=FULL), the whole
//!   handler (`serve::run`: receive, ticket, template, signature, POST, complete) with
//!   `concurrency` = `N`; end to end (from start to the last completion) and steady (while the
//!   10th to 90th percent of the tickets arrive);
//! - CPU: the process's CPU time (client or handler, and the server) per request or ticket, and the
//!   cores busy meanwhile. On a saturated machine the rate ratio follows the CPU ratio; a rate
//!   ratio below it means the handler waited.
//!
//! `cargo bench -p critical-handler --bench tickets`; `RUNS` (default 5) runs per figure; rates
//! are medians over the runs, ratios are medians of each run's own ratio; `MESSAGES` (default 20000); `PREFETCH` sets the handler's prefetch; `SQLITE_OPTS` is
//! appended to the queue's connection string (e.g. `?synchronous=normal`); `SKIP_RAW=1` skips the
//! baseline (for profiling).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    clippy::print_stderr
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use actix_web::{App, HttpResponse, HttpServer, web};
use critical_handler::config::HandlerConfig;
use critical_handler::serve::{self, Listeners};
use queue::{Message, QueueClient, QueueOptions};
use secrecy::SecretString;
use service_kit::Shutdown;

const SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// Clock ticks per second of `/proc` CPU times, asked once (`getconf CLK_TCK`; 100 on Linux).
fn clock_ticks() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        let output = std::process::Command::new("getconf").arg("CLK_TCK").output();
        output
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// CPU seconds used so far by this whole process (every thread, exited ones included).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let close = stat.rfind(')').unwrap();
    let fields: Vec<&str> = stat[close + 2..].split(' ').collect();
    // After the name: utime is field 14 and stime 15 (1-based over the whole line).
    (fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap()) / clock_ticks()
}

/// A measured rate and the CPU it took: (per second, cores busy, CPU µs per request).
#[derive(Clone, Copy)]
struct Rate {
    per_second: f64,
    cores: f64,
    cpu_us: f64,
}

impl Rate {
    /// The average of two measurements of the same thing.
    fn mean(a: Rate, b: Rate) -> Rate {
        Rate {
            per_second: (a.per_second + b.per_second) / 2.0,
            cores: (a.cores + b.cores) / 2.0,
            cpu_us: (a.cpu_us + b.cpu_us) / 2.0,
        }
    }

    fn new(done: f64, elapsed: Duration, cpu: f64) -> Self {
        let seconds = elapsed.as_secs_f64();
        Self {
            per_second: done / seconds,
            cores: cpu / seconds,
            cpu_us: cpu * 1e6 / done,
        }
    }
}

/// The webhook: counts POSTs, answers 201.
fn start_server(count: Arc<AtomicU64>) -> std::net::SocketAddr {
    let data = web::Data::new(count);
    let server = HttpServer::new(move || {
        App::new().app_data(data.clone()).default_service(web::to(
            |body: web::Bytes, count: web::Data<Arc<AtomicU64>>| async move {
                std::hint::black_box(body.len());
                count.fetch_add(1, Ordering::Relaxed);
                HttpResponse::Created().finish()
            },
        ))
    })
    .workers(1)
    .disable_signals()
    .bind(("127.0.0.1", 0))
    .unwrap();
    let addr = server.addrs()[0];
    tokio::spawn(server.run());
    addr
}

fn message(n: usize) -> Message {
    Message::new(format!("{{\"deviceId\":\"turbine-7\",\"windSpeed\":{}}}", 10 + n % 7).into_bytes())
        .with_message_id(format!("message_{n}"))
        .with_correlation_id(format!("correlation_{n}"))
        .with_content_type("application/json")
        .with_content_encoding("utf-8")
        .with_property("level", "critical")
        .with_property("iothub-connection-device-id", "turbine-7")
        .with_property("iothub-connection-auth-generation-id", "638000000000000000")
        .with_property(
            "iothub-connection-auth-method",
            r#"{"scope":"device","type":"sas","issuer":"iothub"}"#,
        )
}

/// Requests per second from `tasks` plain reqwest loops over `time`.
async fn raw_rate(url: &str, tasks: usize, time: Duration, payload: &[u8]) -> Rate {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(tasks)
        .build()
        .unwrap();
    let done = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + time;
    let (started, cpu) = (Instant::now(), cpu_seconds());
    let mut handles = Vec::new();
    for _ in 0..tasks {
        let (client, done, url, payload) = (
            client.clone(),
            Arc::clone(&done),
            url.to_owned(),
            payload.to_vec(),
        );
        handles.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                let response = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .header("idempotency-key", "message_1")
                    .body(payload.clone())
                    .send()
                    .await
                    .unwrap();
                assert!(response.status().is_success());
                let _ = response.bytes().await;
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for handle in handles {
        handle.await.unwrap();
    }
    Rate::new(
        done.load(Ordering::Relaxed) as f64,
        started.elapsed(),
        cpu_seconds() - cpu,
    )
}

/// Tickets per second, two ways: `messages` queued first, then the handler with `concurrency`
/// until the webhook has seen them all and the queue is empty.
/// - end to end: from starting the handler (opening the queue, building the HTTP client) until the
///   queue is empty;
/// - steady: while the webhook saw the 10th to the 90th percent of the tickets, the handler's rate
///   once running, as the raw client's is measured over its window.
async fn handler_rate(url: &str, count: &AtomicU64, concurrency: usize, messages: usize) -> (Rate, Rate) {
    let dir = tempfile::tempdir().unwrap();
    let options = std::env::var("SQLITE_OPTS").unwrap_or_default();
    let connection = format!("sqlite://{}{options}", dir.path().join("queues.db").display());
    let client = QueueClient::connect(&connection).await.unwrap();
    client
        .create_queue("critical", &QueueOptions::default())
        .await
        .unwrap();
    let queue = client.queue("critical").await.unwrap();
    for chunk in (0..messages).collect::<Vec<_>>().chunks(500) {
        queue
            .send_batch(chunk.iter().map(|n| message(*n)).collect())
            .await
            .unwrap();
    }
    let mut config = HandlerConfig::default();
    config.queue.connection_string = SecretString::from(connection);
    config.queue.name = Some("critical".to_owned());
    config.webhook.url = url.to_owned();
    config.webhook.signing_secret = SecretString::from(SECRET);
    config.concurrency = concurrency;
    config.prefetch = std::env::var("PREFETCH").ok().and_then(|v| v.parse().ok());
    config.admin = None;
    let before = count.load(Ordering::Relaxed);
    let target = before + messages as u64;
    let (from, to) = (before + messages as u64 / 10, before + messages as u64 * 9 / 10);
    let (mut from_at, mut to_at) = (None, None);
    let shutdown = Shutdown::new();
    let (started, cpu) = (Instant::now(), cpu_seconds());
    let task = tokio::spawn(serve::run(config, Listeners { admin: None }, shutdown.clone()));
    loop {
        let seen = count.load(Ordering::Relaxed);
        if seen >= from && from_at.is_none() {
            from_at = Some((seen, Instant::now(), cpu_seconds()));
        }
        if seen >= to && to_at.is_none() {
            to_at = Some((seen, Instant::now(), cpu_seconds()));
        }
        if seen >= target {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    // Completion is the last step: wait for the queue to be empty too.
    while queue.len().await.unwrap() > 0 {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let (elapsed, used) = (started.elapsed(), cpu_seconds() - cpu);
    shutdown.trigger();
    task.await.unwrap().unwrap();
    let ((n0, t0, c0), (n1, t1, c1)) = (from_at.unwrap(), to_at.unwrap());
    let steady = Rate::new((n1 - n0) as f64, t1.duration_since(t0), c1 - c0);
    (Rate::new(messages as f64, elapsed, used), steady)
}

/// The allocator the `critical-handler` binary ships with.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let _ = rustls::crypto::ring::default_provider().install_default();
        clock_ticks();
        let runs = env_or("RUNS", 5);
        let messages = env_or("MESSAGES", 20_000);
        let count = Arc::new(AtomicU64::new(0));
        let addr = start_server(Arc::clone(&count));
        let url = format!("http://{addr}/tickets");
        let payload = br#"{"type":"iot.critical_message","timestamp":"2026-11-26T20:00:00.000Z","data":{"key":"message_1","subject":"Critical alert from turbine-7","severity":"critical","level":"critical","device_id":"turbine-7","module_id":null,"enqueued_time":"2026-11-26T20:00:00.000Z","message_id":"message_1","correlation_id":"correlation_1","content_type":"application/json","content_encoding":"utf-8","properties":{"iothub-connection-auth-generation-id":"638000000000000000","iothub-connection-auth-method":"{\"scope\":\"device\",\"type\":\"sas\",\"issuer\":\"iothub\"}","iothub-connection-device-id":"turbine-7","level":"critical"},"body":{"deviceId":"turbine-7","windSpeed":12},"body_format":"json","body_truncated":false,"delivery_count":1}}"#;
        println!(
            "| in flight | raw client req/s | handler tickets/s, end to end | ratio | handler tickets/s, steady | ratio | raw CPU µs/req | handler CPU µs/ticket (steady) | CPU ratio |"
        );
        println!("|---|---|---|---|---|---|---|---|---|");
        for concurrency in [16, 64] {
            let (mut raw, mut ours, mut steady) = (Vec::new(), Vec::new(), Vec::new());
            for _ in 0..runs {
                let skip_raw = std::env::var_os("SKIP_RAW").is_some();
                let half = Duration::from_millis(1500);
                let before = if skip_raw {
                    None
                } else {
                    Some(raw_rate(&url, concurrency, half, payload).await)
                };
                let (end_to_end, window) = handler_rate(&url, &count, concurrency, messages).await;
                if let Some(before) = before {
                    let after = raw_rate(&url, concurrency, half, payload).await;
                    raw.push(Rate::mean(before, after));
                }
                ours.push(end_to_end);
                steady.push(window);
            }
            let show = |rates: &[Rate]| {
                rates
                    .iter()
                    .map(|r| format!("{:.0}/s {:.2} cores {:.0} µs", r.per_second, r.cores, r.cpu_us))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            eprintln!(
                "in flight {concurrency}: raw [{}]; ours end to end [{}]; steady [{}]",
                show(&raw),
                show(&ours),
                show(&steady)
            );
            let med = |xs: Vec<f64>| if xs.is_empty() { f64::NAN } else { median(xs) };
            let rates = |rates: &[Rate], f: fn(&Rate) -> f64| med(rates.iter().map(f).collect());
            // Each run's own ratio (against the raw rate measured around it), then the median.
            let ratios = |ours: &[Rate], f: fn(&Rate, &Rate) -> f64| {
                med(raw.iter().zip(ours).map(|(raw, ours)| f(raw, ours)).collect())
            };
            println!(
                "| {concurrency} | {:.0} | {:.0} | {:.2}× | {:.0} | {:.2}× | {:.0} | {:.0} | {:.2}× |",
                rates(&raw, |r| r.per_second),
                rates(&ours, |r| r.per_second),
                ratios(&ours, |raw, ours| ours.per_second / raw.per_second),
                rates(&steady, |r| r.per_second),
                ratios(&steady, |raw, ours| ours.per_second / raw.per_second),
                rates(&raw, |r| r.cpu_us),
                rates(&steady, |r| r.cpu_us),
                ratios(&steady, |raw, ours| raw.cpu_us / ours.cpu_us),
            );
        }
    });
}

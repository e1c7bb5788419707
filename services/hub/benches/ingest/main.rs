//! Hub ingest beside Mosquitto, in one run on one machine: QoS 1 ingest, QoS 0 ingest, 256 devices,
//! and publish→PUBACK latency at a paced 10k msg/s; the QoS 1 and paced runs again with the hub
//! routing every message (`level="critical"`) to an embedded SQLite queue, as in the tutorial. Every scenario runs `RUNS` times (default 3),
//! interleaved, and the medians and ratios are printed as the table in docs/PERFORMANCE.md.
//!
//! `cargo bench -p hub --bench ingest` (set `RUNS`, `SECONDS` to change the length, `ONLY=text` to
//! run only the scenarios whose name contains `text`, `HUB_SYNC=normal` to run the hub without an
//! fsync per commit).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    clippy::print_stderr
)]

mod brokers;
mod loadgen;

/// The allocator the `hub` binary ships with (`HUB_ALLOC=system` is not supported at run time:
/// rebuild without this line to compare).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::sync::Arc;
use std::time::Duration;

use rumqttc::mqttbytes::QoS;

use crate::brokers::{Hub, Mosquitto};
use crate::loadgen::{Counters, Load, Outcome};

#[derive(Clone, Copy)]
enum Kind {
    /// Acknowledged (QoS 1) messages per second.
    Qos1,
    /// QoS 0: delivered to a subscriber (Mosquitto) or committed to the events stream (hub).
    Qos0,
    /// Publish→PUBACK latency at a fixed rate.
    Paced,
}

struct Scenario {
    name: &'static str,
    kind: Kind,
    devices: usize,
    inflight: usize,
    rate: Option<u64>,
    tuned_mosquitto: bool,
    /// Messages carry `level=critical` and the hub routes them to the SQLite queue.
    routed: bool,
}

const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "QoS 1 ingest, 16 devices (inflight 64)",
        kind: Kind::Qos1,
        devices: 16,
        inflight: 64,
        rate: None,
        tuned_mosquitto: false,
        routed: false,
    },
    Scenario {
        name: "QoS 0 ingest, 16 devices",
        kind: Kind::Qos0,
        devices: 16,
        inflight: 64,
        rate: None,
        tuned_mosquitto: false,
        routed: false,
    },
    Scenario {
        name: "QoS 0 ingest, 256 devices",
        kind: Kind::Qos0,
        devices: 256,
        inflight: 16,
        rate: None,
        tuned_mosquitto: false,
        routed: false,
    },
    Scenario {
        name: "QoS 1 ingest, 256 devices (inflight 16)",
        kind: Kind::Qos1,
        devices: 256,
        inflight: 16,
        rate: None,
        tuned_mosquitto: false,
        routed: false,
    },
    Scenario {
        name: "QoS 1 paced 10k msg/s, 16 devices",
        kind: Kind::Paced,
        devices: 16,
        inflight: 64,
        rate: Some(10_000),
        tuned_mosquitto: true,
        routed: false,
    },
    Scenario {
        name: "QoS 1 ingest routed to SQLite queue, 16 devices (inflight 64)",
        kind: Kind::Qos1,
        devices: 16,
        inflight: 64,
        rate: None,
        tuned_mosquitto: false,
        routed: true,
    },
    Scenario {
        name: "QoS 1 paced 10k msg/s routed to SQLite queue, 16 devices",
        kind: Kind::Paced,
        devices: 16,
        inflight: 64,
        rate: Some(10_000),
        tuned_mosquitto: true,
        routed: true,
    },
];

/// The property bag of the routed scenarios' topics (sent to Mosquitto too, so topics match).
fn properties(scenario: &Scenario) -> &'static str {
    if scenario.routed { "level=critical" } else { "" }
}

#[derive(Default, Clone, Copy)]
struct Sample {
    rate: f64,
    /// Routed hub: messages that reached the queue per second in the same window.
    queued_rate: f64,
    p50_ms: f64,
    p99_ms: f64,
}

fn sample(kind: Kind, outcome: &Outcome, committed: Option<u64>) -> Sample {
    let count = match (kind, committed) {
        (Kind::Qos0, Some(committed)) => committed,
        (Kind::Qos0, None) => outcome.delivered,
        _ => outcome.acked,
    };
    let h = &outcome.latency_us;
    Sample {
        rate: count as f64 / outcome.seconds,
        queued_rate: 0.0,
        p50_ms: h.value_at_quantile(0.50) as f64 / 1000.0,
        p99_ms: h.value_at_quantile(0.99) as f64 / 1000.0,
    }
}

fn load(
    scenario: &Scenario,
    addr: std::net::SocketAddr,
    devices: Vec<loadgen::Device>,
    seconds: u64,
) -> Load {
    Load {
        addr,
        devices,
        qos: if matches!(scenario.kind, Kind::Qos0) {
            QoS::AtMostOnce
        } else {
            QoS::AtLeastOnce
        },
        inflight: scenario.inflight,
        batch: 16,
        rate: scenario.rate,
        window: None,
        warmup: Duration::from_secs(2),
        duration: Duration::from_secs(seconds),
    }
}

async fn run_mosquitto(dir: &std::path::Path, scenario: &Scenario, seconds: u64) -> Sample {
    let broker = Mosquitto::start(dir, scenario.tuned_mosquitto).expect("mosquitto starts");
    let counters = Arc::new(Counters::default());
    let mut load = load(
        scenario,
        broker.addr,
        broker.devices(scenario.devices, properties(scenario)),
        seconds,
    );
    // The baselines of docs/PERFORMANCE.md (perf-baselines B1, B2, B4): QoS 1 ingest has no
    // subscriber; QoS 0 is counted at a QoS 0 subscriber; paced latency is measured while Mosquitto
    // forwards every message to a QoS 1 subscriber, as the hub routes every message to an endpoint.
    let subscriber_qos = match scenario.kind {
        Kind::Qos1 => None,
        Kind::Qos0 => {
            load.window = Some(2000);
            Some(QoS::AtMostOnce)
        }
        Kind::Paced => Some(QoS::AtLeastOnce),
    };
    let subscriber = match subscriber_qos {
        Some(qos) => Some(
            loadgen::subscriber(broker.addr, qos, Arc::clone(&counters))
                .await
                .expect("subscriber"),
        ),
        None => None,
    };
    let outcome = loadgen::run(&load, Arc::clone(&counters))
        .await
        .expect("mosquitto run");
    if let Some(s) = subscriber {
        s.abort();
    }
    sample(scenario.kind, &outcome, None)
}

async fn run_hub(dir: &std::path::Path, scenario: &Scenario, seconds: u64) -> Sample {
    let hub = Arc::new(
        Hub::start(dir, scenario.devices, scenario.routed)
            .await
            .expect("hub starts"),
    );
    let counters = Arc::new(Counters::default());
    let devices = hub.devices(scenario.devices, properties(scenario));
    let load = load(scenario, hub.addr, devices, seconds);
    let watcher = {
        let hub = Arc::clone(&hub);
        let (warmup, duration) = (load.warmup, load.duration);
        tokio::spawn(async move {
            tokio::time::sleep(warmup).await;
            let (before, queued_before) = (hub.committed(), hub.queued().await);
            tokio::time::sleep(duration).await;
            let (after, queued_after) = (hub.committed(), hub.queued().await);
            let queued = queued_before.zip(queued_after).map(|(b, a)| a.saturating_sub(b));
            (after - before, queued)
        })
    };
    let outcome = loadgen::run(&load, Arc::clone(&counters)).await.expect("hub run");
    let (committed, queued) = match watcher.await {
        Ok((committed, queued)) => (Some(committed), queued),
        Err(_) => (None, None),
    };
    let mut result = sample(scenario.kind, &outcome, committed);
    if let Some(queued) = queued {
        result.queued_rate = queued as f64 / load.duration.as_secs_f64();
    }
    drop(Arc::into_inner(hub));
    result
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

fn main() {
    let runs: usize = std::env::var("RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let seconds: u64 = std::env::var("SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6);
    let only = std::env::var("ONLY").unwrap_or_default();
    let scenarios: Vec<&Scenario> = SCENARIOS
        .iter()
        .filter(|s| s.name.contains(only.as_str()))
        .collect();
    let dir = tempfile::tempdir().expect("temp dir");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut results: Vec<(Vec<Sample>, Vec<Sample>)> =
        scenarios.iter().map(|_| (Vec::new(), Vec::new())).collect();
    for run in 0..runs {
        for (i, scenario) in scenarios.iter().enumerate() {
            let m = runtime.block_on(run_mosquitto(dir.path(), scenario, seconds));
            let h = runtime.block_on(run_hub(dir.path(), scenario, seconds));
            eprintln!(
                "run {run} {}: mosquitto {:.0}/s p99 {:.2} ms | hub {:.0}/s p99 {:.2} ms, queued {:.0}/s",
                scenario.name, m.rate, m.p99_ms, h.rate, h.p99_ms, h.queued_rate
            );
            results[i].0.push(m);
            results[i].1.push(h);
        }
    }
    println!(
        "Medians of {runs} interleaved runs of {seconds} s each (after 2 s warm-up); 200-byte JSON payloads.\n"
    );
    println!(
        "| scenario | Mosquitto msg/s | hub msg/s | hub ÷ Mosquitto | Mosquitto p50 / p99 ms | hub p50 / p99 ms | hub p99 ÷ Mosquitto p99 |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (scenario, (m, h)) in scenarios.iter().zip(&results) {
        let (mr, hr) = (
            median(m.iter().map(|s| s.rate).collect()),
            median(h.iter().map(|s| s.rate).collect()),
        );
        let (m50, m99) = (
            median(m.iter().map(|s| s.p50_ms).collect()),
            median(m.iter().map(|s| s.p99_ms).collect()),
        );
        let (h50, h99) = (
            median(h.iter().map(|s| s.p50_ms).collect()),
            median(h.iter().map(|s| s.p99_ms).collect()),
        );
        let latency = |p50: f64, p99: f64| {
            if matches!(scenario.kind, Kind::Qos0) {
                "–".to_owned()
            } else {
                format!("{p50:.2} / {p99:.2}")
            }
        };
        let latency_ratio = if matches!(scenario.kind, Kind::Qos0) {
            "–".to_owned()
        } else {
            format!("{:.2}", h99 / m99.max(0.001))
        };
        println!(
            "| {} | {:.0} | {:.0} | {:.2} | {} | {} | {} |",
            scenario.name,
            mr,
            hr,
            hr / mr.max(1.0),
            latency(m50, m99),
            latency(h50, h99),
            latency_ratio
        );
    }
    println!();
    for (scenario, (_, h)) in scenarios.iter().zip(&results) {
        if scenario.routed {
            println!(
                "- {}: messages that reached the queue in the same window, median {:.0}/s.",
                scenario.name,
                median(h.iter().map(|s| s.queued_rate).collect())
            );
        }
    }
}

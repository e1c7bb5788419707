//! The simulator's own CPU while it drives the local hub: `DEVICES` devices over MQTT/TLS with
//! QoS 1 at `RATE` msg/s for `SECONDS`, the hub in this process on its own runtime. CPU is read per
//! thread from `/proc/self/task/*/stat`: the simulator's runtime threads are named `sim-worker`,
//! everything else (the hub, its journal, this harness) is the rest of the process.
//!
//! `cargo bench -p device-sim --bench fleet`; `RUNS` (default 3), `DEVICES` (100), `RATE` (20000),
//! `SECONDS` (10). Prints medians.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    clippy::print_stderr
)]

use std::net::TcpListener;
use std::time::{Duration, Instant};

use device_sim::config::SimConfig;
use hub::config::{HubConfig, PolicyConfig, Right};
use hub::serve::Listeners;
use iothub_protocol::sas::SharedAccessKey;
use secrecy::SecretString;
use service_kit::Shutdown;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// CPU seconds of this process's threads, split into (named `sim-worker`, the others).
fn cpu_seconds() -> (f64, f64) {
    let ticks: f64 = std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0);
    let (mut sim, mut rest) = (0.0, 0.0);
    for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let name = &stat[open + 1..close];
        let fields: Vec<&str> = stat[close + 2..].split(' ').collect();
        // After the name: state is field 3, utime 14 and stime 15 (1-based over the whole line).
        let used = (fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap()) / ticks;
        if name.starts_with("sim-worker") {
            sim += used;
        } else {
            rest += used;
        }
    }
    (sim, rest)
}

struct Hub {
    mqtt_tls: u16,
    https: u16,
    ca_file: std::path::PathBuf,
    key: SharedAccessKey,
    shutdown: Shutdown,
    thread: std::thread::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

fn start_hub() -> Hub {
    let dir = tempfile::tempdir().unwrap();
    let bytes: Vec<u8> = (0..32).map(|_| fastrand::u8(..)).collect();
    let key = SharedAccessKey::from_bytes(&bytes).unwrap();
    let config = HubConfig {
        hub_name: "benchhub".to_owned(),
        host_names: vec!["localhost".to_owned()],
        data_dir: dir.path().join("data"),
        policies: vec![PolicyConfig {
            name: "iothubowner".to_owned(),
            primary_key: Some(SecretString::from(key.expose_secret().to_owned())),
            secondary_key: None,
            rights: vec![
                Right::RegistryRead,
                Right::RegistryWrite,
                Right::ServiceConnect,
                Right::DeviceConnect,
            ],
        }],
        ..HubConfig::default()
    };
    let bind = || {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.set_nonblocking(true).unwrap();
        l
    };
    let listeners = Listeners {
        mqtt_tls: Some(bind()),
        mqtt_tcp: None,
        https: Some(bind()),
        http: None,
        admin: None,
    };
    let mqtt_tls = listeners.mqtt_tls.as_ref().unwrap().local_addr().unwrap().port();
    let https = listeners.https.as_ref().unwrap().local_addr().unwrap().port();
    std::fs::create_dir_all(&config.data_dir).unwrap();
    let ca_file = hub::tls::server_identity(&config).unwrap().ca_file.unwrap();
    let shutdown = Shutdown::new();
    let hub_shutdown = shutdown.clone();
    let thread = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .thread_name("hub-worker")
            .enable_all()
            .build()
            .unwrap();
        runtime
            .block_on(hub::serve::run(config, listeners, hub_shutdown))
            .unwrap();
    });
    Hub {
        mqtt_tls,
        https,
        ca_file,
        key,
        shutdown,
        thread,
        _dir: dir,
    }
}

fn main() {
    let runs: usize = env_or("RUNS", 3);
    let devices: u64 = env_or("DEVICES", 100);
    let rate: f64 = env_or("RATE", 20_000.0);
    let seconds: u64 = env_or("SECONDS", 10);
    let mut sim_cores = Vec::new();
    let mut rest_cores = Vec::new();
    let mut achieved = Vec::new();
    for _ in 0..runs {
        let hub = start_hub();
        let config = SimConfig {
            service_connection_string: SecretString::from(format!(
                "HostName=localhost;SharedAccessKeyName=iothubowner;SharedAccessKey={}",
                hub.key.expose_secret()
            )),
            devices,
            connect_host: Some("localhost".to_owned()),
            mqtt_port: hub.mqtt_tls,
            https_port: hub.https,
            ca_file: Some(hub.ca_file.clone()),
            rate: Some(rate),
            duration_secs: Some(seconds),
            seed: Some(1),
            ..SimConfig::default()
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("sim-worker")
            .enable_all()
            .build()
            .unwrap();
        let prepared = device_sim::run::prepare(config).unwrap();
        let (sim0, rest0) = cpu_seconds();
        let started = Instant::now();
        let report = runtime
            .block_on(device_sim::run::run(prepared, None, Shutdown::new()))
            .unwrap();
        let wall = started.elapsed().as_secs_f64();
        let (sim1, rest1) = cpu_seconds();
        eprintln!(
            "run: {} acked in {wall:.1}s ({:.0}/s), sim {:.2} cores, rest {:.2} cores",
            report.acked,
            report.achieved_rate,
            (sim1 - sim0) / wall,
            (rest1 - rest0) / wall
        );
        sim_cores.push((sim1 - sim0) / wall);
        rest_cores.push((rest1 - rest0) / wall);
        achieved.push(report.achieved_rate);
        drop(runtime);
        hub.shutdown.trigger();
        hub.thread.join().unwrap();
        std::thread::sleep(Duration::from_millis(200));
    }
    let (sim, rest, rate_done) = (median(sim_cores), median(rest_cores), median(achieved));
    println!(
        "| devices | target msg/s | acked msg/s | simulator cores | hub + harness cores | simulator ÷ 0.5-core goal |"
    );
    println!("|---|---|---|---|---|---|");
    println!(
        "| {devices} | {rate:.0} | {rate_done:.0} | {sim:.2} | {rest:.2} | {:.2}× |",
        sim / 0.5
    );
}

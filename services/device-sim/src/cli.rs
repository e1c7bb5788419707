//! The `device-sim` command line. `run` takes its settings from `--config`, then `DEVICE_SIM_*`
//! variables (the sidecar's way), then flags. Exit codes: 0 done; 64 bad configuration, scenario or
//! connection string (nothing was sent); 1 when devices stopped on an error (e.g. refused
//! credentials) or messages failed.

// A command line talks to the terminal.
#![allow(clippy::print_stderr, clippy::print_stdout)]

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use service_kit::config::{ProcessEnv, Sources};
use service_kit::{EXIT_CONFIG, Shutdown};

use crate::config::SimConfig;
use crate::run::{self, RunError};
use crate::stats::Report;

/// Environment variable prefix of the settings.
pub const ENV_PREFIX: &str = "DEVICE_SIM";

/// Simulated IoT devices for Azure IoT Hub and the local hub.
#[derive(Debug, Parser)]
#[command(name = "device-sim", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a fleet until its duration or message count, or until stopped (SIGTERM/Ctrl-C).
    Run(Box<RunArgs>),
}

#[derive(Debug, Args)]
struct RunArgs {
    /// Configuration file (YAML or JSON).
    #[arg(long, short, env = "DEVICE_SIM_CONFIG")]
    config: Option<PathBuf>,
    /// Override a setting: `--set mqtt_port=8884` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
    /// One device's connection string.
    #[arg(long)]
    connection_string: Option<String>,
    /// A file of device connection strings, one per line.
    #[arg(long)]
    connection_strings_file: Option<PathBuf>,
    /// A service connection string: register `--devices` devices through the registry API.
    #[arg(long)]
    service_connection_string: Option<String>,
    /// Devices to simulate (with a service connection string).
    #[arg(long)]
    devices: Option<u64>,
    /// Device ids, `{n}` or `{n:04}` for the number.
    #[arg(long)]
    id_pattern: Option<String>,
    /// `mqtt`, `mqtt-ws` or `https`.
    #[arg(long)]
    transport: Option<String>,
    /// Connect here instead of the connection string's host.
    #[arg(long)]
    connect_host: Option<String>,
    /// MQTT/TLS port.
    #[arg(long)]
    mqtt_port: Option<u16>,
    /// HTTPS and WebSocket port.
    #[arg(long)]
    https_port: Option<u16>,
    /// CA certificate (PEM) to trust, e.g. the local hub's (`hub cert`).
    #[arg(long)]
    ca_file: Option<PathBuf>,
    /// Total messages per second for the fleet (also sets the interval: devices / rate).
    #[arg(long)]
    rate: Option<f64>,
    /// Time between one device's messages: `500ms`, `1s`, `2m`.
    #[arg(long, value_parser = parse_duration)]
    interval: Option<std::time::Duration>,
    /// Stop after: `30s`, `10m`, `1h`.
    #[arg(long, value_parser = parse_duration)]
    duration: Option<std::time::Duration>,
    /// Messages per device, then stop.
    #[arg(long)]
    messages: Option<u64>,
    /// A scenario template file.
    #[arg(long)]
    scenario: Option<PathBuf>,
    /// Seed for reproducible runs.
    #[arg(long)]
    seed: Option<u64>,
    /// Write the summary as JSON here.
    #[arg(long)]
    report: Option<PathBuf>,
}

/// `500ms`, `30s`, `2m`, `1h` (a bare number is seconds).
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 500ms, 30s, 2m or 1h"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "" | "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => return Err(format!("{text:?}: the unit must be ms, s, m or h")),
    };
    std::time::Duration::try_from_secs_f64(seconds).map_err(|_| format!("{text:?} is out of range"))
}

impl RunArgs {
    /// The flags as `key=value` overrides, after `--set`.
    fn overrides(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = Vec::new();
        let mut put = |key: &str, value: Option<String>| {
            if let Some(value) = value {
                out.push((key.to_owned(), value));
            }
        };
        let path = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string());
        put("connection_string", self.connection_string.clone());
        put("connection_strings_file", path(&self.connection_strings_file));
        put(
            "service_connection_string",
            self.service_connection_string.clone(),
        );
        put("devices", self.devices.map(|v| v.to_string()));
        put("id_pattern", self.id_pattern.clone());
        put("transport", self.transport.clone());
        put("connect_host", self.connect_host.clone());
        put("mqtt_port", self.mqtt_port.map(|v| v.to_string()));
        put("https_port", self.https_port.map(|v| v.to_string()));
        put("ca_file", path(&self.ca_file));
        put("rate", self.rate.map(|v| v.to_string()));
        put(
            "interval_ms",
            self.interval.map(|d| d.as_millis().max(1).to_string()),
        );
        put(
            "duration_secs",
            self.duration.map(|d| d.as_secs().max(1).to_string()),
        );
        put("messages", self.messages.map(|v| v.to_string()));
        put("scenario", path(&self.scenario));
        put("seed", self.seed.map(|v| v.to_string()));
        put("report", path(&self.report));
        out
    }
}

/// Parses the process arguments and runs the command.
pub fn main() -> ExitCode {
    let cli: Cli = match service_kit::cli::parse_args() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    match cli.command {
        Command::Run(args) => run_command(&args),
    }
}

/// Loads the configuration: defaults, `file`, `DEVICE_SIM_*` variables, `overrides`.
pub fn load_config(file: Option<&Path>, overrides: &[(String, String)]) -> anyhow::Result<SimConfig> {
    let (config, ignored): (SimConfig, _) = service_kit::config::load(&Sources {
        prefix: ENV_PREFIX,
        file,
        env: &ProcessEnv,
        overrides,
    })?;
    for name in ignored {
        tracing::debug!(variable = %name, "environment variable names no setting; ignored");
    }
    Ok(config)
}

fn run_command(args: &RunArgs) -> ExitCode {
    let mut overrides = match service_kit::cli::overrides(&args.overrides) {
        Ok(overrides) => overrides,
        Err(error) => {
            eprintln!("device-sim: {error}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    overrides.extend(args.overrides());
    let prepared = load_config(args.config.as_deref(), &overrides)
        .and_then(|config| run::prepare(config).context("invalid configuration"));
    let prepared = match prepared {
        Ok(prepared) => prepared,
        Err(error) => {
            eprintln!("device-sim: {error:#}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let _telemetry = match service_kit::telemetry::init(prepared.telemetry(), "device-sim") {
        Ok(guard) => guard,
        Err(error) => {
            eprintln!("device-sim: {error}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("device-sim: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        let admin = prepared.bind_admin()?;
        let shutdown = Shutdown::new();
        shutdown.on_signals()?;
        run::run(prepared, admin, shutdown).await
    });
    match result {
        Ok(report) => {
            print_summary(&report);
            if report.device_errors.is_empty() && report.failed.values().all(|n| *n == 0) {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(RunError::Config(error)) => {
            eprintln!("device-sim: {error}");
            ExitCode::from(EXIT_CONFIG)
        }
        Err(error) => {
            eprintln!("device-sim: {error}");
            ExitCode::FAILURE
        }
    }
}

fn print_summary(report: &Report) {
    let failed: u64 = report.failed.values().sum();
    println!(
        "devices {}  duration {:.1}s  sent {}  acked {}  failed {}  rate {:.0} msg/s",
        report.devices, report.duration_secs, report.sent, report.acked, failed, report.achieved_rate
    );
    println!(
        "ack latency ms: p50 {:.2}  p95 {:.2}  p99 {:.2}  max {:.2}",
        report.ack_latency_ms.p50,
        report.ack_latency_ms.p95,
        report.ack_latency_ms.p99,
        report.ack_latency_ms.max
    );
    for (reason, count) in &report.failed {
        println!("failed ({reason}): {count}");
    }
    for (device, error) in &report.device_errors {
        println!("device {device} stopped: {error}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms").unwrap().as_millis(), 500);
        assert_eq!(parse_duration("30s").unwrap().as_secs(), 30);
        assert_eq!(parse_duration("2m").unwrap().as_secs(), 120);
        assert_eq!(parse_duration("1h").unwrap().as_secs(), 3600);
        assert_eq!(parse_duration("5").unwrap().as_secs(), 5);
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("-1s").is_err());
    }
}

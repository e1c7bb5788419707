//! A whole run: check the configuration (before anything is sent), find or register the devices,
//! start one task per device spread over the first interval, report progress, and stop on the
//! duration, the message count or the shutdown signal, flushing what is in flight.

use std::collections::BTreeMap;
use std::io::IsTerminal as _;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use iothub_protocol::connection_string::{DeviceConnectionString, DeviceCredential};
use service_kit::config::ConfigError;
use service_kit::{Metrics, Readiness, Shutdown};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::{Fleet, SimConfig, Transport};
use crate::device::{DeviceEnd, DeviceSettings, Pacer};
use crate::registry::Registry;
use crate::scenario::Scenario;
use crate::stats::{Report, Stats};

/// Why a run could not start or ended badly.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A setting, the scenario or a connection string is unusable (exit 64); nothing was sent.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Devices could not be registered.
    #[error("registering devices: {0}")]
    Registry(String),
    /// The admin server could not start.
    #[error("admin server: {0}")]
    Admin(#[from] std::io::Error),
}

/// Everything checked and built before the first connection.
#[derive(Debug)]
pub struct Prepared {
    config: SimConfig,
    fleet: Fleet,
    scenario: Scenario,
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl Prepared {
    /// The logging settings.
    pub fn telemetry(&self) -> &service_kit::telemetry::TelemetryConfig {
        &self.config.telemetry
    }

    /// Binds the admin listener, if one is configured.
    pub fn bind_admin(&self) -> std::io::Result<Option<TcpListener>> {
        match self.config.admin {
            Some(addr) => {
                let listener = TcpListener::bind(addr)?;
                listener.set_nonblocking(true)?;
                Ok(Some(listener))
            }
            None => Ok(None),
        }
    }
}

/// Checks the whole configuration and loads the scenario; never connects.
pub fn prepare(config: SimConfig) -> Result<Prepared, ConfigError> {
    let fleet = config.fleet()?;
    let scenario = match &config.scenario {
        Some(path) => Scenario::from_file(path).map_err(|e| ConfigError::new(format!("scenario: {e}")))?,
        None => Scenario::tutorial(),
    };
    let tls = if config.plaintext {
        let host = config.connect_host.clone().unwrap_or_else(|| fleet_host(&fleet));
        if !is_loopback(&host) {
            return Err(ConfigError::new(format!(
                "plaintext: only to a loopback hub, not {host:?}"
            )));
        }
        None
    } else {
        Some(
            service_kit::tls::client_config(config.ca_file.as_deref())
                .map_err(|e| ConfigError::new(e.to_string()))?,
        )
    };
    Ok(Prepared {
        config,
        fleet,
        scenario,
        tls,
    })
}

fn fleet_host(fleet: &Fleet) -> String {
    match fleet {
        Fleet::Devices(devices) => devices
            .first()
            .map_or_else(String::new, |d| d.connect_host().to_owned()),
        Fleet::Registered { service, .. } => service.host_name().to_owned(),
    }
}

fn is_loopback(host: &str) -> bool {
    host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Runs the fleet until it is done or `shutdown` fires; returns the closing report.
pub async fn run(
    prepared: Prepared,
    admin: Option<TcpListener>,
    shutdown: Shutdown,
) -> Result<Report, RunError> {
    let Prepared {
        config,
        fleet,
        scenario,
        tls,
    } = prepared;
    let metrics = Metrics::new("device-sim");
    let stats = Stats::new(Some(&metrics));
    let readiness = Readiness::default();
    let connected_check = readiness.check("devices");
    let admin = match admin {
        Some(listener) => Some(tokio::spawn(service_kit::admin::serve(
            listener,
            readiness.clone(),
            metrics.clone(),
            &shutdown,
            Duration::from_secs(config.grace_period_secs),
        )?)),
        None => None,
    };
    let devices = devices(&config, fleet, tls.as_ref(), &shutdown).await?;
    let https_client = match config.transport {
        Transport::Https => Some(
            crate::https::client(config.ca_file.as_deref())
                .map_err(|e| RunError::Config(ConfigError::new(e.to_string())))?,
        ),
        Transport::Mqtt | Transport::MqttWs => None,
    };
    let settings = Arc::new(DeviceSettings {
        https_client,
        connect_host: config.connect_host.clone(),
        mqtt_port: config.mqtt_port,
        https_port: config.https_port,
        transport: config.transport,
        tls,
        qos: config.qos,
        max_in_flight: config.max_in_flight,
        token_ttl: Duration::from_secs(config.token_ttl_secs),
        timeout: Duration::from_secs(config.timeout_secs),
        interval: config.interval(devices.len()),
        jitter: config.jitter,
        messages: config.messages,
        grace: Duration::from_secs(config.grace_period_secs),
        pacer: Pacer::new(config.rate),
        stats: stats.clone(),
    });
    let stop = CancellationToken::new();
    let seed = config.seed.unwrap_or_else(|| fastrand::u64(..));
    let mut tasks = JoinSet::new();
    let count = devices.len();
    let started = Instant::now();
    for (index, device) in devices.into_iter().enumerate() {
        let device_scenario = scenario.device(device.device_id(), index as u64, seed);
        let settings = Arc::clone(&settings);
        // Spread the first messages (and the connects) over one interval.
        let start_at = started + settings.interval.mul_f64(index as f64 / count.max(1) as f64);
        let id = device.device_id().to_owned();
        let stop = stop.child_token();
        tasks.spawn(async move {
            let end = match settings.transport {
                Transport::Https => {
                    crate::https_device::run(device, device_scenario, settings, start_at, stop).await
                }
                Transport::Mqtt | Transport::MqttWs => {
                    crate::mqtt::run(device, device_scenario, settings, start_at, stop).await
                }
            };
            (id, end)
        });
    }
    let ends = supervise(
        &mut tasks,
        &stats,
        count,
        &config,
        &stop,
        &shutdown,
        &connected_check,
    )
    .await;
    let report = stats.report(count, ends);
    if let Some(path) = &config.report {
        let json = serde_json::to_vec_pretty(&report).unwrap_or_default();
        if let Err(e) = std::fs::write(path, json) {
            tracing::error!(path = %path.display(), error = %e, "could not write the report");
        }
    }
    shutdown.trigger();
    if let Some(admin) = admin {
        let _ = admin.await;
    }
    Ok(report)
}

/// Waits for the devices: prints progress, stops them on the duration or the shutdown signal, and
/// collects the ones that failed for good.
async fn supervise(
    tasks: &mut JoinSet<(String, DeviceEnd)>,
    stats: &Stats,
    count: usize,
    config: &SimConfig,
    stop: &CancellationToken,
    shutdown: &Shutdown,
    connected: &service_kit::ReadinessCheck,
) -> BTreeMap<String, String> {
    let deadline = config
        .duration_secs
        .map(|s| tokio::time::Instant::now() + Duration::from_secs(s));
    let progress = std::io::stderr().is_terminal();
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    let mut last = (Instant::now(), 0u64);
    let mut failed = BTreeMap::new();
    loop {
        tokio::select! {
            joined = tasks.join_next() => match joined {
                Some(Ok((id, DeviceEnd::Failed(reason)))) => { failed.insert(id, reason); }
                Some(_) => {}
                None => break,
            },
            () = sleep_until(deadline) => stop.cancel(),
            () = shutdown.wait() => stop.cancel(),
            _ = ticker.tick() => {
                let up = stats.connected_now();
                if up > 0 {
                    connected.ready();
                } else {
                    connected.not_ready("no device connected");
                }
                if progress {
                    let acked = stats.acked_count();
                    let rate = (acked - last.1) as f64 / last.0.elapsed().as_secs_f64().max(0.001);
                    last = (Instant::now(), acked);
                    #[allow(clippy::print_stderr)]
                    {
                        eprint!("\r{}", stats.progress_line(count, rate));
                    }
                }
            }
        }
    }
    if progress {
        #[allow(clippy::print_stderr)]
        {
            eprintln!();
        }
    }
    failed
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// The devices' connection strings: as given, or registered through the registry API.
async fn devices(
    config: &SimConfig,
    fleet: Fleet,
    tls: Option<&Arc<rustls::ClientConfig>>,
    shutdown: &Shutdown,
) -> Result<Vec<DeviceConnectionString>, RunError> {
    let (service, ids) = match fleet {
        Fleet::Devices(devices) => return Ok(devices),
        Fleet::Registered { service, ids } => (service, ids),
    };
    let host = config
        .connect_host
        .clone()
        .unwrap_or_else(|| service.host_name().to_owned());
    let scheme = if tls.is_some() { "https" } else { "http" };
    let endpoint = url::Url::parse(&format!("{scheme}://{host}:{}", config.https_port))
        .map_err(|e| RunError::Config(ConfigError::new(format!("connect_host: {e}"))))?;
    let registry = Arc::new(
        Registry::new((*service).clone(), Some(endpoint), config.ca_file.as_deref())
            .map_err(|e| RunError::Registry(e.to_string()))?,
    );
    let mut devices = Vec::with_capacity(ids.len());
    // 16 registrations at a time.
    for chunk in ids.chunks(16) {
        if shutdown.is_triggered() {
            break;
        }
        let mut set = JoinSet::new();
        for id in chunk {
            let (registry, id) = (Arc::clone(&registry), id.clone());
            set.spawn(async move { (id.clone(), registry.ensure_device(&id).await) });
        }
        let mut keyed: Vec<_> = set.join_all().await;
        keyed.sort_by(|a, b| a.0.cmp(&b.0));
        for (id, key) in keyed {
            let key = key.map_err(|e| RunError::Registry(format!("{id}: {e}")))?;
            let device =
                DeviceConnectionString::new(service.host_name(), id, DeviceCredential::SharedAccessKey(key))
                    .map_err(|e| RunError::Registry(e.to_string()))?;
            devices.push(device);
        }
    }
    devices.sort_by(|a, b| a.device_id().cmp(b.device_id()));
    Ok(devices)
}

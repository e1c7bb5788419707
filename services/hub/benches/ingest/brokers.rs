//! The two systems measured: Mosquitto (a separate process, as packaged by Debian) and the hub
//! (in-process, the real `serve::run`, durable commits to its events stream).

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime};

use hub::config::{HubConfig, SyncMode};
use hub::registry::{DeviceRequest, Registry};
use iothub_protocol::sas::{ResourceUri, SasToken, SharedAccessKey, expiry_after};
use service_kit::Shutdown;

use crate::loadgen::Device;

pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

fn wait_for(addr: SocketAddr) {
    for _ in 0..200 {
        if std::net::TcpStream::connect(addr).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// A running Mosquitto; killed on drop.
pub(crate) struct Mosquitto {
    child: Child,
    pub(crate) addr: SocketAddr,
}

impl Mosquitto {
    /// `tuned`: TCP_NODELAY and large in-flight/queue limits (the latency baseline); otherwise stock.
    pub(crate) fn start(dir: &Path, tuned: bool) -> std::io::Result<Mosquitto> {
        let port = free_port();
        let conf = dir.join(if tuned {
            "mosq-tuned.conf"
        } else {
            "mosq-stock.conf"
        });
        let mut text = format!("listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n");
        if tuned {
            text.push_str("set_tcp_nodelay true\nmax_inflight_messages 1000\nmax_queued_messages 1000000\n");
        }
        std::fs::write(&conf, text)?;
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        wait_for(addr);
        Ok(Mosquitto { child, addr })
    }

    pub(crate) fn devices(&self, count: usize, properties: &str) -> Vec<Device> {
        (0..count)
            .map(|i| Device {
                client_id: format!("dev{i}"),
                username: None,
                password: None,
                topic: format!("devices/dev{i}/messages/events/{properties}"),
            })
            .collect()
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The queue the routed scenarios send `level="critical"` messages to.
pub(crate) const CRITICAL_QUEUE: &str = "critical";

fn queue_connection(data_dir: &Path) -> String {
    format!("sqlite://{}", data_dir.join("queues.db").display())
}

/// The tutorial's critical route: `level="critical"` to an embedded SQLite queue, fallback on.
fn write_routing(data_dir: &Path) -> anyhow::Result<PathBuf> {
    let routing = serde_json::json!({
        "endpoints": {"serviceBusQueues": [{
            "name": "CriticalQueue",
            "connectionString": queue_connection(data_dir),
            "entityPath": CRITICAL_QUEUE,
        }]},
        "routes": [{
            "name": "critical", "source": "DeviceMessages", "condition": "level=\"critical\"",
            "endpointNames": ["CriticalQueue"], "isEnabled": true,
        }],
        "fallbackRoute": {
            "name": "$fallback", "source": "DeviceMessages", "condition": "true",
            "endpointNames": ["events"], "isEnabled": true,
        },
    });
    let path = data_dir.join("routing.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&routing)?)?;
    Ok(path)
}

/// The hub running in this process on its own runtime; shut down on drop.
pub(crate) struct Hub {
    pub(crate) addr: SocketAddr,
    pub(crate) data_dir: PathBuf,
    routed: bool,
    keys: Vec<(String, SharedAccessKey)>,
    shutdown: Shutdown,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Hub {
    /// `routed`: with [`write_routing`]'s routing; otherwise everything goes to `events`.
    pub(crate) async fn start(dir: &Path, devices: usize, routed: bool) -> anyhow::Result<Hub> {
        let data_dir = dir.join(format!("hub-{}", free_port()));
        std::fs::create_dir_all(&data_dir)?;
        let mut keys = Vec::new();
        {
            let registry = Registry::open(&data_dir.join("registry.db"))?;
            for i in 0..devices {
                let id = format!("dev{i}");
                let (device, _) = registry.create_or_update(&id, DeviceRequest::default(), None)?;
                let key = device
                    .authentication
                    .symmetric_key
                    .primary_key
                    .unwrap_or_default();
                keys.push((id, SharedAccessKey::from_base64(&key)?));
            }
        }
        let mut config = HubConfig {
            data_dir: data_dir.clone(),
            ..HubConfig::default()
        };
        config.listeners.mqtt_tls = None;
        config.listeners.https = None;
        config.listeners.admin = None;
        config.listeners.mqtt_tcp = Some("127.0.0.1:0".parse()?);
        // `HUB_SYNC=normal` measures commits without fsync (durable across kill -9, not power loss).
        config.events.sync = match std::env::var("HUB_SYNC").as_deref() {
            Ok("normal") => SyncMode::Normal,
            _ => SyncMode::Full,
        };
        config.limits.max_inflight_per_connection = 1024;
        if routed {
            config.routing.file = Some(write_routing(&data_dir)?);
            // As on Azure, the hub sends to a queue that exists; it does not create it.
            let client = queue::QueueClient::connect(&queue_connection(&data_dir)).await?;
            client
                .create_queue(CRITICAL_QUEUE, &queue::QueueOptions::default())
                .await?;
            client.close().await;
        }
        let listeners = hub::serve::Listeners::bind(&config)?;
        let addr = listeners
            .mqtt_tcp
            .as_ref()
            .map(|l| l.local_addr())
            .transpose()?
            .ok_or_else(|| anyhow::anyhow!("no listener"))?;
        let shutdown = Shutdown::new();
        let stop = shutdown.clone();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build();
            if let Ok(runtime) = runtime
                && let Err(error) = runtime.block_on(hub::serve::run(config, listeners, stop))
            {
                eprintln!("hub stopped: {error:#}");
            }
        });
        wait_for(addr);
        Ok(Hub {
            addr,
            data_dir,
            routed,
            keys,
            shutdown,
            thread: Some(thread),
        })
    }

    pub(crate) fn devices(&self, count: usize, properties: &str) -> Vec<Device> {
        let expiry = expiry_after(SystemTime::now(), Duration::from_secs(3600));
        self.keys
            .iter()
            .take(count)
            .map(|(id, key)| {
                let token =
                    SasToken::generate(&ResourceUri::device("localhost", id.clone()), key, None, expiry);
                Device {
                    client_id: id.clone(),
                    username: Some(format!("localhost/{id}/?api-version=2021-04-12")),
                    password: Some(token.expose_secret()),
                    topic: format!("devices/{id}/messages/events/{properties}"),
                }
            })
            .collect()
    }

    /// Messages in the critical queue (routed hubs), or `None`.
    pub(crate) async fn queued(&self) -> Option<u64> {
        if !self.routed {
            return None;
        }
        let client = queue::QueueClient::connect(&queue_connection(&self.data_dir))
            .await
            .ok()?;
        let critical = client.queue(CRITICAL_QUEUE).await.ok()?;
        critical.len().await.ok()
    }

    /// Events committed so far.
    pub(crate) fn committed(&self) -> u64 {
        hub::events::EventsReader::open(&self.data_dir.join("events.db"))
            .and_then(|r| r.last_position())
            .unwrap_or(0)
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        self.shutdown.trigger();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

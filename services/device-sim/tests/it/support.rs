//! The local hub for the simulator's tests: in this process on its own runtime thread (random
//! loopback ports, a generated development CA written to a file the simulator trusts), or as the
//! `hub` binary for tests that kill it. Messages are read back from the hub's events store.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use device_sim::config::SimConfig;
use device_sim::stats::Report;
use hub::config::{HubConfig, PolicyConfig, Right};
use hub::serve::Listeners;
use iothub_protocol::Message;
use iothub_protocol::sas::SharedAccessKey;
use secrecy::SecretString;
use service_kit::Shutdown;

pub(crate) const OWNER: &str = "iothubowner";

pub(crate) fn random_key() -> SharedAccessKey {
    let bytes: Vec<u8> = (0..32).map(|_| fastrand::u8(..)).collect();
    SharedAccessKey::from_bytes(&bytes).unwrap()
}

fn loopback() -> TcpListener {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    listener
}

/// The hub, running in this process.
pub(crate) struct TestHub {
    pub(crate) mqtt_tls: SocketAddr,
    pub(crate) https: SocketAddr,
    pub(crate) ca_file: PathBuf,
    pub(crate) owner_key: SharedAccessKey,
    data_dir: PathBuf,
    shutdown: Shutdown,
    thread: Option<std::thread::JoinHandle<anyhow::Result<()>>>,
    _dir: tempfile::TempDir,
}

impl TestHub {
    pub(crate) fn start() -> TestHub {
        let dir = tempfile::tempdir().unwrap();
        let owner_key = random_key();
        let config = HubConfig {
            hub_name: "testhub".to_owned(),
            host_names: vec!["localhost".to_owned()],
            data_dir: dir.path().join("data"),
            policies: vec![PolicyConfig {
                name: OWNER.to_owned(),
                primary_key: Some(SecretString::from(owner_key.expose_secret().to_owned())),
                secondary_key: None,
                rights: vec![
                    Right::RegistryRead,
                    Right::RegistryWrite,
                    Right::ServiceConnect,
                    Right::DeviceConnect,
                ],
            }],
            grace_period_secs: 1,
            ..HubConfig::default()
        };
        config.validate().unwrap();
        let listeners = Listeners {
            mqtt_tls: Some(loopback()),
            mqtt_tcp: None,
            https: Some(loopback()),
            http: None,
            admin: None,
        };
        let addr = |l: &Option<TcpListener>| l.as_ref().unwrap().local_addr().unwrap();
        let (mqtt_tls, https) = (addr(&listeners.mqtt_tls), addr(&listeners.https));
        std::fs::create_dir_all(&config.data_dir).unwrap();
        let ca_file = hub::tls::server_identity(&config).unwrap().ca_file.unwrap();
        let data_dir = config.data_dir.clone();
        let shutdown = Shutdown::new();
        let hub_shutdown = shutdown.clone();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?;
            runtime.block_on(hub::serve::run(config, listeners, hub_shutdown))
        });
        TestHub {
            mqtt_tls,
            https,
            ca_file,
            owner_key,
            data_dir,
            shutdown,
            thread: Some(thread),
            _dir: dir,
        }
    }

    /// The `iothubowner` connection string.
    pub(crate) fn service_connection_string(&self) -> String {
        format!(
            "HostName=localhost;SharedAccessKeyName={OWNER};SharedAccessKey={}",
            self.owner_key.expose_secret()
        )
    }

    /// A simulator configuration for `devices` registered devices over MQTT/TLS to this hub.
    pub(crate) fn sim_config(&self, devices: u64) -> SimConfig {
        SimConfig {
            service_connection_string: SecretString::from(self.service_connection_string()),
            devices,
            connect_host: Some("localhost".to_owned()),
            mqtt_port: self.mqtt_tls.port(),
            https_port: self.https.port(),
            ca_file: Some(self.ca_file.clone()),
            grace_period_secs: 5,
            ..SimConfig::default()
        }
    }

    /// Every message in the built-in events stream, oldest first.
    pub(crate) fn events(&self) -> Vec<(String, Message)> {
        read_events(&self.data_dir)
    }
}

impl Drop for TestHub {
    fn drop(&mut self) {
        self.shutdown.trigger();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The events stored in a hub's data directory.
pub(crate) fn read_events(data_dir: &Path) -> Vec<(String, Message)> {
    let reader = hub::events::EventsReader::open(&data_dir.join("events.db")).unwrap();
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let rows = reader.read_after(after, 10_000, None).unwrap();
        let Some(last) = rows.last() else {
            return out;
        };
        after = last.seq;
        for row in rows {
            let message: Message = serde_json::from_slice(&row.payload).unwrap();
            out.push((row.device_id, message));
        }
    }
}

/// Runs the simulator in this process to the end.
pub(crate) async fn simulate(config: SimConfig) -> Report {
    let prepared = device_sim::run::prepare(config).unwrap();
    device_sim::run::run(prepared, None, Shutdown::new())
        .await
        .unwrap()
}

/// The `hub` binary, built once per test run (cargo prints where it is).
pub(crate) fn hub_binary() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        let output = Command::new(cargo)
            .args(["build", "-p", "hub", "--bin", "hub", "--message-format=json"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stderr(Stdio::inherit())
            .output()
            .unwrap();
        assert!(output.status.success(), "building the hub failed");
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter(|v| v["reason"] == "compiler-artifact" && v["target"]["name"] == "hub")
            .find_map(|v| v["executable"].as_str().map(PathBuf::from))
            .expect("cargo names the hub executable")
    })
}

/// The `hub` binary on fixed loopback ports (so a restart keeps them), plain TCP MQTT.
pub(crate) struct HubProcess {
    child: Option<Child>,
    config: PathBuf,
    pub(crate) data_dir: PathBuf,
    pub(crate) mqtt_tcp: SocketAddr,
    pub(crate) http: SocketAddr,
    pub(crate) owner_key: SharedAccessKey,
    _dir: tempfile::TempDir,
}

fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

impl HubProcess {
    pub(crate) fn start() -> HubProcess {
        let dir = tempfile::tempdir().unwrap();
        let owner_key = random_key();
        let (mqtt_tcp, http) = (free_port(), free_port());
        let data_dir = dir.path().join("data");
        let config = dir.path().join("hub.yaml");
        std::fs::write(
            &config,
            format!(
                "hub_name: testhub\nhost_names: [localhost]\ndata_dir: {}\nlisteners:\n  mqtt_tls: null\n  mqtt_tcp: {mqtt_tcp}\n  https: null\n  http: {http}\n  admin: null\npolicies:\n  - name: {OWNER}\n    primary_key: \"{}\"\n    rights: [registryRead, registryWrite, serviceConnect, deviceConnect]\ngrace_period_secs: 1\n",
                data_dir.display(),
                owner_key.expose_secret()
            ),
        )
        .unwrap();
        let mut hub = HubProcess {
            child: None,
            config,
            data_dir,
            mqtt_tcp,
            http,
            owner_key,
            _dir: dir,
        };
        hub.spawn();
        hub
    }

    fn spawn(&mut self) {
        let log = std::fs::File::create(self._dir.path().join("hub.log")).unwrap();
        let child = Command::new(hub_binary())
            .args(["serve", "-c"])
            .arg(&self.config)
            .env_remove("HUB_CONFIG")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        // Listening once the HTTP port answers.
        for _ in 0..200 {
            if std::net::TcpStream::connect(self.http).is_ok()
                && std::net::TcpStream::connect(self.mqtt_tcp).is_ok()
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "the hub did not start: {}",
            std::fs::read_to_string(self._dir.path().join("hub.log")).unwrap_or_default()
        );
    }

    /// SIGKILL, no chance to flush or close anything.
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    pub(crate) fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// A simulator configuration for `devices` devices over plain MQTT to this hub.
    pub(crate) fn sim_config(&self, devices: u64) -> SimConfig {
        SimConfig {
            service_connection_string: SecretString::from(format!(
                "HostName=localhost;SharedAccessKeyName={OWNER};SharedAccessKey={}",
                self.owner_key.expose_secret()
            )),
            devices,
            connect_host: Some("127.0.0.1".to_owned()),
            mqtt_port: self.mqtt_tcp.port(),
            https_port: self.http.port(),
            plaintext: true,
            grace_period_secs: 5,
            ..SimConfig::default()
        }
    }
}

impl Drop for HubProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

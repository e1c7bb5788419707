//! The `hub` binary as a child process, for tests that must kill it: a YAML configuration in a
//! temporary directory, every listener on port 0, the real addresses read back from its JSON
//! `listening` log lines.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use iothub_protocol::sas::SharedAccessKey;
use serde_json::Value;

use super::{OWNER, within};

/// A running `hub serve`.
#[derive(Debug)]
pub(crate) struct HubProcess {
    child: Child,
    /// MQTT over plain TCP.
    pub(crate) mqtt_tcp: SocketAddr,
    /// The plain HTTP API.
    pub(crate) http: SocketAddr,
    log: PathBuf,
}

/// Writes a configuration for a hub with its data in `dir`, plain-text listeners on random loopback
/// ports, and the `iothubowner` policy keyed with `owner_key`.
pub(crate) fn write_config(dir: &Path, owner_key: &SharedAccessKey) -> PathBuf {
    let path = dir.join("hub.yaml");
    let config = format!(
        r#"hub_name: testhub
host_names: [localhost]
data_dir: {data}
listeners:
  mqtt_tls: null
  mqtt_tcp: 127.0.0.1:0
  https: null
  http: 127.0.0.1:0
  admin: null
policies:
  - name: {OWNER}
    primary_key: "{key}"
    rights: [registryRead, registryWrite, serviceConnect, deviceConnect]
grace_period_secs: 1
telemetry:
  log_format: json
"#,
        data = dir.join("data").display(),
        key = owner_key.expose_secret(),
    );
    std::fs::write(&path, config).unwrap();
    path
}

impl HubProcess {
    /// Starts `hub serve -c config`, logging to `log`, and waits until it listens.
    pub(crate) async fn start(config: &Path, log: &Path) -> HubProcess {
        let log_file = std::fs::File::create(log).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_hub"))
            .args(["serve", "-c"])
            .arg(config)
            .env_remove("HUB_CONFIG")
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file)
            .spawn()
            .unwrap();
        let listening = within("the hub binary to listen", async {
            loop {
                if let Some(status) = child.try_wait().unwrap() {
                    panic!(
                        "the hub exited with {status}:\n{}",
                        std::fs::read_to_string(log).unwrap()
                    );
                }
                let text = std::fs::read_to_string(log).unwrap();
                let found = listening(&text);
                if let (Some(mqtt_tcp), Some(http)) = (found("mqtt_tcp"), found("http")) {
                    return (mqtt_tcp, http);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        HubProcess {
            child,
            mqtt_tcp: listening.0,
            http: listening.1,
            log: log.to_owned(),
        }
    }

    /// SIGKILL: no draining, no flushing, nothing.
    pub(crate) fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Its log so far.
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// Finds the address of a listener in the JSON log lines.
fn listening(log: &str) -> impl Fn(&str) -> Option<SocketAddr> + '_ {
    move |listener| {
        log.lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .find_map(|line| {
                (line["message"] == "listening" && line["listener"] == listener)
                    .then(|| line["address"].as_str()?.parse().ok())
                    .flatten()
            })
    }
}

impl Drop for HubProcess {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

//! The `hub` binary as a child process, for tests that must kill it: a YAML configuration in a
//! temporary directory, every listener on port 0, the real addresses read back from its JSON
//! `listening` log lines.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use iothub_protocol::sas::SharedAccessKey;
use rumqttc::MqttOptions;
use serde_json::Value;

use super::{Answer, Device, HOST, OWNER, device_from, plain_http_client, within};

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
    write_config_with(dir, owner_key, "")
}

/// [`write_config`] with `extra` YAML (top-level keys, e.g. a `routing:` section) appended.
pub(crate) fn write_config_with(dir: &Path, owner_key: &SharedAccessKey, extra: &str) -> PathBuf {
    let path = dir.join("hub.yaml");
    let mut config = format!(
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
    config.push_str(extra);
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

    /// Its JSON log lines so far.
    pub(crate) fn log_lines(&self) -> Vec<Value> {
        self.log()
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    }

    /// Its process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGHUP (reload the routing).
    pub(crate) fn hangup(&self) {
        let status = Command::new("kill")
            .args(["-HUP", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -HUP {}", self.child.id());
    }

    /// `http://host:port` of its API.
    pub(crate) fn base_url(&self) -> String {
        format!("http://{}", self.http)
    }

    /// Creates device `id` through the registry API with the owner's token.
    pub(crate) async fn create_device(&self, id: &str, owner_token: &str) -> Device {
        let url = format!(
            "{}/devices/{id}?api-version={}",
            self.base_url(),
            iothub_protocol::API_VERSION
        );
        let response = within(
            "the registry to answer",
            plain_http_client()
                .put(url)
                .header("authorization", owner_token)
                .json(&serde_json::json!({"deviceId": id}))
                .send(),
        )
        .await
        .unwrap();
        let etag = response
            .headers()
            .get("etag")
            .map(|v| v.to_str().unwrap().trim_matches('"').to_owned());
        let answer = Answer {
            status: response.status(),
            etag,
            body: response.json().await.unwrap(),
        };
        assert_eq!(answer.status, 200, "{}", answer.body);
        device_from(&answer)
    }

    /// MQTT options for `device` over plain TCP.
    pub(crate) fn mqtt_options(&self, device: &Device) -> MqttOptions {
        let mut options = MqttOptions::new(device.id.clone(), "127.0.0.1", self.mqtt_tcp.port());
        options.set_credentials(
            format!(
                "{HOST}/{}/?api-version={}",
                device.id,
                iothub_protocol::API_VERSION
            ),
            device.token(),
        );
        options.set_keep_alive(Duration::from_secs(60));
        options
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

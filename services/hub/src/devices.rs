//! `hub device ...`: the registry API from the command line, printing IoT Hub's device JSON.

use anyhow::{Context as _, bail};
use clap::Subcommand;
use iothub_protocol::connection_string::{DeviceConnectionString, DeviceCredential};
use iothub_protocol::sas::SharedAccessKey;
use serde_json::{Value, json};

use crate::client::{ClientArgs, HubClient};
use crate::config::Right;
use crate::registry::Device;

/// Device commands.
#[derive(Debug, Subcommand)]
pub enum DeviceCommand {
    /// Create a device (keys are generated unless given).
    Create {
        /// Device id.
        id: String,
        /// Create it disabled.
        #[arg(long)]
        disabled: bool,
        /// Base64 primary key.
        #[arg(long)]
        primary_key: Option<String>,
        /// Base64 secondary key.
        #[arg(long)]
        secondary_key: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Enable or disable a device.
    Update {
        /// Device id.
        id: String,
        /// `enabled` or `disabled`.
        #[arg(long)]
        status: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// List devices.
    List {
        /// At most this many.
        #[arg(long, default_value_t = 1000)]
        top: usize,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Show one device.
    Show {
        /// Device id.
        id: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Delete a device.
    Delete {
        /// Device id.
        id: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Print a device's connection string.
    ConnectionString {
        /// Device id.
        id: String,
        /// Add `GatewayHostName=<host>` (how the Azure SDKs reach a local hub).
        #[arg(long)]
        gateway_host_name: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
}

fn path(id: &str) -> String {
    format!(
        "/devices/{}",
        percent_encoding::utf8_percent_encode(id, percent_encoding::NON_ALPHANUMERIC)
    )
}

async fn call(client: &HubClient, request: reqwest::RequestBuilder) -> anyhow::Result<Option<Value>> {
    let response = request
        .header("authorization", client.authorization())
        .send()
        .await
        .with_context(|| format!("cannot reach the hub at {}", client.url))?;
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    if !status.is_success() {
        let message = serde_json::from_str::<Value>(&body)
            .ok()
            .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_owned))
            .unwrap_or(body);
        bail!("the hub answered {status}: {message}");
    }
    Ok(if body.is_empty() {
        None
    } else {
        Some(serde_json::from_str(&body).context("the hub's answer")?)
    })
}

fn print(out: &mut impl std::io::Write, value: &Value) -> anyhow::Result<()> {
    writeln!(out, "{}", serde_json::to_string_pretty(value)?)?;
    Ok(())
}

/// Runs a device command, printing to `out`.
pub async fn run(command: DeviceCommand, out: &mut impl std::io::Write) -> anyhow::Result<()> {
    match command {
        DeviceCommand::Create {
            id,
            disabled,
            primary_key,
            secondary_key,
            client,
        } => {
            let client = HubClient::connect(&client, Right::RegistryWrite)?;
            let body = json!({
                "deviceId": id,
                "status": if disabled { "disabled" } else { "enabled" },
                "authentication": {"type": "sas", "symmetricKey": {"primaryKey": primary_key, "secondaryKey": secondary_key}},
                "capabilities": {"iotEdge": false},
            });
            let device = call(&client, client.http.put(client.endpoint(&path(&id))).json(&body)).await?;
            print(out, &device.unwrap_or(Value::Null))
        }
        DeviceCommand::Update { id, status, client } => {
            anyhow::ensure!(
                status == "enabled" || status == "disabled",
                "--status is enabled or disabled"
            );
            let client = HubClient::connect(&client, Right::RegistryWrite)?;
            let body = json!({"deviceId": id, "status": status});
            let request = client
                .http
                .put(client.endpoint(&path(&id)))
                .header("if-match", "*")
                .json(&body);
            print(out, &call(&client, request).await?.unwrap_or(Value::Null))
        }
        DeviceCommand::List { top, client } => {
            let client = HubClient::connect(&client, Right::RegistryRead)?;
            let list = call(
                &client,
                client.http.get(client.endpoint(&format!("/devices?top={top}"))),
            )
            .await?;
            print(out, &list.unwrap_or(Value::Null))
        }
        DeviceCommand::Show { id, client } => {
            let client = HubClient::connect(&client, Right::RegistryRead)?;
            print(
                out,
                &call(&client, client.http.get(client.endpoint(&path(&id))))
                    .await?
                    .unwrap_or(Value::Null),
            )
        }
        DeviceCommand::Delete { id, client } => {
            let client = HubClient::connect(&client, Right::RegistryWrite)?;
            call(
                &client,
                client
                    .http
                    .delete(client.endpoint(&path(&id)))
                    .header("if-match", "*"),
            )
            .await?;
            Ok(())
        }
        DeviceCommand::ConnectionString {
            id,
            gateway_host_name,
            client,
        } => {
            let client = HubClient::connect(&client, Right::RegistryRead)?;
            let device = call(&client, client.http.get(client.endpoint(&path(&id))))
                .await?
                .unwrap_or(Value::Null);
            let device: Device = serde_json::from_value(device).context("the hub's device JSON")?;
            let key = device
                .authentication
                .symmetric_key
                .primary_key
                .context("the device has no primary key")?;
            let key = SharedAccessKey::from_base64(&key)?;
            let mut cs = DeviceConnectionString::new(
                client.credentials.host_name(),
                &id,
                DeviceCredential::SharedAccessKey(key),
            )?;
            if let Some(gateway) = gateway_host_name {
                cs = cs.with_gateway_host_name(gateway)?;
            }
            writeln!(out, "{}", cs.expose_secret())?;
            Ok(())
        }
    }
}

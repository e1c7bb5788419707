//! Azure IoT Hub's conventions, shared by the hub, its consumers and the device simulator: the
//! message model, MQTT usernames, topics and property bags, SAS tokens and connection strings,
//! HTTPS headers, blob records and `monitor-events` output.
//!
//! Every rule here comes from the project's `spec/iothub-wire.md`, which cites the SDK or service
//! source it was taken from; module docs say where this crate had to choose.
//!
//! | module | what |
//! |---|---|
//! | [`sas`] | parse, verify (constant-time, 5-minute skew) and generate SAS tokens; resource URIs |
//! | [`connection_string`] | device and shared-access-policy connection strings |
//! | [`mqtt`] | CONNECT username, publish/subscribe topics, property bags |
//! | [`https`] | device-to-cloud over HTTPS: path and headers |
//! | [`message`] | the message, its system properties and their names per endpoint |
//! | [`timestamp`] | `2019-05-10T06:06:32.7220000Z` |
//! | [`auth_method`] | the `iothub-connection-auth-method` JSON |
//! | [`storage_record`] | the blob endpoint's JSON-lines records |
//! | [`monitor`] | `az iot hub monitor-events` output |
//!
//! ```
//! use std::time::{Duration, SystemTime};
//! use iothub_protocol::connection_string::DeviceConnectionString;
//! use iothub_protocol::sas::SharedAccessKey;
//!
//! // The device simulator signs a token from its connection string...
//! let cs: DeviceConnectionString =
//!     "HostName=myhub.azure-devices.net;DeviceId=device1;SharedAccessKey=AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
//!         .parse()?;
//! let token = cs.sas_token(1_700_000_000).expect("a key-based connection string");
//! assert_eq!(token.resource_raw(), "myhub.azure-devices.net%2Fdevices%2Fdevice1");
//!
//! // ...and the hub checks it against the registry's key.
//! let key = SharedAccessKey::from_base64("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")?;
//! let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_699_999_000);
//! assert!(token.verify([&key], now).is_ok());
//! assert!(token.resource().grants("myhub.azure-devices.net", "device1", None));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! This crate does no IO and reads no clock unless asked ([`timestamp::Timestamp::now`]).

pub mod auth_method;
pub mod connection_string;
mod encoding;
pub mod https;
pub mod message;
pub mod monitor;
pub mod mqtt;
pub mod sas;
pub mod storage_record;
pub mod timestamp;

pub use message::{MAX_MESSAGE_SIZE, Message, MessageSource, SystemProperties, SystemProperty};
pub use timestamp::Timestamp;

/// The api-version the docs use for MQTT usernames and REST calls.
pub const API_VERSION: &str = "2021-04-12";

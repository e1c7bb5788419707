//! `device-sim`: simulated devices that talk to Azure IoT Hub or the local hub exactly as real
//! devices do (MQTT 3.1.1 over TLS or WebSockets, or HTTPS, with SAS tokens).
//!
//! - [`config`]: settings and where the devices come from; [`run`]: a whole run;
//! - [`scenario`]: what each device sends (the tutorial's device or a template file);
//! - [`mqtt`], [`https_device`] (over [`https`]): one device's loop per transport;
//! - [`device`]: what devices share (settings, the rate cap, throttling slowdown);
//! - [`registry`]: devices created through the hub's registry API;
//! - [`stats`]: counters, latency, progress and the closing report; [`cli`]: the command line.

pub mod cli;
pub mod config;
pub mod device;
pub mod https;
pub mod https_device;
pub mod message;
pub mod mqtt;
pub mod registry;
pub mod run;
pub mod scenario;
pub mod stats;

//! `storage-archiver`: finds the blobs IoT Hub routing writes, indexes every record once, and
//! answers queries over them in the routing query language.
//!
//! - [`discovery`]: lists the container from per-group cursors and records blob versions (receipts);
//! - [`notifications`]: push mode, BlobCreated events from a queue record blob versions at once;
//! - [`indexer`]: claims a blob (a lease shared through the index), streams its [`records`] into the
//!   [`store`] in batches, marks it indexed or failed;
//! - [`api`]: the query API, conditions evaluated with `iothub-query`;
//! - [`serve`], [`cli`], [`config`], [`metrics`]: wiring, command line, settings, Prometheus.

pub mod api;
pub mod cli;
pub mod config;
pub mod discovery;
pub mod indexer;
pub mod metrics;
pub mod notifications;
pub mod records;
pub mod serve;
pub mod store;

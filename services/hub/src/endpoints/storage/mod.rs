//! The storage (blob) endpoint writer: how a batch of routed messages becomes one blob — its name
//! ([`naming`]), its bytes ([`encode`]) — and how it is written to a local directory or to Azure
//! Blob Storage / Azurite ([`sink`]), like IoT Hub's "Azure Storage as a routing endpoint".
//!
//! Batching (when to flush, `batchFrequencyInSeconds`, `maxChunkSizeInBytes`) and retries belong
//! to the dispatcher; this module writes one batch per call and classifies failures.
//!
//! ```no_run
//! # async fn example(messages: Vec<iothub_protocol::Message>) -> Result<(), hub::endpoints::storage::SinkError> {
//! use hub::endpoints::storage::{Encoding, StorageSink, StorageSinkConfig};
//! use iothub_protocol::Timestamp;
//!
//! let config = StorageSinkConfig::new(
//!     "UseDevelopmentStorage=true",                          // or file://data/blobs, or an Azure one
//!     "storagecontainer",
//!     "ContosoTestHub",
//!     "{iothub}/{partition}/{YYYY}/{MM}/{DD}/{HH}/{mm}",
//!     Encoding::Json,
//! )?;                                                        // kind() == Invalid: a config error
//! let sink = StorageSink::connect(config).await?;            // creates the container if missing
//! let opened = Timestamp::now();                             // when the batch took its first message
//! let written = sink.write_blob(&messages, opened).await?;   // e.g. ContosoTestHub/0/2018/10/30/10/56
//! sink.probe().await?;                                       // health: Err(e) → e.kind() == Unreachable, …
//! # let _ = written; Ok(()) }
//! ```
//!
//! | module | what |
//! |---|---|
//! | [`naming`] | `fileNameFormat` tokens, batch time, collision suffixes |
//! | [`encode`] | JSON lines, Avro, AvroDeflate with IoT Hub's schema |
//! | [`connection`] | `file://…`, Azure Storage and `UseDevelopmentStorage=true` connection strings ([`blob_store`]) |
//! | [`sink`] | [`StorageSink`]: whole blobs, never overwritten, container creation, probe |
//! | [`error`] | [`SinkError`] and its bounded [`SinkErrorKind`] |

mod azure;
pub mod connection;
pub mod encode;
pub mod error;
pub mod naming;
pub mod sink;

pub use connection::{ConnectionStringError, StorageConnection};
pub use encode::{AVRO_SCHEMA, Encoding, encode_blob, estimated_record_size};
pub use error::{SinkError, SinkErrorKind};
pub use naming::{DEFAULT_FILE_NAME_FORMAT, FileNameFormat, FileNameFormatError};
pub use sink::{BlobInfo, BlobWritten, PARTITION, StorageSink, StorageSinkConfig};

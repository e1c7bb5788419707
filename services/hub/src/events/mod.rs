//! The built-in `events` endpoint: a durable, retained stream of device messages in
//! `<data_dir>/events.db`, appended with group commits and read by position.

mod journal;
mod store;

pub use journal::{AppendError, Journal, JournalConfig};
pub use store::{EventRow, EventsReader, StoreError};

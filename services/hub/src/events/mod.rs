//! The hub's journal (`<data_dir>/events.db`): the built-in `events` stream, durable and retained,
//! and the outbox of every custom endpoint, all appended with group commits by one writer.

mod journal;
mod outbox;
pub mod payload;
mod store;

pub use journal::{AppendError, Copy, Destination, Journal, JournalConfig};
pub use outbox::{OutboxReader, OutboxRow, OutboxSignal, Outboxes, PendingBlob};
pub use store::{EventRow, EventsReader, StoreError};

//! Delivery to a storage endpoint: outbox rows gathered into batches, one blob per batch, written
//! when the batch is `batchFrequencyInSeconds` old or `maxChunkSizeInBytes` big, whichever first.
//!
//! Exactly once per record, across crashes: before a blob is written its batch (first and last row,
//! opening time) is recorded in the journal. After a crash that batch is written again from the same
//! rows with the same time, so it encodes to the same bytes; the writer never overwrites a name and
//! recognises a blob that already holds those bytes. Only then are the rows settled.

use std::sync::Arc;
use std::time::{Duration, Instant};

use iothub_protocol::{Message, Timestamp};

use super::{Backoff, DispatchContext};
use crate::endpoints::storage::{Encoding, StorageSink, StorageSinkConfig, estimated_record_size};
use crate::events::{OutboxReader, OutboxRow, PendingBlob};
use crate::routing::{StorageEncoding, StorageSettings};

const READ_BATCH: usize = 1000;

/// A batch being gathered.
struct Batch {
    rows: Vec<OutboxRow>,
    messages: Vec<Message>,
    bytes: usize,
    opened: Timestamp,
    opened_at: Instant,
}

/// Delivers a storage endpoint's outbox until shutdown.
pub async fn run_storage_dispatcher(
    context: DispatchContext,
    connection_string: String,
    settings: StorageSettings,
    hub_name: String,
) {
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(60));
    context.publish_state();
    let sink = loop {
        let config = StorageSinkConfig::new(
            &connection_string,
            &settings.container_name,
            &hub_name,
            &settings.file_name_format,
            storage_encoding(settings.encoding),
        );
        match config.map_err(|e| e.to_string()) {
            Ok(config) => match StorageSink::connect(config).await {
                Ok(sink) => break sink,
                Err(error) => context.failed(&error.to_string()),
            },
            Err(error) => context.failed(&error),
        }
        if !context.pause(backoff.next_delay()).await {
            return;
        }
    };
    match sink.probe().await {
        Ok(()) => context.health.success(),
        Err(error) => context.failed(&error.to_string()),
    }
    let mut reader: Option<OutboxReader> = None;
    let cursor = match replay_pending(&context, &sink, &mut reader, &mut backoff).await {
        Some(cursor) => cursor,
        None => return,
    };
    gather_and_write(&context, &sink, &settings, reader, cursor, &mut backoff).await;
}

/// Writes again every batch recorded but not settled before the last stop; returns the cursor.
async fn replay_pending(
    context: &DispatchContext,
    sink: &StorageSink,
    reader: &mut Option<OutboxReader>,
    backoff: &mut Backoff,
) -> Option<u64> {
    let pending = loop {
        match pending_blobs(context, reader).await {
            Ok(pending) => break pending,
            Err(error) => {
                context.failed(&format!("reading pending blobs: {error}"));
                if !context.pause(backoff.next_delay()).await {
                    return None;
                }
            }
        }
    };
    let mut cursor = 0;
    for blob in pending {
        let rows = loop {
            match read_range(context, reader, blob.first_id, blob.last_id).await {
                Ok(rows) => break rows,
                Err(error) => {
                    context.failed(&format!("reading the outbox: {error}"));
                    if !context.pause(backoff.next_delay()).await {
                        return None;
                    }
                }
            }
        };
        let messages = decode(&rows);
        let opened = Timestamp::from_unix_millis(blob.opened_ms).unwrap_or_else(|_| Timestamp::now());
        tracing::info!(endpoint = %context.endpoint, batch = %blob.name, records = rows.len(), "writing a batch interrupted by the last stop");
        if !write_until_done(context, sink, &blob, &rows, &messages, opened, backoff).await {
            return None;
        }
        cursor = cursor.max(blob.last_id);
    }
    Some(cursor)
}

async fn gather_and_write(
    context: &DispatchContext,
    sink: &StorageSink,
    settings: &StorageSettings,
    mut reader: Option<OutboxReader>,
    mut cursor: u64,
    backoff: &mut Backoff,
) {
    let signal = context.journal.outboxes().signal(&context.endpoint);
    let mut newest = signal.newest.subscribe();
    let mut batch: Option<Batch> = None;
    let encoding = storage_encoding(settings.encoding);
    while !context.shutdown.is_triggered() {
        let _ = newest.borrow_and_update();
        let rows = match context.read(&mut reader, cursor, READ_BATCH).await {
            Ok(rows) => rows,
            Err(error) => {
                context.failed(&format!("reading the outbox: {error}"));
                if !context.pause(backoff.next_delay()).await {
                    return;
                }
                continue;
            }
        };
        let got_rows = !rows.is_empty();
        for row in rows {
            cursor = row.id;
            let Some(message) = decode_one(&row) else { continue };
            let size = estimated_record_size(&message, encoding);
            let open = batch.get_or_insert_with(|| Batch {
                rows: Vec::new(),
                messages: Vec::new(),
                bytes: 0,
                opened: Timestamp::now(),
                opened_at: Instant::now(),
            });
            open.rows.push(row);
            open.messages.push(message);
            open.bytes += size;
            if open.bytes as u64 >= settings.max_chunk_size_bytes {
                let full = batch.take();
                if let Some(full) = full
                    && !flush(context, sink, full, backoff).await
                {
                    return;
                }
            }
        }
        let due = batch.as_ref().map(|b| b.opened_at + settings.batch_frequency);
        if let Some(due) = due
            && Instant::now() >= due
        {
            if let Some(full) = batch.take()
                && !flush(context, sink, full, backoff).await
            {
                return;
            }
            continue;
        }
        if got_rows {
            continue;
        }
        let wait_until = due.map(tokio::time::Instant::from_std);
        tokio::select! {
            changed = newest.changed() => if changed.is_err() { return },
            () = async { match wait_until { Some(t) => tokio::time::sleep_until(t).await, None => std::future::pending().await } } => {}
            () = context.shutdown.wait() => return,
        }
    }
}

/// Records the batch, writes its blob (retrying until it is written) and settles its rows.
/// Returns false on shutdown.
async fn flush(context: &DispatchContext, sink: &StorageSink, batch: Batch, backoff: &mut Backoff) -> bool {
    let (Some(first), Some(last)) = (batch.rows.first(), batch.rows.last()) else {
        return true;
    };
    let blob = PendingBlob {
        name: format!("batch-{}-{}", first.id, last.id),
        first_id: first.id,
        last_id: last.id,
        opened_ms: batch.opened.unix_millis(),
    };
    loop {
        match context
            .journal
            .pend_blob(Arc::clone(&context.endpoint), blob.clone())
            .await
        {
            Ok(()) => break,
            Err(error) => {
                context.failed(&format!("recording a batch: {error}"));
                if !context.pause(backoff.next_delay()).await {
                    return false;
                }
            }
        }
    }
    write_until_done(
        context,
        sink,
        &blob,
        &batch.rows,
        &batch.messages,
        batch.opened,
        backoff,
    )
    .await
}

async fn write_until_done(
    context: &DispatchContext,
    sink: &StorageSink,
    blob: &PendingBlob,
    rows: &[OutboxRow],
    messages: &[Message],
    opened: Timestamp,
    backoff: &mut Backoff,
) -> bool {
    loop {
        match sink.write_blob(messages, opened).await {
            Ok(written) => {
                match context
                    .journal
                    .settle(
                        Arc::clone(&context.endpoint),
                        blob.last_id,
                        Some(blob.name.clone()),
                    )
                    .await
                {
                    Ok(()) => {
                        backoff.reset();
                        tracing::debug!(endpoint = %context.endpoint, blob = %written.name, records = written.records, "blob written");
                        context.delivered(rows.len(), rows);
                        return true;
                    }
                    Err(error) => {
                        // Written but not settled: written again (recognised, not duplicated) after a restart.
                        tracing::warn!(endpoint = %context.endpoint, %error, "could not settle a written blob");
                        return false;
                    }
                }
            }
            Err(error) => {
                context.failed(&error.to_string());
                if !context.pause(backoff.next_delay()).await {
                    return false;
                }
            }
        }
    }
}

/// The writer's encoding for a routing storage encoding.
pub fn storage_encoding(encoding: StorageEncoding) -> Encoding {
    match encoding {
        StorageEncoding::Avro => Encoding::Avro,
        StorageEncoding::AvroDeflate => Encoding::AvroDeflate,
        StorageEncoding::Json => Encoding::Json,
    }
}

fn decode_one(row: &OutboxRow) -> Option<Message> {
    match crate::events::payload::decode(&row.payload) {
        Ok(message) => Some(message),
        Err(error) => {
            tracing::error!(%error, id = row.id, "outbox row unreadable; skipped");
            None
        }
    }
}

fn decode(rows: &[OutboxRow]) -> Vec<Message> {
    rows.iter().filter_map(decode_one).collect()
}

async fn pending_blobs(
    context: &DispatchContext,
    reader: &mut Option<OutboxReader>,
) -> Result<Vec<PendingBlob>, String> {
    with_reader(context, reader, {
        let endpoint = Arc::clone(&context.endpoint);
        move |r| r.pending_blobs(&endpoint)
    })
    .await
}

async fn read_range(
    context: &DispatchContext,
    reader: &mut Option<OutboxReader>,
    first: u64,
    last: u64,
) -> Result<Vec<OutboxRow>, String> {
    with_reader(context, reader, {
        let endpoint = Arc::clone(&context.endpoint);
        move |r| r.read_range(&endpoint, first, last)
    })
    .await
}

async fn with_reader<T: Send + 'static>(
    context: &DispatchContext,
    reader: &mut Option<OutboxReader>,
    f: impl FnOnce(&OutboxReader) -> Result<T, crate::events::StoreError> + Send + 'static,
) -> Result<T, String> {
    let current = match reader.take() {
        Some(current) => current,
        None => OutboxReader::open(context.journal.path()).map_err(|e| e.to_string())?,
    };
    let (current, result) = tokio::task::spawn_blocking(move || {
        let result = f(&current);
        (current, result)
    })
    .await
    .map_err(|e| e.to_string())?;
    *reader = Some(current);
    result.map_err(|e| e.to_string())
}

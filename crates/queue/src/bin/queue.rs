//! `queue`: the operator's view of a queue on any backend — peek, length, dead letters, requeue.
//!
//! ```text
//! queue len          <connection> <queue>
//! queue peek         <connection> <queue> [--max N]
//! queue dead-letters <connection> <queue> [--max N]
//! queue requeue      <connection> <queue> [--max N]
//! queue send         <connection> <queue> <body> [--id ID] [--property key=value]...
//! queue create       <connection> <queue> [--lock-duration 60s] [--max-delivery-count 10]
//! ```
//! Exit codes: 0 done, 64 bad connection string or arguments, 69 queue missing, 1 anything else.

use std::io::Write as _;
use std::process::ExitCode;
use std::time::{Duration, UNIX_EPOCH};

use anyhow::Context as _;
use base64::Engine as _;
use clap::{Parser, Subcommand};
use queue::{Error, Message, PeekedMessage, QueueClient, QueueOptions};

#[derive(Debug, Parser)]
#[command(
    name = "queue",
    version,
    about = "Inspect and repair peek-lock queues (sqlite, Service Bus, AMQP 1.0)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Args)]
struct Target {
    /// Connection string: sqlite://path, amqp://user:pass@host:port, or Endpoint=sb://...
    connection: String,
    /// Queue name.
    queue: String,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Messages in the queue and in its dead-letter queue.
    Len(Target),
    /// Show messages at the head of the queue without locking them (JSON lines).
    Peek {
        #[command(flatten)]
        target: Target,
        #[arg(long, default_value_t = 10)]
        max: usize,
    },
    /// Show dead-lettered messages with their reasons (JSON lines).
    DeadLetters {
        #[command(flatten)]
        target: Target,
        #[arg(long, default_value_t = 10)]
        max: usize,
    },
    /// Move dead-lettered messages back to the queue (dead-letter properties removed).
    Requeue {
        #[command(flatten)]
        target: Target,
        #[arg(long, default_value_t = usize::MAX)]
        max: usize,
    },
    /// Send one message.
    Send {
        #[command(flatten)]
        target: Target,
        /// Message body (UTF-8).
        body: String,
        #[arg(long)]
        id: Option<String>,
        /// Application property, key=value; repeatable.
        #[arg(long = "property", value_parser = parse_property)]
        properties: Vec<(String, String)>,
    },
    /// Create a queue (sqlite; brokers' queues are declared with their own tools).
    Create {
        #[command(flatten)]
        target: Target,
        /// Lock duration, e.g. 30s, 5m.
        #[arg(long, default_value = "60s", value_parser = parse_duration)]
        lock_duration: Duration,
        #[arg(long, default_value_t = 10)]
        max_delivery_count: u32,
    },
}

fn parse_property(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| "expected key=value".to_owned())
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    let (number, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len()));
    let n: u64 = number
        .parse()
        .map_err(|_| "expected e.g. 30s, 500ms, 5m".to_owned())?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "" | "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        _ => Err("expected e.g. 30s, 500ms, 5m".to_owned()),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match run(cli.command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            let _ = writeln!(std::io::stderr(), "queue: {error:#}");
            match error.downcast_ref::<Error>() {
                Some(Error::ConnectionString { .. } | Error::InvalidQueueName { .. }) => ExitCode::from(64),
                Some(Error::QueueNotFound { .. }) => ExitCode::from(69),
                _ => ExitCode::FAILURE,
            }
        }
    }
}

async fn run(command: Command) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match command {
        Command::Len(t) => {
            let (_, q) = open(&t).await?;
            writeln!(out, "active {}", q.len().await?)?;
            writeln!(out, "dead-lettered {}", q.dead_letter_len().await?)?;
        }
        Command::Peek { target, max } => {
            let (_, q) = open(&target).await?;
            for m in q.peek(max).await? {
                writeln!(out, "{}", json(&m))?;
            }
        }
        Command::DeadLetters { target, max } => {
            let (client, _) = open(&target).await?;
            let dlq = client
                .queue(&queue::dead_letter_queue_name(&target.queue))
                .await?;
            for m in dlq.peek(max).await? {
                writeln!(out, "{}", json(&m))?;
            }
        }
        Command::Requeue { target, max } => {
            let (client, q) = open(&target).await?;
            let dlq = client
                .queue(&queue::dead_letter_queue_name(&target.queue))
                .await?;
            let mut moved = 0usize;
            while moved < max {
                let batch = dlq
                    .receive((max - moved).min(100), Duration::from_secs(2))
                    .await?;
                if batch.is_empty() {
                    break;
                }
                for m in batch {
                    let mut message = m.message.clone();
                    message.application_properties.remove(queue::DEAD_LETTER_REASON);
                    message
                        .application_properties
                        .remove(queue::DEAD_LETTER_DESCRIPTION);
                    // Send first, then complete: a crash in between duplicates, never loses.
                    q.send(message).await.context("sending back to the queue")?;
                    dlq.complete(&m.lock_token)
                        .await
                        .context("removing from the dead-letter queue")?;
                    moved += 1;
                }
            }
            writeln!(out, "requeued {moved}")?;
        }
        Command::Send {
            target,
            body,
            id,
            properties,
        } => {
            let (_, q) = open(&target).await?;
            let mut message = Message::new(body.into_bytes());
            message.message_id = id;
            message.application_properties.extend(properties);
            q.send(message).await?;
        }
        Command::Create {
            target,
            lock_duration,
            max_delivery_count,
        } => {
            let client = QueueClient::connect(&target.connection).await?;
            client
                .create_queue(
                    &target.queue,
                    &QueueOptions {
                        lock_duration,
                        max_delivery_count,
                    },
                )
                .await?;
            writeln!(out, "created {}", target.queue)?;
        }
    }
    Ok(())
}

async fn open(t: &Target) -> anyhow::Result<(QueueClient, std::sync::Arc<dyn queue::Queue>)> {
    let client = QueueClient::connect(&t.connection).await?;
    let q = client.queue(&t.queue).await?;
    Ok((client, q))
}

fn json(m: &PeekedMessage) -> serde_json::Value {
    let millis = |t: std::time::SystemTime| t.duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).ok();
    let body = match std::str::from_utf8(&m.message.body) {
        Ok(text) => serde_json::json!({ "text": text }),
        Err(_) => {
            serde_json::json!({ "base64": base64::engine::general_purpose::STANDARD.encode(&m.message.body) })
        }
    };
    serde_json::json!({
        "sequence_number": m.sequence_number,
        "message_id": m.message.message_id,
        "correlation_id": m.message.correlation_id,
        "content_type": m.message.content_type,
        "content_encoding": m.message.content_encoding,
        "enqueued_time_ms": m.enqueued_time.and_then(millis),
        "delivery_count": m.delivery_count,
        "locked_until_ms": m.locked_until.and_then(millis),
        "properties": m.message.application_properties,
        "body": body,
    })
}

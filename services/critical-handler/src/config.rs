//! `critical-handler serve` configuration: defaults → `--config` file (YAML or JSON) →
//! `CRITICAL_HANDLER_...` environment (`__` between nested keys) → `--set` overrides. Every field's
//! `///` line is its user documentation.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use secrecy::{ExposeSecret as _, SecretString};
use serde::{Deserialize, Serialize};
use service_kit::config::ConfigError;
use service_kit::telemetry::TelemetryConfig;

use crate::template::Preset;
use crate::ticket::{Severity, TicketSettings};
use crate::url_policy::UrlPolicy;

/// Default prefetch per handling slot. Receiving costs the queue about as much for one message as
/// for many, so the loop receives half the prefetch at a time ([`HandlerConfig::receive_batch`]);
/// with 4 per slot, 64 handlers receive 128 at a time and always have some waiting.
pub const DEFAULT_PREFETCH_PER_SLOT: usize = 4;

/// The smallest default prefetch. What is still prefetched when the loop receives must last while
/// the receive takes (on SQLite, a wait for the writer and a commit: a few milliseconds); with 4
/// per slot, 16 handlers at 12k tickets/s had 3 ms of work left and waited for messages.
pub const MIN_DEFAULT_PREFETCH: usize = 128;

/// The whole configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HandlerConfig {
    /// The queue to consume.
    pub queue: QueueSettings,
    /// The CRM's webhook.
    pub webhook: WebhookSettings,
    /// Messages handled at once (Functions' `maxConcurrentCalls`).
    pub concurrency: usize,
    /// Messages received ahead of a free handling slot. Every message held, prefetched or not, has
    /// its lock renewed, so prefetch never lets a lock expire; `null` = 4 × `concurrency`, at
    /// least 128.
    pub prefetch: Option<usize>,
    /// Longest time a message's lock is renewed while it is being handled (Functions'
    /// `maxAutoLockRenewalDuration`); after it the message is abandoned.
    pub max_lock_renewal_secs: u64,
    /// Retries of one message while its lock is held.
    pub retry: RetrySettings,
    /// Pause receiving while the webhook fails for everyone.
    pub circuit: CircuitSettings,
    /// What goes into a ticket.
    pub ticket: TicketLimits,
    /// Admin server (`/live`, `/ready`, `/metrics`); `null` turns it off.
    pub admin: Option<SocketAddr>,
    /// Logs and traces.
    pub telemetry: TelemetryConfig,
    /// Seconds allowed to finish in-flight messages on SIGTERM before abandoning them.
    pub grace_period_secs: u64,
}

/// Which queue, on which backend.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueueSettings {
    /// `sqlite://...`, `amqp://...` or a Service Bus connection string (its `EntityPath` names the
    /// queue when `name` is not set).
    #[serde(serialize_with = "service_kit::config::redacted")]
    pub connection_string: SecretString,
    /// The queue; default: the connection string's `EntityPath`, else `critical`.
    pub name: Option<String>,
    /// Longest wait of one receive call, in milliseconds (shutdown is noticed between calls).
    pub receive_wait_ms: u64,
}

/// The webhook and how requests to it are built.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookSettings {
    /// Where tickets are posted.
    pub url: String,
    /// Body preset: `generic`, `zendesk`, `servicenow`, `pagerduty` or `jira`.
    pub preset: Preset,
    /// A custom minijinja template file instead of the preset.
    pub template_file: Option<PathBuf>,
    /// Content type of a custom template's output (presets send `application/json`).
    pub content_type: Option<String>,
    /// Values the template reads as `vars.<name>` (PagerDuty `routing_key`, Jira `project_key`, ...).
    /// Treated as secrets: never logged.
    #[serde(serialize_with = "service_kit::config::redacted_map")]
    pub vars: BTreeMap<String, SecretString>,
    /// How the CRM authenticates us.
    pub auth: Auth,
    /// Standard Webhooks signing secret, `whsec_<base64>` (required).
    #[serde(serialize_with = "service_kit::config::redacted")]
    pub signing_secret: SecretString,
    /// Seconds before a request is given up as timed out.
    pub timeout_secs: u64,
    /// PEM file of CA certificates to trust instead of the public roots (a CRM with a private CA).
    pub ca_file: Option<PathBuf>,
    /// Allow plain `http://` to hosts other than loopback.
    pub allow_http: bool,
    /// Allow addresses in private, link-local and other non-public ranges (SSRF protection is off
    /// for them); a cluster-internal CRM needs this.
    pub allow_private_networks: bool,
}

/// How requests authenticate to the CRM. Secrets come from the file or, better, the environment
/// (`CRITICAL_HANDLER_WEBHOOK__AUTH__TOKEN`, e.g. from a Kubernetes secret).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum Auth {
    /// No authentication header (PagerDuty: the routing key is in the body).
    #[default]
    None,
    /// `Authorization: Bearer <token>`.
    Bearer {
        /// The token.
        #[serde(serialize_with = "service_kit::config::redacted")]
        token: SecretString,
    },
    /// `Authorization: Basic base64(<username>:<password>)` (Zendesk: `<email>/token` and the API token).
    Basic {
        /// The user name.
        username: String,
        /// The password or API token.
        #[serde(serialize_with = "service_kit::config::redacted")]
        password: SecretString,
    },
    /// Any header, e.g. `X-Api-Key`.
    Header {
        /// Header name.
        name: String,
        /// Header value.
        #[serde(serialize_with = "service_kit::config::redacted")]
        value: SecretString,
    },
}

/// Retry of one message while its lock is held.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetrySettings {
    /// Calls per delivery, the first included; after the last failure the message is abandoned so
    /// the queue redelivers it (and counts the delivery).
    pub attempts: u32,
    /// First backoff, in milliseconds; doubles each retry, with full jitter.
    pub base_delay_ms: u64,
    /// Largest backoff, in milliseconds.
    pub max_delay_ms: u64,
    /// Longest `Retry-After` honoured while holding the lock, in seconds; a longer one abandons.
    pub max_retry_after_secs: u64,
}

/// The circuit breaker on the webhook.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CircuitSettings {
    /// Consecutive failed calls (any message) that open the circuit.
    pub failure_threshold: u32,
    /// Seconds the circuit stays open before one probe call is let through.
    pub open_secs: u64,
    /// Longest open period, in seconds: each failed probe doubles the period up to this.
    pub max_open_secs: u64,
}

/// Bounds on what a ticket carries.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TicketLimits {
    /// Body bytes kept in a ticket; a longer body is cut and marked truncated.
    pub max_body_bytes: usize,
    /// Larger messages are dead-lettered (`MessageTooLarge`).
    pub max_message_bytes: usize,
    /// Severity when the message's `level` is not one of critical, error, warning, info.
    pub default_severity: Severity,
}

impl Default for HandlerConfig {
    fn default() -> Self {
        HandlerConfig {
            queue: QueueSettings::default(),
            webhook: WebhookSettings::default(),
            concurrency: 16,
            prefetch: None,
            max_lock_renewal_secs: 300,
            retry: RetrySettings::default(),
            circuit: CircuitSettings::default(),
            ticket: TicketLimits::default(),
            admin: Some(SocketAddr::from(([0, 0, 0, 0], 8080))),
            telemetry: TelemetryConfig::default(),
            grace_period_secs: 20,
        }
    }
}

impl Default for QueueSettings {
    fn default() -> Self {
        QueueSettings {
            connection_string: SecretString::from(""),
            name: None,
            receive_wait_ms: 1000,
        }
    }
}

impl Default for WebhookSettings {
    fn default() -> Self {
        WebhookSettings {
            url: String::new(),
            preset: Preset::Generic,
            template_file: None,
            content_type: None,
            vars: BTreeMap::new(),
            auth: Auth::None,
            signing_secret: SecretString::from(""),
            timeout_secs: 15,
            ca_file: None,
            allow_http: false,
            allow_private_networks: false,
        }
    }
}

impl Default for RetrySettings {
    fn default() -> Self {
        RetrySettings {
            attempts: 5,
            base_delay_ms: 500,
            max_delay_ms: 30_000,
            max_retry_after_secs: 120,
        }
    }
}

impl Default for CircuitSettings {
    fn default() -> Self {
        CircuitSettings {
            failure_threshold: 10,
            open_secs: 5,
            max_open_secs: 60,
        }
    }
}

impl Default for TicketLimits {
    fn default() -> Self {
        let defaults = TicketSettings::default();
        TicketLimits {
            max_body_bytes: defaults.max_body_bytes,
            max_message_bytes: defaults.max_message_bytes,
            default_severity: defaults.default_severity,
        }
    }
}

impl HandlerConfig {
    /// Checks what serde cannot: required settings, ranges, the URL policy. Every problem at once.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        let connection_string = self.queue.connection_string.expose_secret();
        if connection_string.trim().is_empty() {
            problems.push("queue.connection_string: required".to_owned());
        } else if let Err(e) = queue::ConnectionConfig::parse(connection_string) {
            problems.push(format!("queue.connection_string: {e}"));
        }
        if self.webhook.url.trim().is_empty() {
            problems.push("webhook.url: required".to_owned());
        } else {
            match url::Url::parse(&self.webhook.url) {
                Ok(url) => {
                    if let Err(e) = self.url_policy().check_url(&url) {
                        problems.push(format!("webhook.url: {e}"));
                    }
                }
                Err(e) => problems.push(format!("webhook.url: not a URL: {e}")),
            }
        }
        if let Err(e) = crate::signing::SigningSecret::parse(self.webhook.signing_secret.expose_secret()) {
            problems.push(format!("webhook.signing_secret: {e}"));
        }
        if self.concurrency == 0 || self.concurrency > 4096 {
            problems.push("concurrency: must be 1..=4096".to_owned());
        }
        if self.webhook.timeout_secs == 0 {
            problems.push("webhook.timeout_secs: must be at least 1".to_owned());
        }
        if self.retry.attempts == 0 {
            problems.push("retry.attempts: must be at least 1".to_owned());
        }
        if self.retry.base_delay_ms > self.retry.max_delay_ms {
            problems.push("retry.base_delay_ms: must not exceed retry.max_delay_ms".to_owned());
        }
        if self.circuit.failure_threshold == 0 {
            problems.push("circuit.failure_threshold: must be at least 1".to_owned());
        }
        if self.circuit.open_secs == 0 || self.circuit.open_secs > self.circuit.max_open_secs {
            problems.push("circuit.open_secs: must be 1..=circuit.max_open_secs".to_owned());
        }
        if self.ticket.max_body_bytes > self.ticket.max_message_bytes {
            problems.push("ticket.max_body_bytes: must not exceed ticket.max_message_bytes".to_owned());
        }
        if self.queue.receive_wait_ms == 0 {
            problems.push("queue.receive_wait_ms: must be at least 1".to_owned());
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::new(problems.join("; ")))
        }
    }

    /// The URL policy the webhook settings ask for.
    pub fn url_policy(&self) -> UrlPolicy {
        UrlPolicy {
            allow_http: self.webhook.allow_http,
            allow_private_networks: self.webhook.allow_private_networks,
        }
    }

    /// Messages received ahead of a free slot: `prefetch`, else 4 × `concurrency`, at least 128.
    pub fn prefetch(&self) -> usize {
        self.prefetch.unwrap_or_else(|| {
            self.concurrency
                .saturating_mul(DEFAULT_PREFETCH_PER_SLOT)
                .max(MIN_DEFAULT_PREFETCH)
        })
    }

    /// Messages held at once: handling slots plus prefetch.
    pub fn held_limit(&self) -> usize {
        self.concurrency.saturating_add(self.prefetch())
    }

    /// Free slots the receive loop gathers before receiving: half the prefetch, at least 1.
    pub fn receive_batch(&self) -> usize {
        (self.prefetch() / 2).max(1)
    }

    /// The ticket settings.
    pub fn ticket_settings(&self) -> TicketSettings {
        TicketSettings {
            max_body_bytes: self.ticket.max_body_bytes,
            max_message_bytes: self.ticket.max_message_bytes,
            default_severity: self.ticket.default_severity,
        }
    }

    /// The grace period.
    pub fn grace_period(&self) -> Duration {
        Duration::from_secs(self.grace_period_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefetch_is_four_per_slot_at_least_128_unless_set() {
        let mut config = HandlerConfig::default();
        assert_eq!(config.concurrency, 16);
        assert_eq!(config.prefetch(), 128);
        assert_eq!(config.held_limit(), 144);
        assert_eq!(config.receive_batch(), 64);
        config.concurrency = 64;
        assert_eq!(config.prefetch(), 256);
        config.prefetch = Some(0);
        assert_eq!((config.prefetch(), config.receive_batch()), (0, 1));
        config.prefetch = Some(4);
        assert_eq!(config.held_limit(), 68);
    }
}

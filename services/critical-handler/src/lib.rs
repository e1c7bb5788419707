//! `critical-handler`: takes critical messages off a peek-lock queue and turns each into exactly one
//! ticket in a CRM, through a webhook signed per Standard Webhooks and keyed by the message id.
//!
//! Pipeline, one module per stage:
//! - [`consumer`]: the receive loop (bounded by `concurrency` + `prefetch`, paused while the
//!   [`circuit`] is open) and each message's life: [`lock`] renewal, ticket, call, [`retry`], settle
//!   ([`completer`]: completions in batches);
//! - [`ticket`]: a received queue message → a [`ticket::Ticket`] (or a reason to dead-letter it);
//! - [`template`]: a ticket → the CRM's request body (presets `generic`, `zendesk`, `servicenow`,
//!   `pagerduty`, `jira`, or a custom minijinja template);
//! - [`webhook`]: one signed call ([`signing`]: Standard Webhooks) and what its answer means;
//! - [`url_policy`]: which webhook URLs and addresses may be called (https, no private networks, no
//!   redirects to other hosts);
//! - [`serve`]: wiring, the admin server and the queue connection; [`dlq`]: dead-letter tools;
//!   [`cli`]: the command line; [`config`]: settings; [`metrics`]: Prometheus.

pub mod circuit;
pub mod cli;
pub mod completer;
pub mod config;
pub mod consumer;
pub mod dlq;
pub mod lock;
pub mod metrics;
pub mod retry;
pub mod serve;
pub mod signing;
pub mod template;
pub mod ticket;
pub mod url_policy;
pub mod webhook;

//! The `critical-handler` command line: `serve`, the dead-letter tools (`dlq list|show|replay`) and
//! `secret` (a fresh signing secret). Exit codes: 64 for a bad command line or configuration.

// A command line talks to the terminal.
#![allow(clippy::print_stderr, clippy::print_stdout)]

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use service_kit::EXIT_CONFIG;
use service_kit::cli::ServeFailure;
use service_kit::config::{ProcessEnv, Sources};

use crate::config::HandlerConfig;
use crate::dlq::{self, Selection};
use crate::serve::{self, ServeError};
use crate::signing::SigningSecret;

/// Environment variable prefix of the settings.
pub const ENV_PREFIX: &str = "CRITICAL_HANDLER";

/// Queue → CRM tickets through a signed, idempotent webhook.
#[derive(Debug, Parser)]
#[command(name = "critical-handler", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Consume the queue and create tickets.
    Serve(ConfigArgs),
    /// Inspect and resubmit dead-lettered messages.
    Dlq {
        #[command(subcommand)]
        command: DlqCommand,
    },
    /// Print a new Standard Webhooks signing secret (`whsec_...`) to give to the CRM and to us.
    Secret,
}

#[derive(Debug, Args)]
struct ConfigArgs {
    /// Configuration file (YAML or JSON).
    #[arg(long, short, env = "CRITICAL_HANDLER_CONFIG")]
    config: Option<PathBuf>,
    /// Override a setting: `--set webhook.timeout_secs=5` (repeatable; applied last).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
}

#[derive(Debug, Subcommand)]
enum DlqCommand {
    /// List dead-lettered messages: message id, device, reason, description.
    List {
        #[command(flatten)]
        config: ConfigArgs,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        max: usize,
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show dead-lettered messages with this message id, whole (properties and body).
    Show {
        #[command(flatten)]
        config: ConfigArgs,
        /// The message id.
        message_id: String,
    },
    /// Send dead-lettered messages back to the queue (without their dead-letter reason) and
    /// remove them from the dead-letter queue.
    Replay {
        #[command(flatten)]
        config: ConfigArgs,
        /// Every dead-lettered message.
        #[arg(long, conflicts_with = "ids", required_unless_present = "ids")]
        all: bool,
        /// Only these message ids (repeatable).
        #[arg(long = "id", value_name = "MESSAGE_ID")]
        ids: Vec<String>,
    },
}

/// Parses the process arguments and runs the command.
pub fn main() -> ExitCode {
    let cli: Cli = match service_kit::cli::parse_args() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    match cli.command {
        Command::Serve(args) => serve_command(&args),
        Command::Secret => match SigningSecret::generate() {
            Ok(secret) => {
                println!("{secret}");
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("critical-handler: {error}");
                ExitCode::FAILURE
            }
        },
        Command::Dlq { command } => dlq_command(command),
    }
}

/// Loads the configuration: defaults, `file`, `CRITICAL_HANDLER_*` variables, `overrides`.
pub fn load_config(file: Option<&Path>, overrides: &[String]) -> anyhow::Result<HandlerConfig> {
    let overrides = service_kit::cli::overrides(overrides)?;
    let (config, ignored): (HandlerConfig, _) = service_kit::config::load(&Sources {
        prefix: ENV_PREFIX,
        file,
        env: &ProcessEnv,
        overrides: &overrides,
    })?;
    for name in ignored {
        tracing::debug!(variable = %name, "environment variable names no setting; ignored");
    }
    Ok(config)
}

fn serve_command(args: &ConfigArgs) -> ExitCode {
    let config = match load_config(args.config.as_deref(), &args.overrides)
        .and_then(|config| config.validate().map(|()| config).map_err(Into::into))
    {
        Ok(config) => config,
        Err(error) => {
            eprintln!("critical-handler: {error:#}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let telemetry = config.telemetry.clone();
    service_kit::cli::serve("critical-handler", &telemetry, |shutdown| async move {
        let listeners = serve::Listeners::bind(&config)?;
        serve::run(config, listeners, shutdown)
            .await
            .map_err(|error| match error {
                ServeError::Config(error) => ServeFailure::config(error),
                other => ServeFailure::other(other),
            })
    })
}

fn dlq_command(command: DlqCommand) -> ExitCode {
    let args = match &command {
        DlqCommand::List { config, .. }
        | DlqCommand::Show { config, .. }
        | DlqCommand::Replay { config, .. } => config,
    };
    let config = match load_config(args.config.as_deref(), &args.overrides) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("critical-handler: {error:#}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let Some(runtime) = runtime() else {
        return ExitCode::FAILURE;
    };
    let result = runtime.block_on(async move {
        let queues = dlq::Queues::open(&config.queue).await?;
        let mut out = std::io::stdout().lock();
        match command {
            DlqCommand::List { max, json, .. } => dlq::list(&queues, max, json, &mut out).await,
            DlqCommand::Show { message_id, .. } => dlq::show(&queues, &message_id, &mut out).await,
            DlqCommand::Replay { all, ids, .. } => {
                let selection = if all { Selection::All } else { Selection::Ids(ids) };
                dlq::replay(&queues, &selection, &mut out).await
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("critical-handler: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn runtime() -> Option<tokio::runtime::Runtime> {
    match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => Some(runtime),
        Err(error) => {
            eprintln!("critical-handler: cannot start the runtime: {error}");
            None
        }
    }
}

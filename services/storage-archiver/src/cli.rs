//! The `storage-archiver` command line: `serve`, and `reindex <blob>` to retry a failed blob (or
//! index an indexed one again; records stay once). Exit 64 for a bad command line or configuration.

// A command line talks to the terminal.
#![allow(clippy::print_stderr, clippy::print_stdout)]

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use secrecy::ExposeSecret as _;
use service_kit::EXIT_CONFIG;
use service_kit::cli::ServeFailure;
use service_kit::config::{ProcessEnv, Sources};

use crate::config::ArchiverConfig;
use crate::serve::{self, ServeError};

/// Environment variable prefix of the settings.
pub const ENV_PREFIX: &str = "STORAGE_ARCHIVER";

/// Indexes the blobs IoT Hub routing writes and answers queries over them.
#[derive(Debug, Parser)]
#[command(name = "storage-archiver", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Discover, index and serve the query API.
    Serve(ConfigArgs),
    /// Mark blobs for indexing again (a failed blob is retried from scratch).
    Reindex {
        #[command(flatten)]
        config: ConfigArgs,
        /// Blob names.
        #[arg(required = true)]
        blobs: Vec<String>,
    },
}

#[derive(Debug, Args)]
struct ConfigArgs {
    /// Configuration file (YAML or JSON).
    #[arg(long, short, env = "STORAGE_ARCHIVER_CONFIG")]
    config: Option<PathBuf>,
    /// Override a setting: `--set container.prefix=myhub/` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
}

/// Parses the process arguments and runs the command.
pub fn main() -> ExitCode {
    let cli: Cli = match service_kit::cli::parse_args() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    match cli.command {
        Command::Serve(args) => serve_command(&args),
        Command::Reindex { config, blobs } => reindex_command(&config, &blobs),
    }
}

/// Loads the configuration: defaults, `file`, `STORAGE_ARCHIVER_*` variables, `overrides`.
pub fn load_config(file: Option<&Path>, overrides: &[String]) -> anyhow::Result<ArchiverConfig> {
    let overrides = service_kit::cli::overrides(overrides)?;
    let (config, ignored): (ArchiverConfig, _) = service_kit::config::load(&Sources {
        prefix: ENV_PREFIX,
        file,
        env: &ProcessEnv,
        overrides: &overrides,
    })?;
    for name in ignored {
        tracing::debug!(variable = %name, "environment variable names no setting; ignored");
    }
    config.validate()?;
    Ok(config)
}

fn serve_command(args: &ConfigArgs) -> ExitCode {
    let config = match load_config(args.config.as_deref(), &args.overrides) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("storage-archiver: {error:#}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let telemetry = config.telemetry.clone();
    service_kit::cli::serve("storage-archiver", &telemetry, |shutdown| async move {
        let listeners = serve::Listeners::bind(&config)?;
        serve::run(config, listeners, shutdown)
            .await
            .map_err(|error| match error {
                ServeError::Config(error) => ServeFailure::config(error),
                other => ServeFailure::other(other),
            })
    })
}

fn reindex_command(args: &ConfigArgs, blobs: &[String]) -> ExitCode {
    let config = match load_config(args.config.as_deref(), &args.overrides) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("storage-archiver: {error:#}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("storage-archiver: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result: anyhow::Result<()> = runtime.block_on(async {
        let index = crate::store::open(config.index.expose_secret()).await?;
        for blob in blobs {
            if index.reset(blob).await? {
                println!("{blob}: will be indexed again");
            } else {
                anyhow::bail!("{blob}: no such blob in the index");
            }
        }
        Ok(())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("storage-archiver: {error:#}");
            ExitCode::FAILURE
        }
    }
}

//! The `hub` command line: argument parsing and exit codes (sysexits: 64 usage, 65 data).

// A command line talks to the terminal.
#![allow(clippy::print_stderr, clippy::print_stdout)]

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use iothub_query::Severity;

use crate::diagnostics;
use crate::route_test::{self, InputError};

/// Bad usage or unusable input (EX_USAGE).
pub const EXIT_USAGE: u8 = 64;
/// The condition does not compile (EX_DATAERR).
pub const EXIT_DATA: u8 = 65;

/// The local IoT Hub.
#[derive(Debug, Parser)]
#[command(
    name = "hub",
    version,
    about = "The local IoT Hub: device endpoints, message routing, CLI"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Message routes.
    Route {
        #[command(subcommand)]
        command: RouteCommand,
    },
}

#[derive(Debug, Subcommand)]
enum RouteCommand {
    /// Evaluate a route condition on a message, like `az iot hub message-route test`.
    Test(RouteTestArgs),
}

#[derive(Debug, Args)]
struct RouteTestArgs {
    /// The route condition, in the IoT Hub routing query language.
    #[arg(long)]
    condition: String,
    /// A RoutingMessage JSON file: {"body": "...", "appProperties": {...}, "systemProperties": {...}};
    /// `-` reads standard input.
    #[arg(long)]
    message: PathBuf,
    /// Raw body bytes, instead of the message file's "body" (for utf-16 or utf-32 bodies).
    #[arg(long)]
    body_file: Option<PathBuf>,
    /// A RoutingTwin JSON file: {"tags": {...}, "properties": {"desired": {...}, "reported": {...}}}.
    #[arg(long)]
    twin: Option<PathBuf>,
}

/// Parses the process arguments and runs the command.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            return if error.use_stderr() {
                ExitCode::from(EXIT_USAGE)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match cli.command {
        Command::Route {
            command: RouteCommand::Test(args),
        } => route_test_command(&args),
    }
}

fn route_test_command(args: &RouteTestArgs) -> ExitCode {
    let message = match load(args) {
        Ok(message) => message,
        Err(error) => {
            eprintln!("hub route test: {error}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let (result, body_error) = route_test::test_route(&args.condition, &message);
    let errors = &result.details.compilation_errors;
    eprint!("{}", diagnostics::render(&args.condition, errors));
    if let Some(body_error) = body_error {
        eprintln!("note: $body is undefined for this message: {body_error}");
    }
    let compiled = errors.iter().all(|e| e.severity == Severity::Warning);
    let mut stdout = std::io::stdout().lock();
    let written = serde_json::to_writer_pretty(&mut stdout, &result).map_err(std::io::Error::from);
    if let Err(error) = written.and_then(|()| writeln!(stdout)) {
        eprintln!("hub route test: cannot write the result: {error}");
        return ExitCode::FAILURE;
    }
    if compiled {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_DATA)
    }
}

fn load(args: &RouteTestArgs) -> Result<iothub_query::SimpleMessage, InputError> {
    let bytes = route_test::read_input(&args.message)?;
    let raw_body = args
        .body_file
        .as_deref()
        .map(route_test::read_input)
        .transpose()?;
    let mut message = route_test::load_message(&args.message, &bytes, raw_body)?;
    if let Some(path) = &args.twin {
        message.twin = Some(route_test::load_twin(path, &route_test::read_input(path)?)?);
    }
    Ok(message)
}

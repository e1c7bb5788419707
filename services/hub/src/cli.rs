//! The `hub` command line: argument parsing, exit codes (sysexits: 64 usage/config, 65 data) and
//! the small commands. `serve` runs [`crate::serve::run`]; `route test` is [`crate::route_test`].

// A command line talks to the terminal.
#![allow(clippy::print_stderr, clippy::print_stdout)]

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use iothub_query::Severity;
use service_kit::EXIT_CONFIG;
use service_kit::cli::ServeFailure;
use service_kit::config::{ProcessEnv, Sources};

use crate::client::{ClientArgs, HubClient};
use crate::config::{HubConfig, Right};
use crate::route_test::{self, InputError};
use crate::{devices, diagnostics, monitor, serve, tls};

/// Bad usage or unusable input (EX_USAGE).
pub const EXIT_USAGE: u8 = EXIT_CONFIG;
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
    /// Run the hub.
    Serve(ServeArgs),
    /// Message routes.
    Route {
        #[command(subcommand)]
        command: RouteCommand,
    },
    /// Devices in the registry of a running hub.
    Device {
        #[command(subcommand)]
        command: devices::DeviceCommand,
    },
    /// Watch the built-in events stream, like `az iot hub monitor-events`.
    Monitor(MonitorArgs),
    /// Print where the development CA certificate is (creating it if needed), for clients to trust.
    Cert(ConfigArgs),
    /// Print a service connection string of a shared access policy (read from the data directory).
    ConnectionString(ConnectionStringArgs),
}

#[derive(Debug, Args)]
struct ConfigArgs {
    /// Configuration file (YAML or JSON).
    #[arg(long, short, env = "HUB_CONFIG")]
    config: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// Configuration file (YAML or JSON).
    #[arg(long, short, env = "HUB_CONFIG")]
    config: Option<PathBuf>,
    /// Override a setting: `--set listeners.mqtt_tcp=127.0.0.1:1884` (repeatable; applied last).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
}

#[derive(Debug, Args)]
struct ConnectionStringArgs {
    /// Configuration file (YAML or JSON).
    #[arg(long, short, env = "HUB_CONFIG")]
    config: Option<PathBuf>,
    /// The policy (default: the first with every right).
    #[arg(long)]
    policy: Option<String>,
}

#[derive(Debug, Args)]
struct MonitorArgs {
    /// Only this device's events.
    #[arg(long, short = 'd')]
    device: Option<String>,
    /// Properties to show: sys, app, anno, all.
    #[arg(long = "properties", visible_alias = "props", short = 'p', num_args = 1..)]
    properties: Vec<String>,
    /// Stop after this many seconds (0: run until interrupted).
    #[arg(long, short = 't', default_value_t = 0)]
    timeout: u64,
    /// Where to start: latest (default), earliest, a position, or an ISO-8601 time.
    #[arg(long)]
    from: Option<String>,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Debug, Subcommand)]
enum RouteCommand {
    /// Evaluate a route condition on a message, like `az iot hub message-route test`; or, with
    /// `--config`, every route of a routing file.
    Test(RouteTestArgs),
    /// Show a routing file as the hub reads it: routes, endpoints (keys redacted), fallback, enrichments.
    List(RouteListArgs),
}

#[derive(Debug, Args)]
struct RouteListArgs {
    /// A routing file in IoT Hub's `properties.routing` shape (JSON or YAML).
    #[arg(long)]
    config: PathBuf,
    /// The hub name (for `$iothubname` enrichments).
    #[arg(long, default_value = "localhub")]
    hub_name: String,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["condition", "config"])))]
struct RouteTestArgs {
    /// The route condition, in the IoT Hub routing query language.
    #[arg(long)]
    condition: Option<String>,
    /// A routing file (IoT Hub's `properties.routing`, JSON or YAML): test every route on the message
    /// and show which endpoints would receive it, with which enrichments, and the fallback decision.
    #[arg(long)]
    config: Option<PathBuf>,
    /// The hub name (for `$iothubname` enrichments, with `--config`).
    #[arg(long, default_value = "localhub")]
    hub_name: String,
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
    let cli: Cli = match service_kit::cli::parse_args() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    match cli.command {
        Command::Serve(args) => serve_command(&args),
        Command::Route {
            command: RouteCommand::Test(args),
        } => route_test_command(&args),
        Command::Route {
            command: RouteCommand::List(args),
        } => route_list_command(&args),
        Command::Device { command } => {
            run_async(|| async move { devices::run(command, &mut std::io::stdout().lock()).await })
        }
        Command::Monitor(args) => run_async(|| async move { monitor_command(args).await }),
        Command::Cert(args) => report(cert_command(args.config.as_deref())),
        Command::ConnectionString(args) => report(connection_string_command(&args)),
    }
}

/// Loads the hub configuration: defaults, `file`, `HUB_*` variables, `overrides` (`key=value`).
pub fn load_config(file: Option<&Path>, overrides: &[String]) -> anyhow::Result<HubConfig> {
    let overrides = service_kit::cli::overrides(overrides)?;
    let (config, ignored): (HubConfig, _) = service_kit::config::load(&Sources {
        prefix: "HUB",
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

fn serve_command(args: &ServeArgs) -> ExitCode {
    let config = match load_config(args.config.as_deref(), &args.overrides) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("hub: {error:#}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    // A routing file that does not validate stops the hub before it starts, one line per problem.
    if let Err(problems) = crate::routes::load(&config) {
        for problem in problems {
            eprintln!("hub: routing: {problem}");
        }
        return ExitCode::from(EXIT_CONFIG);
    }
    let telemetry = config.telemetry.clone();
    service_kit::cli::serve("hub", &telemetry, |shutdown| async move {
        let listeners = serve::Listeners::bind(&config).map_err(ServeFailure::other)?;
        serve::run(config, listeners, shutdown)
            .await
            .map_err(|error| ServeFailure::other(format!("{error:#}")))
    })
}

fn run_async<F, Fut>(f: F) -> ExitCode
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("hub: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    report(runtime.block_on(f()))
}

fn report(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("hub: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn monitor_command(args: MonitorArgs) -> anyhow::Result<()> {
    let client = HubClient::connect(&args.client, Right::ServiceConnect)?;
    let request = monitor::MonitorRequest {
        device: args.device,
        properties: args.properties,
        timeout: (args.timeout > 0).then(|| Duration::from_secs(args.timeout)),
        from: args.from,
    };
    monitor::monitor(&client, &request, &mut std::io::stdout().lock()).await
}

fn cert_command(config: Option<&Path>) -> anyhow::Result<()> {
    let config = load_config(config, &[])?;
    std::fs::create_dir_all(&config.data_dir)?;
    let identity = tls::server_identity(&config)?;
    match identity.ca_file {
        Some(ca) => println!("{}", ca.display()),
        None => println!(
            "the hub uses the configured certificate {:?}; no development CA",
            config.tls.cert_file
        ),
    }
    Ok(())
}

fn connection_string_command(args: &ConnectionStringArgs) -> anyhow::Result<()> {
    let mut config = load_config(args.config.as_deref(), &[])?;
    if let Some(name) = &args.policy {
        config.policies.retain(|p| &p.name == name);
        anyhow::ensure!(!config.policies.is_empty(), "no policy named {name}");
    }
    std::fs::create_dir_all(&config.data_dir)?;
    let credentials = crate::client::policy_credentials(&config, Right::ServiceConnect)
        .or_else(|_| crate::client::policy_credentials(&config, Right::RegistryRead))?;
    println!("{}", credentials.expose_secret());
    Ok(())
}

/// Reads and builds a routing file for evaluation only (masked keys are fine); prints the problems.
fn routing_for_tools(path: &Path, hub_name: &str) -> Result<crate::routing::Routing, ExitCode> {
    let parsed = crate::routing::RoutingConfig::from_path(path).map_err(|error| {
        eprintln!("hub route: {error}");
        ExitCode::from(EXIT_USAGE)
    })?;
    let options = crate::routing::BuildOptions::new(hub_name)
        .with_short_batches(true)
        .without_connection_checks();
    parsed.build(&options).map_err(|errors| {
        for line in errors.lines() {
            eprintln!("hub route: {line}");
        }
        ExitCode::from(EXIT_USAGE)
    })
}

fn print_json(value: &impl serde::Serialize) -> ExitCode {
    let mut stdout = std::io::stdout().lock();
    let written = serde_json::to_writer_pretty(&mut stdout, value).map_err(std::io::Error::from);
    match written.and_then(|()| writeln!(stdout)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("hub: cannot write the result: {error}");
            ExitCode::FAILURE
        }
    }
}

fn route_list_command(args: &RouteListArgs) -> ExitCode {
    match routing_for_tools(&args.config, &args.hub_name) {
        Ok(routing) => print_json(&routing.list()),
        Err(code) => code,
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
    if let Some(path) = &args.config {
        let routing = match routing_for_tools(path, &args.hub_name) {
            Ok(routing) => routing,
            Err(code) => return code,
        };
        let twin = message.twin.clone();
        let report = routing.describe(&message, iothub_protocol::MessageSource::Telemetry, twin.as_ref());
        return print_json(&report);
    }
    let condition = args.condition.as_deref().unwrap_or_default();
    let (result, body_error) = route_test::test_route(condition, &message);
    let errors = &result.details.compilation_errors;
    eprint!("{}", diagnostics::render(condition, errors));
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

//! What every service's command line does the same way: parse the arguments with clap and turn a
//! usage error into exit code 64, and read `--set key=value` overrides.

use std::process::ExitCode;

use crate::config::ConfigError;
use crate::telemetry::TelemetryConfig;
use crate::{EXIT_CONFIG, Shutdown};

/// Why a service's `serve` stopped: a setting it could not use (exit 64) or anything else (exit 1).
#[derive(Debug)]
pub struct ServeFailure {
    /// A configuration problem.
    pub config: bool,
    /// One line saying what happened.
    pub message: String,
}

impl ServeFailure {
    /// An unusable setting.
    pub fn config(message: impl std::fmt::Display) -> Self {
        ServeFailure {
            config: true,
            message: message.to_string(),
        }
    }

    /// Any other failure.
    pub fn other(message: impl std::fmt::Display) -> Self {
        ServeFailure {
            config: false,
            message: message.to_string(),
        }
    }
}

impl From<std::io::Error> for ServeFailure {
    fn from(error: std::io::Error) -> Self {
        ServeFailure::other(error)
    }
}

/// Runs a service's `serve`: installs logging and tracing, starts a multi-threaded runtime, fires a
/// [`Shutdown`] on SIGTERM/SIGINT and awaits `run` with it. The exit code is 0, 64 for a
/// configuration problem (logging's included), or 1; the failure is printed as
/// `<service>: <message>`.
#[allow(clippy::print_stderr)]
pub fn serve<F, Fut>(service: &'static str, telemetry: &TelemetryConfig, run: F) -> ExitCode
where
    F: FnOnce(Shutdown) -> Fut,
    Fut: Future<Output = Result<(), ServeFailure>>,
{
    let _telemetry = match crate::telemetry::init(telemetry, service) {
        Ok(guard) => guard,
        Err(error) => {
            eprintln!("{service}: {error}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("{service}: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        let shutdown = Shutdown::new();
        shutdown.on_signals()?;
        run(shutdown).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            tracing::error!(error = %failure.message, "{service} stopped on an error");
            eprintln!("{service}: {}", failure.message);
            if failure.config {
                ExitCode::from(EXIT_CONFIG)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// Parses the process arguments. On `--help` or `--version` clap's text is printed and the exit
/// code is 0; on a usage error its message is printed and the code is 64 (EX_USAGE).
pub fn parse_args<T: clap::Parser>() -> Result<T, ExitCode> {
    T::try_parse().map_err(|error| {
        let _ = error.print();
        if error.use_stderr() {
            ExitCode::from(EXIT_CONFIG)
        } else {
            ExitCode::SUCCESS
        }
    })
}

/// `--set key=value` arguments as (key, value) pairs.
pub fn overrides(args: &[String]) -> Result<Vec<(String, String)>, ConfigError> {
    args.iter()
        .map(|arg| {
            arg.split_once('=')
                .map(|(k, v)| (k.trim().to_owned(), v.to_owned()))
                .filter(|(k, _)| !k.is_empty())
                .ok_or_else(|| ConfigError::new(format!("--set {arg:?}: expected KEY=VALUE")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_need_a_key_and_an_equals_sign() {
        let ok = overrides(&["a.b=1".to_owned(), "c==2".to_owned()]).unwrap();
        assert_eq!(
            ok,
            [
                ("a.b".to_owned(), "1".to_owned()),
                ("c".to_owned(), "=2".to_owned())
            ]
        );
        assert!(overrides(&["novalue".to_owned()]).is_err());
        assert!(overrides(&["=1".to_owned()]).is_err());
    }
}

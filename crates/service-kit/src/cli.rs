//! What every service's command line does the same way: parse the arguments with clap and turn a
//! usage error into exit code 64, and read `--set key=value` overrides.

use std::process::ExitCode;

use crate::EXIT_CONFIG;
use crate::config::ConfigError;

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

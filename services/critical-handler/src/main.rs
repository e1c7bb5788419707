//! The `critical-handler` binary: everything lives in the library; see `critical_handler::cli`.

fn main() -> std::process::ExitCode {
    critical_handler::cli::main()
}

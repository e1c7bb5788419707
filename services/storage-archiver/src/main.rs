//! The `storage-archiver` binary: everything lives in the library; see `storage_archiver::cli`.

fn main() -> std::process::ExitCode {
    storage_archiver::cli::main()
}

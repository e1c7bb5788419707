//! The `critical-handler` binary: everything lives in the library; see `critical_handler::cli`.

/// mimalloc, as every service binary (see the hub's: glibc's malloc does poorly when one thread
/// frees what others allocated).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    critical_handler::cli::main()
}

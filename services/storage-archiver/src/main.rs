//! The `storage-archiver` binary: everything lives in the library; see `storage_archiver::cli`.

/// mimalloc, as every service binary (see the hub's: glibc's malloc does poorly when one thread
/// frees what others allocated).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    storage_archiver::cli::main()
}

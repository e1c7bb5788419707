//! The `hub` binary: everything lives in the library; see `hub::cli`.

/// mimalloc rather than glibc's malloc: messages are allocated on the connections' threads and
/// freed on the journal's, which glibc handles poorly (docs/PERFORMANCE.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    hub::cli::main()
}

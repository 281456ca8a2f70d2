//! `herald`: a thin shell over the `herald` library.

use std::io::IsTerminal;
use std::process::ExitCode;

use tracing_subscriber::EnvFilter;

/// mimalloc instead of the system allocator: the publish path allocates small, short-lived
/// buffers per event (frames, target lists), and glibc's malloc/free were a third of its
/// instructions (measured with callgrind; docs/BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `arena_eager_commit` option (mimalloc.h, `mi_option_e`).
const MI_OPTION_ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;

/// Commit arena memory as it is used rather than up front: with 10k idle streams this keeps
/// memory per stream about 1 KiB lower than mimalloc's defaults (`herald bench --scenario idle`).
/// `MIMALLOC_ARENA_EAGER_COMMIT` in the environment still overrides it.
fn tune_allocator() {
    if std::env::var_os("MIMALLOC_ARENA_EAGER_COMMIT").is_none() {
        // SAFETY: setting an option is thread-safe and has no memory-safety preconditions.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_ARENA_EAGER_COMMIT, 0) };
    }
}

/// Run by each worker thread when it runs out of work (at most once a second): hands the pages
/// freed since to the OS. mimalloc otherwise returns them only while the thread keeps
/// allocating, so after 10k streams connect, the pages their set-up used (the connection tasks,
/// request heads, router futures) stayed resident while the hub sat idle: 0.2 KiB per stream at
/// 10k streams (`herald bench --scenario idle`).
fn release_free_memory() {
    // SAFETY: collecting the calling thread's heap has no preconditions.
    unsafe { libmimalloc_sys::mi_collect(false) };
}

fn main() -> ExitCode {
    tune_allocator();
    let cli = herald::cli::Cli::from_env();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("HERALD_LOG").unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    match herald::run_blocking(cli, release_free_memory) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
    }
}

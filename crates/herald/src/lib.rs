//! The `herald` binary's library: configuration, authentication, HTTP routes, and subcommands.
//!
//! `main.rs` only parses the command line and calls [`run_blocking`]. The modules are private;
//! what the integration tests and fuzz targets need is exported: the command line ([`cli`]),
//! the publish body decoder ([`publish_body`]), and the token claims and signer the tests mint
//! tokens with ([`Claims`], [`mint_hs256`]).

mod app;
mod auth;
pub mod cli;
mod commands;
mod error;
mod jwks;
mod limits;
mod mercure;
mod metrics;
mod outbound;
mod plain_sse;
pub mod publish_body;
mod request_rules;
mod routes;
mod schema;
mod server;
mod session_hook;
mod settings;
mod tls;
mod tls_conn;
mod tls_socket;
mod webhooks;

pub use auth::Claims;
pub use commands::token::mint_hs256;

use cli::{Cli, Command};

/// Runs one subcommand to completion on a runtime of its own (`serve` sizes it with
/// `--workers`). Errors are messages for the terminal.
///
/// `when_idle` runs on a worker thread that has run out of work, at most once per
/// [`IDLE_HOOK_INTERVAL`] on each: `main.rs` has the allocator return free memory there.
pub fn run_blocking(cli: Cli, when_idle: fn()) -> Result<(), String> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    builder.on_thread_park(move || idle_hook(when_idle));
    let serve = match cli.command {
        Command::Serve(settings) => settings.resolve().map_err(|e| e.to_string())?,
        command => return runtime(&mut builder)?.block_on(run(Cli { command })),
    };
    if let Some(workers) = serve.workers() {
        builder.worker_threads(workers);
    }
    runtime(&mut builder)?.block_on(commands::serve::run(serve))
}

/// How often, at most, a worker thread runs the idle hook.
pub const IDLE_HOOK_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

fn idle_hook(when_idle: fn()) {
    use std::cell::Cell;
    use std::time::Instant;
    thread_local!(static LAST_RUN: Cell<Option<Instant>> = const { Cell::new(None) });
    let now = Instant::now();
    if LAST_RUN
        .get()
        .is_some_and(|at| now.duration_since(at) < IDLE_HOOK_INTERVAL)
    {
        return;
    }
    LAST_RUN.set(Some(now));
    when_idle();
}

fn runtime(builder: &mut tokio::runtime::Builder) -> Result<tokio::runtime::Runtime, String> {
    builder
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))
}

/// Runs one subcommand to completion on the current runtime. Errors are messages for the
/// terminal.
pub async fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        Command::Serve(settings) => {
            let settings = settings.resolve().map_err(|e| e.to_string())?;
            commands::serve::run(settings).await
        }
        Command::Token(args) => commands::token::run(args),
        Command::Publish(args) => commands::publish::run(args).await,
        Command::Subscribe(args) => commands::subscribe::run(args).await,
        Command::Typegen(args) => commands::typegen::run(args),
        Command::Bench(args) => herald_bench::run(*args).await.map(drop),
    }
}

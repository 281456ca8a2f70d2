//! The `herald` binary's library: configuration, authentication, HTTP routes, and subcommands.
//!
//! `main.rs` only parses the command line and calls [`run`]. Everything is here so integration
//! tests, fuzz targets and embedders can reach the pieces.

pub mod app;
pub mod auth;
pub mod cli;
pub mod commands;
pub mod config;
pub mod error;
pub mod limits;
pub mod plain_sse;
pub mod publish_body;
pub mod routes;
pub mod schema;
pub mod server;
pub mod stream_writer;
pub mod tls;

use cli::{Cli, Command};
use config::ServeConfig;

/// Runs one subcommand to completion on a runtime of its own (`serve` sizes it with
/// `--workers`). Errors are messages for the terminal.
pub fn run_blocking(cli: Cli) -> Result<(), String> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    let serve = match cli.command {
        Command::Serve(args) => ServeConfig::resolve(*args).map_err(|e| e.to_string())?,
        command => return runtime(&mut builder)?.block_on(run(Cli { command })),
    };
    if let Some(workers) = serve.workers {
        builder.worker_threads(workers);
    }
    runtime(&mut builder)?.block_on(commands::serve::run(serve))
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
        Command::Serve(args) => {
            let config = ServeConfig::resolve(*args).map_err(|e| e.to_string())?;
            commands::serve::run(config).await
        }
        Command::Token(args) => commands::token::run(args),
        Command::Publish(args) => commands::publish::run(args).await,
        Command::Subscribe(args) => commands::subscribe::run(args).await,
        Command::Typegen(args) => commands::typegen::run(args),
        Command::Bench(args) => herald_bench::run(*args).await.map(drop),
    }
}

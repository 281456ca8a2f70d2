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
pub mod tls;

use cli::{Cli, Command};

/// Runs one subcommand to completion. Errors are messages for the terminal.
pub async fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        Command::Serve(args) => commands::serve::run(*args).await,
        Command::Token(args) => commands::token::run(args),
        Command::Publish(args) => commands::publish::run(args).await,
        Command::Subscribe(args) => commands::subscribe::run(args).await,
        Command::Typegen(args) => commands::typegen::run(args),
        Command::Bench(args) => herald_bench::run(*args).await.map(drop),
    }
}

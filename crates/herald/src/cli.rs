//! Command-line interface: `herald serve | token | publish | subscribe | typegen | bench`.
//!
//! `serve`'s settings are declared in [`crate::settings`], which also says how each one is read
//! from the environment and the `--config` file.

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};

pub use crate::commands::publish::PublishArgs;
pub use crate::commands::subscribe::SubscribeArgs;
pub use crate::commands::typegen::TypegenArgs;
use crate::settings::{self, Settings};

#[derive(Debug, Parser)]
#[command(
    name = "herald",
    version,
    about = "A real-time event hub over Server-Sent Events."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// Parses the process's arguments and environment; prints usage and exits on an error, as
    /// clap's `parse` does.
    pub fn from_env() -> Self {
        Self::try_parse_args(std::env::args_os()).unwrap_or_else(|error| error.exit())
    }

    /// Parses `args` (the first is the program name) and the environment.
    pub fn try_parse_args<I, T>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let matches = command().try_get_matches_from(args)?;
        let mut cli = Self::from_arg_matches(&matches)?;
        if let (Command::Serve(settings), Some(serve)) =
            (&mut cli.command, matches.subcommand_matches("serve"))
        {
            settings.mark_given(serve);
        }
        Ok(cli)
    }
}

/// The whole command line, `serve`'s flags with their environment variables.
pub fn command() -> clap::Command {
    Cli::command().mut_subcommand("serve", settings::serve_command)
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the hub.
    #[command(
        after_help = "Example (development, everything generated):\n  herald serve\n\n\
Example (production):\n  herald serve --listen 0.0.0.0:8080 --jwt-secret \"$SECRET\" --publish-key \"$KEY\" \\\n    --cors-origin https://app.example.com"
    )]
    Serve(Box<Settings>),
    /// Mint a JWT for development: a subscriber token (--sub) and/or a publisher token (--publish).
    #[command(
        after_help = "Examples:\n  herald token --secret \"$SECRET\" --sub user_123 --topics 'orders/*' --ttl 1h\n  \
herald token --secret \"$SECRET\" --publish 'orders/**' --publish @users\n  \
herald token --secret \"$SECRET\" --sub user_123 --aud herald --iss https://app.example.com"
    )]
    Token(TokenArgs),
    /// Publish events to a running hub: one from flags, or many as JSON lines on stdin.
    #[command(
        after_help = "Examples:\n  herald publish --url http://127.0.0.1:8080 --key \"$KEY\" --user user_123 \\\n    \
--event payment_completed --data '{\"amount\":5000}'\n  \
herald publish --key \"$KEY\" --topic orders/42 --event order_update --data '{\"status\":\"shipped\"}'\n  \
herald publish --key \"$KEY\" --data '\"hello, everyone\"'\n  \
herald publish --key \"$KEY\" --user user_123 --event unread --data 3 --retain   # what a page shows on load\n  \
herald publish --key \"$KEY\" --user user_123 --event paid --data 1 --idempotency-key order-42\n  \
printf '%s\\n' '{\"user\":\"u1\",\"event\":\"e\",\"data\":1}' '{\"data\":2}' | herald publish --key \"$KEY\" --batch\n\n\
Prints the id of each published event. Exit status 2 with the hub's reason on any error."
    )]
    Publish(PublishArgs),
    /// Tail a stream: print events as they arrive (reconnects and resumes by itself).
    #[command(
        after_help = "Examples:\n  herald subscribe --url http://127.0.0.1:8080 --token \"$TOKEN\"\n  \
herald subscribe --token \"$TOKEN\" --topic 'orders/*' --last-event-id 1732460000123-0\n  \
herald subscribe --token \"$TOKEN\" --json | jq .data\n\n\
Mint a development token with: herald token --secret \"$SECRET\" --sub user_123 --topics 'orders/*'\n\
Exit status 2 with the hub's reason when it refuses the stream (401, 403) or cannot be reached."
    )]
    Subscribe(SubscribeArgs),
    /// Print TypeScript types for the events of a --schema file (for @herald/client).
    #[command(
        after_help = "Example:\n  herald typegen --schema events.schema.json > src/herald-events.ts\n\n\
Then: createClient<Events>({ url, getToken }) with `import type { Events } from './herald-events'`."
    )]
    Typegen(TypegenArgs),
    /// Load-test a hub (or a peer server): streams, publishers, latency, memory.
    Bench(Box<herald_bench::BenchArgs>),
}

#[derive(Debug, Args)]
pub struct TokenArgs {
    /// HS256 secret (the hub's --jwt-secret).
    #[arg(long, env = "HERALD_JWT_SECRET", hide_env_values = true)]
    pub secret: String,
    /// User id: makes a subscriber token for this user.
    #[arg(long)]
    pub sub: Option<String>,
    /// Topic patterns the subscriber may subscribe to (repeatable or comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub topics: Vec<String>,
    /// What a publisher token may publish to: topic patterns, "@users", "@broadcast" (repeatable).
    #[arg(long, value_delimiter = ',')]
    pub publish: Vec<String>,
    /// Lifetime, e.g. 30m, 1h, 7d.
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    pub ttl: std::time::Duration,
    /// Audience claim (aud): needed when the hub runs with --jwt-audience.
    #[arg(long)]
    pub aud: Option<String>,
    /// Issuer claim (iss): needed when the hub runs with --jwt-issuer.
    #[arg(long)]
    pub iss: Option<String>,
    /// Key id (kid) in the token's header.
    #[arg(long)]
    pub kid: Option<String>,
}

//! `herald publish`: send events to a running hub over its HTTP API.
//!
//! One event from flags, or `--batch`: newline-delimited JSON on stdin, one `POST /publish` body
//! object per line, sent in batches of [`BATCH_SIZE`] so a large file is neither one giant
//! request nor thousands of small ones. Every line is checked before anything is sent, so a typo
//! on line 900 does not leave 899 events half-published.

use std::io::BufRead;

use clap::Args;
use herald_client::{PublishItem, Publisher, Retain};

/// Events per request with `--batch`.
pub const BATCH_SIZE: usize = 1000;

#[derive(Debug, Args)]
pub struct PublishArgs {
    /// Base URL of the hub.
    #[arg(long, env = "HERALD_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// Publish key (or publisher token).
    #[arg(long, env = "HERALD_PUBLISH_KEY", hide_env_values = true)]
    pub key: String,
    /// Send to this user (all of the user's streams).
    #[arg(long, conflicts_with = "topic")]
    pub user: Option<String>,
    /// Send to the subscribers of this topic. With neither --user nor --topic: everyone.
    #[arg(long)]
    pub topic: Option<String>,
    /// Event name (default: the unnamed "message" event).
    #[arg(long)]
    pub event: Option<String>,
    /// Payload as JSON (a JSON string is sent verbatim): --data '{"amount":5000}'.
    #[arg(long, required_unless_present_any = ["batch", "retain"], conflicts_with = "batch")]
    pub data: Option<String>,
    /// Make the event its target's retained value (what a page that opens shows at once), or
    /// with `--retain clear` forget that value (no --data needed).
    #[arg(long, value_enum, num_args = 0..=1, default_missing_value = "keep", conflicts_with = "batch")]
    pub retain: Option<RetainArg>,
    /// Send `Idempotency-Key: KEY`: a repeat with the same key within the hub's window gets the
    /// first id back and publishes nothing (safe retries).
    #[arg(long)]
    pub idempotency_key: Option<String>,
    /// Read events from stdin instead, one JSON object per line, each shaped like a
    /// `POST /publish` body: {"user":"u1","event":"e","data":{...}}. Prints one id per line.
    #[arg(long, conflicts_with_all = ["user", "topic", "event"])]
    pub batch: bool,
}

/// `--retain`'s values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RetainArg {
    Keep,
    Clear,
}

pub async fn run(args: PublishArgs) -> Result<(), String> {
    let publisher = Publisher::new(&args.url, &args.key).map_err(|e| e.to_string())?;
    if args.batch {
        let items = read_batch(std::io::stdin().lock())?;
        for (chunk_index, chunk) in items.chunks(BATCH_SIZE).enumerate() {
            let key = args
                .idempotency_key
                .as_ref()
                .map(|key| format!("{key}:{chunk_index}"));
            let ids = publisher.publish_batch_idempotent(chunk, key.as_deref()).await.map_err(|e| {
                let first_line = chunk_index * BATCH_SIZE + 1;
                let sent = chunk_index * BATCH_SIZE;
                format!("batch from stdin line {first_line}: {e} ({sent} events before it were published)")
            })?;
            for id in ids {
                println!("{id}");
            }
        }
        return Ok(());
    }
    let data = match args.data.as_deref() {
        None => serde_json::Value::Null,
        Some(data) => serde_json::from_str(data).map_err(|e| {
            format!(
                "--data must be JSON ({e}); quote plain text as a JSON string, e.g. '\"hello\"'"
            )
        })?,
    };
    if args.retain == Some(RetainArg::Keep) && args.data.is_none() {
        return Err("--retain keeps --data as the retained value: give --data".into());
    }
    let item = PublishItem {
        event: args.event,
        data,
        user: args.user,
        users: None,
        topic: args.topic,
        topics: None,
        retry: None,
        retain: args.retain.map(|retain| match retain {
            RetainArg::Keep => Retain::Keep,
            RetainArg::Clear => Retain::Clear,
        }),
    };
    let id = publisher
        .publish_idempotent(&item, args.idempotency_key.as_deref())
        .await
        .map_err(|e| e.to_string())?;
    println!("{id}");
    Ok(())
}

/// Parses NDJSON publish items; blank lines are skipped. Errors name the line.
pub fn read_batch(input: impl BufRead) -> Result<Vec<PublishItem>, String> {
    let mut items = Vec::new();
    for (index, line) in input.lines().enumerate() {
        let number = index + 1;
        let line = line.map_err(|e| format!("stdin line {number}: {e}"))?;
        if line.trim().is_empty() {
            continue;
        }
        let item = serde_json::from_str(&line).map_err(|e| format!("stdin line {number}: {e}"))?;
        items.push(item);
    }
    if items.is_empty() {
        return Err("--batch read no events from stdin (one JSON object per line)".into());
    }
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_lines_parse_and_errors_name_the_line() {
        let ok = read_batch(
            "{\"user\":\"u\",\"data\":1}\n\n{\"data\":\"x\",\"event\":\"e\"}\n".as_bytes(),
        );
        assert_eq!(ok.map(|items| items.len()), Ok(2));
        let bad = read_batch("{\"data\":1}\n{\"data\":2,\"usr\":\"typo\"}\n".as_bytes());
        assert!(
            bad.as_ref()
                .is_err_and(|e| e.starts_with("stdin line 2:") && e.contains("usr")),
            "{bad:?}"
        );
        assert!(read_batch("".as_bytes()).is_err());
    }
}

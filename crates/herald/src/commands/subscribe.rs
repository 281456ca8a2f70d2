//! `herald subscribe`: tail a stream in the terminal, or as JSON lines for scripts.
//!
//! Built on herald-client, so it behaves like a real application's subscriber: it reconnects
//! with backoff and resumes with `Last-Event-ID` when the connection drops, and stops with a
//! clear message and a non-zero exit when the hub refuses it.

use std::io::{IsTerminal, Write};

use clap::Args;
use futures_util::StreamExt;
use herald_client::{subscribe, Event, SubscribeOptions};

#[derive(Debug, Args)]
pub struct SubscribeArgs {
    /// Base URL of the hub.
    #[arg(long, env = "HERALD_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// Subscriber token (a JWT; `herald token --sub ...` mints one for development).
    #[arg(long, env = "HERALD_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Subscribe to a topic or pattern (repeatable): --topic 'orders/*' --topic news/**.
    #[arg(long = "topic", value_name = "TOPIC")]
    pub topics: Vec<String>,
    /// Resume after this event id: the hub first replays what came after it.
    #[arg(long)]
    pub last_event_id: Option<String>,
    /// One JSON object per event per line: {"id","event","data"}. `data` is the event's data
    /// parsed as JSON when it is valid JSON, otherwise the text.
    #[arg(long)]
    pub json: bool,
    /// Speak HTTP/2 with prior knowledge (h2c).
    #[arg(long)]
    pub http2: bool,
}

pub async fn run(args: SubscribeArgs) -> Result<(), String> {
    let mut options = SubscribeOptions::new(&args.url).http2(args.http2);
    if let Some(token) = args.token {
        options = options.token(token);
    }
    for topic in args.topics {
        options = options.topic(topic);
    }
    if let Some(id) = args.last_event_id {
        options = options.last_event_id(id);
    }
    let mut events = subscribe(options).map_err(|e| e.to_string())?;
    let colour = !args.json && std::io::stdout().is_terminal();
    let mut stdout = std::io::stdout().lock();
    loop {
        let event = tokio::select! {
            event = events.next() => event,
            _ = tokio::signal::ctrl_c() => return Ok(()),
        };
        let line = match event {
            None => return Ok(()),
            Some(Err(error)) => return Err(error.to_string()),
            Some(Ok(event)) if args.json => json_line(&event),
            Some(Ok(event)) => human_line(&event, colour),
        };
        // A closed pipe (`| head`) is a normal way for a tail to end.
        if writeln!(stdout, "{line}")
            .and_then(|()| stdout.flush())
            .is_err()
        {
            return Ok(());
        }
    }
}

/// `{"id","event","data"}` on one line.
pub fn json_line(event: &Event) -> String {
    let data = serde_json::from_str::<serde_json::Value>(&event.data)
        .unwrap_or_else(|_| serde_json::Value::String(event.data.clone()));
    #[derive(serde::Serialize)]
    struct Line<'a> {
        id: &'a str,
        event: &'a str,
        data: serde_json::Value,
    }
    let line = Line {
        id: &event.id,
        event: &event.event,
        data,
    };
    serde_json::to_string(&line).unwrap_or_default()
}

/// `event_name [id] data`, the name in colour on a terminal (the reserved missed event in
/// yellow, so it stands out).
fn human_line(event: &Event, colour: bool) -> String {
    let data = event.data.replace('\n', "\n    ");
    if !colour {
        return format!("{} [{}] {}", event.event, event.id, data);
    }
    let name_colour = if event.is_missed() { "1;33" } else { "1;36" };
    format!(
        "\x1b[{name_colour}m{}\x1b[0m \x1b[2m[{}]\x1b[0m {}",
        event.event, event.id, data
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(data: &str) -> Event {
        Event {
            id: "1-0".into(),
            event: "e".into(),
            data: data.into(),
        }
    }

    #[test]
    fn json_lines_embed_json_data_and_quote_text() {
        assert_eq!(
            json_line(&event("{\"a\":1}")),
            r#"{"id":"1-0","event":"e","data":{"a":1}}"#
        );
        assert_eq!(
            json_line(&event("two\nlines")),
            r#"{"id":"1-0","event":"e","data":"two\nlines"}"#
        );
    }

    #[test]
    fn plain_lines_indent_continuation_lines() {
        assert_eq!(human_line(&event("a\nb"), false), "e [1-0] a\n    b");
    }
}

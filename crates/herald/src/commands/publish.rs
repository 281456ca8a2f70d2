//! `herald publish`: send one event to a running hub over its HTTP API.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::cli::PublishArgs;

pub async fn run(args: PublishArgs) -> Result<(), String> {
    let data: serde_json::Value = serde_json::from_str(&args.data).map_err(|e| {
        format!("--data must be JSON ({e}); quote plain text as a JSON string, e.g. '\"hello\"'")
    })?;
    let mut body = serde_json::json!({ "data": data });
    if let Some(event) = args.event {
        body["event"] = event.into();
    }
    if let Some(user) = args.user {
        body["user"] = user.into();
    }
    if let Some(topic) = args.topic {
        body["topic"] = topic.into();
    }
    let url = format!("{}/publish", args.url.trim_end_matches('/'));
    let request = http::Request::post(&url)
        .header(http::header::AUTHORIZATION, format!("Bearer {}", args.key))
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .map_err(|e| format!("invalid --url {url:?}: {e}"))?;
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let response = client
        .request(request)
        .await
        .map_err(|e| format!("cannot reach the hub at {url}: {e}"))?;
    let status = response.status();
    let text = response
        .into_body()
        .collect()
        .await
        .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
        .unwrap_or_default();
    if status.is_success() {
        println!("{text}");
        Ok(())
    } else {
        Err(format!("hub answered {status}: {text}"))
    }
}

//! `Hub::dispatch_gap`: what a broker calls when it cannot prove this node has every event up to
//! a position (its shared history was trimmed or lost). Open streams must be told with
//! `herald.missed`, and resume points before the gap must no longer replay as if complete.

mod common;

use std::sync::Arc;

use common::next_chunk;
use herald_core::broker::MemoryBroker;
use herald_core::{EventId, Herald, Hub, HubConfig, SubscribeRequest};

fn resuming_from(id: EventId) -> SubscribeRequest {
    SubscribeRequest {
        last_event_id: Some(id.to_string()),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_gap_tells_open_streams_and_moves_the_resume_floor() {
    let hub = Hub::new(HubConfig::default());
    let herald = Herald::with_broker(hub.clone(), Arc::new(MemoryBroker::new(hub.clone())));
    let before = herald.broadcast("before", &1).await.unwrap();
    let mut open = herald.subscribe(SubscribeRequest::default()).await.unwrap();
    assert!(next_chunk(&mut open)
        .await
        .contains(&format!("id: {before}")));

    let gap = EventId::new(before.ms, before.seq + 10);
    hub.dispatch_gap(gap);
    let told = next_chunk(&mut open).await;
    assert!(told.contains("event: herald.missed\n"), "{told}");
    assert!(told.contains(r#""reason":"history_expired""#), "{told}");
    assert!(
        told.contains(&format!(r#""lastEventId":"{before}""#)),
        "{told}"
    );
    assert!(told.ends_with(&format!("id: {gap}\n\n")), "{told}");
    assert_eq!(hub.last_event_id(), gap);

    // Before the gap: missed. At the gap: a clean resume.
    let mut old = herald.subscribe(resuming_from(before)).await.unwrap();
    assert!(next_chunk(&mut old).await.contains("event: herald.missed"));
    let mut at_gap = herald.subscribe(resuming_from(gap)).await.unwrap();
    assert!(!next_chunk(&mut at_gap).await.contains("herald.missed"));
}

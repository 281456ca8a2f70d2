//! Labelled events and filtered streams (`herald_core::labels`): the two routing kinds never
//! mix, a filter decides per event (live and in replay), and a filtered stream resumes from a
//! wire id.

mod common;

use std::sync::Arc;

use common::next_chunk;
use herald_core::{
    Batch, EventStream, Herald, HubConfig, Labels, Publication, StreamFilter, SubscribeRequest,
};

/// Accepts events labelled with its one label; private ones only if `private`.
#[derive(Debug)]
struct OneLabel {
    label: &'static str,
    private: bool,
}

impl StreamFilter for OneLabel {
    fn accepts(&self, labels: &Labels) -> bool {
        labels.names.iter().any(|n| n == self.label) && (!labels.private || self.private)
    }
}

fn filtered(label: &'static str, private: bool) -> SubscribeRequest {
    SubscribeRequest {
        filter: Some(Arc::new(OneLabel { label, private })),
        ..Default::default()
    }
}

fn labelled(label: &str, data: &str, private: bool, wire_id: &str) -> Batch {
    Batch::one(Publication {
        data: data.into(),
        labels: Some(Labels {
            names: vec![label.into()],
            private,
        }),
        wire_id: Some(wire_id.into()),
        ..Publication::default()
    })
    .expect("valid")
}

/// Reads until `marker` appears; returns all that was read.
async fn read_until(stream: &mut EventStream, marker: &str) -> String {
    let mut text = String::new();
    while !text.contains(marker) {
        text.push_str(&next_chunk(stream).await);
    }
    text
}

#[tokio::test]
async fn labelled_events_reach_only_filtered_streams_that_accept_them() {
    let herald = Herald::in_memory(HubConfig::default());
    let mut plain = herald.subscribe(SubscribeRequest::default()).await.unwrap();
    let mut books = herald.subscribe(filtered("books", false)).await.unwrap();
    let mut trusted = herald.subscribe(filtered("books", true)).await.unwrap();

    herald
        .publish(&labelled("authors", "a", false, "w1"))
        .await
        .unwrap();
    herald
        .publish(&labelled("books", "secret", true, "w2"))
        .await
        .unwrap();
    herald.broadcast("note", &"from-herald-api").await.unwrap();
    herald
        .publish(&labelled("books", "public", false, "w3"))
        .await
        .unwrap();

    let seen = read_until(&mut plain, "from-herald-api").await;
    assert!(
        !seen.contains("data: a") && !seen.contains("secret"),
        "{seen}"
    );
    let seen = read_until(&mut books, "public").await;
    assert!(
        !seen.contains("data: a\n") && !seen.contains("secret"),
        "{seen}"
    );
    assert!(!seen.contains("from-herald-api"), "{seen}");
    assert!(seen.contains("id: w3\ndata: public\n\n"), "{seen}");
    let seen = read_until(&mut trusted, "public").await;
    assert!(seen.contains("id: w2\ndata: secret\n\n"), "{seen}");

    // A filtered stream resumes from a wire id, with its filter applied to the replay.
    let mut resumed = herald
        .subscribe(SubscribeRequest {
            last_event_id: Some("w1".into()),
            ..filtered("books", false)
        })
        .await
        .unwrap();
    let seen = read_until(&mut resumed, "public").await;
    assert!(
        !seen.contains("secret") && !seen.contains("herald.missed"),
        "{seen}"
    );
    assert!(herald.hub().holds_resume_point("w2"));
    assert!(!herald.hub().holds_resume_point("never"));

    // From the earliest event held.
    let mut earliest = herald
        .subscribe(SubscribeRequest {
            from_earliest: true,
            ..filtered("authors", false)
        })
        .await
        .unwrap();
    assert!(read_until(&mut earliest, "data: a\n")
        .await
        .contains("id: w1"));
}

#[test]
fn labelled_events_carry_no_targets_and_wire_ids_need_labels() {
    let with_user = Publication {
        users: vec!["u1".into()],
        labels: Some(Labels {
            names: vec!["x".into()],
            private: false,
        }),
        ..Publication::default()
    };
    assert!(with_user.validate().is_err());
    let unlabelled = Publication {
        wire_id: Some("w".into()),
        ..Publication::broadcast("e", "d")
    };
    assert!(unlabelled.validate().is_err());
}

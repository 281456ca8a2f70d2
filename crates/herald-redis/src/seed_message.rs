//! The seed's message format on the Redis ingress channel, and how it becomes a publication.
//!
//! ```text
//! PUBLISH user:events '{"userId":"user_123","event":"payment_completed","data":{"amount":5000}}'
//! ```
//!
//! `userId` → that user's streams (a string, or a number as the seed's `===` on numeric ids
//! implies); `topic` → that topic's subscribers; neither → broadcast. `data` is sent as compact
//! JSON *always*, strings included (`"done"` arrives with its quotes): that is what the seed's
//! server wrote (`JSON.stringify(data)`) and what its browser code parses (`JSON.parse(e.data)`),
//! so those clients keep working too. (`POST /publish` sends a string verbatim instead.) Other
//! fields are ignored: services of the seed's era may send extra ones, and refusing them would
//! break those services. What cannot be delivered (bad JSON, bad names) is an error.

use herald_core::{compact_json, Publication};
use serde::Deserialize;
use serde_json::value::RawValue;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SeedMessage<'a> {
    user_id: Option<serde_json::Value>,
    topic: Option<String>,
    event: Option<String>,
    #[serde(borrow)]
    data: Option<&'a RawValue>,
}

/// Parses and validates one ingress message.
pub(crate) fn parse(payload: &[u8]) -> Result<Publication, String> {
    let message: SeedMessage<'_> =
        serde_json::from_slice(payload).map_err(|e| format!("not a seed message: {e}"))?;
    let data = match message.data {
        Some(raw) => compact_json(raw.get()),
        None => return Err("missing \"data\"".into()),
    };
    let user = match message.user_id {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(user)) => Some(user),
        Some(serde_json::Value::Number(n)) => Some(n.to_string()),
        Some(_) => return Err("userId must be a string or a number".into()),
    };
    let publication = Publication {
        event: message.event,
        data,
        users: user.into_iter().collect(),
        topics: message.topic.into_iter().collect(),
        retry: None,
    };
    publication.validate().map_err(|e| e.to_string())?;
    Ok(publication)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seed_example_goes_to_its_user() {
        let p =
            parse(br#"{"userId":"user_123","event":"payment_completed","data":{"amount": 5000}}"#)
                .unwrap();
        assert_eq!(p.users, ["user_123"]);
        assert_eq!(p.event.as_deref(), Some("payment_completed"));
        assert_eq!(p.data, r#"{"amount":5000}"#);
        assert!(p.topics.is_empty());
    }

    #[test]
    fn no_user_is_a_broadcast_and_topic_is_honoured() {
        assert!(parse(br#"{"event":"x","data":"hi"}"#)
            .unwrap()
            .is_broadcast());
        let p = parse(br#"{"topic":"orders/1","data":1,"extra":true}"#).unwrap();
        assert_eq!(p.topics, ["orders/1"]);
        assert_eq!(p.data, "1");
    }

    #[test]
    fn malformed_messages_are_errors() {
        for bad in [
            &b"not json"[..],
            br#"{"userId":"u"}"#,
            br#"{"userId":"","data":1}"#,
            br#"{"event":"herald.missed","data":1}"#,
            br#"{"topic":"a/*","data":1}"#,
            br#"{"userId":["a"],"data":1}"#,
            br#"[1,2]"#,
            &[0xff, 0xfe],
        ] {
            assert!(parse(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }
}

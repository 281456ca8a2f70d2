//! The seed's message format on the Redis ingress channel, and how it becomes a publication.
//!
//! ```text
//! PUBLISH user:events '{"userId":"user_123","event":"payment_completed","data":{"amount":5000}}'
//! ```
//!
//! Where a message goes is always said explicitly, because a mistake here leaks private data:
//!
//! * `userId` (a string, or a number as the seed's `===` on numeric ids implies) → that user;
//! * `topic` → that topic's subscribers (with a `userId` too: both);
//! * `"broadcast": true` → every stream (alone: with a user or topic it is contradictory).
//!
//! Anything else is malformed and delivered to no one: in particular a `userId` that is `null`,
//! missing or of another type, which is exactly what `JSON.stringify({userId: undefined, ...})`
//! or a lookup that failed produce; the v1 contract broadcast those. The JSON size and depth
//! limits of `POST /publish` apply. `data` is sent as compact JSON *always*, strings included
//! (`"done"` arrives with its quotes): that is what the seed's server wrote
//! (`JSON.stringify(data)`) and what its browser code parses (`JSON.parse(e.data)`). Other fields
//! are ignored: services of the seed's era may send extra ones.
//!
//! Errors never quote the message's content (it may be private): they say what is wrong and
//! where.

use herald_core::{compact_json, too_deep_json, Publication, Retain, MAX_JSON_DEPTH};
use serde::Deserialize;
use serde_json::value::RawValue;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SeedMessage<'a> {
    #[serde(borrow)]
    user_id: Option<&'a RawValue>,
    #[serde(borrow)]
    topic: Option<&'a RawValue>,
    #[serde(borrow)]
    event: Option<&'a RawValue>,
    #[serde(borrow)]
    data: Option<&'a RawValue>,
    #[serde(borrow)]
    broadcast: Option<&'a RawValue>,
}

/// Parses and validates one ingress message of at most `max_bytes` bytes.
pub fn parse(payload: &[u8], max_bytes: usize) -> Result<Publication, String> {
    if payload.len() > max_bytes {
        return Err(format!(
            "message is {} bytes, over the limit of {max_bytes} (--max-body-bytes)",
            payload.len()
        ));
    }
    let text = std::str::from_utf8(payload).map_err(|_| "message is not valid UTF-8".to_owned())?;
    if too_deep_json(text) {
        return Err(format!(
            "JSON is nested deeper than {MAX_JSON_DEPTH} levels"
        ));
    }
    let message: SeedMessage<'_> = serde_json::from_str(text).map_err(|e| {
        format!(
            "not a seed message (a JSON object): {:?} error at line {} column {}",
            e.classify(),
            e.line(),
            e.column()
        )
    })?;
    let data = match message.data {
        Some(raw) => compact_json(raw.get()),
        None => return Err("missing \"data\"".into()),
    };
    let user = message.user_id.and_then(|raw| user_id(raw.get()));
    let topic = match message.topic.map(|raw| raw.get()) {
        None | Some("null") => None,
        Some(raw) => {
            Some(serde_json::from_str::<String>(raw).map_err(|_| "\"topic\" must be a string")?)
        }
    };
    let broadcast = match message.broadcast.map(|raw| raw.get()) {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => return Err("\"broadcast\" must be true or false".into()),
    };
    match (&user, &topic, broadcast) {
        (None, None, false) => {
            return Err(match message.user_id.map(|raw| raw.get()) {
                None => "no \"userId\": give a userId, a topic, or \"broadcast\": true".into(),
                Some("null") => {
                    "\"userId\" is null: give a userId, a topic, or \"broadcast\": true".into()
                }
                Some(_) => "\"userId\" must be a string or a number".into(),
            });
        }
        (Some(_), _, true) | (_, Some(_), true) => {
            return Err(
                "\"broadcast\": true goes to everyone; it cannot be combined with userId or topic"
                    .into(),
            );
        }
        _ => {}
    }
    let event = match message.event.map(|raw| raw.get()) {
        None | Some("null") => None,
        Some(raw) => {
            Some(serde_json::from_str::<String>(raw).map_err(|_| "\"event\" must be a string")?)
        }
    };
    let publication = Publication {
        event,
        data,
        users: user.into_iter().collect(),
        topics: topic.into_iter().collect(),
        retry: None,
        retain: Retain::No,
        labels: None,
        wire_id: None,
    };
    publication.validate().map_err(|e| e.to_string())?;
    Ok(publication)
}

/// A `userId` that names a user: a string, or a number (written as JSON writes it).
fn user_id(raw: &str) -> Option<String> {
    match serde_json::from_str::<serde_json::Value>(raw).ok()? {
        serde_json::Value::String(user) => Some(user),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: usize = 1 << 20;

    #[test]
    fn the_seed_example_goes_to_its_user() {
        let p = parse(
            br#"{"userId":"user_123","event":"payment_completed","data":{"amount": 5000}}"#,
            MAX,
        )
        .unwrap();
        assert_eq!(p.users, ["user_123"]);
        assert_eq!(p.event.as_deref(), Some("payment_completed"));
        assert_eq!(p.data, r#"{"amount":5000}"#);
        assert!(p.topics.is_empty());
        assert_eq!(
            parse(br#"{"userId":42,"data":1}"#, MAX).unwrap().users,
            ["42"]
        );
    }

    /// Found by the `seed_message` fuzz target: a lone surrogate escape in a field the decoder
    /// skips. JSON's grammar allows it; the message asked for its broadcast, so it is one.
    #[test]
    fn a_lone_surrogate_in_a_skipped_field_does_not_hide_an_explicit_broadcast() {
        let payload = br#"{"eve4<49\r,49\r,96||": "m49\rnan666666666666988\ud888918933332ce","data":1,"broadcast":true}"#;
        let p = parse(payload, MAX).unwrap();
        assert!(p.is_broadcast());
        assert_eq!(p.data, "1");
        let p = parse(br#"{"note":"\ud888","userId":"u","data":1}"#, MAX).unwrap();
        assert_eq!(p.users, ["u"]);
    }

    #[test]
    fn broadcast_must_be_explicit_and_topic_is_honoured() {
        assert!(parse(br#"{"event":"x","data":"hi","broadcast":true}"#, MAX)
            .unwrap()
            .is_broadcast());
        let p = parse(br#"{"topic":"orders/1","data":1,"extra":true}"#, MAX).unwrap();
        assert_eq!(p.topics, ["orders/1"]);
        assert_eq!(p.data, "1");
        let p = parse(br#"{"userId":null,"topic":"orders/1","data":1}"#, MAX).unwrap();
        assert_eq!((p.users.len(), p.topics.len()), (0, 1));
    }

    #[test]
    fn a_message_without_a_recipient_reaches_no_one() {
        for bad in [
            &br#"{"event":"dm","data":{"secret":1}}"#[..],
            br#"{"userId":null,"event":"dm","data":{"secret":1}}"#,
            br#"{"userId":true,"data":1}"#,
            br#"{"userId":{"id":1},"data":1}"#,
            br#"{"userId":"u","data":1,"broadcast":"yes"}"#,
            br#"{"userId":"u","data":1,"broadcast":true}"#,
            br#"{"data":1,"broadcast":false}"#,
        ] {
            let error = parse(bad, MAX).unwrap_err();
            assert!(!error.contains("secret"), "{error}");
        }
    }

    #[test]
    fn malformed_and_oversized_messages_are_errors() {
        for bad in [
            &b"not json"[..],
            br#"{"userId":"u"}"#,
            br#"{"userId":"","data":1}"#,
            br#"{"userId":"u","event":"herald.missed","data":1}"#,
            br#"{"topic":"a/*","data":1}"#,
            br#"{"userId":["a"],"data":1}"#,
            br#"{"topic":5,"data":1}"#,
            br#"[1,2]"#,
            &[0xff, 0xfe],
        ] {
            assert!(
                parse(bad, MAX).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let deep = format!(
            r#"{{"userId":"u","data":{}1{}}}"#,
            "[".repeat(40),
            "]".repeat(40)
        );
        assert!(parse(deep.as_bytes(), MAX).unwrap_err().contains("nested"));
        let big = format!(r#"{{"userId":"u","data":"{}"}}"#, "x".repeat(2000));
        assert!(parse(big.as_bytes(), 1000).unwrap_err().contains("limit"));
        let error = parse(br#"{"userId":"u","data":"secret" oops}"#, MAX).unwrap_err();
        assert!(
            !error.contains("secret") && !error.contains("oops"),
            "{error}"
        );
    }
}

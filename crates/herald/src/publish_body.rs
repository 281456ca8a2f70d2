//! Decoding a `POST /publish` body into a validated [`Batch`], in one pass over the JSON.
//!
//! The body is one JSON object or an array of them:
//! `{"event"?, "data", "user"?, "users"?, "topic"?, "topics"?, "retry"?, "retain"?}`. Unknown fields are
//! rejected (a typo like `"usr"` would otherwise silently broadcast). A string `data` is sent
//! verbatim; any other JSON value is sent as compact JSON, byte for byte as given minus
//! insignificant whitespace (key order and number spelling are preserved). With `--schema`,
//! each item's `data` is checked against its event's JSON Schema as it is decoded. A batch is
//! decoded and validated whole before anything is published: all or nothing.

use herald_core::{json_payload, too_deep_json, Batch, Publication, Retain};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::schema::EventSchemas;

/// A decoded body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    pub batch: Batch,
    /// The body was an array (answer with `ids`), not a single object (answer with `id`).
    pub is_array: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Item<'a> {
    event: Option<String>,
    /// Absent is `None`; present (even `null`) is `Some`, so `"data": null` publishes `null`.
    #[serde(borrow, default, deserialize_with = "present")]
    data: Option<&'a RawValue>,
    user: Option<String>,
    users: Option<Vec<String>>,
    topic: Option<String>,
    topics: Option<Vec<String>>,
    #[serde(borrow)]
    retry: Option<&'a RawValue>,
    #[serde(borrow)]
    retain: Option<&'a RawValue>,
}

/// A field that is present, whatever its value (serde's `Option` would read `null` as absent).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(d).map(Some)
}

/// Deepest JSON nesting accepted in a body (arrays and objects, the batch array included).
pub use herald_core::MAX_JSON_DEPTH as MAX_DEPTH;

/// Decodes and validates a publish body, checking data against `schemas` if given. The error is
/// a message for the caller (HTTP 400).
pub fn decode(body: &[u8], schemas: Option<&EventSchemas>) -> Result<Decoded, String> {
    let text = std::str::from_utf8(body).map_err(|_| "body is not valid UTF-8".to_owned())?;
    if too_deep_json(text) {
        return Err(format!("JSON is nested deeper than {MAX_DEPTH} levels"));
    }
    let trimmed = text.trim_start();
    if trimmed.starts_with('[') {
        // Fast path: a well-formed batch is parsed in one pass. Only if that fails is it parsed
        // again item by item, to tell the caller which item is wrong.
        let publications = match serde_json::from_str::<Vec<Item<'_>>>(text) {
            Ok(items) if items.is_empty() => return Err("batch is empty".into()),
            Ok(items) => items
                .into_iter()
                .enumerate()
                .map(|(i, item)| publication(item, schemas).map_err(|e| format!("item {i}: {e}")))
                .collect::<Result<_, _>>()?,
            Err(_) => return Err(batch_error(text, schemas)),
        };
        Ok(Decoded {
            batch: Batch::new(publications).map_err(|e| e.to_string())?,
            is_array: true,
        })
    } else if trimmed.starts_with('{') {
        let publication = decode_item(text, schemas)?;
        Ok(Decoded {
            batch: Batch::one(publication).map_err(|e| e.to_string())?,
            is_array: false,
        })
    } else {
        Err("body must be a JSON object or an array of objects".into())
    }
}

/// Why a batch that did not parse is wrong, naming the item where possible.
fn batch_error(text: &str, schemas: Option<&EventSchemas>) -> String {
    let items: Vec<&RawValue> = match serde_json::from_str(text) {
        Ok(items) => items,
        Err(e) => return format!("malformed JSON: {e}"),
    };
    for (i, raw) in items.iter().enumerate() {
        let item =
            decode_item(raw.get(), schemas).and_then(|p| p.validate().map_err(|e| e.to_string()));
        if let Err(e) = item {
            return format!("item {i}: {e}");
        }
    }
    "malformed batch".into()
}

fn decode_item(json: &str, schemas: Option<&EventSchemas>) -> Result<Publication, String> {
    let item: Item<'_> = serde_json::from_str(json).map_err(|e| {
        if e.is_data() {
            e.to_string()
        } else {
            format!("malformed JSON: {e}")
        }
    })?;
    publication(item, schemas)
}

/// The publication an item asks for (validated later, with its batch).
fn publication(item: Item<'_>, schemas: Option<&EventSchemas>) -> Result<Publication, String> {
    let retain = parse_retain(item.retain)?;
    let data = match item.data {
        Some(data) => {
            if let Some(schemas) = schemas {
                schemas.check(item.event.as_deref(), data)?;
            }
            json_payload(data).map_err(|e| format!("data: {e}"))?
        }
        // A clear carries no value.
        None if retain == Retain::Clear => String::new(),
        None => return Err("missing field `data`".into()),
    };
    let publication = Publication {
        event: item.event,
        data,
        users: one_or_many("user", item.user, item.users)?,
        topics: one_or_many("topic", item.topic, item.topics)?,
        retry: item.retry.map(|r| parse_retry(r.get())).transpose()?,
        retain,
        labels: None,
        wire_id: None,
    };
    Ok(publication)
}

/// Merges `user` and `users` (or `topic`/`topics`); an explicitly empty list is an error, since
/// "send to nobody" is never what the caller meant and must not turn into a broadcast.
fn one_or_many(
    field: &str,
    one: Option<String>,
    many: Option<Vec<String>>,
) -> Result<Vec<String>, String> {
    let mut all = Vec::new();
    if let Some(many) = many {
        if many.is_empty() {
            return Err(format!("{field}s must not be empty (omit it to broadcast)"));
        }
        all = many;
    }
    all.extend(one);
    all.sort();
    all.dedup();
    Ok(all)
}

/// `retain`: `true` (the event becomes its targets' retained value), `false`, or `"clear"`.
fn parse_retain(raw: Option<&RawValue>) -> Result<Retain, String> {
    match raw.map(RawValue::get) {
        None | Some("false") => Ok(Retain::No),
        Some("true") => Ok(Retain::Keep),
        Some(r#""clear""#) => Ok(Retain::Clear),
        Some(_) => Err(r#"retain must be true, false or "clear""#.into()),
    }
}

/// `retry` is milliseconds: a non-negative integer, or a string of ASCII digits.
fn parse_retry(raw: &str) -> Result<u64, String> {
    let digits = raw
        .strip_prefix('"')
        .and_then(|r| r.strip_suffix('"'))
        .unwrap_or(raw);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err("retry must be a non-negative integer number of milliseconds".into());
    }
    digits.parse().map_err(|_| "retry is too large".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(body: &str) -> Publication {
        let decoded = decode(body.as_bytes(), None).unwrap();
        assert!(!decoded.is_array);
        decoded.batch.into_inner().into_iter().next().unwrap()
    }

    #[test]
    fn object_data_is_compacted_preserving_order_and_spelling() {
        let p =
            one(r#"{"user":"u1","event":"e","data":{ "z": 1.50, "a" : [1, 2], "s": "a b\n" }}"#);
        assert_eq!(p.data, r#"{"z":1.50,"a":[1,2],"s":"a b\n"}"#);
        assert_eq!(p.users, vec!["u1"]);
        assert_eq!(p.event.as_deref(), Some("e"));
    }

    #[test]
    fn string_data_is_verbatim() {
        assert_eq!(one(r#"{"data":"line1\r\nline2"}"#).data, "line1\r\nline2");
        assert_eq!(one(r#"{"data":null}"#).data, "null");
    }

    #[test]
    fn targets_merge_and_batch_is_detected() {
        let d = decode(br#"[{"data":1,"user":"a","users":["b","a"]},{"data":2,"topics":["t/1"],"topic":"t/2"}]"#, None).unwrap();
        assert!(d.is_array);
        assert_eq!(d.batch[0].users, vec!["a", "b"]);
        assert_eq!(d.batch[1].topics, vec!["t/1", "t/2"]);
    }

    #[test]
    fn bad_bodies_have_clear_errors() {
        let err = |b: &str| decode(b.as_bytes(), None).unwrap_err();
        assert!(err("{").contains("malformed JSON"));
        assert!(err("42").contains("JSON object or an array"));
        assert!(err("[]").contains("empty"));
        assert!(err(r#"{"event":"x"}"#).contains("missing field `data`"));
        assert!(err(r#"{"data":1,"usr":"a"}"#).contains("unknown field `usr`"));
        assert!(err(r#"{"data":1,"event":"a\nb"}"#).contains("event name"));
        assert!(err(r#"{"data":1,"retry":"12a"}"#).contains("retry"));
        assert!(err(r#"{"data":1,"retry":-1}"#).contains("retry"));
        assert!(err(r#"{"data":1,"retry":1.5}"#).contains("retry"));
        assert!(err(r#"{"data":1,"users":[]}"#).contains("users must not be empty"));
        assert!(err(r#"[{"data":1},{"data":1,"topic":"a/*"}]"#).starts_with("item 1:"));
        assert!(err(&format!("{}{}", "[".repeat(200), "]".repeat(200))).contains("nested deeper"));
        let deep_data = format!("{{\"data\":{}1{}}}", "[".repeat(40), "]".repeat(40));
        assert!(err(&deep_data).contains("nested deeper"));
        let brackets_in_strings = format!("{{\"data\":\"{}\"}}", "[".repeat(100));
        assert!(decode(brackets_in_strings.as_bytes(), None).is_ok());
        assert!(decode(&[0xff, 0xfe], None).unwrap_err().contains("UTF-8"));
    }

    #[test]
    fn retain_keeps_clears_or_is_refused() {
        assert_eq!(
            one(r#"{"data":1,"topic":"t","retain":true}"#).retain,
            Retain::Keep
        );
        assert_eq!(one(r#"{"data":1,"retain":false}"#).retain, Retain::No);
        let clear = one(r#"{"event":"unread","user":"u","retain":"clear"}"#);
        assert_eq!((clear.retain, clear.data.as_str()), (Retain::Clear, ""));
        let err = decode(br#"{"data":1,"retain":"yes"}"#, None).unwrap_err();
        assert!(err.contains("retain"), "{err}");
        let err = decode(br#"{"event":"x","retain":true}"#, None).unwrap_err();
        assert!(err.contains("data"), "{err}");
    }

    #[test]
    fn retry_accepts_digits() {
        assert_eq!(one(r#"{"data":1,"retry":2500}"#).retry, Some(2500));
        assert_eq!(one(r#"{"data":1,"retry":"2500"}"#).retry, Some(2500));
    }

    proptest::proptest! {
        #[test]
        fn never_panics_on_arbitrary_bytes(body in proptest::collection::vec(proptest::num::u8::ANY, 0..256)) {
            let _ = decode(&body, None);
        }

        #[test]
        fn compacting_valid_json_keeps_its_value(v in arb_json()) {
            let pretty = serde_json::to_string_pretty(&v).unwrap();
            let compact = herald_core::compact_json(&pretty);
            let reparsed: serde_json::Value = serde_json::from_str(&compact).unwrap();
            proptest::prop_assert_eq!(reparsed, v);
            proptest::prop_assert!(!compact.contains('\n'));
        }
    }

    fn arb_json() -> impl proptest::strategy::Strategy<Value = serde_json::Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            ".*".prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::from),
                proptest::collection::btree_map(".*", inner, 0..6)
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }
}

//! Typed events: `--schema FILE` checks published data against a JSON Schema per event name.
//!
//! The file is `{ "events": { "<event name>": <JSON Schema>, ... } }`, the same file
//! `herald typegen` turns into TypeScript types, so the browser's types and the hub's checks
//! cannot drift apart. Unnamed events are checked under the name `message`. Events not in the
//! file pass, unless `--schema-strict` is given.
//!
//! The check runs while the publish body is decoded ([`crate::publish_body`]), on each item's
//! `data` alone, before anything is published: a batch with one bad item is refused whole (400,
//! naming the item, the event and where in `data` the problem is).

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

/// Compiled schemas, one per event name.
pub struct EventSchemas {
    validators: BTreeMap<String, jsonschema::Validator>,
    strict: bool,
}

/// The schema file's shape.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchemaFile {
    pub events: BTreeMap<String, Value>,
}

impl SchemaFile {
    pub fn read(path: &Path) -> Result<Self, String> {
        let shown = path.display();
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the schema file {shown}: {e}"))?;
        serde_json::from_str(&text).map_err(|e| {
            format!("schema file {shown} must be {{\"events\": {{\"<event name>\": <JSON Schema>}}}}: {e}")
        })
    }
}

impl EventSchemas {
    pub fn load(path: &Path, strict: bool) -> Result<Self, String> {
        let file = SchemaFile::read(path)?;
        let mut validators = BTreeMap::new();
        for (event, schema) in &file.events {
            let validator = jsonschema::validator_for(schema).map_err(|e| {
                format!(
                    "schema file {}: event {event:?}: invalid schema: {e}",
                    path.display()
                )
            })?;
            validators.insert(event.clone(), validator);
        }
        Ok(Self { validators, strict })
    }

    pub fn len(&self) -> usize {
        self.validators.len()
    }

    /// Checks one item's `data` against the schema of its event (unnamed events are
    /// `message`). The error is a message for the publisher.
    pub fn check(&self, event: Option<&str>, data: &RawValue) -> Result<(), String> {
        let event = event.unwrap_or("message");
        let Some(validator) = self.validators.get(event) else {
            return if self.strict {
                Err(format!(
                    "event {event:?} is not in the schema file, and --schema-strict refuses unknown events"
                ))
            } else {
                Ok(())
            };
        };
        let data: Value =
            serde_json::from_str(data.get()).map_err(|e| format!("malformed JSON: {e}"))?;
        let result = match validator.iter_errors(&data).next() {
            None => Ok(()),
            Some(error) => {
                let at = error.instance_path().to_string();
                let at = if at.is_empty() {
                    "data".to_owned()
                } else {
                    format!("data{at}")
                };
                Err(format!(
                    "event {event:?} does not match its schema at {at}: {error}"
                ))
            }
        };
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schemas(strict: bool) -> EventSchemas {
        let dir = std::env::temp_dir().join(format!("herald-schema-{}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("schema.json");
        std::fs::write(
            &path,
            r#"{"events": {"order_update": {"type": "object", "required": ["orderId", "status"],
                "properties": {"orderId": {"type": "string"}, "status": {"enum": ["pending", "shipped"]}}}}}"#,
        )
        .unwrap();
        EventSchemas::load(&path, strict).unwrap()
    }

    /// What `POST /publish` answers for `body` with these schemas.
    fn check_body(schemas: &EventSchemas, body: &[u8]) -> Result<(), String> {
        crate::publish_body::decode(body, Some(schemas)).map(drop)
    }

    #[test]
    fn checks_data_of_known_events_and_names_the_place() {
        let s = schemas(false);
        assert_eq!(
            check_body(
                &s,
                br#"{"event":"order_update","data":{"orderId":"1","status":"shipped"}}"#
            ),
            Ok(())
        );
        let err = check_body(
            &s,
            br#"{"event":"order_update","data":{"orderId":"1","status":"lost"}}"#,
        )
        .unwrap_err();
        assert!(
            err.contains("order_update") && err.contains("data/status"),
            "{err}"
        );
        let err = check_body(
            &s,
            br#"[{"data":1},{"event":"order_update","data":{"status":"pending"}}]"#,
        )
        .unwrap_err();
        assert!(
            err.starts_with("item 1:") && err.contains("orderId"),
            "{err}"
        );
        assert_eq!(check_body(&s, br#"{"event":"other","data":1}"#), Ok(()));
    }

    #[test]
    fn strict_mode_refuses_unknown_events() {
        let err = check_body(&schemas(true), br#"{"event":"other","data":1}"#).unwrap_err();
        assert!(err.contains("--schema-strict"), "{err}");
    }
}

//! The `smt run` configuration of the end-to-end tests: a table built as
//! data and serialised by `toml` (so quoting, escaping and section order are
//! the serialiser's, not a format string's), with the settings the tests
//! share: short Kafka timeouts, small batches, fast retries.

use std::path::Path;

use serde_json::{json, Map, Value};

use crate::services::unique_name;

/// The admin `listen` address that [`crate::smt_process::Smt::start`]
/// replaces with a free loopback port.
pub const ADMIN: &str = "{admin}";

/// A pipeline configuration: Kafka, MongoDB, transforms, routes, DLQ.
#[derive(Clone, Debug)]
pub struct ConfigBuilder {
    /// The consumer group (tests read its committed offsets).
    pub group: String,
    /// The TOML document as JSON-shaped data (maps keep their order).
    doc: Map<String, Value>,
    serial_writes: bool,
}

impl ConfigBuilder {
    pub fn new(brokers: &str, mongodb_uri: &str, database: &str) -> Self {
        let group = unique_name("group");
        let doc = json!({
            "kafka": {
                "brokers": brokers,
                "group-id": group,
                "properties": {
                    "session.timeout.ms": "6000",
                    "heartbeat.interval.ms": "500",
                    "topic.metadata.refresh.interval.ms": "2000",
                },
            },
            "mongodb": { "uri": mongodb_uri, "database": database },
            "pipeline": {
                "max-batch-size": 200,
                "linger-ms": 10,
                "queue-capacity": 400,
                "commit-interval-ms": 200,
                "retry-backoff-ms": 50,
                "retry-backoff-max-ms": 1000,
            },
            "admin": { "listen": ADMIN },
        });
        let Value::Object(doc) = doc else {
            unreachable!("a JSON object literal")
        };
        ConfigBuilder {
            group,
            doc,
            serial_writes: false,
        }
    }

    /// `[transforms.<name>]` with `module` and its JSON `config` (an object).
    pub fn transform(self, name: &str, module: impl AsRef<Path>, config: Value) -> Self {
        let module = module.as_ref().display().to_string();
        self.set(
            &["transforms", name],
            json!({ "module": module, "config": config }),
        )
    }

    /// `[transforms.<name>]` with `module` and its config in a JSON file.
    pub fn transform_with_config_file(
        self,
        name: &str,
        module: impl AsRef<Path>,
        config_file: impl AsRef<Path>,
    ) -> Self {
        let module = module.as_ref().display().to_string();
        let file = config_file.as_ref().display().to_string();
        self.set(
            &["transforms", name],
            json!({ "module": module, "config-file": file }),
        )
    }

    /// A `[[routes]]` entry for one topic.
    pub fn route(self, topic: &str, transform: &str, on_error: &str) -> Self {
        self.route_topics(&[topic], transform, on_error)
    }

    /// A `[[routes]]` entry for several topics.
    pub fn route_topics<S: AsRef<str>>(
        mut self,
        topics: &[S],
        transform: &str,
        on_error: &str,
    ) -> Self {
        let topics: Vec<&str> = topics.iter().map(AsRef::as_ref).collect();
        let route = json!({ "topics": topics, "transform": transform, "on-error": on_error });
        match self.doc.entry("routes").or_insert_with(|| json!([])) {
            Value::Array(routes) => routes.push(route),
            other => panic!("`routes` is not an array: {other}"),
        }
        self
    }

    /// `[dlq] topic`.
    pub fn dlq(self, topic: &str) -> Self {
        self.set(&["dlq", "topic"], json!(topic))
    }

    /// `serial-writes = true` on every route.
    pub fn serial_writes(mut self) -> Self {
        self.serial_writes = true;
        self
    }

    /// Sets the value at `path` (table names, then the key), creating the
    /// tables on the way: `set(&["pipeline", "max-batch-size"], json!(7))`.
    pub fn set(mut self, path: &[&str], value: Value) -> Self {
        let (key, tables) = path.split_last().expect("a path names a key");
        table(&mut self.doc, tables).insert((*key).to_owned(), value);
        self
    }

    /// Removes the key at `path` (to misspell it, say).
    pub fn remove(mut self, path: &[&str]) -> Self {
        let (key, tables) = path.split_last().expect("a path names a key");
        table(&mut self.doc, tables).shift_remove(*key);
        self
    }

    /// The TOML text.
    pub fn build(&self) -> String {
        let mut doc = self.doc.clone();
        if self.serial_writes {
            if let Some(Value::Array(routes)) = doc.get_mut("routes") {
                for r in routes.iter_mut().filter_map(Value::as_object_mut) {
                    r.insert("serial-writes".into(), Value::Bool(true));
                }
            }
        }
        toml::to_string(&doc)
            .expect("a JSON object of tables, strings, numbers and booleans is TOML")
    }
}

/// The table at `path` under `doc`, created (empty) where missing.
fn table<'a>(doc: &'a mut Map<String, Value>, path: &[&str]) -> &'a mut Map<String, Value> {
    path.iter().fold(doc, |t, name| {
        match t.entry(*name).or_insert_with(|| json!({})) {
            Value::Object(m) => m,
            other => panic!("`{name}` is not a table: {other}"),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_is_the_toml_of_the_table() {
        let text = ConfigBuilder::new("b:1", "mongodb://m", "d\"b")
            .transform(
                "t",
                "/m/t.wasm",
                json!({"mode": "trap", "n": 2, "nested": {"a": true}}),
            )
            .route("topic", "t", "dlq")
            .route_topics(&["x", "y"], "t", "fail")
            .dlq("dead")
            .serial_writes()
            .set(&["pipeline", "max-batch-size"], json!(7))
            .remove(&["pipeline", "linger-ms"])
            // A value after a sub-table (`kafka.properties`) in its table.
            .set(&["kafka", "late"], json!("v"))
            .build();
        let parsed: toml::Table = toml::from_str(&text).expect(&text);
        let got = serde_json::to_value(&parsed).unwrap();
        assert_eq!(got["mongodb"]["database"], "d\"b", "{text}");
        assert_eq!(got["kafka"]["properties"]["session.timeout.ms"], "6000");
        assert_eq!(got["admin"]["listen"], ADMIN);
        assert_eq!(
            got["transforms"]["t"],
            json!({"module": "/m/t.wasm", "config": {"mode": "trap", "n": 2, "nested": {"a": true}}})
        );
        assert_eq!(
            got["routes"],
            json!([
                {"topics": ["topic"], "transform": "t", "on-error": "dlq", "serial-writes": true},
                {"topics": ["x", "y"], "transform": "t", "on-error": "fail", "serial-writes": true},
            ])
        );
        assert_eq!(got["dlq"]["topic"], "dead");
        assert_eq!(got["pipeline"]["max-batch-size"], 7);
        assert!(got["pipeline"].get("linger-ms").is_none(), "{text}");
        assert_eq!(got["kafka"]["late"], "v", "{text}");
    }

    #[test]
    fn smt_accepts_it() {
        let text = ConfigBuilder::new("127.0.0.1:1", "mongodb://127.0.0.1:1", "db")
            .transform("t", "/m/t.wasm", json!({}))
            .route("topic", "t", "skip")
            .build()
            .replace(ADMIN, "127.0.0.1:0");
        let config: smt_host::config::Config = toml::from_str(&text).expect(&text);
        assert_eq!(config.routes.len(), 1);
    }
}

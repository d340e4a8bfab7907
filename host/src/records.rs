//! Kafka records as JSON lines: the fixture format of `tests/fixtures/` and
//! the input of `smt test` (documented in `tests/fixtures/README.md`).
//!
//! ```json
//! {"topic":"dbz.inventory.customers","partition":0,"offset":3,"timestamp_ms":1700000000000,
//!  "key":"{\"id\":1}","value":"{...}","headers":[{"key":"__debezium.newkey","value":"{...}"}]}
//! ```
//! `key`/`value`/header `value` hold the bytes as UTF-8 text (`null` for none);
//! bytes that are not UTF-8 go in `key_base64`/`value_base64`/`value_base64`.

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::contract::{Header, Message};

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RecordLine {
    topic: String,
    #[serde(default)]
    partition: i32,
    #[serde(default)]
    offset: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    timestamp_ms: Option<i64>,
    #[serde(default)]
    key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    key_base64: Option<String>,
    #[serde(default)]
    value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    value_base64: Option<String>,
    #[serde(default)]
    headers: Vec<HeaderLine>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct HeaderLine {
    key: String,
    #[serde(default)]
    value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    value_base64: Option<String>,
}

fn bytes(text: Option<String>, b64: Option<String>, what: &str) -> Result<Option<Vec<u8>>, String> {
    match (text, b64) {
        (Some(_), Some(_)) => Err(format!("both `{what}` and `{what}_base64` are set")),
        (Some(t), None) => Ok(Some(t.into_bytes())),
        (None, Some(b)) => base64::engine::general_purpose::STANDARD
            .decode(b.as_bytes())
            .map(Some)
            .map_err(|e| format!("`{what}_base64` is not base64: {e}")),
        (None, None) => Ok(None),
    }
}

/// Parses one line into the message a transform receives.
pub fn parse_line(line: &str) -> Result<Message, String> {
    let r: RecordLine =
        serde_json::from_str(line).map_err(|e| format!("not a record line: {e}"))?;
    let headers = r
        .headers
        .into_iter()
        .map(|h| {
            let value = bytes(h.value, h.value_base64, "value")?;
            Ok(Header { key: h.key, value })
        })
        .collect::<Result<_, String>>()?;
    Ok(Message {
        key: bytes(r.key, r.key_base64, "key")?,
        value: bytes(r.value, r.value_base64, "value")?,
        topic: r.topic,
        partition: r.partition,
        offset: r.offset,
        timestamp_ms: r.timestamp_ms,
        headers,
    })
}

/// Renders a message as one line of the same format.
pub fn to_line(msg: &Message) -> String {
    fn split(b: &Option<Vec<u8>>) -> (Option<String>, Option<String>) {
        match b {
            None => (None, None),
            Some(b) => match std::str::from_utf8(b) {
                Ok(s) => (Some(s.to_owned()), None),
                Err(_) => (
                    None,
                    Some(base64::engine::general_purpose::STANDARD.encode(b)),
                ),
            },
        }
    }
    let (key, key_base64) = split(&msg.key);
    let (value, value_base64) = split(&msg.value);
    let line = RecordLine {
        topic: msg.topic.clone(),
        partition: msg.partition,
        offset: msg.offset,
        timestamp_ms: msg.timestamp_ms,
        key,
        key_base64,
        value,
        value_base64,
        headers: msg
            .headers
            .iter()
            .map(|h| {
                let (value, value_base64) = split(&h.value);
                HeaderLine {
                    key: h.key.clone(),
                    value,
                    value_base64,
                }
            })
            .collect(),
    };
    serde_json::to_string(&line).expect("a record line always serialises")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_text_binary_and_nulls() {
        let msg = Message {
            topic: "t".into(),
            partition: 2,
            offset: 9,
            timestamp_ms: Some(5),
            key: Some(vec![0xff, 0x00]),
            value: None,
            headers: vec![
                Header {
                    key: "h".into(),
                    value: Some(b"v".to_vec()),
                },
                Header {
                    key: "n".into(),
                    value: None,
                },
            ],
        };
        let line = to_line(&msg);
        assert!(line.contains("\"key_base64\":\"/wA=\""), "{line}");
        let back = parse_line(&line).unwrap();
        assert_eq!(back.key, msg.key);
        assert_eq!(back.value, None);
        assert_eq!(back.headers.len(), 2);
        assert_eq!(back.headers[1].value, None);
        assert_eq!(
            (back.partition, back.offset, back.timestamp_ms),
            (2, 9, Some(5))
        );
    }

    #[test]
    fn rejects_unknown_fields_and_ambiguity() {
        assert!(parse_line(r#"{"topic":"t","valu":"x"}"#)
            .unwrap_err()
            .contains("unknown field"));
        assert!(parse_line(r#"{"topic":"t","key":"a","key_base64":"YQ=="}"#)
            .unwrap_err()
            .contains("both"));
    }
}

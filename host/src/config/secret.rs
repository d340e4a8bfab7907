//! Values that must not be printed, and where they come from: text in the
//! file, an environment variable (`{ env = "VAR" }`) or a file
//! (`{ file = "path" }`, relative to the config file; one trailing newline
//! removed). Resolved once at load, so a missing variable or unreadable file
//! is a configuration error naming the key; afterwards every value is text.
//!
//! `Debug` of [`Secret`] prints `***`; `Debug` of [`Properties`] prints the
//! value of every key [`is_secret_key`] matches as `***` (whether it came from
//! the file, the environment or a file), so `{config:?}` is safe to log.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// A value that must never be logged: `Debug` prints `***`. In the file it
/// is text, `{ env = "VAR" }` or `{ file = "path" }`.
#[derive(Clone, PartialEq)]
pub struct Secret {
    value: String,
    /// Where the value is read from at load (`None`: written in the file).
    source: Option<ValueSource>,
}

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret {
            value: value.into(),
            source: None,
        }
    }

    pub fn expose(&self) -> &str {
        &self.value
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match RawValue::deserialize(d)? {
            RawValue::Text(s) => Ok(Secret::new(s)),
            RawValue::Int(_) | RawValue::Bool(_) => Err(serde::de::Error::custom(
                "expected text, { env = \"VAR\" } or { file = \"path\" }",
            )),
            // Read by `Config::load` (`resolve_secret`).
            RawValue::From(src) => Ok(Secret {
                value: String::new(),
                source: Some(src),
            }),
        }
    }
}

/// Where a value is read from: exactly one of `env` or `file`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ValueSource {
    /// The name of an environment variable holding the value.
    #[serde(default)]
    pub env: Option<String>,
    /// A file holding the value (relative to the config file's directory);
    /// one trailing newline is removed.
    #[serde(default)]
    pub file: Option<PathBuf>,
}

impl ValueSource {
    /// Reads the value. `env` is the process environment (a map, for tests).
    pub fn read(&self, base: &Path, env: &HashMap<String, String>) -> Result<String, String> {
        match (&self.env, &self.file) {
            (Some(var), None) => env.get(var).cloned().ok_or_else(|| {
                format!("the environment variable {var} (named by `env`) is not set")
            }),
            (None, Some(file)) => {
                let path = if file.is_relative() {
                    base.join(file)
                } else {
                    file.clone()
                };
                let mut text = std::fs::read_to_string(&path).map_err(|e| {
                    format!("cannot read {} (named by `file`): {e}", path.display())
                })?;
                if text.ends_with('\n') {
                    text.pop();
                    if text.ends_with('\r') {
                        text.pop();
                    }
                }
                Ok(text)
            }
            _ => Err("set exactly one of `env` or `file`".into()),
        }
    }
}

#[derive(Deserialize)]
#[serde(untagged, expecting = "text, { env = \"VAR\" } or { file = \"path\" }")]
enum RawValue {
    Text(String),
    Int(i64),
    Bool(bool),
    From(ValueSource),
}

/// Text options handed to a client library: librdkafka properties
/// (`[kafka.properties]`, `[dlq.properties]`) or MongoDB URI options
/// (`[mongodb.options]`). A value is text (numbers and booleans are taken as
/// their text), `{ env = "VAR" }` or `{ file = "path" }`. Reads like a
/// `BTreeMap<String, String>`; `Debug` masks secret keys.
#[derive(Clone, Default, PartialEq)]
pub struct Properties {
    values: BTreeMap<String, String>,
    /// Keys whose values were read from a source (not written in the file).
    sourced: BTreeMap<String, ValueSource>,
}

impl<'de> Deserialize<'de> for Properties {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = BTreeMap::<String, RawValue>::deserialize(d)?;
        let mut p = Properties::default();
        for (k, v) in raw {
            match v {
                RawValue::Text(s) => {
                    p.values.insert(k, s);
                }
                RawValue::Int(i) => {
                    p.values.insert(k, i.to_string());
                }
                RawValue::Bool(b) => {
                    p.values.insert(k, b.to_string());
                }
                RawValue::From(src) => {
                    p.sourced.insert(k, src);
                }
            }
        }
        Ok(p)
    }
}

impl Properties {
    /// Reads every `{ env }` / `{ file }` value; `Err((key, message))`.
    pub(super) fn resolve(
        &mut self,
        section: &str,
        base: &Path,
        env: &HashMap<String, String>,
    ) -> Result<(), (String, String)> {
        for (k, src) in &self.sourced {
            if self.values.contains_key(k) {
                continue;
            }
            let v = src
                .read(base, env)
                .map_err(|m| (format!("{section}.{k}"), m))?;
            self.values.insert(k.clone(), v);
        }
        Ok(())
    }

    /// Whether the value of `key` came from the environment or a file.
    pub fn is_sourced(&self, key: &str) -> bool {
        self.sourced.contains_key(key)
    }

    /// `key=value` pairs with secret values replaced by `***`: safe to print.
    pub fn redacted(&self) -> Vec<(String, String)> {
        self.values
            .iter()
            .map(|(k, v)| (k.clone(), redact_value(k, v)))
            .collect()
    }
}

impl std::ops::Deref for Properties {
    type Target = BTreeMap<String, String>;
    fn deref(&self) -> &Self::Target {
        &self.values
    }
}

impl std::ops::DerefMut for Properties {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.values
    }
}

impl From<BTreeMap<String, String>> for Properties {
    fn from(values: BTreeMap<String, String>) -> Self {
        Properties {
            values,
            sourced: BTreeMap::new(),
        }
    }
}

impl fmt::Debug for Properties {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut m = f.debug_map();
        for (k, v) in &self.values {
            m.entry(k, &redact_value(k, v));
        }
        for (k, src) in &self.sourced {
            if !self.values.contains_key(k) {
                m.entry(k, src);
            }
        }
        m.finish()
    }
}

/// `value`, or `***` when `key` names a secret.
pub fn redact_value(key: &str, value: &str) -> String {
    if is_secret_key(key) {
        "***".into()
    } else {
        value.into()
    }
}

/// Property or option names whose values must never be printed: passwords,
/// secrets, tokens, private keys (`sasl.password`, `ssl.key.password`,
/// `ssl.keystore.password`, `sasl.oauthbearer.client.secret`,
/// `sasl.oauthbearer.config`, `ssl.key.pem`, `tlsCertificateKeyFilePassword`…).
pub fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    [
        "password",
        "secret",
        "token",
        "credential",
        "passphrase",
        "sasl.oauthbearer.config",
        "sasl.jaas.config",
        "key.pem",
        "ssl_key",
    ]
    .iter()
    .any(|s| k.contains(s))
}

/// Replaces a `Secret` read as `{ env }` / `{ file }` by its value.
pub(super) fn resolve_secret(
    secret: &mut Secret,
    key: &str,
    base: &Path,
    env: &HashMap<String, String>,
) -> Result<(), (String, String)> {
    if let Some(src) = &secret.source {
        secret.value = src.read(base, env).map_err(|m| (key.to_owned(), m))?;
    }
    Ok(())
}

/// A MongoDB connection string with the password (and every query option
/// whose name [`is_secret_key`] matches) replaced by `***`: safe to print.
///
/// The user information ends at the *last* `@` of the string, so a password
/// holding an unescaped `/`, `?`, `:` or `@` is masked too (a stray `@` in a
/// query option can only mask more than needed, never less).
pub fn redact_uri(uri: &str) -> String {
    let Some((scheme, rest)) = uri.split_once("://") else {
        return uri.to_owned();
    };
    let (userinfo, after) = match rest.rfind('@') {
        Some(i) => (Some(&rest[..i]), &rest[i + 1..]),
        None => (None, rest),
    };
    let (hosts, tail) = match after.find(['/', '?']) {
        Some(i) => (&after[..i], &after[i..]),
        None => (after, ""),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let query: Vec<String> = query
                .split('&')
                .map(|kv| match kv.split_once('=') {
                    Some((k, _)) if is_secret_key(k) => format!("{k}=***"),
                    _ => kv.to_owned(),
                })
                .collect();
            format!("{path}?{}", query.join("&"))
        }
        None => tail.to_owned(),
    };
    match userinfo {
        Some(u) => {
            // The user name ends at the first `:`; it never holds `/` or `?`
            // unescaped in a valid string, and nothing after it is printed.
            let user = u.split([':', '/', '?']).next().unwrap_or("");
            format!("{scheme}://{user}:***@{hosts}{tail}")
        }
        None => format!("{scheme}://{hosts}{tail}"),
    }
}

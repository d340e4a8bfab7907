//! The MongoDB connection string: assembled from `[mongodb]` (credentials
//! of `username`/`password`, `[mongodb.options]`) and redacted for logs.

use crate::config::MongoConfig;

pub use crate::config::{is_secret_key, redact_uri};

/// The connection string: `uri` with `username`/`password` (percent-encoded)
/// as its user information and `[mongodb.options]` appended. Contains the
/// password: print [`redact_uri`] of it, never it.
pub fn connection_string(mongodb: &MongoConfig) -> String {
    let mut uri = mongodb.uri.clone();
    if let Some(user) = &mongodb.username {
        if let Some((scheme, rest)) = uri.split_once("://") {
            let mut userinfo = percent_encode(user);
            if let Some(p) = &mongodb.password {
                userinfo.push(':');
                userinfo.push_str(&percent_encode(p.expose()));
            }
            uri = format!("{scheme}://{userinfo}@{rest}");
        }
    }
    if mongodb.options.is_empty() {
        return uri;
    }
    let after_authority = uri
        .split_once("://")
        .map(|(_, rest)| match rest.rfind('@') {
            Some(i) => &rest[i + 1..],
            None => rest,
        })
        .unwrap_or("");
    let has_path = after_authority.contains('/');
    let has_query = after_authority.contains('?');
    if !has_query {
        if !has_path {
            uri.push('/');
        }
        uri.push('?');
    } else if !uri.ends_with('?') && !uri.ends_with('&') {
        uri.push('&');
    }
    let pairs: Vec<String> = mongodb
        .options
        .iter()
        .map(|(k, v)| format!("{k}={}", percent_encode_option(v)))
        .collect();
    uri.push_str(&pairs.join("&"));
    uri
}

/// RFC 3986 percent-encoding of everything but the unreserved characters.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// An option value in the query: only the characters that would end or
/// split it (`&`, `#`, `%`, space…) are encoded; paths keep their `/`.
fn percent_encode_option(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/:,@!$'()*+;".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact_uri(
                "mongodb://user:s3cret@h:1,h:2/db?authSource=admin&tlsCertificateKeyFilePassword=x"
            ),
            "mongodb://user:***@h:1,h:2/db?authSource=admin&tlsCertificateKeyFilePassword=***"
        );
        assert_eq!(redact_uri("mongodb://h:1"), "mongodb://h:1");
        assert_eq!(redact_uri("mongodb://h:1/db?w=1"), "mongodb://h:1/db?w=1");
    }

    #[test]
    fn redacts_passwords_with_unescaped_separators() {
        // `/`, `?`, `@`, `:` and `#` in a password written without percent-encoding.
        for (uri, leak) in [
            ("mongodb://user:ab/cd@h:27017/db", "cd"),
            ("mongodb://user:ab?cd@h:27017/db?w=1", "cd"),
            ("mongodb://user:a/b?c@d@h:27017", "b?c"),
            (
                "mongodb+srv://user:x/y?z@cluster0.example.net/?retryWrites=true",
                "x/y",
            ),
            ("mongodb://user:p:q#r@h", "q#r"),
        ] {
            let r = redact_uri(uri);
            assert!(!r.contains(leak), "{uri} -> {r}");
            assert!(r.contains("user:***@"), "{uri} -> {r}");
        }
        assert_eq!(
            redact_uri("mongodb://user:ab/cd@h:27017/db?w=1"),
            "mongodb://user:***@h:27017/db?w=1"
        );
        assert_eq!(
            redact_uri("mongodb+srv://user:x/y?z@cluster0.example.net/?retryWrites=true"),
            "mongodb+srv://user:***@cluster0.example.net/?retryWrites=true"
        );
    }

    #[test]
    fn appends_client_options() {
        let mut m: MongoConfig = serde_json::from_value(serde_json::json!({
            "uri": "mongodb://u:pw@127.0.0.1:27017",
            "database": "d",
        }))
        .unwrap();
        m.options.insert("maxPoolSize".into(), "5".into());
        assert_eq!(
            connection_string(&m),
            "mongodb://u:pw@127.0.0.1:27017/?maxPoolSize=5"
        );
    }

    #[test]
    fn separate_credentials_are_encoded_into_the_uri_and_redacted() {
        let mut m: MongoConfig = serde_json::from_value(serde_json::json!({
            "uri": "mongodb://127.0.0.1:27017/?authSource=admin",
            "database": "d",
            "username": "app user",
            "password": "p@ss/w?rd:%",
        }))
        .unwrap();
        m.options.insert("tls".into(), "true".into());
        let s = connection_string(&m);
        assert_eq!(
            s,
            "mongodb://app%20user:p%40ss%2Fw%3Frd%3A%25@127.0.0.1:27017/?authSource=admin&tls=true"
        );
        assert_eq!(
            redact_uri(&s),
            "mongodb://app%20user:***@127.0.0.1:27017/?authSource=admin&tls=true"
        );
        assert!(!format!("{m:?}").contains("p@ss"), "{m:?}");
    }
}

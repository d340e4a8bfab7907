//! The MongoDB connection string: assembled from `[mongodb]` and redacted for logs.

use crate::config::MongoConfig;

/// The connection string with `[mongodb.options]` appended.
pub fn connection_string(mongodb: &MongoConfig) -> String {
    let mut uri = mongodb.uri.clone();
    if mongodb.options.is_empty() {
        return uri;
    }
    let has_path = uri
        .split_once("://")
        .map(|(_, rest)| rest.contains('/'))
        .unwrap_or(false);
    if !uri.contains('?') {
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
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    uri.push_str(&pairs.join("&"));
    uri
}

/// `uri` with the password (and any query option that looks secret) replaced: safe to log.
pub fn redact_uri(uri: &str) -> String {
    let Some((scheme, rest)) = uri.split_once("://") else {
        return uri.to_owned();
    };
    let (authority, tail) = match rest.find(['/', '?']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, hosts)) => {
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{user}:***@{hosts}")
        }
        None => authority.to_owned(),
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
    format!("{scheme}://{authority}{tail}")
}

/// Property names whose values must never be logged.
pub fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    [
        "password",
        "secret",
        "token",
        "credential",
        "sasl.oauthbearer.config",
        "key.pem",
    ]
    .iter()
    .any(|s| k.contains(s))
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
}

//! The checks a configuration passes after it parses: each failure names the
//! key it is about.

use super::{Config, ErrorPolicy};

/// Keys of librdkafka `smt` sets itself.
const MANAGED_KAFKA_KEYS: &[&str] = &[
    "bootstrap.servers",
    "metadata.broker.list",
    "group.id",
    "enable.auto.commit",
    "enable.auto.offset.store",
];

impl Config {
    pub(super) fn validate(&self) -> Result<(), (String, String)> {
        if self.kafka.brokers.trim().is_empty() {
            return Err(("kafka.brokers".into(), "must not be empty".into()));
        }
        if self.kafka.group_id.trim().is_empty() {
            return Err(("kafka.group-id".into(), "must not be empty".into()));
        }
        if !["earliest", "latest"].contains(&self.kafka.auto_offset_reset.as_str()) {
            return Err((
                "kafka.auto-offset-reset".into(),
                format!(
                    "`{}`: expected `earliest` or `latest`",
                    self.kafka.auto_offset_reset
                ),
            ));
        }
        for (section, props) in [("kafka.properties", &self.kafka.properties)]
            .into_iter()
            .chain(self.dlq.as_ref().map(|d| ("dlq.properties", &d.properties)))
        {
            for key in props.keys() {
                if MANAGED_KAFKA_KEYS.contains(&key.as_str()) {
                    return Err((
                        format!("{section}.{key}"),
                        "is set by smt itself (use the first-class option instead)".into(),
                    ));
                }
            }
        }
        let m = &self.mongodb;
        if m.password.is_some() && m.username.is_none() {
            return Err(("mongodb.password".into(), "needs mongodb.username".into()));
        }
        if let Some(user) = &m.username {
            if user.is_empty() {
                return Err(("mongodb.username".into(), "must not be empty".into()));
            }
            let has_userinfo = m
                .uri
                .split_once("://")
                .is_some_and(|(_, rest)| rest.contains('@'));
            if has_userinfo {
                return Err((
                    "mongodb.username".into(),
                    "mongodb.uri has credentials already: set them in one place".into(),
                ));
            }
        }
        if self.mongodb.database.is_empty() {
            return Err(("mongodb.database".into(), "must not be empty".into()));
        }
        for (i, p) in self.mongodb.allowed_namespaces.iter().enumerate() {
            let (db, coll) = p.split_once('.').unwrap_or((p, "*"));
            if db.is_empty() || coll.is_empty() || (db == "*" && coll != "*") {
                return Err((
                    format!("mongodb.allowed-namespaces[{i}]"),
                    format!("`{p}`: expected `db`, `db.collection`, `db.*` or `*`"),
                ));
            }
        }
        let p = &self.pipeline;
        for (key, v) in [
            ("pipeline.max-batch-size", p.max_batch_size),
            ("pipeline.queue-capacity", p.queue_capacity),
        ] {
            if v == 0 {
                return Err((key.into(), "must be at least 1".into()));
            }
        }
        if p.breaker_percent > 100 {
            return Err((
                "pipeline.breaker-percent".into(),
                "must be between 0 (off) and 100".into(),
            ));
        }
        if p.breaker_window == 0 {
            return Err((
                "pipeline.breaker-window".into(),
                "must be at least 1".into(),
            ));
        }
        if p.retry_backoff_ms == 0 || p.retry_backoff_max_ms < p.retry_backoff_ms {
            return Err((
                "pipeline.retry-backoff-ms".into(),
                "must be at least 1 and not above retry-backoff-max-ms".into(),
            ));
        }
        if self.admin.enabled {
            match &self.admin.token {
                Some(t) if t.expose().trim().is_empty() => {
                    return Err(("admin.token".into(), "must not be empty".into()));
                }
                None if !self.admin.listen.ip().is_loopback() => {
                    return Err((
                        "admin.token".into(),
                        format!(
                            "the admin endpoint listens on {}, not a loopback address: set a bearer token (admin.token, or SMT_ADMIN__TOKEN) or listen on 127.0.0.1",
                            self.admin.listen
                        ),
                    ));
                }
                _ => {}
            }
        }
        if self.transforms.is_empty() {
            return Err((
                "transforms".into(),
                "at least one transform is needed".into(),
            ));
        }
        for (name, t) in &self.transforms {
            if t.config.is_some() && t.config_file.is_some() {
                return Err((
                    format!("transforms.{name}"),
                    "set `config` or `config-file`, not both".into(),
                ));
            }
            if let Some(c) = &t.config {
                if !c.is_table() {
                    return Err((
                        format!("transforms.{name}.config"),
                        "must be a table".into(),
                    ));
                }
            }
        }
        if self.routes.is_empty() {
            return Err(("routes".into(), "at least one route is needed".into()));
        }
        for (i, r) in self.routes.iter().enumerate() {
            let key = |k: &str| format!("routes[{i}].{k}");
            if r.topics.is_empty() == r.topic_pattern.is_none() {
                return Err((
                    key("topics"),
                    "set either `topics` or `topic-pattern`".into(),
                ));
            }
            if let Some(p) = &r.topic_pattern {
                regex::Regex::new(p)
                    .map_err(|e| (key("topic-pattern"), format!("invalid regex: {e}")))?;
            }
            if !self.transforms.contains_key(&r.transform) {
                return Err((
                    key("transform"),
                    format!(
                        "no transform named `{}` (defined: {})",
                        r.transform,
                        self.transforms
                            .keys()
                            .cloned()
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
            if r.on_error == ErrorPolicy::Dlq && self.dlq.is_none() {
                return Err((
                    key("on-error"),
                    "`dlq` needs a `[dlq]` section with a topic".into(),
                ));
            }
        }
        let names = self.route_names();
        for (i, n) in names.iter().enumerate() {
            if n.is_empty() || names[..i].contains(n) {
                return Err((
                    format!("routes[{i}].name"),
                    format!("route names must be unique and not empty (`{n}`)"),
                ));
            }
        }
        if self.status.stall_timeout_ms == 0 || self.status.progress_interval_ms == 0 {
            return Err((
                "status".into(),
                "stall-timeout-ms and progress-interval-ms must be above 0".into(),
            ));
        }
        Ok(())
    }
}

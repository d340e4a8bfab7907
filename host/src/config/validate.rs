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
        self.check_ranges()?;
        let p = &self.pipeline;
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
            for (k, f) in [
                ("key-format", r.key_format),
                ("value-format", r.value_format),
            ] {
                if f.uses_registry() && self.schema_registry.is_none() {
                    return Err((
                        key(k),
                        format!("`{}` needs a `[schema-registry]` section", f.as_str()),
                    ));
                }
            }
        }
        if let Some(r) = &self.schema_registry {
            let urls = r.url.list();
            if urls.is_empty() {
                return Err(("schema-registry.url".into(), "must name a URL".into()));
            }
            for u in &urls {
                if !(u.starts_with("http://") || u.starts_with("https://")) {
                    return Err((
                        "schema-registry.url".into(),
                        format!("`{u}`: expected an http:// or https:// URL"),
                    ));
                }
            }
            if r.user_info.is_some() && r.user_info_file.is_some() {
                return Err((
                    "schema-registry.user-info".into(),
                    "set `user-info` or `user-info-file`, not both".into(),
                ));
            }
            if r.cert_file.is_some() != r.key_file.is_some() {
                return Err((
                    "schema-registry.cert-file".into(),
                    "a client certificate needs both `cert-file` and `key-file`".into(),
                ));
            }
            if r.request_timeout_ms == 0 {
                return Err((
                    "schema-registry.request-timeout-ms".into(),
                    "must be at least 1".into(),
                ));
            }
            if r.cache_capacity == 0 {
                return Err((
                    "schema-registry.cache-capacity".into(),
                    "must be at least 1".into(),
                ));
            }
        }
        Ok(())
    }
}

/// `(key, value, min, max)`: a number outside its range is refused with both
/// bounds, so that a typo (a timeout of 0, a memory cap of 100000 MiB) does not
/// start a pipeline that cannot work or a sandbox that does not hold.
type Range = (&'static str, u64, u64, u64);

const HOUR_MS: u64 = 3_600_000;

impl Config {
    fn check_ranges(&self) -> Result<(), (String, String)> {
        let (p, l, h) = (&self.pipeline, &self.engine.limits, &self.hot_swap);
        let as_u64 = |v: usize| v as u64;
        let ranges: [Range; 16] = [
            (
                "pipeline.max-batch-size",
                as_u64(p.max_batch_size),
                1,
                100_000,
            ),
            (
                "pipeline.queue-capacity",
                as_u64(p.queue_capacity),
                1,
                1_000_000,
            ),
            ("pipeline.linger-ms", p.linger_ms, 0, 60_000),
            (
                "pipeline.commit-interval-ms",
                p.commit_interval_ms,
                1,
                HOUR_MS,
            ),
            (
                "pipeline.shutdown-timeout-ms",
                p.shutdown_timeout_ms,
                1,
                HOUR_MS,
            ),
            (
                "pipeline.retry-backoff-max-ms",
                p.retry_backoff_max_ms,
                1,
                HOUR_MS,
            ),
            // A Wasm32 memory holds at most 4 GiB; eight of them at most.
            ("engine.limits.memory-mib", l.memory_mib, 1, 32 * 1024),
            (
                "engine.limits.max-instances",
                as_u64(l.max_instances),
                1,
                10_000,
            ),
            (
                "engine.limits.max-memories",
                as_u64(l.max_memories),
                1,
                10_000,
            ),
            ("engine.limits.max-tables", as_u64(l.max_tables), 1, 10_000),
            (
                "engine.limits.call-timeout-ms",
                l.call_timeout_ms,
                1,
                HOUR_MS,
            ),
            (
                "engine.limits.max-output-bytes",
                as_u64(l.max_output_bytes),
                1,
                1 << 30,
            ),
            (
                "engine.limits.max-output-ops",
                as_u64(l.max_output_ops),
                1,
                10_000_000,
            ),
            ("hot-swap.poll-interval-ms", h.poll_interval_ms, 10, HOUR_MS),
            ("hot-swap.max-module-mib", as_u64(h.max_module_mib), 1, 4096),
            (
                "hot-swap.recent-samples",
                as_u64(h.recent_samples),
                0,
                100_000,
            ),
        ];
        for (key, v, min, max) in ranges {
            if v < min || v > max {
                return Err((
                    key.into(),
                    format!("{v} is out of range: expected {min} to {max}"),
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

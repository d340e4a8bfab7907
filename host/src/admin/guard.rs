//! Who may use the admin endpoint (the table is in docs/operations.md,
//! "Security model"). Every request passes these checks, in order:
//!
//! 1. **`Host`** must be an IP address, `localhost`, or one of
//!    `admin.allowed-hosts`. DNS rebinding makes a browser send requests to
//!    127.0.0.1 under the attacker's host name: that name is refused.
//! 2. **No foreign `Origin`**: browsers add it to cross-site requests (and
//!    to every non-GET `fetch`). The one web page allowed is the status page
//!    this endpoint serves itself: its requests carry `Origin: http://<Host>`
//!    (the same origin, with a Host that passed rule 1). Any other `Origin`
//!    is refused (CSRF).
//! 3. **The transform routes** (`/transforms…`) and the status report
//!    (`/status`): with `admin.token` set, every request needs
//!    `Authorization: Bearer <token>`, reads included. Without a token (only
//!    allowed on a loopback listener), reads are open and writes are refused
//!    unless `admin.allow-unauthenticated-writes`.
//!
//! `/metrics`, `/health`, `/ready` and the status page's static files (`/`,
//! `/status.js`) need no token: they show counters and states, or code
//! without data, never configs, records or samples.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use crate::config::AdminConfig;
use crate::telemetry::Metrics;

/// The access rules of one admin endpoint.
#[derive(Clone)]
pub struct Guard {
    /// SHA-256 of the token: compared digests have one length whatever was sent.
    token_digest: Option<[u8; 32]>,
    allow_unauthenticated_writes: bool,
    allowed_hosts: Arc<[String]>,
    metrics: Arc<Metrics>,
}

/// Why a request was refused: the `reason` label of `smt_admin_refusals_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Host,
    Origin,
    Token,
    ReadOnly,
}

impl Refusal {
    fn as_str(self) -> &'static str {
        match self {
            Refusal::Host => "host",
            Refusal::Origin => "origin",
            Refusal::Token => "token",
            Refusal::ReadOnly => "read-only",
        }
    }

    fn status(self) -> StatusCode {
        match self {
            Refusal::Host | Refusal::Origin => StatusCode::FORBIDDEN,
            Refusal::Token | Refusal::ReadOnly => StatusCode::UNAUTHORIZED,
        }
    }

    fn message(self) -> &'static str {
        match self {
            Refusal::Host => "the Host header names neither an IP address, localhost nor one of admin.allowed-hosts",
            Refusal::Origin => "requests from web pages (with an Origin header) are refused",
            Refusal::Token => "a valid `Authorization: Bearer <token>` header is required",
            Refusal::ReadOnly => "without admin.token the transform routes are read-only: set admin.token (SMT_ADMIN__TOKEN), or admin.allow-unauthenticated-writes = true on a host where every local process is trusted",
        }
    }
}

impl Guard {
    pub fn new(config: &AdminConfig, metrics: Arc<Metrics>) -> Self {
        Guard {
            token_digest: config.token.as_ref().map(|t| digest(t.expose().as_bytes())),
            allow_unauthenticated_writes: config.allow_unauthenticated_writes,
            allowed_hosts: config
                .allowed_hosts
                .iter()
                .map(|h| h.to_ascii_lowercase())
                .collect(),
            metrics,
        }
    }

    /// `None` when the request may proceed.
    pub fn check(&self, method: &Method, path: &str, headers: &HeaderMap) -> Option<Refusal> {
        if !self.host_allowed(headers) {
            return Some(Refusal::Host);
        }
        if let Some(origin) = headers.get(header::ORIGIN) {
            if !same_origin(origin, headers) {
                return Some(Refusal::Origin);
            }
        }
        if !needs_token(path) {
            return None;
        }
        match &self.token_digest {
            Some(expected) => {
                let given = headers
                    .get(header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.strip_prefix("Bearer "))
                    .unwrap_or("");
                (!same_digest(&digest(given.as_bytes()), expected)).then_some(Refusal::Token)
            }
            None => {
                let read = matches!(*method, Method::GET | Method::HEAD);
                (!read && !self.allow_unauthenticated_writes).then_some(Refusal::ReadOnly)
            }
        }
    }

    fn host_allowed(&self, headers: &HeaderMap) -> bool {
        // HTTP/1.1 requires the header; a request without one is not from a browser
        // (browsers always send it) but refusing it costs legitimate clients nothing.
        let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
            return false;
        };
        let name = host_name(host).to_ascii_lowercase();
        name == "localhost" || name.parse::<IpAddr>().is_ok() || self.allowed_hosts.contains(&name)
    }
}

/// The routes the token rule applies to: transform management, the status
/// report and the routes' offsets.
fn needs_token(path: &str) -> bool {
    path == "/transforms"
        || path.starts_with("/transforms/")
        || path == "/status"
        || path == "/routes"
        || path.starts_with("/routes/")
}

/// `Origin` is this endpoint itself (`http://` + the `Host` header): the
/// status page it serves. (Rule 1 already accepted that Host.)
fn same_origin(origin: &header::HeaderValue, headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    origin
        .to_str()
        .ok()
        .and_then(|o| o.strip_prefix("http://"))
        .is_some_and(|o| o.eq_ignore_ascii_case(host))
}

/// The name part of a `Host` header: without the port, IPv6 without brackets.
fn host_name(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or("");
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Compares two digests in time independent of where they differ. The token
/// is hashed first, so the compared length never depends on what was sent
/// (a plain compare leaks the token's length, and its prefix by timing).
fn same_digest(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    // Keep the compiler from turning the fold into an early exit.
    std::hint::black_box(diff) == 0
}

/// The middleware applying [`Guard::check`] to every request.
pub async fn enforce(State(guard): State<Guard>, req: Request, next: Next) -> Response {
    let Some(refusal) = guard.check(req.method(), req.uri().path(), req.headers()) else {
        return next.run(req).await;
    };
    let caller = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.to_string())
        .unwrap_or_default();
    tracing::warn!(
        target: "smt::audit",
        caller = %caller,
        method = %req.method(),
        path = req.uri().path(),
        reason = refusal.as_str(),
        "Refused an admin request."
    );
    guard
        .metrics
        .admin_refusals
        .get_or_create(&[("reason", refusal.as_str().to_owned())])
        .inc();
    let body = format!(
        "{{\"error\":{}}}",
        serde_json::Value::from(refusal.message())
    );
    let mut response = (
        refusal.status(),
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response();
    if refusal == Refusal::Token {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer"),
        );
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    fn guard(token: Option<&str>, writes: bool, hosts: &[&str]) -> Guard {
        let config = AdminConfig {
            token: token.map(|t| serde_json::from_value::<Secret>(t.into()).unwrap()),
            allow_unauthenticated_writes: writes,
            allowed_hosts: hosts.iter().map(|h| h.to_string()).collect(),
            ..AdminConfig::default()
        };
        Guard::new(&config, Arc::new(Metrics::new()))
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn host_names_other_than_ips_localhost_and_the_allowed_ones_are_refused() {
        let g = guard(None, false, &["smt.internal"]);
        for ok in [
            "localhost",
            "localhost:9464",
            "127.0.0.1:9464",
            "10.1.2.3",
            "[::1]:9464",
            "SMT.internal:80",
        ] {
            assert_eq!(
                g.check(&Method::GET, "/health", &headers(&[("host", ok)])),
                None,
                "{ok}"
            );
        }
        for bad in [
            "evil.example:9464",
            "localhost.evil.example",
            "smt.internal.evil",
        ] {
            assert_eq!(
                g.check(&Method::GET, "/health", &headers(&[("host", bad)])),
                Some(Refusal::Host),
                "{bad}"
            );
        }
        assert_eq!(
            g.check(&Method::GET, "/health", &HeaderMap::new()),
            Some(Refusal::Host)
        );
    }

    #[test]
    fn only_the_endpoint_s_own_origin_is_accepted() {
        let g = guard(Some("t"), false, &[]);
        let own = headers(&[
            ("host", "127.0.0.1:9464"),
            ("origin", "http://127.0.0.1:9464"),
            ("authorization", "Bearer t"),
        ]);
        assert_eq!(g.check(&Method::POST, "/transforms/x/rollback", &own), None);
        for (host, origin) in [
            ("127.0.0.1:9464", "http://127.0.0.1:9465"),
            ("127.0.0.1:9464", "https://127.0.0.1:9464"),
            ("127.0.0.1:9464", "http://evil.example"),
            ("127.0.0.1:9464", "null"),
            ("evil.example:9464", "http://evil.example:9464"),
        ] {
            let h = headers(&[
                ("host", host),
                ("origin", origin),
                ("authorization", "Bearer t"),
            ]);
            assert!(
                g.check(&Method::POST, "/transforms/x/rollback", &h)
                    .is_some(),
                "{host} {origin}"
            );
        }
        // The page's own requests still need the token.
        let no_token = headers(&[("host", "localhost:1"), ("origin", "http://localhost:1")]);
        assert_eq!(
            g.check(&Method::GET, "/status", &no_token),
            Some(Refusal::Token)
        );
        assert_eq!(g.check(&Method::GET, "/", &no_token), None);
        assert_eq!(g.check(&Method::GET, "/status.js", &no_token), None);
    }

    #[test]
    fn any_origin_is_refused() {
        let g = guard(Some("t"), false, &[]);
        let h = headers(&[
            ("host", "localhost"),
            ("origin", "http://localhost:9464"),
            ("authorization", "Bearer t"),
        ]);
        assert_eq!(g.check(&Method::GET, "/metrics", &h), Some(Refusal::Origin));
        assert_eq!(
            g.check(&Method::PUT, "/transforms/x", &h),
            Some(Refusal::Origin)
        );
    }

    #[test]
    fn a_configured_token_is_needed_for_reads_and_writes_of_any_length() {
        let g = guard(Some("s3cret"), false, &[]);
        let with = |auth: &str| headers(&[("host", "localhost"), ("authorization", auth)]);
        for m in [Method::GET, Method::PUT, Method::POST] {
            assert_eq!(g.check(&m, "/transforms", &with("Bearer s3cret")), None);
            for wrong in [
                "Bearer ",
                "Bearer s",
                "Bearer s3cre",
                "Bearer s3cret0",
                "Bearer S3CRET",
                "s3cret",
            ] {
                assert_eq!(
                    g.check(&m, "/transforms/x/rollback", &with(wrong)),
                    Some(Refusal::Token),
                    "{m} {wrong}"
                );
            }
        }
        // The probes and metrics stay open.
        assert_eq!(
            g.check(&Method::GET, "/metrics", &headers(&[("host", "localhost")])),
            None
        );
    }

    #[test]
    fn without_a_token_reads_are_open_and_writes_need_the_explicit_switch() {
        let h = headers(&[("host", "127.0.0.1:1")]);
        let ro = guard(None, false, &[]);
        assert_eq!(ro.check(&Method::GET, "/transforms/x", &h), None);
        for m in [Method::PUT, Method::POST, Method::DELETE] {
            assert_eq!(
                ro.check(&m, "/transforms/x", &h),
                Some(Refusal::ReadOnly),
                "{m}"
            );
        }
        let rw = guard(None, true, &[]);
        assert_eq!(rw.check(&Method::PUT, "/transforms/x", &h), None);
    }

    #[test]
    fn digests_compare_equal_only_when_equal() {
        assert!(same_digest(&digest(b"abc"), &digest(b"abc")));
        assert!(!same_digest(&digest(b"abc"), &digest(b"abd")));
        assert!(!same_digest(&digest(b"abc"), &digest(b"abcd")));
        assert_eq!(host_name("[::1]:80"), "::1");
        assert_eq!(host_name("a.b"), "a.b");
    }
}

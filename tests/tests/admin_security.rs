//! Who may use the admin endpoint of `smt run` (docs/operations.md,
//! "Security model"), against the real binary: the token on every transform
//! route when one is set (wrong tokens of every length refused), read-only
//! transform routes without a token unless writes are explicitly allowed,
//! foreign `Host` and any `Origin` refused, and an audit line for every
//! deploy, rollback and config change with the caller and the module hash.
//!
//! Run: `cargo build -p smt-host --bin smt && cargo test -p smt-tests --test admin_security`

use std::time::Duration;

use serde_json::{json, Value};
use smt_host::engine::content_hash;
use smt_tests::admin::{call, request};
use smt_tests::config::ConfigBuilder;
use smt_tests::guests::{tag_module, versioned_module};
use smt_tests::services::{unique_name, Services};
use smt_tests::smt_process::{tail, Scratch, Smt};

const TOKEN: &str = "admin-security-token";

/// Starts `smt` on a route of its own, with `admin` keys in `[admin]` and `env`.
fn start(dir: &Scratch, admin: &[(&str, Value)], env: &[(&str, &str)]) -> Smt {
    let s = Services::shared();
    let topic = unique_name("admin");
    s.create_topic(&topic, 1).unwrap();
    let module = dir.0.join("vt.wasm");
    std::fs::write(&module, tag_module(&versioned_module(), "admin001")).unwrap();
    let mut config = ConfigBuilder::new(&s.brokers(), &s.mongodb_uri(), &unique_name("db"))
        .transform(
            "vt",
            &module,
            json!({"v": 1, "collection": "docs", "shape": "flat"}),
        )
        .route(&topic, "vt", "fail");
    for (key, value) in admin {
        config = config.set(&["admin", key], value.clone());
    }
    let config = config.build();
    let mut smt = Smt::start_with_env(&dir.0, "smt", &config, env).unwrap();
    smt.wait_assigned(Duration::from_secs(60)).unwrap();
    smt
}

fn active_version(smt: &Smt) -> String {
    let (code, body) = call(smt.admin_port, "GET", "/transforms/vt", Some(TOKEN), b"").unwrap();
    assert_eq!(code, 200, "{body}");
    body["active"]["version"].as_str().unwrap().to_owned()
}

/// The audit lines of the log (target `smt::audit`).
fn audit_lines(smt: &Smt) -> Vec<String> {
    smt.log_text()
        .lines()
        .filter(|l| l.contains("smt::audit"))
        .map(str::to_owned)
        .collect()
}

#[test]
fn with_a_token_every_transform_route_needs_it_and_every_change_is_audited() {
    let dir = Scratch::new("admin-token");
    let smt = start(&dir, &[], &[("SMT_ADMIN__TOKEN", TOKEN), ("NO_COLOR", "1")]);
    let port = smt.admin_port;
    let before = active_version(&smt);
    let v2 = tag_module(&versioned_module(), "admin002");

    // Reads and writes alike, with no token or a wrong one of any length.
    let wrong = [
        "",
        "a",
        "admin-security-toke",
        "admin-security-tokeN",
        "admin-security-token-",
        &"x".repeat(4096),
    ];
    let routes: [(&str, &str, &[u8]); 5] = [
        ("GET", "/transforms", b""),
        ("GET", "/transforms/vt", b""),
        ("PUT", "/transforms/vt", &v2),
        ("PUT", "/transforms/vt/config", br#"{"v":9}"#),
        ("POST", "/transforms/vt/rollback", b""),
    ];
    for (method, path, body) in routes {
        let (code, answer) = call(port, method, path, None, body).unwrap();
        assert_eq!(code, 401, "{method} {path} without a token: {answer}");
        for token in wrong {
            let (code, answer) = call(port, method, path, Some(token), body).unwrap();
            assert_eq!(
                code,
                401,
                "{method} {path} with a {}-byte wrong token: {answer}",
                token.len()
            );
        }
    }
    assert_eq!(active_version(&smt), before, "nothing changed");
    // The probes and the metrics need none.
    for path in ["/health", "/ready", "/metrics"] {
        assert_eq!(call(port, "GET", path, None, b"").unwrap().0, 200, "{path}");
    }

    // A foreign Host (DNS rebinding) and any Origin (a web page) are refused,
    // even with the token.
    let auth = format!("Bearer {TOKEN}");
    for (headers, what) in [
        (
            vec![
                ("Host", "rebind.evil.example:9464"),
                ("Authorization", auth.as_str()),
            ],
            "a foreign Host",
        ),
        (
            vec![
                ("Host", "localhost"),
                ("Origin", "http://localhost:9464"),
                ("Authorization", auth.as_str()),
            ],
            "an Origin",
        ),
        (vec![("Authorization", auth.as_str())], "no Host"),
    ] {
        let (code, answer) = request(port, "PUT", "/transforms/vt", &headers, &v2).unwrap();
        assert_eq!(code, 403, "{what}: {answer}");
        let (code, _) = request(port, "GET", "/metrics", &headers, b"").unwrap();
        assert_eq!(code, 403, "{what} on /metrics");
    }
    assert_eq!(active_version(&smt), before, "nothing changed");
    let refusals = |reason: &str| {
        smt.metric("smt_admin_refusals_total", &[("reason", reason)])
            .unwrap()
    };
    assert_eq!(refusals("token"), 35.0);
    assert_eq!(refusals("host"), 4.0);
    assert_eq!(refusals("origin"), 2.0);

    // With the token: a deploy, a config change, a rollback — each audited
    // with the caller's address and the module's hash.
    let (code, answer) = call(port, "PUT", "/transforms/vt", Some(TOKEN), &v2).unwrap();
    assert_eq!(code, 200, "{answer}");
    let (code, answer) = call(
        port,
        "PUT",
        "/transforms/vt/config",
        Some(TOKEN),
        br#"{"v":3,"collection":"docs","shape":"flat"}"#,
    )
    .unwrap();
    assert_eq!(code, 200, "{answer}");
    let (code, answer) = call(port, "POST", "/transforms/vt/rollback", Some(TOKEN), b"").unwrap();
    assert_eq!(code, 200, "{answer}");
    let (code, answer) = call(port, "PUT", "/transforms/vt", Some(TOKEN), b"(component)").unwrap();
    assert_eq!(code, 422, "{answer}");

    let lines = audit_lines(&smt);
    let v2_hash = content_hash(&v2);
    let find = |action: &str, outcome: &str| -> &String {
        lines
            .iter()
            .find(|l| {
                l.contains(&format!("action=\"{action}\""))
                    && l.contains(&format!("outcome=\"{outcome}\""))
            })
            .unwrap_or_else(|| {
                panic!(
                    "no audit line for {action} {outcome}:\n{}",
                    lines.join("\n")
                )
            })
    };
    for (action, outcome) in [
        ("deploy", "activated"),
        ("config", "activated"),
        ("rollback", "rolled-back"),
        ("deploy", "rejected"),
    ] {
        let line = find(action, outcome);
        assert!(line.contains("caller=127.0.0.1:"), "{line}");
        assert!(line.contains("module_sha256="), "{line}");
    }
    assert!(find("deploy", "activated").contains(&v2_hash));
    assert!(find("config", "activated").contains(&v2_hash));
    assert!(
        find("deploy", "rejected").contains(&content_hash(b"(component)")),
        "the rejected module's hash"
    );
    // Refusals are audited too; the token never is.
    assert!(
        lines
            .iter()
            .any(|l| l.contains("Refused an admin request") && l.contains("reason=\"origin\"")),
        "{}",
        lines.join("\n")
    );
    let log = smt.log_text();
    assert!(!log.contains(TOKEN), "the token is never logged");
}

#[test]
fn without_a_token_reads_are_open_and_writes_need_the_explicit_switch() {
    let v2 = tag_module(&versioned_module(), "admin002");

    let dir = Scratch::new("admin-ro");
    let smt = start(&dir, &[], &[]);
    let port = smt.admin_port;
    let (code, list) = call(port, "GET", "/transforms", None, b"").unwrap();
    assert_eq!(code, 200, "{list}");
    let before = list["transforms"][0]["active"]["version"].clone();
    for (method, path, body) in [
        ("PUT", "/transforms/vt", v2.as_slice()),
        ("PUT", "/transforms/vt/config", br#"{"v":2}"#.as_slice()),
        ("POST", "/transforms/vt/rollback", b"".as_slice()),
    ] {
        let (code, answer) = call(port, method, path, None, body).unwrap();
        assert_eq!(code, 401, "{method} {path}: {answer}");
        assert!(
            answer["error"]
                .as_str()
                .unwrap()
                .contains("allow-unauthenticated-writes"),
            "says how to allow it: {answer}"
        );
    }
    let (_, list) = call(port, "GET", "/transforms", None, b"").unwrap();
    assert_eq!(list["transforms"][0]["active"]["version"], before);
    assert_eq!(
        smt.metric("smt_admin_refusals_total", &[("reason", "read-only")])
            .unwrap(),
        3.0
    );
    drop(smt);

    let dir = Scratch::new("admin-rw");
    let smt = start(&dir, &[("allow-unauthenticated-writes", json!(true))], &[]);
    let (code, answer) = call(smt.admin_port, "PUT", "/transforms/vt", None, &v2).unwrap();
    assert_eq!(code, 200, "{answer}\n{}", tail(&smt.log_text(), 2000));
    assert_eq!(answer["outcome"], "activated", "{answer}");
}

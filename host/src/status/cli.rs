//! `smt status --admin URL [--token T] [--json]`: the status report of a
//! running `smt run` in the terminal, as tables or as the JSON of
//! `GET /status`. The exit code says whether all is well.

use std::time::Duration;

use anyhow::{anyhow, bail};

use super::http::Endpoint;
use super::{format_eta, Report};

/// How `smt status` ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Running, nothing stalled.
    Healthy,
    /// A partition is stalled or the pipeline failed (exit code 1).
    Unhealthy,
}

/// Fetches the report: the parsed form and the JSON text as the endpoint sent it.
pub fn fetch(admin: &str, token: Option<&str>) -> anyhow::Result<(Report, String)> {
    let endpoint = Endpoint::parse(admin)?;
    let (code, body) = endpoint.request("GET", "/status", token, b"", Duration::from_secs(10))?;
    match code {
        200 => {}
        401 => bail!(
            "{admin}/status answers 401: {} (--token or SMT_ADMIN__TOKEN)",
            if token.is_some() {
                "the token is not the admin.token of this smt"
            } else {
                "it needs the admin token"
            }
        ),
        other => bail!("{admin}/status answers {other}: {}", body.trim()),
    }
    let report: Report = serde_json::from_str(&body)
        .map_err(|e| anyhow!("{admin}/status is not a status report: {e}"))?;
    Ok((report, body))
}

/// Whether the report is healthy.
pub fn verdict(r: &Report) -> Verdict {
    if r.pipeline.failed || r.pipeline.stalled {
        Verdict::Unhealthy
    } else {
        Verdict::Healthy
    }
}

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_else(|| "-".into())
}

fn num(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.1}")).unwrap_or_else(|| "-".into())
}

/// Columns padded to their widest cell.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let mut s = String::new();
        for (i, (c, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}  "));
            }
        }
        s.trim_end().to_owned() + "\n"
    };
    let mut out = line(header.iter().map(|h| h.to_string()).collect());
    for r in rows {
        out.push_str(&line(r.clone()));
    }
    out
}

fn version_of(v: &Option<serde_json::Value>) -> String {
    v.as_ref()
        .and_then(|v| v.get("version"))
        .and_then(|v| v.as_str())
        .unwrap_or("-")
        .to_owned()
}

/// The report as text: the pipeline line, routes, partitions, last errors.
pub fn render(r: &Report) -> String {
    let p = &r.pipeline;
    let mut out = format!(
        "pipeline: {}, {}, {}\n\n",
        if p.ready { "ready" } else { "not ready" },
        if p.failed { "FAILED" } else { "running" },
        if p.stalled {
            format!(
                "STALLED partitions (stall-timeout {} s)",
                p.stall_timeout_ms / 1000
            )
        } else {
            "no stalled partition".to_owned()
        }
    );
    let routes: Vec<Vec<String>> = r
        .routes
        .iter()
        .map(|x| {
            let errors = if x.errors_by_kind.is_empty() {
                "0".to_owned()
            } else {
                x.errors_by_kind
                    .iter()
                    .map(|(k, n)| format!("{k}={n}"))
                    .collect::<Vec<_>>()
                    .join(",")
            };
            vec![
                x.name.clone(),
                x.transform.clone(),
                version_of(&x.active),
                version_of(&x.previous),
                num(x.records_in_per_s),
                num(x.records_out_per_s),
                num(x.write_latency_ms),
                errors,
                x.dlq_records.to_string(),
                x.lag.to_string(),
                opt(x.eta_seconds.map(format_eta)),
            ]
        })
        .collect();
    out.push_str(&table(
        &[
            "ROUTE",
            "TRANSFORM",
            "ACTIVE",
            "PREVIOUS",
            "IN/s",
            "OUT/s",
            "WRITE ms",
            "ERRORS",
            "DLQ",
            "LAG",
            "ETA",
        ],
        &routes,
    ));
    let parts: Vec<Vec<String>> = r
        .routes
        .iter()
        .flat_map(|x| x.partitions.iter().map(move |p| (x, p)))
        .map(|(x, p)| {
            let state = match (&p.stall, p.paused) {
                (Some(why), _) => format!("STALLED: {why}"),
                (None, true) => "paused".to_owned(),
                (None, false) => "ok".to_owned(),
            };
            vec![
                x.name.clone(),
                format!("{}/{}", p.topic, p.partition),
                opt(p.committed),
                opt(p.end),
                opt(p.lag),
                num(p.rate_per_s),
                opt(p.eta_seconds.map(format_eta)),
                state,
            ]
        })
        .collect();
    out.push('\n');
    if parts.is_empty() {
        out.push_str("no partition assigned to this process\n");
    } else {
        out.push_str(&table(
            &[
                "ROUTE",
                "PARTITION",
                "COMMITTED",
                "END",
                "LAG",
                "RATE/s",
                "ETA",
                "STATE",
            ],
            &parts,
        ));
    }
    if !r.errors.is_empty() {
        out.push_str("\nlast errors (newest first):\n");
        let rows: Vec<Vec<String>> = r
            .errors
            .iter()
            .map(|e| {
                vec![
                    format!("{}/{}@{}", e.topic, e.partition, e.offset),
                    e.kind.clone(),
                    e.policy.clone(),
                    format!("{} {}", e.transform, e.version),
                    e.cause.replace('\n', " "),
                ]
            })
            .collect();
        out.push_str(&table(
            &["RECORD", "KIND", "POLICY", "TRANSFORM", "CAUSE"],
            &rows,
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::{ErrorLine, PartitionLine, Pipeline, Route};
    use super::*;

    #[test]
    fn the_table_names_every_partition_and_the_verdict_follows_stalls() {
        let mut r = Report {
            generated_at_ms: 0,
            pipeline: Pipeline {
                ready: true,
                failed: false,
                stalled: false,
                stall_timeout_ms: 120_000,
            },
            routes: vec![Route {
                name: "orders".into(),
                topics: vec!["t".into()],
                topic_pattern: None,
                transform: "dbz".into(),
                on_error: "dlq".into(),
                active: Some(serde_json::json!({"version": "3f2a9c1e0b7d"})),
                previous: None,
                records_in_per_s: Some(10.0),
                records_out_per_s: Some(9.5),
                records_in_total: 100,
                records_out_total: 95,
                write_latency_ms: Some(4.2),
                errors_by_kind: [("trap".to_owned(), 2)].into(),
                dlq_records: 2,
                lag: 5,
                eta_seconds: Some(0.5),
                partitions: vec![PartitionLine {
                    topic: "t".into(),
                    partition: 0,
                    done: Some(95),
                    committed: Some(90),
                    end: Some(100),
                    lag: Some(5),
                    rate_per_s: Some(9.5),
                    eta_seconds: Some(0.5),
                    paused: false,
                    stalled: false,
                    stall: None,
                }],
            }],
            errors: vec![ErrorLine {
                at_ms: 0,
                route: Some("orders".into()),
                topic: "t".into(),
                partition: 0,
                offset: 7,
                transform: "dbz".into(),
                version: "3f2a9c1e0b7d".into(),
                kind: "trap".into(),
                policy: "dlq".into(),
                cause: "unreachable".into(),
            }],
        };
        let text = render(&r);
        assert!(text.contains("orders  dbz"), "{text}");
        assert!(text.contains("3f2a9c1e0b7d"), "{text}");
        assert!(text.contains("t/0"), "{text}");
        assert!(text.contains("trap=2"), "{text}");
        assert!(text.contains("t/0@7"), "{text}");
        assert_eq!(verdict(&r), Verdict::Healthy);
        r.pipeline.stalled = true;
        r.routes[0].partitions[0].stall = Some("paused (queue full) for 200 s".into());
        assert!(render(&r).contains("STALLED: paused"));
        assert_eq!(verdict(&r), Verdict::Unhealthy);
    }
}

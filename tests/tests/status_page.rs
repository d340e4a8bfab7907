//! The status report of `smt run` (`GET /status`), `smt status`, the
//! stall rule and the catch-up progress log, and the status page in a real
//! headless Chromium — against the real binary, real Kafka and a real
//! MongoDB-protocol server (docs/operations.md, "Status").
//!
//! Run: `scripts/test -p smt-tests --test status_page`

use std::time::Duration;

use serde_json::{json, Value};
use smt_tests::browser::{output_dir, Browser};
use smt_tests::config::ConfigBuilder;
use smt_tests::guests::{short_hash, tag_module, versioned_module};
use smt_tests::kafka::produce;
use smt_tests::proxy::{through, Proxy};
use smt_tests::record::{record, Record, RecordExt as _};
use smt_tests::services::{unique_name, Services};
use smt_tests::smt_process::{http, smt_command, tail, wait_for, Scratch, Smt};

const TOKEN: &str = "status-page-token";
const START: Duration = Duration::from_secs(60);
const CONVERGE: Duration = Duration::from_secs(120);

/// `n` keyed records `{"n": i}` (key `k<i>`) round-robin over `partitions`.
fn keyed(topic: &str, from: usize, n: usize, partitions: i32) -> Vec<Record> {
    (from..from + n)
        .map(|i| {
            let key = format!("k{i}");
            let value = format!(r#"{{"n":{i}}}"#);
            record(topic, Some(key.as_bytes()), Some(value.as_bytes())).at(i as i32 % partitions, 0)
        })
        .collect()
}

/// `GET /status` with the token.
fn status(smt: &Smt) -> anyhow::Result<Value> {
    let (code, body) = http(
        smt.admin_port,
        "GET",
        "/status",
        Some(TOKEN),
        b"",
        Duration::from_secs(10),
    )?;
    anyhow::ensure!(code == 200, "GET /status: {code} {body}");
    Ok(serde_json::from_str(&body)?)
}

/// `smt status` against `smt`: (exit code, stdout, stderr).
fn smt_status(smt: &Smt, args: &[&str]) -> (i32, String, String) {
    let admin = format!("http://127.0.0.1:{}", smt.admin_port);
    smt_command(["status", "--admin", admin.as_str()].iter().chain(args))
}

fn route(report: &Value) -> &Value {
    &report["routes"][0]
}

#[test]
fn the_status_report_and_smt_status_follow_lag_errors_and_stalls() {
    let s = Services::shared();
    let dir = Scratch::new("status");
    let topic = unique_name("status");
    let dlq = unique_name("status-dlq");
    let partitions = 2;
    s.create_topic(&topic, partitions as u32).unwrap();
    s.create_topic(&dlq, 1).unwrap();
    let module = tag_module(&versioned_module(), "status01");
    let module_path = dir.0.join("vt.wasm");
    std::fs::write(&module_path, &module).unwrap();

    // Three records without a key first (offsets 0..2 of partition 0): the
    // versioned guest refuses them (bad-input) and they are dead-lettered.
    let keyless: Vec<Record> = (0..3)
        .map(|i| record(&topic, None, Some(format!(r#"{{"bad":{i}}}"#).as_bytes())))
        .collect();
    produce(&s.brokers(), &topic, &keyless).unwrap();
    // A backlog: smt starts behind by 3000 records and catches up.
    let backlog = 3000;
    produce(&s.brokers(), &topic, &keyed(&topic, 0, backlog, partitions)).unwrap();

    // MongoDB behind a proxy: slow answers make the catch-up last a few
    // seconds; cutting it stalls the partitions.
    let proxy = Proxy::start(smt_tests::proxy::mongodb_addr(s)).unwrap();
    proxy.set_delay(Duration::from_millis(250));
    let db = unique_name("db");
    let config = ConfigBuilder::new(&s.brokers(), &through(s, &proxy), &db)
        .transform("vt", &module_path, json!({"v": 1, "collection": "docs"}))
        .route(&topic, "vt", "dlq")
        .dlq(&dlq)
        .set(
            &["kafka", "properties", "statistics.interval.ms"],
            json!("1000"),
        )
        .set(&["pipeline", "max-batch-size"], json!(100))
        .set(&["status", "stall-timeout-ms"], json!(3000))
        .set(&["status", "progress-lag"], json!(100))
        .set(&["status", "progress-interval-ms"], json!(1000))
        .build();
    let env = [("SMT_ADMIN__TOKEN", TOKEN), ("NO_COLOR", "1")];
    let mut smt = Smt::start_with_env(&dir.0, "smt", &config, &env).unwrap();
    smt.wait_assigned(START).unwrap();

    // The report needs the token, like the transform routes.
    let (code, _) = http(
        smt.admin_port,
        "GET",
        "/status",
        None,
        b"",
        Duration::from_secs(5),
    )
    .unwrap();
    assert_eq!(code, 401, "GET /status without the token");

    // While catching up: a rate, a lag and an ETA.
    let mut saw_rate = false;
    let mut saw_eta = false;
    let mut saw_latency = false;
    let total = (backlog + 3) as u64;
    let report = wait_for("the backlog to be processed", CONVERGE, || {
        let r = status(&smt)?;
        let x = route(&r);
        saw_rate |= x["records_out_per_s"].as_f64().unwrap_or(0.0) > 0.0;
        saw_latency |= x["write_latency_ms"].as_f64().unwrap_or(0.0) > 0.0;
        saw_eta |= x["lag"].as_i64().unwrap_or(0) > 0 && x["eta_seconds"].as_f64().is_some();
        let parts = x["partitions"].as_array().cloned().unwrap_or_default();
        let caught_up = x["records_out_total"] == json!(total)
            && parts.len() == partitions as usize
            && parts
                .iter()
                .all(|p| p["lag"] == json!(0) && p["committed"] == p["end"]);
        Ok(caught_up.then_some(r))
    })
    .unwrap_or_else(|e| panic!("{e:#}\n{}", tail(&smt.log_text(), 3000)));
    assert!(saw_rate, "a records-out rate above 0 while catching up");
    assert!(saw_eta, "an ETA while lagging");
    let x = route(&report);
    assert_eq!(x["name"], "vt");
    assert_eq!(x["transform"], "vt");
    assert_eq!(x["active"]["version"], json!(short_hash(&module)));
    assert_eq!(x["previous"], Value::Null);
    assert_eq!(x["records_in_total"], json!(total));
    assert_eq!(x["errors_by_kind"], json!({"bad-input": 3}));
    assert_eq!(x["dlq_records"], json!(3));
    assert!(saw_latency, "a write latency while catching up");
    let ends: i64 = x["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["end"].as_i64().unwrap())
        .sum();
    assert_eq!(ends, total as i64, "end offsets of both partitions");
    // The last errors, newest first, with their coordinates and cause.
    let errors = report["errors"].as_array().unwrap();
    let coords: Vec<(String, i64, i64)> = errors
        .iter()
        .map(|e| {
            (
                e["topic"].as_str().unwrap().to_owned(),
                e["partition"].as_i64().unwrap(),
                e["offset"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        coords,
        [2, 1, 0].map(|o| (topic.clone(), 0, o)).to_vec(),
        "{errors:?}"
    );
    for e in errors {
        assert_eq!(e["kind"], "bad-input");
        assert_eq!(e["policy"], "dlq");
        assert_eq!(e["route"], "vt");
        assert!(
            e["cause"].as_str().unwrap().contains("without a key"),
            "{e}"
        );
    }
    assert_eq!(report["pipeline"]["stalled"], json!(false));

    // The catch-up progress lines: one per route, not per partition.
    let log = smt.log_text();
    let progress: Vec<&str> = log.lines().filter(|l| l.contains("Catching up")).collect();
    assert!(
        !progress.is_empty(),
        "no catch-up line:\n{}",
        tail(&log, 3000)
    );
    assert!(
        progress
            .iter()
            .all(|l| l.contains("route=vt") && l.contains("eta=")),
        "{progress:?}"
    );
    assert!(log.contains("Caught up."), "{}", tail(&log, 3000));

    // smt status: a table, the JSON, exit 0.
    let (code, out, err) = smt_status(&smt, &["--token", TOKEN]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("no stalled partition"), "{out}");
    assert!(out.contains(&short_hash(&module)), "{out}");
    assert!(
        out.contains(&format!("{topic}/0")) && out.contains(&format!("{topic}/1")),
        "{out}"
    );
    assert!(
        out.contains(&format!("{topic}/0@2")),
        "the last errors: {out}"
    );
    assert!(
        !out.contains(TOKEN) && !err.contains(TOKEN),
        "the token is never printed"
    );
    let (code, out, _) = smt_status(&smt, &["--token", TOKEN, "--json"]);
    assert_eq!(code, 0);
    let parsed: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(route(&parsed)["records_out_total"], json!(total));
    // Without the token, or with a wrong one: refused, exit 2, nothing shown.
    for args in [&[][..], &["--token", "wrong"][..]] {
        let (code, out, err) = smt_status(&smt, args);
        assert_eq!(code, 2, "{args:?}: {out}{err}");
        assert!(err.contains("401"), "{err}");
        assert!(out.is_empty(), "{out}");
    }

    // MongoDB unreachable while records arrive: the partitions stall.
    proxy.set_down(true);
    produce(
        &s.brokers(),
        &topic,
        &keyed(&topic, backlog, 100, partitions),
    )
    .unwrap();
    let report = wait_for("a stalled partition", Duration::from_secs(60), || {
        let r = status(&smt)?;
        Ok((r["pipeline"]["stalled"] == json!(true)).then_some(r))
    })
    .unwrap_or_else(|e| panic!("{e:#}\n{}", tail(&smt.log_text(), 3000)));
    let stalled: Vec<&Value> = route(&report)["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["stalled"] == json!(true))
        .collect();
    assert!(!stalled.is_empty());
    for p in &stalled {
        assert!(p["lag"].as_i64().unwrap() > 0, "{p}");
        assert!(p["stall"].as_str().unwrap().contains("no progress"), "{p}");
    }
    // `/ready` and the metric follow within the sampler's second.
    let body = wait_for("/ready to answer 503", Duration::from_secs(10), || {
        let (code, body) = smt.get("/ready")?;
        Ok((code == 503).then_some(body))
    })
    .unwrap();
    assert!(body.contains("stalled") && body.contains(&topic), "{body}");
    assert!(smt.metric("smt_stalled_partitions", &[]).unwrap() >= 1.0);
    let (code, out, err) = smt_status(&smt, &["--token", TOKEN]);
    assert_eq!(code, 1, "smt status exits 1 on a stall: {out}{err}");
    assert!(out.contains("STALLED"), "{out}");
    assert!(smt.log_text().contains("A partition is stalled."));

    // MongoDB back: progress, no stall, exit 0 again.
    proxy.set_down(false);
    wait_for(
        "the stall to clear and the lag to reach 0",
        CONVERGE,
        || {
            let r = status(&smt)?;
            let x = route(&r);
            Ok((r["pipeline"]["stalled"] == json!(false)
                && x["records_out_total"] == json!(total + 100)
                && x["lag"] == json!(0))
            .then_some(()))
        },
    )
    .unwrap_or_else(|e| panic!("{e:#}\n{}", tail(&smt.log_text(), 3000)));
    wait_for(
        "/ready to answer 200 again",
        Duration::from_secs(10),
        || Ok((smt.get("/ready")?.0 == 200).then_some(())),
    )
    .unwrap();
    assert_eq!(smt.metric("smt_stalled_partitions", &[]).unwrap(), 0.0);
    let (code, out, err) = smt_status(&smt, &["--token", TOKEN]);
    assert_eq!(code, 0, "{out}{err}");
    smt.terminate(Duration::from_secs(30)).unwrap();
}

#[test]
fn the_status_page_in_chromium_shows_progress_and_rolls_back() {
    let s = Services::shared();
    let dir = Scratch::new("status-page");
    let topic = unique_name("page");
    let partitions = 2;
    s.create_topic(&topic, partitions as u32).unwrap();
    let v1 = tag_module(&versioned_module(), "page0001");
    let v2 = tag_module(&versioned_module(), "page0002");
    let module_path = dir.0.join("vt.wasm");
    std::fs::write(&module_path, &v1).unwrap();
    let config = ConfigBuilder::new(&s.brokers(), &s.mongodb_uri(), &unique_name("db"))
        .transform("vt", &module_path, json!({"v": 1, "collection": "docs"}))
        .route(&topic, "vt", "fail")
        .set(
            &["kafka", "properties", "statistics.interval.ms"],
            json!("1000"),
        )
        .build();
    let env = [("SMT_ADMIN__TOKEN", TOKEN), ("NO_COLOR", "1")];
    let mut smt = Smt::start_with_env(&dir.0, "smt", &config, &env).unwrap();
    smt.wait_assigned(START).unwrap();
    // A second version, deployed through the API: the page can roll back to v1.
    let (code, body) = http(
        smt.admin_port,
        "PUT",
        "/transforms/vt",
        Some(TOKEN),
        &v2,
        Duration::from_secs(60),
    )
    .unwrap();
    assert_eq!(code, 200, "{body}");

    let mut b = Browser::launch(&dir.0).unwrap();
    let url = format!("http://127.0.0.1:{}/", smt.admin_port);
    b.open(&url).unwrap();
    // Without the token the page shows nothing but the request for it.
    b.wait_until(
        "the page to ask for the token",
        Duration::from_secs(20),
        |b| {
            Ok(b.text("#banner")?
                .filter(|t| t.contains("needs the admin token"))
                .map(|_| ()))
        },
    )
    .unwrap();
    assert_eq!(
        b.eval("document.querySelectorAll('#routes tbody tr').length")
            .unwrap(),
        json!(0)
    );
    b.type_into("#token", TOKEN).unwrap();
    b.click("#save-token").unwrap();

    // Records arrive while the page watches: its numbers move (each chunk
    // is produced once the page showed the one before).
    let out_total = |b: &mut Browser| -> anyhow::Result<Option<u64>> {
        Ok(b.attribute("#routes tbody tr", "data-out-total")?
            .and_then(|v| v.parse().ok()))
    };
    for n in [200, 400] {
        produce(
            &s.brokers(),
            &topic,
            &keyed(&topic, n - 200, 200, partitions),
        )
        .unwrap();
        b.wait_until(
            &format!("the page to show {n} records out"),
            Duration::from_secs(60),
            |b| Ok(out_total(b)?.filter(|got| *got == n as u64)),
        )
        .unwrap_or_else(|e| panic!("{e:#}\n{}", tail(&smt.log_text(), 3000)));
    }
    b.wait_until("a records-in rate above 0", Duration::from_secs(30), |b| {
        Ok(b.text("[data-testid=in-rate-vt]")?
            .and_then(|t| t.parse::<f64>().ok())
            .filter(|r| *r > 0.0))
    })
    .unwrap();
    let shot = output_dir().join("status-page.png");
    b.screenshot(&shot).unwrap();
    assert!(
        std::fs::metadata(&shot).unwrap().len() > 10_000,
        "a real screenshot"
    );
    eprintln!("status page screenshot: {}", shot.display());
    // The rest, while the page refreshes.
    let total = 4000;
    produce(&s.brokers(), &topic, &keyed(&topic, 400, 3600, partitions)).unwrap();

    // The lag reaches 0 on the page, with every record out.
    b.wait_until("lag 0 and every record out", CONVERGE, |b| {
        let lag = b.attribute("#routes tbody", "data-lag-total")?;
        let out = out_total(b)?;
        Ok((lag.as_deref() == Some("0") && out == Some(total)).then_some(()))
    })
    .unwrap_or_else(|e| panic!("{e:#}\n{}", tail(&smt.log_text(), 3000)));
    assert_eq!(
        b.text("[data-testid=active-vt] [data-role=version]")
            .unwrap()
            .as_deref(),
        Some(short_hash(&v2).as_str())
    );
    assert_eq!(
        b.text("[data-testid=previous-vt] [data-role=version]")
            .unwrap()
            .as_deref(),
        Some(short_hash(&v1).as_str())
    );
    let partition_rows = b
        .eval("document.querySelectorAll('#partitions tbody tr').length")
        .unwrap();
    assert_eq!(partition_rows, json!(partitions));

    // Rollback: one click arms it, the second (on "Confirm rollback") does it.
    b.click("[data-testid=rollback-vt]").unwrap();
    b.wait_until(
        "the rollback to ask for confirmation",
        Duration::from_secs(10),
        |b| {
            Ok(b.text("[data-testid=rollback-vt]")?
                .filter(|t| t == "Confirm rollback")
                .map(|_| ()))
        },
    )
    .unwrap();
    b.click("[data-testid=rollback-vt]").unwrap();
    b.wait_until("the page to show v1 active", Duration::from_secs(30), |b| {
        Ok((b
            .text("[data-testid=active-vt] [data-role=version]")?
            .as_deref()
            == Some(short_hash(&v1).as_str()))
        .then_some(()))
    })
    .unwrap();
    let transforms = |smt: &Smt| -> Value {
        let (code, body) = http(
            smt.admin_port,
            "GET",
            "/transforms/vt",
            Some(TOKEN),
            b"",
            Duration::from_secs(10),
        )
        .unwrap();
        assert_eq!(code, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    };
    let t = transforms(&smt);
    assert_eq!(t["active"]["version"], json!(short_hash(&v1)));
    assert_eq!(t["active"]["trigger"], "rollback");

    // Config change through the page.
    b.click("[data-testid=config-vt]").unwrap();
    b.wait_until("the config editor", Duration::from_secs(10), |b| {
        Ok(
            (b.eval("document.getElementById('config-editor').hidden")? == json!(false))
                .then_some(()),
        )
    })
    .unwrap();
    // Replace the whole text as a user would: select all, type.
    b.eval(
        "(() => { const t = document.getElementById('config-text'); t.focus(); t.select(); })()",
    )
    .unwrap();
    b.call(
        "Input.insertText",
        json!({"text": r#"{"v": 7, "collection": "docs"}"#}),
    )
    .unwrap();
    b.click("#config-apply").unwrap();
    wait_for(
        "the config from the page to be active",
        Duration::from_secs(30),
        || Ok((transforms(&smt)["active"]["config"]["v"] == json!(7)).then_some(())),
    )
    .unwrap();
    // The page says so once its request has returned, which can be after
    // the API already shows the new config.
    b.wait_until(
        "the page to confirm the config",
        Duration::from_secs(10),
        |b| {
            let message = b.text("#message")?.unwrap_or_default();
            Ok(message.contains("Config of vt").then_some(()))
        },
    )
    .unwrap_or_else(|e| {
        panic!(
            "{e:#}: the message says {:?}",
            b.text("#message").ok().flatten()
        )
    });
    smt.terminate(Duration::from_secs(30)).unwrap();
}

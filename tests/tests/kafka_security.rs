//! `smt run` and `smt doctor` against a secured Apache Kafka broker (one per
//! test binary: `scripts/services start kafka-secure`): SASL_SSL with
//! SCRAM-SHA-512, SCRAM-SHA-256, PLAIN and OAUTHBEARER (Kafka's unsecured
//! JWT login), mTLS, topics produced with every compression codec, and the
//! bad paths (wrong password, untrusted broker certificate, client
//! certificate of another CA, plaintext client on a TLS listener), which
//! must fail at startup, fast, naming the cause, without printing secrets.
//!
//! Without TLS in librdkafka (`rdkafka` built without `ssl`) every good path
//! here fails: `security.protocol = SASL_SSL`/`SSL` is refused when the
//! client is created and `smt run` exits 2.
//!
//! Run: `scripts/test -p smt-tests --test kafka_security`

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use smt_tests::config::{ConfigBuilder, ADMIN};
use smt_tests::kafka::topic_len;
use smt_tests::kafka_secure::{
    debezium_rows, secure_kafka, with_properties, Properties, SecureKafka,
};
use smt_tests::mongo::documents;
use smt_tests::services::{unique_name, Services};
use smt_tests::smt_process::{run_to_exit, smt_bin, tail, wait_for, Scratch, Smt};
use smt_tests::workload::wait_for_rows;

const CONVERGE: Duration = Duration::from_secs(60);
const START: Duration = Duration::from_secs(45);

fn debezium_module() -> &'static str {
    env!("SMT_GUEST_DEBEZIUM_MONGO")
}

/// A pipeline config over the secured broker: `brokers`, `properties` (added
/// to `[kafka.properties]`), one route per topic to the default transform.
fn builder(
    brokers: &str,
    properties: &Properties,
    topics: &[String],
    database: &str,
    dlq: Option<&str>,
) -> ConfigBuilder {
    let mongodb = Services::shared().mongodb_uri();
    let mut b = ConfigBuilder::new(brokers, &mongodb, database).transform(
        "dbz",
        debezium_module(),
        json!({}),
    );
    b = b.route_topics(topics, "dbz", if dlq.is_some() { "dlq" } else { "fail" });
    if let Some(d) = dlq {
        b = b.dlq(d);
    }
    with_properties(b, properties)
}

fn config(
    brokers: &str,
    properties: &Properties,
    topics: &[String],
    database: &str,
    dlq: Option<&str>,
) -> String {
    builder(brokers, properties, topics, database, dlq).build()
}

/// Topic `sec.s.<table>` (the default transform writes collection `<table>`).
fn topic_for(table: &str) -> String {
    format!("sec.s.{table}")
}

/// Asserts that no secret of the broker appears in `text`.
fn assert_no_secret(k: &SecureKafka, text: &str) {
    for (what, secret) in [
        ("SCRAM password", &k.scram_password),
        ("PLAIN password", &k.plain_password),
        ("client key password", &k.client_key_password),
    ] {
        assert!(
            !text.contains(secret.as_str()),
            "the {what} was printed:\n{text}"
        );
    }
}

/// Produces the rows to a fresh topic, runs `smt run` with `properties`
/// (secrets also via `env`) until MongoDB holds them, stops it; returns its log.
async fn round_trip(
    name: &str,
    brokers: &str,
    properties: &Properties,
    env: &[(&str, &str)],
) -> String {
    let k = secure_kafka();
    let dir = Scratch::new(name);
    let table = unique_name(name);
    let topic = topic_for(&table);
    k.create_topic(&topic, 2).unwrap();
    let (records, rows) = debezium_rows(60);
    k.produce(&topic, "none", &records).unwrap();
    let database = unique_name("sec");
    let cfg = config(brokers, properties, &[topic.clone()], &database, None);
    let mut smt = Smt::start_with_env(
        &dir.0,
        name,
        &cfg,
        &[&[("SMT_LOG", "debug")][..], env].concat(),
    )
    .unwrap();
    let t0 = Instant::now();
    smt.wait_assigned(START)
        .unwrap_or_else(|e| panic!("{e:#}\n{}", tail(&smt.log_text(), 4000)));
    wait_for_rows(
        &Services::shared().mongodb_uri(),
        &database,
        &table,
        &rows,
        CONVERGE,
    )
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{}", tail(&smt.log_text(), 4000)));
    eprintln!("{name}: {} documents in {:?}", rows.len(), t0.elapsed());
    let status = smt.terminate(Duration::from_secs(30)).unwrap();
    assert!(status.success(), "{status}");
    let log = smt.log_text();
    assert_no_secret(k, &log);
    log
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sasl_ssl_scram_sha_512_with_the_password_from_a_file() {
    let k = secure_kafka();
    let props = k.scram_properties("SCRAM-SHA-512", json!({ "file": k.file("scram.password") }));
    let log = round_trip("scram512", &k.sasl_ssl, &props, &[]).await;
    // The debug log describes the consumer's configuration with the password masked.
    assert!(log.contains("sasl.password=***"), "{}", tail(&log, 3000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sasl_ssl_scram_sha_256_with_the_password_from_the_environment() {
    let k = secure_kafka();
    let props = k.scram_properties("SCRAM-SHA-256", json!({ "env": "TEST_KAFKA_PASSWORD" }));
    round_trip(
        "scram256",
        &k.sasl_ssl,
        &props,
        &[("TEST_KAFKA_PASSWORD", k.scram_password.as_str())],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sasl_ssl_plain_with_the_password_from_an_override_variable() {
    let k = secure_kafka();
    let props: Properties = vec![
        ("security.protocol".into(), json!("SASL_SSL")),
        ("sasl.mechanism".into(), json!("PLAIN")),
        ("sasl.username".into(), json!(k.plain_user)),
        ("ssl.ca.location".into(), json!(k.file("ca.pem"))),
    ];
    round_trip(
        "plain",
        &k.sasl_ssl,
        &props,
        &[(
            "SMT_KAFKA__PROPERTIES__SASL_PASSWORD",
            k.plain_password.as_str(),
        )],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mtls_with_an_encrypted_client_key() {
    let k = secure_kafka();
    round_trip("mtls", &k.ssl, &k.mtls_properties("client"), &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sasl_ssl_oauthbearer_with_kafkas_unsecured_jwt_login() {
    let k = secure_kafka();
    let props: Properties = vec![
        ("security.protocol".into(), json!("SASL_SSL")),
        ("sasl.mechanism".into(), json!("OAUTHBEARER")),
        ("enable.sasl.oauthbearer.unsecure.jwt".into(), json!("true")),
        ("sasl.oauthbearer.config".into(), json!("principal=smt")),
        ("ssl.ca.location".into(), json!(k.file("ca.pem"))),
    ];
    round_trip("oauth", &k.sasl_ssl, &props, &[]).await;
}

/// Five topics, one per codec, the same records; one `smt run` over SASL_SSL
/// (SCRAM-SHA-512) with a DLQ (produced through the same listener) and a
/// poison record in the zstd topic: every collection equals the rows, the
/// zstd one equals the uncompressed one, the poison record is in the DLQ.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_codec_over_sasl_ssl_gives_the_same_documents() {
    let k = secure_kafka();
    let dir = Scratch::new("codecs");
    let (records, rows) = debezium_rows(300);
    let codecs = ["none", "gzip", "snappy", "lz4", "zstd"];
    let mut tables = BTreeMap::new();
    for codec in codecs {
        let table = unique_name(&format!("c_{codec}"));
        let topic = topic_for(&table);
        k.create_topic(&topic, 1).unwrap();
        let mut recs = records.clone();
        if codec == "zstd" {
            recs.insert(
                10,
                (
                    Some("{\"id\":999999}".into()),
                    Some("not json at all".into()),
                ),
            );
        }
        k.produce(&topic, codec, &recs).unwrap();
        tables.insert(codec, (table, topic));
    }
    let dlq = unique_name("dlq");
    k.create_topic(&dlq, 1).unwrap();
    let database = unique_name("codecs");
    let props = k.scram_properties("SCRAM-SHA-512", json!(k.scram_password));
    let topics: Vec<String> = tables.values().map(|(_, t)| t.clone()).collect();
    let cfg = config(&k.sasl_ssl, &props, &topics, &database, Some(&dlq));
    let mut smt = Smt::start(&dir.0, "codecs", &cfg).unwrap();
    smt.wait_assigned(START)
        .unwrap_or_else(|e| panic!("{e:#}\n{}", tail(&smt.log_text(), 4000)));
    let uri = Services::shared().mongodb_uri();
    let mut docs = BTreeMap::new();
    for codec in codecs {
        let (table, _) = &tables[codec];
        wait_for_rows(&uri, &database, table, &rows, CONVERGE)
            .await
            .unwrap_or_else(|e| panic!("codec {codec}: {e:#}\n{}", tail(&smt.log_text(), 4000)));
        let client = mongodb::Client::with_uri_str(&uri).await.unwrap();
        docs.insert(codec, documents(&client, &database, table).await.unwrap());
    }
    assert_eq!(
        docs["zstd"], docs["none"],
        "zstd over SASL_SSL == uncompressed"
    );
    // The poison record went to the DLQ through the secured producer.
    let dlq_record = wait_for("the poison record in the DLQ", CONVERGE, || {
        let n = topic_len(&k.plaintext, &dlq)?;
        Ok((n >= 1).then_some(n))
    })
    .unwrap();
    assert_eq!(dlq_record, 1);
    assert_eq!(smt.metric("smt_dlq_records_total", &[]).unwrap(), 1.0);
    let status = smt.terminate(Duration::from_secs(30)).unwrap();
    assert!(status.success(), "{status}");
    assert_no_secret(k, &smt.log_text());
}

// ------------------------------------------------------------------ MongoDB

/// The MongoDB side secured too: TLS (`tlsCAFile`) and SCRAM-SHA-256 with
/// `username`/`password` keys (the password, holding `/ ? @ :`, from a file),
/// Kafka over mTLS. Then a wrong MongoDB password: exit 2 at startup, the
/// cause named, neither password printed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongodb_over_tls_with_scram_credentials_from_separate_keys() {
    let k = secure_kafka();
    let m = k.mongo();
    let dir = Scratch::new("mongotls");
    let table = unique_name("mtls");
    let topic = topic_for(&table);
    k.create_topic(&topic, 1).unwrap();
    let (records, rows) = debezium_rows(40);
    k.produce(&topic, "zstd", &records).unwrap();
    let database = unique_name("mtls");
    let (base, query) = m.uri.split_once("/?").unwrap();
    let ca = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("tlsCAFile="))
        .unwrap();
    let secured = |password: Value| {
        builder(
            &k.ssl,
            &k.mtls_properties("client"),
            &[topic.clone()],
            &database,
            None,
        )
        .set(&["mongodb", "uri"], json!(base))
        .set(&["mongodb", "username"], json!(m.user))
        .set(&["mongodb", "password"], password)
        .set(&["mongodb", "options", "tls"], json!("true"))
        .set(&["mongodb", "options", "tlsCAFile"], json!(ca))
        .set(&["mongodb", "options", "authSource"], json!("admin"))
        .build()
    };
    let cfg = secured(json!({ "file": m.password_file }));
    assert!(cfg.contains("tlsCAFile"), "{cfg}");
    let mut smt = Smt::start_with_env(&dir.0, "mongotls", &cfg, &[("SMT_LOG", "debug")]).unwrap();
    smt.wait_assigned(START)
        .unwrap_or_else(|e| panic!("{e:#}\n{}", tail(&smt.log_text(), 4000)));
    let authed = format!(
        "mongodb://{}:{}@{}/?tls=true&tlsCAFile={ca}&authSource=admin",
        m.user,
        m.password
            .replace('%', "%25")
            .replace('/', "%2F")
            .replace('?', "%3F")
            .replace('@', "%40")
            .replace(':', "%3A"),
        base.trim_start_matches("mongodb://")
    );
    wait_for_rows(&authed, &database, &table, &rows, CONVERGE)
        .await
        .unwrap_or_else(|e| panic!("{e:#}\n{}", tail(&smt.log_text(), 4000)));
    assert!(smt.terminate(Duration::from_secs(30)).unwrap().success());
    let log = smt.log_text();
    assert!(
        !log.contains(&m.password),
        "the MongoDB password was printed:\n{log}"
    );
    assert_no_secret(k, &log);

    // doctor on it: privileges through the user's role.
    let (code, out) = doctor(&dir.0, "mongotls-doctor", &cfg);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains(&format!(
            "✓ mongodb privileges on {database}: allowed by the role"
        )),
        "{out}"
    );
    assert!(!out.contains(&m.password), "{out}");

    // A wrong password: exit 2 at startup, naming MongoDB and the failure.
    let wrong = json!(format!("{}x", m.password));
    let (status, out) = run_to_exit(&dir.0, &secured(wrong), Duration::from_secs(60)).unwrap();
    assert_eq!(status.code(), Some(2), "{out}");
    assert!(
        out.contains("MongoDB") && out.to_lowercase().contains("authentication failed"),
        "{out}"
    );
    assert!(
        !out.contains(&m.password),
        "the MongoDB password was printed:\n{out}"
    );
}

// ------------------------------------------------------------------ bad paths

/// Runs `smt run` on a config that cannot connect; asserts it exits 2 on the
/// first fatal connection error (not after the 15 s startup timeout), never
/// became ready, said `expected`, and printed no secret. Returns the output.
fn fails_at_startup(
    name: &str,
    brokers: &str,
    properties: &Properties,
    expected: &[&str],
) -> String {
    let k = secure_kafka();
    let dir = Scratch::new(name);
    let table = unique_name(name);
    let topic = topic_for(&table);
    k.create_topic(&topic, 1).unwrap();
    let cfg = config(brokers, properties, &[topic], &unique_name("bad"), None);
    let t0 = Instant::now();
    let mut smt = Smt::start(&dir.0, name, &cfg).unwrap();
    let mut ready = false;
    let status = wait_for("smt to exit", Duration::from_secs(40), || {
        if matches!(smt.get("/ready"), Ok((200, _))) {
            ready = true;
        }
        Ok(smt.try_wait())
    })
    .unwrap();
    let took = t0.elapsed();
    let out = smt.log_text();
    assert_eq!(
        status.code(),
        Some(2),
        "{name}: exit status {status}\n{out}"
    );
    assert!(!ready, "{name}: /ready answered 200\n{out}");
    // Failed on the cause, not after the 15 s startup timeout ("… within 15s").
    assert!(
        out.contains("cannot connect to the Kafka brokers") && !out.contains("within 15s"),
        "{name}: should fail on the first fatal error, not time out:\n{out}"
    );
    assert!(
        took < Duration::from_secs(30),
        "{name}: took {took:?} to fail\n{out}"
    );
    for e in expected {
        assert!(
            out.contains(e),
            "{name}: the error should say {e:?}:\n{out}"
        );
    }
    assert!(!out.contains("panicked"), "{out}");
    assert_no_secret(k, &out);
    eprintln!(
        "{name}: failed in {took:?}: {}",
        out.lines()
            .filter(|l| l.starts_with("error"))
            .collect::<Vec<_>>()
            .join(" | ")
    );
    out
}

#[test]
fn a_wrong_password_fails_fast_saying_authentication_failed() {
    let k = secure_kafka();
    let props = k.scram_properties("SCRAM-SHA-512", json!("not-the-password"));
    fails_at_startup(
        "wrongpw",
        &k.sasl_ssl,
        &props,
        &[
            "authentication failed",
            "sasl.password",
            k.sasl_ssl.as_str(),
        ],
    );
}

#[test]
fn an_untrusted_broker_certificate_fails_fast_saying_so() {
    let k = secure_kafka();
    let mut props =
        k.scram_properties("SCRAM-SHA-512", json!({ "file": k.file("scram.password") }));
    for (key, v) in &mut props {
        if key == "ssl.ca.location" {
            *v = json!(k.file("other-ca.pem"));
        }
    }
    fails_at_startup(
        "untrusted",
        &k.sasl_ssl,
        &props,
        &[
            "broker's certificate cannot be verified",
            "ssl.ca.location",
            "certificate verify failed",
        ],
    );
}

#[test]
fn a_client_certificate_of_another_ca_fails_fast_saying_so() {
    let k = secure_kafka();
    fails_at_startup(
        "otherca",
        &k.ssl,
        &k.mtls_properties("other-client"),
        &["refused the client certificate", "ssl.certificate.location"],
    );
}

#[test]
fn a_plaintext_client_on_a_tls_listener_fails_fast_naming_security_protocol() {
    let k = secure_kafka();
    fails_at_startup(
        "plaintext",
        &k.sasl_ssl,
        &vec![],
        &["security.protocol (PLAINTEXT)"],
    );
}

// ------------------------------------------------------------------ doctor

fn doctor(dir: &std::path::Path, name: &str, cfg: &str) -> (Option<i32>, String) {
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, cfg.replace(ADMIN, "127.0.0.1:0")).unwrap();
    let out = Command::new(smt_bin())
        .args(["doctor", "--config"])
        .arg(&path)
        .args(["--timeout", "8"])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

#[test]
fn doctor_passes_a_good_secured_config_and_names_each_failure_of_a_bad_one() {
    let k = secure_kafka();
    let dir = Scratch::new("doctor");
    let table = unique_name("doc");
    let topic = topic_for(&table);
    k.create_topic(&topic, 3).unwrap();
    let dlq = unique_name("dlq");
    k.create_topic(&dlq, 1).unwrap();
    let good_props =
        k.scram_properties("SCRAM-SHA-512", json!({ "file": k.file("scram.password") }));
    let good = config(
        &k.sasl_ssl,
        &good_props,
        &[topic.clone()],
        &unique_name("doc"),
        Some(&dlq),
    );
    let (code, out) = doctor(&dir.0, "good", &good);
    assert_eq!(code, Some(0), "{out}");
    for line in [
        "✓ librdkafka",
        "✓ kafka brokers",
        format!("✓ topic {topic}: 3 partition(s)").as_str(),
        "✓ consumer group",
        format!("✓ dlq topic {dlq}").as_str(),
        "✓ mongodb:",
        "✓ transform dbz",
    ] {
        assert!(out.contains(line), "missing {line:?}:\n{out}");
    }
    assert!(!out.contains('✗'), "{out}");
    assert_no_secret(k, &out);

    // Wrong password: the broker check fails with the cause; a missing topic
    // and a transform whose config its init rejects fail on their own lines.
    let bad = builder(
        &k.sasl_ssl,
        &k.scram_properties("SCRAM-SHA-512", json!("wrong")),
        &[topic.clone()],
        &unique_name("doc"),
        None,
    )
    .transform("dbz", debezium_module(), json!({ "colection": "typo" }))
    .build();
    let (code, out) = doctor(&dir.0, "bad", &bad);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("✗ kafka brokers") && out.contains("authentication failed"),
        "{out}"
    );
    assert!(
        out.contains("✗ transform dbz") && out.contains("colection"),
        "{out}"
    );
    assert!(out.contains("✓ mongodb:"), "{out}");

    let missing = config(
        &k.sasl_ssl,
        &good_props,
        &["sec.s.nope_not_there".into()],
        "d",
        None,
    );
    let (code, out) = doctor(&dir.0, "missing", &missing);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("✗ topic sec.s.nope_not_there: does not exist"),
        "{out}"
    );

    // A configuration that cannot be read: exit 2.
    let (code, out) = doctor(&dir.0, "typo", &good.replace("group-id", "group_id"));
    assert_eq!(code, Some(2), "{out}");
}

#[test]
fn version_names_librdkafka_and_its_features() {
    let out = Command::new(smt_bin()).arg("--version").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("librdkafka 2."), "{text}");
    for f in [
        "ssl",
        "sasl_scram",
        "sasl_oauthbearer",
        "zstd",
        "lz4",
        "snappy",
        "gzip",
    ] {
        assert!(text.contains(f), "{f} missing: {text}");
    }
    assert!(!text.contains("missing:"), "{text}");
}

//! Support for the end-to-end tests of `smt run`: the real `smt` binary as a
//! child process, its config, its metrics, and a Debezium workload captured
//! once from PostgreSQL (the input of the failure tests, replayed into a
//! topic of each test's own).
//!
//! The binary is `target/<profile>/smt` next to the test executable: build it
//! before the tests (`cargo build -p smt-host --bin smt`).

use std::collections::BTreeMap;
use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::ClientConfig;
use serde_json::Value;

use crate::services::{unique_name, DebeziumConnector, Record, Services};

/// The `smt` binary of this build.
pub fn smt_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("SMT_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("the test executable's path");
    // target/<profile>/deps/<test>-<hash> -> target/<profile>/smt
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>");
    let bin = profile_dir.join("smt");
    assert!(
        bin.exists(),
        "{} is missing: build it before the tests with `cargo build -p smt-host --bin smt` (or set SMT_BIN)",
        bin.display()
    );
    bin
}

/// A free loopback port.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `cond` every 100 ms until it returns `Some`, or fails after `timeout` saying `what`.
pub fn wait_for<T>(
    what: &str,
    timeout: Duration,
    mut cond: impl FnMut() -> Result<Option<T>>,
) -> Result<T> {
    let deadline = Instant::now() + timeout;
    let mut last_err = None;
    loop {
        match cond() {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => {}
            Err(e) => last_err = Some(e),
        }
        if Instant::now() > deadline {
            bail!(
                "timed out after {timeout:?} waiting for {what}{}",
                last_err
                    .map(|e| format!(" (last error: {e:#})"))
                    .unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A running `smt run` process. Killed when dropped.
pub struct Smt {
    child: Option<Child>,
    pub admin_port: u16,
    pub log: PathBuf,
    pub config: PathBuf,
}

impl Smt {
    /// Writes `config` (TOML; `{admin}` is replaced by a free admin address)
    /// into `dir` and starts `smt run` on it.
    pub fn start(dir: &Path, name: &str, config: &str) -> Result<Smt> {
        Self::start_with_env(dir, name, config, &[])
    }

    pub fn start_with_env(
        dir: &Path,
        name: &str,
        config: &str,
        env: &[(&str, &str)],
    ) -> Result<Smt> {
        std::fs::create_dir_all(dir)?;
        let admin_port = free_port();
        let config_path = dir.join(format!("{name}.toml"));
        std::fs::write(
            &config_path,
            config.replace("{admin}", &format!("127.0.0.1:{admin_port}")),
        )?;
        let log = dir.join(format!("{name}.log"));
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)?;
        let mut cmd = Command::new(smt_bin());
        // Dies with the test (thread) that started it, even when the test process is killed.
        unsafe {
            use std::os::unix::process::CommandExt;
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = cmd
            .args(["run", "--config"])
            .arg(&config_path)
            .env(
                "SMT_LOG",
                std::env::var("SMT_TEST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .context("starting smt")?;
        Ok(Smt {
            child: Some(child),
            admin_port,
            log,
            config: config_path,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// SIGKILL.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, then waits for the exit.
    pub fn terminate(&mut self, timeout: Duration) -> Result<ExitStatus> {
        let mut c = self.child.take().ok_or_else(|| anyhow!("not running"))?;
        unsafe_kill(c.id(), "TERM");
        let status = wait_for("smt to exit after SIGTERM", timeout, || Ok(c.try_wait()?));
        if status.is_err() {
            let _ = c.kill();
        }
        status
    }

    /// The exit status if it has exited.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// GET `path` of the admin endpoint: (status, body).
    pub fn get(&self, path: &str) -> Result<(u16, String)> {
        use std::io::Write;
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.admin_port))?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        )?;
        let mut text = String::new();
        s.read_to_string(&mut text)?;
        let status: u16 = text
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| anyhow!("bad HTTP answer: {text}"))?;
        let body = text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default();
        Ok((status, body))
    }

    /// Sum of the samples of metric `name` whose labels contain every `label=value` of `labels`.
    pub fn metric(&self, name: &str, labels: &[(&str, &str)]) -> Result<f64> {
        let (_, body) = self.get("/metrics")?;
        Ok(sum_metric(&body, name, labels))
    }

    /// Waits until the process is consuming (`/ready` answers 200 and partitions are assigned).
    pub fn wait_assigned(&mut self, timeout: Duration) -> Result<()> {
        wait_for("smt to be ready with partitions assigned", timeout, || {
            if let Some(status) = self.try_wait() {
                bail!(
                    "smt exited with {status}:\n{}",
                    tail(&self.log_text(), 3000)
                );
            }
            let ready = matches!(self.get("/ready"), Ok((200, _)));
            Ok((ready && self.metric("smt_assigned_partitions", &[])? > 0.0).then_some(()))
        })
    }
}

impl Drop for Smt {
    fn drop(&mut self) {
        self.kill();
    }
}

fn unsafe_kill(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status();
}

/// The last `n` bytes of `s`.
pub fn tail(s: &str, n: usize) -> &str {
    let mut start = s.len().saturating_sub(n);
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

pub fn sum_metric(body: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    body.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (n, rest) = match series.find('{') {
                Some(i) => (&series[..i], &series[i..]),
                None => (series, ""),
            };
            if n != name {
                return None;
            }
            let ok = labels
                .iter()
                .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")));
            ok.then(|| value.parse::<f64>().ok()).flatten()
        })
        .sum()
}

/// Runs `smt run` on `config` and waits for it to exit; returns (status, output).
pub fn run_to_exit(dir: &Path, config: &str, timeout: Duration) -> Result<(ExitStatus, String)> {
    let mut smt = Smt::start(dir, &unique_name("smt"), config)?;
    let status = wait_for("smt to exit", timeout, || Ok(smt.try_wait()))?;
    Ok((status, smt.log_text()))
}

/// A config for one Debezium route with the default transform.
pub struct ConfigBuilder {
    pub brokers: String,
    pub group: String,
    pub mongodb_uri: String,
    pub database: String,
    pub dlq_topic: Option<String>,
    pub routes: Vec<(String, String, String)>, // (topics toml, transform, on-error)
    pub transforms: Vec<(String, PathBuf, String)>, // (name, module, config toml inline table)
    /// `serial-writes = true` on every route.
    pub serial_writes: bool,
    pub extra: String,
}

impl ConfigBuilder {
    pub fn new(brokers: &str, mongodb_uri: &str, database: &str) -> Self {
        ConfigBuilder {
            brokers: brokers.into(),
            group: unique_name("group"),
            mongodb_uri: mongodb_uri.into(),
            database: database.into(),
            dlq_topic: None,
            routes: Vec::new(),
            transforms: Vec::new(),
            serial_writes: false,
            extra: String::new(),
        }
    }

    pub fn transform(mut self, name: &str, module: &str, config: &str) -> Self {
        self.transforms
            .push((name.into(), module.into(), config.into()));
        self
    }

    pub fn route(mut self, topic: &str, transform: &str, on_error: &str) -> Self {
        self.routes
            .push((format!("[\"{topic}\"]"), transform.into(), on_error.into()));
        self
    }

    pub fn dlq(mut self, topic: &str) -> Self {
        self.dlq_topic = Some(topic.into());
        self
    }

    pub fn build(&self) -> String {
        let mut s = format!(
            r#"[kafka]
brokers = "{}"
group-id = "{}"
[kafka.properties]
"session.timeout.ms" = "6000"
"heartbeat.interval.ms" = "500"
"topic.metadata.refresh.interval.ms" = "2000"
[mongodb]
uri = "{}"
database = "{}"
[pipeline]
max-batch-size = 200
linger-ms = 10
queue-capacity = 400
commit-interval-ms = 200
retry-backoff-ms = 50
retry-backoff-max-ms = 1000
[admin]
listen = "{{admin}}"
"#,
            self.brokers, self.group, self.mongodb_uri, self.database
        );
        if let Some(d) = &self.dlq_topic {
            s.push_str(&format!("[dlq]\ntopic = \"{d}\"\n"));
        }
        for (name, module, config) in &self.transforms {
            s.push_str(&format!(
                "[transforms.{name}]\nmodule = \"{}\"\nconfig = {config}\n",
                module.display()
            ));
        }
        for (topics, transform, on_error) in &self.routes {
            s.push_str(&format!(
                "[[routes]]\ntopics = {topics}\ntransform = \"{transform}\"\non-error = \"{on_error}\"\n"
            ));
            if self.serial_writes {
                s.push_str("serial-writes = true\n");
            }
        }
        s.push_str(&self.extra);
        s
    }
}

/// A scratch directory under the system temp dir, removed on drop unless the test panicked.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Scratch {
        let p = std::env::temp_dir().join(unique_name(name));
        std::fs::create_dir_all(&p).unwrap();
        Scratch(p)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("test files kept in {}", self.0.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

// ------------------------------------------------------------------ Kafka

pub fn producer(brokers: &str) -> Result<BaseProducer> {
    Ok(ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("message.timeout.ms", "60000")
        .set("linger.ms", "5")
        .create()?)
}

/// Produces `records` to `topic`, each to its original partition (so one
/// key stays in one partition, in order), and waits for delivery.
pub fn produce(brokers: &str, topic: &str, records: &[Record]) -> Result<()> {
    let p = producer(brokers)?;
    for r in records {
        let mut rec: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(topic).partition(r.partition);
        if let Some(k) = &r.key {
            rec = rec.key(k.as_slice());
        }
        if let Some(v) = &r.value {
            rec = rec.payload(v.as_slice());
        }
        let mut rec = rec;
        loop {
            match p.send(rec) {
                Ok(()) => break,
                Err((e, back)) => {
                    if !matches!(
                        e,
                        rdkafka::error::KafkaError::MessageProduction(
                            rdkafka::types::RDKafkaErrorCode::QueueFull
                        )
                    ) {
                        bail!("producing to {topic}: {e}");
                    }
                    p.poll(Duration::from_millis(50));
                    rec = back;
                }
            }
        }
        p.poll(Duration::ZERO);
    }
    p.flush(Duration::from_secs(60))
        .context("flushing the producer")?;
    Ok(())
}

/// The number of records in `topic` (sum of high watermarks; topics here are never truncated).
pub fn topic_len(brokers: &str, topic: &str) -> Result<i64> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()?;
    let md = c.fetch_metadata(Some(topic), Duration::from_secs(10))?;
    let t = md
        .topics()
        .first()
        .ok_or_else(|| anyhow!("no topic {topic}"))?;
    let mut n = 0;
    for p in t.partitions() {
        let (lo, hi) = c.fetch_watermarks(topic, p.id(), Duration::from_secs(10))?;
        n += hi - lo;
    }
    Ok(n)
}

/// Every record of `topic` (which holds `expected` records).
pub fn read_all(
    s: &Services,
    topic: &str,
    expected: usize,
    timeout: Duration,
) -> Result<Vec<Record>> {
    let mut out = Vec::new();
    if expected == 0 {
        return Ok(out);
    }
    s.read_topic(topic, timeout, |r| {
        out.push(r.clone());
        out.len() >= expected
    })?;
    Ok(out)
}

// ------------------------------------------------------------------ Debezium workload

/// Real Debezium change events of a table, captured once per test binary,
/// with the final state of the table.
pub struct Workload {
    /// The events in topic order per partition (4 partitions).
    pub records: Vec<Record>,
    /// The final rows: id -> row as JSON (`{"id":…, "name":…, "qty":…}`).
    pub rows: BTreeMap<i64, Value>,
    /// The table's topic name suffix (the collection the default transform writes).
    pub table: String,
}

static WORKLOAD: OnceLock<Workload> = OnceLock::new();

/// Rows inserted, updated and deleted by the workload.
pub const WORKLOAD_ROWS: i64 = 600;

/// The shared workload: `WORKLOAD_ROWS` rows inserted, two thirds updated
/// (some twice), one in five deleted, through real Debezium into a 4-partition topic.
pub fn workload() -> &'static Workload {
    WORKLOAD.get_or_init(|| capture_workload().expect("capturing the Debezium workload"))
}

fn capture_workload() -> Result<Workload> {
    let s = Services::shared();
    let schema = unique_name("wl");
    let table = "items";
    let n = WORKLOAD_ROWS;
    s.sql(&format!(
        "CREATE SCHEMA {schema}; CREATE TABLE {schema}.{table} (id int PRIMARY KEY, name text NOT NULL, qty int NOT NULL);"
    ))?;
    let mut c = DebeziumConnector::new(
        &unique_name("wl"),
        &unique_name("wl"),
        &[&format!("{schema}.{table}")],
    );
    c.partitions = 4;
    s.debezium_connector(&c)?;
    let topic = c.topic(&format!("{schema}.{table}"));
    s.sql(&format!(
        "INSERT INTO {schema}.{table} SELECT g, 'name ' || g, g FROM generate_series(1, {n}) g;
         UPDATE {schema}.{table} SET qty = qty * 10, name = name || ' updated' WHERE id % 3 <> 0;
         UPDATE {schema}.{table} SET qty = qty + 1 WHERE id % 7 = 0;
         DELETE FROM {schema}.{table} WHERE id % 5 = 0;
         INSERT INTO {schema}.{table} VALUES ({m}, 'last', 0);",
        m = n + 1
    ))?;
    // Every change is in the topic once the last insert is.
    s.wait_for_record(&topic, Duration::from_secs(180), |r| {
        r.op().as_deref() == Some("c")
            && r.debezium_payload()
                .is_some_and(|p| p["after"]["id"] == Value::from(n + 1))
    })?;
    let total = topic_len(&s.brokers(), &topic)? as usize;
    let mut records = read_all(s, &topic, total, Duration::from_secs(120))?;
    records.sort_by_key(|r| (r.partition, r.offset));
    let rows_text = s.sql(&format!(
        "SELECT row_to_json(t) FROM (SELECT id, name, qty FROM {schema}.{table} ORDER BY id) t;"
    ))?;
    let mut rows = BTreeMap::new();
    for line in rows_text.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(line)?;
        rows.insert(v["id"].as_i64().unwrap(), v);
    }
    Ok(Workload {
        records,
        rows,
        table: table.into(),
    })
}

/// Every document of `db.coll`, by `_id`.
pub async fn all_documents(
    client: &mongodb::Client,
    db: &str,
    coll: &str,
) -> Vec<mongodb::bson::Document> {
    use mongodb::bson::{doc, Document};
    let mut c = client
        .database(db)
        .collection::<Document>(coll)
        .find(doc! {})
        .sort(doc! {"_id": 1})
        .await
        .unwrap_or_else(|e| panic!("reading {db}.{coll}: {e}"));
    let mut out = Vec::new();
    while c.advance().await.unwrap() {
        out.push(c.deserialize_current().unwrap());
    }
    out
}

/// The documents of `collection` as `{id -> {"id","name","qty"}}` (from `_id: {id}` and the fields).
pub async fn mongo_rows(uri: &str, db: &str, collection: &str) -> Result<BTreeMap<i64, Value>> {
    use mongodb::bson::Document;
    let client = mongodb::Client::with_uri_str(uri).await?;
    let mut cursor = client
        .database(db)
        .collection::<Document>(collection)
        .find(Document::new())
        .await?;
    let mut out = BTreeMap::new();
    while cursor.advance().await? {
        let d: Document = cursor.deserialize_current()?;
        let id = d
            .get_document("_id")
            .ok()
            .and_then(|i| i.get("id"))
            .and_then(|v| v.as_i32().map(i64::from).or_else(|| v.as_i64()))
            .ok_or_else(|| anyhow!("unexpected _id in {d}"))?;
        let name = d.get_str("name").map_err(|e| anyhow!("{e} in {d}"))?;
        let qty = d
            .get("qty")
            .and_then(|v| v.as_i32().map(i64::from).or_else(|| v.as_i64()))
            .ok_or_else(|| anyhow!("no qty in {d}"))?;
        out.insert(id, serde_json::json!({"id": id, "name": name, "qty": qty}));
    }
    Ok(out)
}

/// Waits until `collection` holds exactly `expected`; on timeout the error shows the difference.
pub async fn wait_for_rows(
    uri: &str,
    db: &str,
    collection: &str,
    expected: &BTreeMap<i64, Value>,
    timeout: Duration,
) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let got = mongo_rows(uri, db, collection).await.unwrap_or_default();
        if &got == expected {
            return Ok(());
        }
        if Instant::now() > deadline {
            let missing: Vec<_> = expected
                .iter()
                .filter(|(k, v)| got.get(k) != Some(v))
                .take(5)
                .collect();
            let extra: Vec<_> = got
                .iter()
                .filter(|(k, _)| !expected.contains_key(k))
                .take(5)
                .collect();
            bail!(
                "MongoDB {db}.{collection} != PostgreSQL after {timeout:?}: {} documents vs {} rows; missing/different e.g. {missing:?}; extra e.g. {extra:?}",
                got.len(),
                expected.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

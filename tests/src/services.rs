//! The real services the tests run against: Apache Kafka, the MongoDB-protocol
//! server (secantusd-rs), PostgreSQL, Kafka Connect with Debezium and the
//! reference MongoDB sink connector. Everything is delegated to
//! `scripts/services` (the single source of truth for installing and starting
//! them); this module only calls it and offers small helpers.
//!
//! * [`Services::shared`]: one set per test binary. When `scripts/test` runs
//!   the suite it has started them already and exported `SMT_SERVICES_DIR`,
//!   `SMT_KAFKA_BROKERS`, … which are reused as they are. Otherwise each
//!   service is started on first use in a run directory of this process, and
//!   a watcher started by the script stops them when the test binary exits.
//!   `SMT_KAFKA_BROKERS`, `SMT_MONGODB_URI`, `SMT_POSTGRES_URL` point the
//!   suite at a user's own servers.
//! * [`Services::private`]: an instance of its own for tests that stop,
//!   restart or break servers. Always local, stopped on drop (also on panic).
//!
//! The API is blocking; from an async test that must keep other tasks running
//! meanwhile, call it through `tokio::task::spawn_blocking`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use crate::record::Record;

/// The longest a `scripts/services` command may take (a cold install of a
/// service included) before the test gives up on it.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(900);

/// The services `scripts/services` knows.
pub const ALL: &[&str] = &["postgres", "mongo", "kafka", "connect", "sink"];

/// Environment variables that name a service's address.
fn env_var(svc: &str) -> &'static str {
    match svc {
        "kafka" => "SMT_KAFKA_BROKERS",
        "mongo" => "SMT_MONGODB_URI",
        "postgres" => "SMT_POSTGRES_URL",
        "connect" => "SMT_CONNECT_URL",
        "sink" => "SMT_SINK_CONNECT_URL",
        other => panic!("unknown service {other:?} (one of {ALL:?})"),
    }
}

/// What a service needs running before it can start.
fn deps(svc: &str) -> &'static [&'static str] {
    match svc {
        "connect" => &["kafka", "postgres"],
        "sink" => &["kafka", "mongo"],
        _ => &[],
    }
}

/// The repository root (found from this crate's manifest directory).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is in the repository root")
        .to_path_buf()
}

/// `scripts/services` of this checkout.
pub fn script() -> PathBuf {
    repo_root().join("scripts").join("services")
}

/// `${SMT_CACHE:-~/.cache/smt}`.
pub fn cache_dir() -> PathBuf {
    match std::env::var_os("SMT_CACHE") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/tmp".into()))
            .join(".cache")
            .join("smt"),
    }
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A name unique in this run (lowercase, `[a-z0-9_]`): for topics, tables,
/// connectors, slots and databases that tests create.
pub fn unique_name(prefix: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis()
        % 1_000_000;
    format!(
        "{}_{}_{}_{}",
        prefix.to_lowercase().replace(['-', '.'], "_"),
        std::process::id(),
        t,
        n
    )
}

/// A Debezium PostgreSQL connector, registered by [`Services::debezium_connector`].
#[derive(Clone, Debug)]
pub struct DebeziumConnector {
    /// Connector name (also the default replication slot: `smt_<name>`).
    pub name: String,
    /// `topic.prefix`: topics are `<prefix>.<schema>.<table>`.
    pub prefix: String,
    /// `schema.table` names.
    pub tables: Vec<String>,
    /// JSON converter `schemas.enable` for keys and values.
    pub schemas: bool,
    /// Partitions of the topics Connect creates.
    pub partitions: u32,
    /// Further connector properties (override the defaults of `scripts/services debezium`).
    pub extra: Vec<(String, String)>,
}

impl DebeziumConnector {
    pub fn new(name: &str, prefix: &str, tables: &[&str]) -> Self {
        DebeziumConnector {
            name: name.into(),
            prefix: prefix.into(),
            tables: tables.iter().map(|t| t.to_string()).collect(),
            schemas: false,
            partitions: 1,
            extra: Vec::new(),
        }
    }

    pub fn schemas(mut self, on: bool) -> Self {
        self.schemas = on;
        self
    }

    pub fn set(mut self, key: &str, value: &str) -> Self {
        self.extra.push((key.into(), value.into()));
        self
    }

    /// The topic of a `schema.table`.
    pub fn topic(&self, table: &str) -> String {
        format!("{}.{}", self.prefix, table)
    }
}

/// A set of running services (see the module docs).
pub struct Services {
    dir: PathBuf,
    private: bool,
    /// Env lines of the services known to be up (SMT_* name -> value).
    env: Mutex<HashMap<String, String>>,
    /// Serialises starts (a service and its dependencies).
    starting: Mutex<()>,
    /// Keep the run directory (logs) when dropped: set after a failure.
    keep: std::sync::atomic::AtomicBool,
}

static SHARED: OnceLock<Services> = OnceLock::new();

impl Services {
    /// The services shared by the tests of this binary (started on first use).
    pub fn shared() -> &'static Services {
        SHARED.get_or_init(|| {
            let from_env = std::env::var("SMT_SERVICES_DIR")
                .ok()
                .filter(|d| !d.is_empty());
            let dir = match from_env {
                Some(d) => PathBuf::from(d),
                None => cache_dir().join("runs").join(format!(
                    "test-{}-{}",
                    std::process::id(),
                    unique_name("s")
                )),
            };
            std::fs::create_dir_all(&dir).ok();
            let mut env = HashMap::new();
            for svc in ALL {
                if let Ok(v) = std::env::var(env_var(svc)) {
                    if !v.is_empty() {
                        env.insert(env_var(svc).to_string(), v);
                    }
                }
            }
            Services {
                dir,
                private: false,
                env: Mutex::new(env),
                starting: Mutex::new(()),
                keep: Default::default(),
            }
        })
    }

    /// An instance of its own with `svcs` (and what they need) started now,
    /// always local (the `SMT_*` addresses of the environment are ignored).
    /// Stopped when dropped.
    pub fn private(svcs: &[&str]) -> Result<Services> {
        Self::private_with_env(svcs, &[])
    }

    /// [`Services::private`] with extra environment for `scripts/services`
    /// (e.g. `SMT_SERVICES_TIMEOUT`).
    pub fn private_with_env(svcs: &[&str], env: &[(&str, &str)]) -> Result<Services> {
        let dir = cache_dir()
            .join("runs")
            .join(format!("private-{}", unique_name("p")));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let s = Services {
            dir,
            private: true,
            env: Mutex::new(HashMap::new()),
            starting: Mutex::new(()),
            keep: Default::default(),
        };
        for svc in svcs {
            if let Err(e) = s.ensure_with_env(svc, env) {
                s.keep.store(true, Ordering::Relaxed);
                return Err(e);
            }
        }
        Ok(s)
    }

    /// The run directory: each service's log is `<dir>/<svc>.log`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The log file of a service.
    pub fn log_path(&self, svc: &str) -> PathBuf {
        self.dir.join(format!("{svc}.log"))
    }

    /// `host:port` of the Kafka broker (starting it if needed). Panics with the
    /// script's message (service, reason, log path) if it cannot be started.
    pub fn brokers(&self) -> String {
        self.get("kafka")
    }

    /// `mongodb://…` of the MongoDB-protocol server.
    pub fn mongodb_uri(&self) -> String {
        self.get("mongo")
    }

    /// `postgresql://postgres@…/postgres`.
    pub fn postgres_url(&self) -> String {
        self.get("postgres")
    }

    /// REST URL of the Kafka Connect worker with Debezium.
    pub fn connect_url(&self) -> String {
        self.get("connect")
    }

    /// REST URL of the Kafka Connect worker with the reference MongoDB sink connector.
    pub fn sink_connect_url(&self) -> String {
        self.get("sink")
    }

    fn get(&self, svc: &str) -> String {
        match self.ensure(svc) {
            Ok(v) => v,
            Err(e) => panic!("{e:#}"),
        }
    }

    /// Starts `svc` (and what it needs) unless it is up; returns its address.
    pub fn ensure(&self, svc: &str) -> Result<String> {
        self.ensure_with_env(svc, &[])
    }

    fn ensure_with_env(&self, svc: &str, extra_env: &[(&str, &str)]) -> Result<String> {
        let var = env_var(svc);
        if let Some(v) = self.env.lock().unwrap().get(var) {
            return Ok(v.clone());
        }
        let _g = self.starting.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(v) = self.env.lock().unwrap().get(var) {
            return Ok(v.clone());
        }
        for d in deps(svc) {
            if !self.env.lock().unwrap().contains_key(env_var(d)) {
                self.start_now(d, extra_env)?;
            }
        }
        self.start_now(svc, extra_env)?;
        self.env
            .lock()
            .unwrap()
            .get(var)
            .cloned()
            .ok_or_else(|| anyhow!("{svc}: started but {var} is unknown"))
    }

    fn start_now(&self, svc: &str, extra_env: &[(&str, &str)]) -> Result<()> {
        let out = self
            .run_script_env(&["start", svc], extra_env)
            .with_context(|| format!("starting {svc}"))?;
        let mut env = self.env.lock().unwrap();
        for line in out.lines() {
            if let Some((k, v)) = line.split_once('=') {
                if k.starts_with("SMT_") {
                    env.insert(k.to_string(), v.to_string());
                }
            }
        }
        Ok(())
    }

    /// Runs `scripts/services <args> --dir <dir> --owner <this process>`; returns stdout.
    /// Fails with the script's stderr (which names the service and its log).
    pub fn run_script(&self, args: &[&str]) -> Result<String> {
        self.run_script_env(args, &[])
    }

    fn run_script_env(&self, args: &[&str], extra_env: &[(&str, &str)]) -> Result<String> {
        let mut cmd = Command::new(script());
        cmd.args(args)
            .arg("--dir")
            .arg(&self.dir)
            .arg("--owner")
            .arg(std::process::id().to_string());
        cmd.stdin(Stdio::null());
        if self.private {
            for v in [
                "SMT_KAFKA_BROKERS",
                "SMT_MONGODB_URI",
                "SMT_POSTGRES_URL",
                "SMT_SERVICES_DIR",
            ] {
                cmd.env_remove(v);
            }
        } else {
            // the shared set's addresses (some may come from this process's env)
            for (k, v) in self.env.lock().unwrap().iter() {
                if ["SMT_KAFKA_BROKERS", "SMT_MONGODB_URI", "SMT_POSTGRES_URL"]
                    .contains(&k.as_str())
                {
                    cmd.env(k, v);
                }
            }
        }
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        // every service's own readiness wait is bounded (at most 180 s); this is the backstop
        let out = crate::smt_process::run_bounded(
            cmd,
            &format!("scripts/services {}", args.join(" ")),
            SCRIPT_TIMEOUT,
        )?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() {
            bail!(
                "scripts/services {} failed ({}):\n{}{}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr),
                stdout
            );
        }
        Ok(stdout)
    }

    /// Stops a service (SIGTERM, SIGKILL after a timeout). Its data stays.
    pub fn stop(&self, svc: &str) -> Result<()> {
        self.run_script(&["stop", svc])?;
        self.env.lock().unwrap().remove(env_var(svc));
        Ok(())
    }

    /// Starts a stopped service again, on the same port with the same data.
    pub fn start(&self, svc: &str) -> Result<()> {
        self.ensure(svc).map(|_| ())
    }

    /// [`Services::stop`] then [`Services::start`].
    pub fn restart(&self, svc: &str) -> Result<()> {
        self.stop(svc)?;
        self.start(svc)
    }

    /// Creates a topic (no error if it exists).
    pub fn create_topic(&self, name: &str, partitions: u32) -> Result<()> {
        self.ensure("kafka")?;
        self.run_script(&["topic", name, "--partitions", &partitions.to_string()])
            .map(|_| ())
    }

    /// Runs SQL through `psql` (statements in autocommit unless the SQL says
    /// BEGIN/COMMIT; stops at the first error). Returns the unaligned output
    /// (`psql -At`): one line per row, columns separated by `|`.
    pub fn sql(&self, sql: &str) -> Result<String> {
        let url = self.ensure("postgres")?;
        psql(&url, sql).with_context(|| {
            format!(
                "SQL:\n{sql}\n(server log: {})",
                self.log_path("postgres").display()
            )
        })
    }

    /// Registers (or reconfigures) a Debezium connector on the Connect worker
    /// and waits until it and its task are RUNNING. The tables must exist.
    pub fn debezium_connector(&self, c: &DebeziumConnector) -> Result<()> {
        self.ensure("connect")?;
        let tables = c.tables.join(",");
        let parts = c.partitions.to_string();
        let mut args: Vec<String> = vec![
            "debezium".into(),
            c.name.clone(),
            "--prefix".into(),
            c.prefix.clone(),
            "--tables".into(),
            tables,
            "--schemas".into(),
            c.schemas.to_string(),
            "--partitions".into(),
            parts,
        ];
        for (k, v) in &c.extra {
            args.push("--set".into());
            args.push(format!("{k}={v}"));
        }
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        self.run_script(&a).map(|_| ())
    }

    /// Registers the reference sink (`mongo-kafka-connect` with the Debezium
    /// RDBMS handler) on the sink worker for `topics`, writing into `database`
    /// (one collection per topic unless `collection` is given), and waits until RUNNING.
    pub fn mongo_sink_connector(
        &self,
        name: &str,
        topics: &[&str],
        database: &str,
        collection: Option<&str>,
        extra: &[(&str, &str)],
    ) -> Result<()> {
        self.ensure("sink")?;
        let topics = topics.join(",");
        let mut args: Vec<String> = vec![
            "mongo-sink".into(),
            name.into(),
            "--topics".into(),
            topics,
            "--database".into(),
            database.into(),
        ];
        if let Some(c) = collection {
            args.push("--collection".into());
            args.push(c.into());
        }
        for (k, v) in extra {
            args.push("--set".into());
            args.push(format!("{k}={v}"));
        }
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        self.run_script(&a).map(|_| ())
    }

    /// Removes a connector (`worker`: "connect" or "sink").
    pub fn delete_connector(&self, worker: &str, name: &str) -> Result<()> {
        self.run_script(&["connector-delete", name, "--worker", worker])
            .map(|_| ())
    }

    /// Reads `topic` from the beginning until `pred` matches a record; returns it.
    /// Waits for the topic to exist (Connect creates its topics lazily).
    pub fn wait_for_record(
        &self,
        topic: &str,
        timeout: Duration,
        pred: impl Fn(&Record) -> bool,
    ) -> Result<Record> {
        let mut found = None;
        self.read_topic(topic, timeout, |r| {
            if pred(r) {
                found = Some(r.clone());
                true
            } else {
                false
            }
        })?;
        Ok(found.expect("read_topic returned Ok only after a match"))
    }

    /// Reads `topic` from the beginning, handing each record to `each` until it
    /// returns true; fails after `timeout` naming the topic and broker log.
    pub fn read_topic(
        &self,
        topic: &str,
        timeout: Duration,
        mut each: impl FnMut(&Record) -> bool,
    ) -> Result<()> {
        let brokers = self.ensure("kafka")?;
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .set("group.id", unique_name("harness"))
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "false")
            .set("fetch.wait.max.ms", "50")
            .create()
            .context("creating a Kafka consumer")?;
        let deadline = Instant::now() + timeout;
        let mut assigned = false;
        let mut seen = 0u64;
        while Instant::now() < deadline {
            if !assigned {
                let md = consumer.fetch_metadata(Some(topic), Duration::from_secs(5));
                if let Ok(md) = md {
                    if let Some(t) = md.topics().iter().find(|t| {
                        t.name() == topic && t.error().is_none() && !t.partitions().is_empty()
                    }) {
                        let mut tpl = TopicPartitionList::new();
                        for p in t.partitions() {
                            tpl.add_partition_offset(topic, p.id(), Offset::Beginning)?;
                        }
                        consumer.assign(&tpl)?;
                        assigned = true;
                    }
                }
                if !assigned {
                    std::thread::sleep(Duration::from_millis(200));
                    continue;
                }
            }
            match consumer.poll(Duration::from_millis(200)) {
                None => {}
                Some(Err(e)) => bail!(
                    "consuming {topic}: {e} (broker log: {})",
                    self.log_path("kafka").display()
                ),
                Some(Ok(m)) => {
                    seen += 1;
                    // The host's own copy out of librdkafka: the record as `smt` sees it.
                    let r = smt_host::source::owned(&m);
                    if each(&r) {
                        return Ok(());
                    }
                }
            }
        }
        bail!(
            "topic {topic}: no matching record within {timeout:?} ({} records read{}); logs: {} {}",
            seen,
            if assigned {
                ""
            } else {
                ", the topic never appeared"
            },
            self.log_path("kafka").display(),
            self.log_path("connect").display()
        )
    }
}

impl Drop for Services {
    fn drop(&mut self) {
        if self.private {
            // keep the logs of a failed test
            let clean = !std::thread::panicking() && !self.keep.load(Ordering::Relaxed);
            let _ = Command::new(script())
                .args(if clean {
                    &["down", "--clean", "--dir"][..]
                } else {
                    &["down", "--dir"][..]
                })
                .arg(&self.dir)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .status();
        }
    }
}

/// Runs SQL through psql in the database of `url` (stops at the first error);
/// returns the unaligned output (`psql -At`): one line per row, columns
/// separated by `|`.
pub fn psql(url: &str, sql: &str) -> Result<String> {
    let mut child = Command::new("psql")
        .args([
            url,
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-f",
            "-",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("running psql")?;
    let mut stdin = child.stdin.take().expect("piped stdin");
    let input = sql.to_owned();
    // Write from a thread: the output may fill its pipe before the input is all read.
    let writer = std::thread::spawn(move || {
        use std::io::Write;
        stdin.write_all(input.as_bytes())
    });
    let out = child.wait_with_output()?;
    writer
        .join()
        .expect("psql writer")
        .context("writing to psql")?;
    if !out.status.success() {
        bail!(
            "psql failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

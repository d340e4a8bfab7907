//! What every oracle test does around its workload: choose the seeds, run
//! them and report each (the seed first, so a killed run still names it),
//! wait for Debezium and for `smt`, SIGKILL `smt` halfway, and clean up.

use std::io::Write as _;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::kafka::topic_len;
use crate::oracle::{fresh_seed, group_progress, PartitionProgress};
use crate::services::Services;
use crate::smt_process::{tail, wait_for, Smt};

/// Straight to the terminal, past the test harness's capture: the seeds must
/// be visible even if the run is killed.
pub fn say(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// `SMT_ORACLE_SEEDS=1,2,3`, or three fresh seeds.
pub fn seeds_from_env() -> Vec<u64> {
    match std::env::var("SMT_ORACLE_SEEDS") {
        Ok(s) if !s.trim().is_empty() => s
            .split(',')
            .map(|x| {
                x.trim()
                    .parse()
                    .unwrap_or_else(|_| panic!("SMT_ORACLE_SEEDS: {x:?} is not a seed"))
            })
            .collect(),
        _ => (0..3).map(fresh_seed).collect(),
    }
}

/// `SMT_ORACLE_OPS`, or `default`.
pub fn ops_from_env(default: usize) -> usize {
    match std::env::var("SMT_ORACLE_OPS") {
        Ok(s) if !s.trim().is_empty() => s
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("SMT_ORACLE_OPS: {s:?} is not a number")),
        _ => default,
    }
}

/// An oracle test binary: its name (for the rerun command) and default size.
pub struct Oracle {
    /// The test binary: `scripts/test -p smt-tests --test <test>`.
    pub test: &'static str,
    pub default_ops: usize,
}

impl Oracle {
    /// The command that runs one seed again.
    pub fn rerun(&self, seed: u64, ops: usize) -> String {
        let ops = if ops == self.default_ops {
            String::new()
        } else {
            format!("SMT_ORACLE_OPS={ops} ")
        };
        format!(
            "SMT_ORACLE_SEEDS={seed} {ops}scripts/test -p smt-tests --test {}",
            self.test
        )
    }

    /// Runs `run(seed, ops)` for every seed of the environment, printing
    /// `oracle seed <seed>: PASS|FAIL …` lines (scripts/oracle reads them),
    /// and panics with every failure at the end.
    pub fn run_seeds(&self, mut run: impl FnMut(u64, usize) -> Result<String>) {
        let seeds = seeds_from_env();
        let ops = ops_from_env(self.default_ops);
        for seed in &seeds {
            say(&format!(
                "oracle seed {seed}: {ops} operations (rerun: {})",
                self.rerun(*seed, ops)
            ));
        }
        let mut failures = Vec::new();
        for seed in &seeds {
            let t0 = Instant::now();
            match run(*seed, ops) {
                Ok(summary) => say(&format!(
                    "oracle seed {seed}: PASS in {:.0}s: {summary}",
                    t0.elapsed().as_secs_f64()
                )),
                Err(e) => {
                    say(&format!(
                        "oracle seed {seed}: FAIL after {:.0}s (rerun: {})",
                        t0.elapsed().as_secs_f64(),
                        self.rerun(*seed, ops)
                    ));
                    failures.push(format!(
                        "==== oracle seed {seed} FAILED (rerun: {})\n{e:#}",
                        self.rerun(*seed, ops)
                    ));
                }
            }
        }
        if !failures.is_empty() {
            panic!(
                "{} of {} seeds failed:\n{}",
                failures.len(),
                seeds.len(),
                failures.join("\n")
            );
        }
    }
}

/// The end of smt's log, without terminal colours.
pub fn log_tail(smt: &Smt, n: usize) -> String {
    let text = smt.log_text();
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    tail(&out, n).to_owned()
}

/// Waits until each topic holds exactly `want[i]` records (more is an error:
/// the workload's model is wrong).
pub fn wait_topics(
    brokers: &str,
    topics: &[String],
    want: &[u64],
    timeout: Duration,
) -> Result<()> {
    let mut got = vec![0u64; topics.len()];
    let r = wait_for("the topics to hold the expected records", timeout, || {
        for (i, t) in topics.iter().enumerate() {
            got[i] = topic_len(brokers, t)? as u64;
        }
        if got.iter().zip(want).any(|(g, w)| g > w) {
            bail!("more records than the workload makes: {got:?}, expected {want:?} ({topics:?})");
        }
        Ok((got == want).then_some(()))
    });
    r.with_context(|| format!("records per topic {got:?}, expected {want:?} ({topics:?})"))
}

/// Waits until `smt` has processed `n` records (its metric), failing at
/// once if it exits.
pub fn wait_processed(smt: &mut Smt, n: f64, timeout: Duration) -> Result<f64> {
    let mut exited = None;
    let done = wait_for("smt to process half the records", timeout, || {
        if let Some(status) = smt.try_wait() {
            exited = Some(format!(
                "smt exited with {status}:\n{}",
                log_tail(smt, 4000)
            ));
            return Ok(Some(0.0));
        }
        let done = smt.metric("smt_records_processed_total", &[])?;
        Ok((done >= n).then_some(done))
    })?;
    match exited {
        Some(e) => bail!(e),
        None => Ok(done),
    }
}

/// Waits until the group has committed every record of `topics`; returns how long it took.
pub fn wait_committed(
    smt: &mut Smt,
    brokers: &str,
    group: &str,
    topics: &[String],
    budget: Duration,
) -> Result<Duration> {
    wait_group_committed(brokers, group, topics, budget, || match smt.try_wait() {
        Some(status) => bail!("smt exited with {status}:\n{}", log_tail(smt, 4000)),
        None => Ok(()),
    })
}

/// [`wait_committed`] for any consumer group; `alive` fails the wait early
/// (the consumer died).
pub fn wait_group_committed(
    brokers: &str,
    group: &str,
    topics: &[String],
    budget: Duration,
    mut alive: impl FnMut() -> Result<()>,
) -> Result<Duration> {
    let consumer: rdkafka::consumer::BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .create()?;
    let t0 = Instant::now();
    let mut last: Vec<PartitionProgress> = Vec::new();
    // The consumer's death ends the wait at once (`wait_for` retries errors).
    let mut dead = None;
    wait_for(
        &format!("group {group} to commit every record"),
        budget,
        || {
            if let Err(e) = alive() {
                dead = Some(e);
                return Ok(Some(()));
            }
            last = group_progress(&consumer, topics)?;
            Ok(last
                .iter()
                .all(|(_, _, committed, high)| committed.unwrap_or(0) == *high)
                .then_some(()))
        },
    )
    .with_context(|| format!("committed vs end offsets: {last:?}"))?;
    if let Some(e) = dead {
        return Err(e);
    }
    Ok(t0.elapsed())
}

/// After a pass: the connector `tag`, its slot `smt_<tag>` and the databases
/// named `tag` go (best effort).
pub fn cleanup(s: &Services, tag: &str, rt: &tokio::runtime::Runtime) {
    let _ = s.delete_connector("connect", tag);
    let slot = format!("smt_{tag}");
    let inactive = wait_for("the slot to be released", Duration::from_secs(30), || {
        let out = s.sql(&format!(
            "SELECT active FROM pg_replication_slots WHERE slot_name = '{slot}';"
        ))?;
        Ok((out.trim() != "t").then_some(()))
    });
    if inactive.is_ok() {
        let _ = s.sql(&format!(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = '{slot}';
             DROP DATABASE IF EXISTS {tag} WITH (FORCE);"
        ));
    }
    rt.block_on(async {
        if let Ok(c) = mongodb::Client::with_uri_str(&s.mongodb_uri()).await {
            let _ = c.database(tag).drop().await;
        }
    });
}

/// A small multi-threaded runtime for the MongoDB reads of an oracle.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

//! The status report of a running pipeline (`GET /status`, the status page,
//! `smt status`): per route the records/s in and out, write latency, errors
//! by kind, DLQ count and lag with an ETA; per partition the committed and
//! end offsets, lag, rate, ETA and whether it is stalled; the last record
//! failures. Rates come from samples taken every second by [`Sampler`],
//! which also applies the stall rule (`/ready`, `smt_stalled_partitions`)
//! and logs the catch-up progress line of a route with a large lag.
//!
//! The transform versions of each route are added by the admin endpoint
//! (it owns their JSON form); [`cli`] is `smt status`.

pub mod cli;
pub mod http;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::board::{self, Batches, Board, Key};
use crate::config::{Config, StatusConfig, TopicMatcher};
use crate::telemetry::{Metrics, Status};

/// How far back rates look.
const RATE_WINDOW: Duration = Duration::from_secs(10);
/// How many seconds of samples are kept.
const HISTORY: usize = 30;

/// The whole report, as `GET /status` answers it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub generated_at_ms: u64,
    pub pipeline: Pipeline,
    pub routes: Vec<Route>,
    /// The last record failures, newest first.
    pub errors: Vec<ErrorLine>,
}

/// The process as a whole.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Pipeline {
    /// Consuming (what `/ready` says, stalls aside).
    pub ready: bool,
    /// Stopped by an error (`/health` 503).
    pub failed: bool,
    /// Any assigned partition stalled.
    pub stalled: bool,
    /// `[status] stall-timeout-ms`.
    pub stall_timeout_ms: u64,
}

/// One `[[routes]]` entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Route {
    pub name: String,
    pub topics: Vec<String>,
    pub topic_pattern: Option<String>,
    pub transform: String,
    pub on_error: String,
    /// The active version of the transform (the admin endpoint's
    /// `/transforms` form: version, hash, source, trigger, activated_at_ms…;
    /// its config left out).
    pub active: Option<serde_json::Value>,
    /// The version a rollback returns to.
    pub previous: Option<serde_json::Value>,
    /// Records received from Kafka per second (last 10 s).
    pub records_in_per_s: Option<f64>,
    /// Records fully handled per second (last 10 s).
    pub records_out_per_s: Option<f64>,
    pub records_in_total: u64,
    pub records_out_total: u64,
    /// Mean time from a batch's start to its acknowledgement (last 10 s), ms.
    pub write_latency_ms: Option<f64>,
    /// Failed records by kind, since the start.
    pub errors_by_kind: BTreeMap<String, u64>,
    /// Records produced to the dead-letter topic, since the start.
    pub dlq_records: u64,
    /// Sum of the partitions' lag (those whose lag is known).
    pub lag: i64,
    /// Seconds until the lag is 0 at the current rate (`None`: no rate).
    pub eta_seconds: Option<f64>,
    pub partitions: Vec<PartitionLine>,
}

/// One assigned partition.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PartitionLine {
    pub topic: String,
    pub partition: i32,
    /// The next offset to process: every record before it is written.
    pub done: Option<i64>,
    pub committed: Option<i64>,
    pub end: Option<i64>,
    pub lag: Option<i64>,
    /// Offsets acknowledged per second (last 10 s).
    pub rate_per_s: Option<f64>,
    pub eta_seconds: Option<f64>,
    pub paused: bool,
    pub stalled: bool,
    /// Why it is stalled (`paused (queue full) for 130 s`, …).
    pub stall: Option<String>,
}

/// One failed record.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorLine {
    pub at_ms: u64,
    pub route: Option<String>,
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub transform: String,
    pub version: String,
    pub kind: String,
    pub policy: String,
    pub cause: String,
}

/// What one sample holds.
#[derive(Default)]
struct Sample {
    at: Option<Instant>,
    /// topic → (consumed, processed, batch totals)
    topics: HashMap<String, (u64, u64, Batches)>,
    done: BTreeMap<Key, i64>,
}

struct RouteEntry {
    name: String,
    matcher: TopicMatcher,
    topics: Vec<String>,
    topic_pattern: Option<String>,
    transform: String,
    on_error: String,
}

/// A route's catch-up: since when its lag is large.
struct CatchUp {
    since: Instant,
    processed_at_start: u64,
    logged: Option<Instant>,
}

/// Samples the counters every second; builds reports; applies the stall rule.
pub struct Sampler {
    routes: Vec<RouteEntry>,
    board: Arc<Board>,
    metrics: Arc<Metrics>,
    status: Arc<Status>,
    config: StatusConfig,
    history: Mutex<VecDeque<Sample>>,
    catch_up: Mutex<HashMap<String, CatchUp>>,
}

impl Sampler {
    pub fn new(
        config: &Config,
        board: Arc<Board>,
        metrics: Arc<Metrics>,
        status: Arc<Status>,
    ) -> anyhow::Result<Self> {
        let names = config.route_names();
        let mut routes = Vec::new();
        for (r, name) in config.routes.iter().zip(names) {
            routes.push(RouteEntry {
                name,
                matcher: TopicMatcher::new(r)?,
                topics: r.topics.clone(),
                topic_pattern: r.topic_pattern.clone(),
                transform: r.transform.clone(),
                on_error: r.on_error.as_str().to_owned(),
            });
        }
        Ok(Sampler {
            routes,
            board,
            metrics,
            status,
            config: config.status.clone(),
            history: Mutex::new(VecDeque::new()),
            catch_up: Mutex::new(HashMap::new()),
        })
    }

    fn route_of(&self, topic: &str) -> Option<usize> {
        self.routes.iter().position(|r| r.matcher.matches(topic))
    }

    fn sample(&self) -> Sample {
        let partitions = self.board.partitions();
        let batches = self.board.batches();
        let mut topics: Vec<&String> = partitions.keys().map(|(t, _)| t).collect();
        topics.extend(batches.keys());
        topics.sort();
        topics.dedup();
        let mut s = Sample {
            at: Some(Instant::now()),
            ..Sample::default()
        };
        for t in topics {
            let label = Metrics::topic(t);
            s.topics.insert(
                t.clone(),
                (
                    self.metrics.records_consumed.get_or_create(&label).get(),
                    self.metrics.records_processed.get_or_create(&label).get(),
                    batches.get(t).copied().unwrap_or_default(),
                ),
            );
        }
        for (k, p) in &partitions {
            if let Some(d) = p.done {
                s.done.insert(k.clone(), d);
            }
        }
        s
    }

    /// Takes a sample, updates the stall state, logs catch-up progress.
    /// Called every second by [`Sampler::run`].
    pub fn tick(&self) {
        let sample = self.sample();
        {
            let mut h = self.history.lock().unwrap_or_else(|e| e.into_inner());
            h.push_back(sample);
            while h.len() > HISTORY {
                h.pop_front();
            }
        }
        let report = self.report();
        let stalled: Vec<String> = report
            .routes
            .iter()
            .flat_map(|r| &r.partitions)
            .filter_map(|p| {
                p.stall
                    .as_ref()
                    .map(|why| format!("{}/{}: {why}", p.topic, p.partition))
            })
            .collect();
        self.metrics.stalled_partitions.set(stalled.len() as i64);
        let mut current = self
            .status
            .stalled
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        // Once per stall: the text holds a duration, so compare topic/partition.
        let key = |s: &str| s.split(':').next().unwrap_or_default().to_owned();
        for s in &stalled {
            if !current.iter().any(|c| key(c) == key(s)) {
                tracing::warn!(partition = %key(s), detail = %s, "A partition is stalled.");
            }
        }
        *current = stalled;
        drop(current);
        self.log_catch_up(&report);
    }

    /// One progress line per route whose lag is at least `progress-lag`,
    /// every `progress-interval-ms`.
    fn log_catch_up(&self, report: &Report) {
        if self.config.progress_lag == 0 {
            return;
        }
        let now = Instant::now();
        let every = Duration::from_millis(self.config.progress_interval_ms);
        let mut catch_up = self.catch_up.lock().unwrap_or_else(|e| e.into_inner());
        for r in &report.routes {
            if r.lag < self.config.progress_lag as i64 {
                if let Some(c) = catch_up.remove(&r.name) {
                    tracing::info!(
                        route = %r.name,
                        records = r.records_out_total.saturating_sub(c.processed_at_start),
                        seconds = c.since.elapsed().as_secs(),
                        lag = r.lag,
                        "Caught up."
                    );
                }
                continue;
            }
            let c = catch_up.entry(r.name.clone()).or_insert(CatchUp {
                since: now,
                processed_at_start: r.records_out_total,
                logged: None,
            });
            if c.logged.is_some_and(|at| now.duration_since(at) < every) {
                continue;
            }
            c.logged = Some(now);
            let done = r.records_out_total.saturating_sub(c.processed_at_start);
            tracing::info!(
                route = %r.name,
                done,
                lag = r.lag,
                rate = format!("{:.0}/s", r.records_out_per_s.unwrap_or(0.0)),
                eta = %r.eta_seconds.map(format_eta).unwrap_or_else(|| "unknown".into()),
                "Catching up: {done} records done, {} to go.",
                r.lag
            );
        }
    }

    /// Ticks every second until `stop`.
    pub async fn run(self: Arc<Self>, stop: tokio_util::sync::CancellationToken) {
        let mut every = tokio::time::interval(Duration::from_secs(1));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = every.tick() => self.tick(),
            }
        }
    }

    /// The report now (transform versions left empty: the admin endpoint adds them).
    pub fn report(&self) -> Report {
        let now = Instant::now();
        let limit = Duration::from_millis(self.config.stall_timeout_ms);
        let history = self.history.lock().unwrap_or_else(|e| e.into_inner());
        let latest = history.back();
        // The oldest sample within the window (else the oldest there is).
        let base = latest.and_then(|l| {
            let at = l.at?;
            history
                .iter()
                .find(|s| s.at.is_some_and(|t| at.duration_since(t) <= RATE_WINDOW))
        });
        let dt = match (base.and_then(|b| b.at), latest.and_then(|l| l.at)) {
            (Some(b), Some(l)) => l.duration_since(b).as_secs_f64(),
            _ => 0.0,
        };
        let rate = |now: u64, then: Option<u64>| -> Option<f64> {
            let then = then?;
            (dt >= 0.5).then(|| now.saturating_sub(then) as f64 / dt)
        };
        let errors_by_topic = self.board.error_counts();
        let mut routes: Vec<Route> = self
            .routes
            .iter()
            .map(|r| Route {
                name: r.name.clone(),
                topics: r.topics.clone(),
                topic_pattern: r.topic_pattern.clone(),
                transform: r.transform.clone(),
                on_error: r.on_error.clone(),
                active: None,
                previous: None,
                records_in_per_s: None,
                records_out_per_s: None,
                records_in_total: 0,
                records_out_total: 0,
                write_latency_ms: None,
                errors_by_kind: BTreeMap::new(),
                dlq_records: 0,
                lag: 0,
                eta_seconds: None,
                partitions: Vec::new(),
            })
            .collect();

        // Per topic: totals and rates, summed into the route.
        let mut latency: Vec<(f64, u64)> = vec![(0.0, 0); routes.len()];
        if let Some(l) = latest {
            for (topic, (consumed, processed, batches)) in &l.topics {
                let Some(i) = self.route_of(topic) else {
                    continue;
                };
                let r = &mut routes[i];
                r.records_in_total += consumed;
                r.records_out_total += processed;
                let before = base.and_then(|b| b.topics.get(topic));
                let add = |acc: &mut Option<f64>, v: Option<f64>| {
                    if let Some(v) = v {
                        *acc = Some(acc.unwrap_or(0.0) + v);
                    }
                };
                add(
                    &mut r.records_in_per_s,
                    rate(*consumed, Some(before.map_or(0, |b| b.0))),
                );
                add(
                    &mut r.records_out_per_s,
                    rate(*processed, Some(before.map_or(0, |b| b.1))),
                );
                let then = before.map(|b| b.2).unwrap_or_default();
                latency[i].0 += batches.seconds - then.seconds;
                latency[i].1 += batches.batches.saturating_sub(then.batches);
            }
        }
        for (r, (secs, n)) in routes.iter_mut().zip(latency) {
            if n > 0 {
                r.write_latency_ms = Some(secs / n as f64 * 1e3);
            }
        }
        for ((topic, kind), n) in errors_by_topic {
            if let Some(i) = self.route_of(&topic) {
                *routes[i].errors_by_kind.entry(kind).or_default() += n;
            }
        }
        for r in routes.iter_mut() {
            let topics: Vec<String> = latest
                .map(|l| l.topics.keys().cloned().collect())
                .unwrap_or_default();
            r.dlq_records = topics
                .iter()
                .filter(|t| {
                    self.route_of(t)
                        .is_some_and(|i| self.routes[i].name == r.name)
                })
                .map(|t| {
                    self.metrics
                        .dlq_records
                        .get_or_create(&Metrics::topic(t))
                        .get()
                })
                .sum();
        }

        // Partitions.
        for (key, p) in self.board.partitions() {
            let Some(i) = self.route_of(&key.0) else {
                continue;
            };
            // From the oldest sample in the window that knows the partition
            // (a partition assigned or first acknowledged meanwhile has fewer).
            let last_at = latest.and_then(|l| l.at);
            let then = history
                .iter()
                .filter(|s| match (s.at, last_at) {
                    (Some(t), Some(l)) => l.duration_since(t) <= RATE_WINDOW,
                    _ => false,
                })
                .find_map(|s| Some((s.at?, *s.done.get(&key)?)));
            let rate_p = match (p.done, then, last_at) {
                (Some(now_done), Some((t, then_done)), Some(l)) => {
                    let span = l.duration_since(t).as_secs_f64();
                    (span >= 0.5).then(|| (now_done - then_done).max(0) as f64 / span)
                }
                _ => None,
            };
            let lag = p.lag();
            let stall = p.stall(now, limit);
            routes[i].partitions.push(PartitionLine {
                topic: key.0.clone(),
                partition: key.1,
                done: p.done,
                committed: p.committed,
                end: p.end,
                lag,
                rate_per_s: rate_p,
                eta_seconds: eta(lag, rate_p),
                paused: p.paused_since.is_some(),
                stalled: stall.is_some(),
                stall: stall.map(|s| s.to_string()),
            });
        }
        for r in routes.iter_mut() {
            r.lag = r.partitions.iter().filter_map(|p| p.lag).sum();
            r.eta_seconds = eta(Some(r.lag), r.records_out_per_s);
        }
        drop(history);

        let errors = self
            .board
            .errors()
            .into_iter()
            .rev()
            .map(|e| ErrorLine {
                route: self.route_of(&e.topic).map(|i| self.routes[i].name.clone()),
                at_ms: e.at_ms,
                topic: e.topic,
                partition: e.partition,
                offset: e.offset,
                transform: e.transform,
                version: e.version,
                kind: e.kind,
                policy: e.policy,
                cause: e.cause,
            })
            .collect();
        let stalled = routes
            .iter()
            .any(|r| r.partitions.iter().any(|p| p.stalled));
        Report {
            generated_at_ms: board::now_ms(),
            pipeline: Pipeline {
                ready: self.status.ready.load(std::sync::atomic::Ordering::Relaxed),
                failed: self
                    .status
                    .failed
                    .load(std::sync::atomic::Ordering::Relaxed),
                stalled,
                stall_timeout_ms: self.config.stall_timeout_ms,
            },
            routes,
            errors,
        }
    }
}

/// Seconds until `lag` is worked off at `rate` per second.
fn eta(lag: Option<i64>, rate: Option<f64>) -> Option<f64> {
    match (lag?, rate) {
        (0, _) => Some(0.0),
        (l, Some(r)) if r > 0.0 => Some(l as f64 / r),
        _ => None,
    }
}

/// `95 s`, `12 min 5 s`, `3 h 20 min`.
pub fn format_eta(seconds: f64) -> String {
    let s = seconds.round() as u64;
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min {} s", s / 60, s % 60),
        _ => format!("{} h {} min", s / 3600, s % 3600 / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &str) -> Config {
        let dir =
            std::env::temp_dir().join(format!("smt-status-{}-{}", std::process::id(), extra.len()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("smt.toml");
        std::fs::write(
            &path,
            format!(
                r#"[kafka]
brokers = "127.0.0.1:1"
group-id = "g"
[mongodb]
uri = "mongodb://127.0.0.1:1"
database = "d"
[transforms.t]
module = "t.wasm"
[[routes]]
topics = ["a", "b"]
transform = "t"
{extra}"#
            ),
        )
        .unwrap();
        let c = Config::load_with_env(&path, Vec::new()).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        c
    }

    #[test]
    fn rates_lag_and_eta_come_from_the_samples() {
        let board = Arc::new(Board::new(10));
        let metrics = Arc::new(Metrics::new());
        let s = Sampler::new(
            &config(""),
            board.clone(),
            metrics.clone(),
            Arc::new(Status::default()),
        )
        .unwrap();
        board.assigned(&[("a".into(), 0)]);
        board.watermarks("a", 0, 0, 1000, 1000);
        board.progress("a", 0, 0);
        s.tick();
        // Two seconds later (the samples' clock is moved back instead of waiting).
        {
            let mut h = s.history.lock().unwrap();
            let first = h.back_mut().unwrap();
            first.at = first.at.map(|t| t - Duration::from_secs(2));
        }
        metrics
            .records_consumed
            .get_or_create(&Metrics::topic("a"))
            .inc_by(600);
        metrics
            .records_processed
            .get_or_create(&Metrics::topic("a"))
            .inc_by(400);
        board.progress("a", 0, 400);
        board.batch("a", 400, Duration::from_millis(30));
        board.batch("a", 0, Duration::from_millis(10));
        s.tick();
        let r = s.report();
        let route = &r.routes[0];
        assert_eq!(route.name, "t");
        let close = |a: Option<f64>, b: f64| a.is_some_and(|a| (a - b).abs() < 5.0);
        assert!(close(route.records_in_per_s, 300.0), "{route:?}");
        assert!(close(route.records_out_per_s, 200.0), "{route:?}");
        assert!(close(route.write_latency_ms, 20.0), "{route:?}");
        assert_eq!(route.lag, 600);
        assert!(close(route.eta_seconds, 3.0), "{route:?}");
        let p = &route.partitions[0];
        assert_eq!((p.done, p.end, p.lag), (Some(400), Some(1000), Some(600)));
        assert!(close(p.rate_per_s, 200.0), "{p:?}");
        assert!(!p.stalled && !r.pipeline.stalled);
    }

    #[test]
    fn a_stalled_partition_shows_in_the_report_the_metric_and_the_status() {
        let board = Arc::new(Board::new(10));
        let metrics = Arc::new(Metrics::new());
        let status = Arc::new(Status::default());
        let s = Sampler::new(
            &config("[status]\nstall-timeout-ms = 1\n"),
            board.clone(),
            metrics.clone(),
            status.clone(),
        )
        .unwrap();
        board.assigned(&[("b".into(), 3)]);
        board.watermarks("b", 3, 5, 10, 5);
        std::thread::sleep(Duration::from_millis(5));
        s.tick();
        let r = s.report();
        assert!(r.pipeline.stalled);
        assert!(r.routes[0].partitions[0].stalled);
        assert_eq!(metrics.stalled_partitions.get(), 1);
        let stalled = status.stalled.lock().unwrap().clone();
        assert_eq!(stalled.len(), 1);
        assert!(stalled[0].starts_with("b/3: no progress"), "{stalled:?}");
        // Progress clears it.
        board.progress("b", 3, 10);
        s.tick();
        assert_eq!(metrics.stalled_partitions.get(), 0);
        assert!(status.stalled.lock().unwrap().is_empty());
    }

    #[test]
    fn route_names_default_to_the_transform_and_must_be_unique() {
        let c = config("[[routes]]\ntopics = [\"c\"]\ntransform = \"t\"\nname = \"second\"\n");
        assert_eq!(c.route_names(), ["t-0", "second"]);
        assert_eq!(format_eta(59.4), "59 s");
        assert_eq!(format_eta(725.0), "12 min 5 s");
        assert_eq!(format_eta(12_000.0), "3 h 20 min");
    }
}

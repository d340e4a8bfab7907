//! The live facts of a running pipeline that the status report needs and
//! Prometheus counters do not keep in a readable form: where each assigned
//! partition is (acknowledged, committed and end offsets, paused since,
//! last progress), the last record failures with their coordinates and
//! cause, and batch totals per topic. The source and the workers write it;
//! `status` reads it. Nothing here does I/O.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// (topic, partition)
pub type Key = (String, i32);

/// What is known of one assigned partition.
#[derive(Debug, Clone)]
pub struct Partition {
    /// The next offset to process: every record before it is written
    /// (acknowledged by this process's worker).
    pub done: Option<i64>,
    /// The group's committed offset (librdkafka statistics, every 5 s).
    pub committed: Option<i64>,
    /// The end of the partition (high watermark, librdkafka statistics).
    pub end: Option<i64>,
    /// librdkafka's own lag figure, used while no position is known.
    pub stats_lag: Option<i64>,
    /// Since when the partition is paused because its queue is full.
    pub paused_since: Option<Instant>,
    /// When `done` last moved, or the partition was assigned, or it last
    /// started to lag after having none: the stall clock.
    pub progress_at: Instant,
}

impl Partition {
    fn new(now: Instant) -> Self {
        Partition {
            done: None,
            committed: None,
            end: None,
            stats_lag: None,
            paused_since: None,
            progress_at: now,
        }
    }

    /// Records between the position (acknowledged, else committed) and the end.
    pub fn lag(&self) -> Option<i64> {
        match (self.done.max(self.committed), self.end) {
            (Some(pos), Some(end)) => Some((end - pos).max(0)),
            _ => self.stats_lag.filter(|l| *l >= 0),
        }
    }

    /// Why the partition is stalled, if it is: paused (queue full) for
    /// `limit` without a break, or no progress for `limit` while it lags.
    pub fn stall(&self, now: Instant, limit: Duration) -> Option<Stall> {
        if let Some(since) = self.paused_since {
            let d = now.saturating_duration_since(since);
            if d >= limit {
                return Some(Stall::Paused(d));
            }
        }
        let idle = now.saturating_duration_since(self.progress_at);
        (self.lag().unwrap_or(0) > 0 && idle >= limit).then_some(Stall::NoProgress(idle))
    }
}

/// Why a partition counts as stalled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stall {
    /// Paused because its queue is full, for this long without a break.
    Paused(Duration),
    /// Lagging without its acknowledged offset moving, for this long.
    NoProgress(Duration),
}

impl std::fmt::Display for Stall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stall::Paused(d) => write!(f, "paused (queue full) for {} s", d.as_secs()),
            Stall::NoProgress(d) => write!(f, "no progress for {} s while lagging", d.as_secs()),
        }
    }
}

/// One failed record, as the status report lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordError {
    /// Wall-clock time of the failure, ms since the Unix epoch.
    pub at_ms: u64,
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub transform: String,
    pub version: String,
    /// The failure's stable kind (`bad-input`, `trap`, …, `write-error`).
    pub kind: String,
    /// The route's policy applied: `dlq`, `skip` or `fail`.
    pub policy: String,
    pub cause: String,
}

/// Totals of a topic's batches.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Batches {
    pub batches: u64,
    pub records: u64,
    /// Seconds from the start of processing to acknowledgement, summed.
    pub seconds: f64,
}

/// Longest cause kept per error.
const MAX_CAUSE: usize = 1000;

/// The shared record of live facts.
pub struct Board {
    partitions: Mutex<BTreeMap<Key, Partition>>,
    errors: Mutex<VecDeque<RecordError>>,
    error_counts: Mutex<BTreeMap<(String, String), u64>>,
    batches: Mutex<HashMap<String, Batches>>,
    keep_errors: usize,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The data stays consistent under a panic elsewhere: each update is one assignment.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Board {
    /// A board keeping the last `keep_errors` record failures.
    pub fn new(keep_errors: usize) -> Self {
        Board {
            partitions: Mutex::default(),
            errors: Mutex::default(),
            error_counts: Mutex::default(),
            batches: Mutex::default(),
            keep_errors,
        }
    }

    /// The partitions of `keys` are now this process's.
    pub fn assigned(&self, keys: &[Key]) {
        let now = Instant::now();
        let mut map = lock(&self.partitions);
        for k in keys {
            map.entry(k.clone()).or_insert_with(|| Partition::new(now));
        }
    }

    /// The partitions of `keys` (all when `None`) are no longer this process's.
    pub fn revoked(&self, keys: Option<&[Key]>) {
        let mut map = lock(&self.partitions);
        match keys {
            Some(keys) => {
                for k in keys {
                    map.remove(k);
                }
            }
            None => map.clear(),
        }
    }

    fn with(&self, topic: &str, partition: i32, f: impl FnOnce(&mut Partition)) {
        let mut map = lock(&self.partitions);
        // Only assigned partitions are tracked (statistics also name others).
        if let Some(p) = map.get_mut(&(topic.to_owned(), partition)) {
            f(p);
        }
    }

    /// Everything before `next` is written.
    pub fn progress(&self, topic: &str, partition: i32, next: i64) {
        self.with(topic, partition, |p| {
            if p.done.is_none_or(|d| next != d) {
                p.done = Some(next);
                p.progress_at = Instant::now();
            }
        });
    }

    /// The position was moved by a seek (a rewind): progress restarts there.
    pub fn rewound(&self, topic: &str, partition: i32, next: i64) {
        self.with(topic, partition, |p| {
            p.done = Some(next);
            p.progress_at = Instant::now();
        });
    }

    /// librdkafka's statistics of a partition: committed offset, high
    /// watermark, its lag (negative values: unknown).
    pub fn watermarks(&self, topic: &str, partition: i32, committed: i64, end: i64, lag: i64) {
        let known = |v: i64| (v >= 0).then_some(v);
        self.with(topic, partition, |p| {
            let lagged_before = p.lag().unwrap_or(0) > 0;
            p.committed = known(committed).or(p.committed);
            p.end = known(end).or(p.end);
            p.stats_lag = known(lag);
            // A partition that had nothing to do starts its stall clock now.
            if !lagged_before && p.lag().unwrap_or(0) > 0 {
                p.progress_at = Instant::now();
            }
        });
    }

    /// The partition was paused (queue full) or resumed.
    pub fn paused(&self, topic: &str, partition: i32, paused: bool) {
        self.with(topic, partition, |p| {
            p.paused_since = match (paused, p.paused_since) {
                (true, Some(since)) => Some(since),
                (true, None) => Some(Instant::now()),
                (false, _) => None,
            };
        });
    }

    /// A batch of `records` of `topic` was acknowledged after `elapsed`.
    pub fn batch(&self, topic: &str, records: usize, elapsed: Duration) {
        let mut map = lock(&self.batches);
        let b = map.entry(topic.to_owned()).or_default();
        b.batches += 1;
        b.records += records as u64;
        b.seconds += elapsed.as_secs_f64();
    }

    /// A record failed (after its policy was decided).
    pub fn record_error(&self, mut e: RecordError) {
        if e.cause.len() > MAX_CAUSE {
            let mut cut = MAX_CAUSE;
            while !e.cause.is_char_boundary(cut) {
                cut -= 1;
            }
            e.cause.truncate(cut);
            e.cause.push('…');
        }
        *lock(&self.error_counts)
            .entry((e.topic.clone(), e.kind.clone()))
            .or_default() += 1;
        if self.keep_errors == 0 {
            return;
        }
        let mut ring = lock(&self.errors);
        if ring.len() == self.keep_errors {
            ring.pop_front();
        }
        ring.push_back(e);
    }

    /// Every assigned partition.
    pub fn partitions(&self) -> BTreeMap<Key, Partition> {
        lock(&self.partitions).clone()
    }

    /// The last failures, oldest first.
    pub fn errors(&self) -> Vec<RecordError> {
        lock(&self.errors).iter().cloned().collect()
    }

    /// Failed records by (topic, kind), since the start.
    pub fn error_counts(&self) -> BTreeMap<(String, String), u64> {
        lock(&self.error_counts).clone()
    }

    /// Batch totals by topic, since the start.
    pub fn batches(&self) -> HashMap<String, Batches> {
        lock(&self.batches).clone()
    }
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(p: i32) -> Key {
        ("t".to_owned(), p)
    }

    #[test]
    fn lag_is_the_end_minus_the_furthest_known_position() {
        let b = Board::new(10);
        b.assigned(&[key(0)]);
        b.watermarks("t", 0, -1, 100, 100);
        assert_eq!(
            b.partitions()[&key(0)].lag(),
            Some(100),
            "librdkafka's figure before a position"
        );
        b.watermarks("t", 0, 40, 100, 60);
        assert_eq!(b.partitions()[&key(0)].lag(), Some(60));
        b.progress("t", 0, 70);
        assert_eq!(
            b.partitions()[&key(0)].lag(),
            Some(30),
            "acknowledged beyond committed"
        );
        b.progress("t", 0, 120);
        assert_eq!(
            b.partitions()[&key(0)].lag(),
            Some(0),
            "statistics older than the acks"
        );
        // Partitions not assigned here are not tracked.
        b.watermarks("t", 9, 1, 2, 1);
        assert!(!b.partitions().contains_key(&key(9)));
    }

    #[test]
    fn a_partition_stalls_when_paused_too_long_or_lagging_without_progress() {
        let limit = Duration::from_secs(60);
        let t0 = Instant::now();
        let mut p = Partition::new(t0);
        p.end = Some(10);
        p.done = Some(10);
        assert_eq!(p.stall(t0 + limit * 2, limit), None, "no lag, no stall");
        p.done = Some(5);
        assert_eq!(p.stall(t0 + limit / 2, limit), None, "not for long enough");
        assert_eq!(p.stall(t0 + limit, limit), Some(Stall::NoProgress(limit)));
        let mut q = Partition::new(t0);
        q.paused_since = Some(t0);
        assert_eq!(q.stall(t0 + limit, limit), Some(Stall::Paused(limit)));
    }

    #[test]
    fn an_idle_partition_starts_its_stall_clock_when_it_starts_to_lag() {
        let b = Board::new(10);
        b.assigned(&[key(0)]);
        b.progress("t", 0, 10);
        b.watermarks("t", 0, 10, 10, 0);
        let before = b.partitions()[&key(0)].progress_at;
        b.watermarks("t", 0, 10, 11, 1);
        assert!(b.partitions()[&key(0)].progress_at > before);
    }

    #[test]
    fn pauses_keep_their_start_and_end_on_resume() {
        let b = Board::new(10);
        b.assigned(&[key(0)]);
        b.paused("t", 0, true);
        let since = b.partitions()[&key(0)].paused_since;
        b.paused("t", 0, true);
        assert_eq!(b.partitions()[&key(0)].paused_since, since);
        b.paused("t", 0, false);
        assert_eq!(b.partitions()[&key(0)].paused_since, None);
        b.revoked(Some(&[key(0)]));
        assert!(b.partitions().is_empty());
    }

    #[test]
    fn the_error_ring_keeps_the_last_ones_and_counts_all() {
        let b = Board::new(2);
        for o in 0..3 {
            b.record_error(RecordError {
                at_ms: 0,
                topic: "t".into(),
                partition: 0,
                offset: o,
                transform: "x".into(),
                version: "v".into(),
                kind: "trap".into(),
                policy: "dlq".into(),
                cause: "é".repeat(MAX_CAUSE),
            });
        }
        let errors = b.errors();
        assert_eq!(errors.iter().map(|e| e.offset).collect::<Vec<_>>(), [1, 2]);
        assert!(errors[0].cause.len() <= MAX_CAUSE + '…'.len_utf8());
        assert_eq!(b.error_counts()[&("t".into(), "trap".into())], 3);
    }
}

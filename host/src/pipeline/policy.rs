//! What a failed record is, and what a batch's error policy decides: which
//! operations to write, which records fail, where the pipeline stops and
//! what is acknowledged. Pure functions of the batch's results, so each
//! decision is unit-tested without services; the worker does the I/O.

use std::collections::VecDeque;

use crate::config::ErrorPolicy;
use crate::engine::{CallError, FailureKind};
use crate::sink::OpFailure;
use crate::writeop::WriteOp;

/// Why one record failed: it goes through its route's error policy.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub(crate) enum RecordFailure {
    /// The transform failed on it (a guest error, trap, timeout, memory
    /// limit, oversized output, invalid operation, failed instantiation).
    #[error("{kind}: {message}")]
    Transform { kind: FailureKind, message: String },
    /// MongoDB refused one of its operations for a data reason (a code of
    /// the sink's allow-list, e.g. duplicate key 11000, validation 121).
    #[error("write-error: {message}")]
    Write { code: Option<i32>, message: String },
}

impl RecordFailure {
    /// The stable name of the kind: the `kind` metric label and the
    /// `smt.error.kind` DLQ header.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            RecordFailure::Transform { kind, .. } => kind.as_str(),
            RecordFailure::Write { .. } => "write-error",
        }
    }

    pub(crate) fn message(&self) -> &str {
        match self {
            RecordFailure::Transform { message, .. } | RecordFailure::Write { message, .. } => {
                message
            }
        }
    }
}

impl From<CallError> for RecordFailure {
    fn from(e: CallError) -> Self {
        RecordFailure::Transform {
            kind: e.kind,
            message: e.message,
        }
    }
}

impl From<OpFailure> for RecordFailure {
    fn from(f: OpFailure) -> Self {
        RecordFailure::Write {
            code: f.code,
            message: f.message,
        }
    }
}

/// Failures that may not recur on a fresh instance (the failed one was
/// dropped): a wall-clock deadline, the memory cap, an instantiation. The
/// record is tried once more before its policy applies.
pub(crate) fn worth_a_second_try(kind: FailureKind) -> bool {
    matches!(
        kind,
        FailureKind::Timeout | FailureKind::MemoryLimit | FailureKind::Instantiate
    )
}

/// A failed record of a batch (`record` indexes the batch).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Failed {
    pub record: usize,
    pub failure: RecordFailure,
}

/// What to write for a batch: the operations of the records that
/// transformed, each with its record's index, and the records that did not.
#[derive(Debug, Default)]
pub(crate) struct ToWrite {
    pub ops: Vec<(usize, WriteOp)>,
    pub failed: Vec<Failed>,
}

/// Splits a batch's transform results into what to write and what failed.
/// Under `fail` nothing of the first failed record or after it is written.
/// A record that returned no operation is filtered: nothing to write, done.
pub(crate) fn to_write(
    results: Vec<Result<Vec<WriteOp>, CallError>>,
    policy: ErrorPolicy,
) -> ToWrite {
    let mut out = ToWrite {
        ops: Vec::with_capacity(results.len()),
        failed: Vec::new(),
    };
    for (record, result) in results.into_iter().enumerate() {
        match result {
            Ok(ops) => out.ops.extend(ops.into_iter().map(|op| (record, op))),
            Err(e) => {
                out.failed.push(Failed {
                    record,
                    failure: e.into(),
                });
                if policy == ErrorPolicy::Fail {
                    break;
                }
            }
        }
    }
    out
}

/// What the policy makes of a batch once its writes are done.
#[derive(Debug, PartialEq)]
pub(crate) enum Verdict {
    /// Every record is handled: the failed ones (in record order) are
    /// skipped or dead-lettered, then the whole batch is acknowledged.
    Done { failed: Vec<Failed> },
    /// `on-error = "fail"`: stop at this record; the records before it are
    /// done, it and everything after it are not acknowledged.
    Stop(Failed),
}

/// Merges the transform and write failures of a batch under `policy`.
pub(crate) fn decide(
    transform_failed: Vec<Failed>,
    write_failed: Vec<OpFailure>,
    policy: ErrorPolicy,
) -> Verdict {
    let mut failed = transform_failed;
    failed.extend(write_failed.into_iter().map(|f| Failed {
        record: f.record,
        failure: f.into(),
    }));
    // Stable: a record that failed in both keeps its transform failure first.
    failed.sort_by_key(|f| f.record);
    match policy {
        ErrorPolicy::Fail if !failed.is_empty() => Verdict::Stop(failed.swap_remove(0)),
        _ => Verdict::Done { failed },
    }
}

/// The next offset to acknowledge after a batch: past its last record when
/// it is done, the failed record's own offset when the pipeline stops there.
pub(crate) fn ack_after(offsets: &[i64], verdict: &Verdict) -> i64 {
    match verdict {
        Verdict::Done { .. } => offsets.last().expect("a batch is never empty") + 1,
        Verdict::Stop(f) => offsets[f.record],
    }
}

/// The breaker of a partition: trips when more than `percent` % of the
/// last `window` records failed, so that a cause that fails every record
/// (a broken transform, a missing collection validator…) stops the
/// pipeline instead of skipping or dead-lettering a whole topic.
#[derive(Debug)]
pub(crate) struct Breaker {
    percent: u32,
    window: usize,
    /// (records, failed) of the recent batches, oldest first.
    batches: VecDeque<(usize, usize)>,
    records: usize,
    failed: usize,
}

impl Breaker {
    /// `percent` 0 or ≥ 100 never trips.
    pub(crate) fn new(percent: u32, window: usize) -> Breaker {
        Breaker {
            percent,
            window: window.max(1),
            batches: VecDeque::new(),
            records: 0,
            failed: 0,
        }
    }

    /// Adds a batch of `records` of which `failed` failed; true when the
    /// breaker trips (checked once a full window is seen).
    pub(crate) fn trips(&mut self, records: usize, failed: usize) -> bool {
        if self.percent == 0 || self.percent >= 100 {
            return false;
        }
        self.batches.push_back((records, failed));
        self.records += records;
        self.failed += failed;
        while let Some(&(r, f)) = self.batches.front() {
            if self.records - r < self.window {
                break;
            }
            self.batches.pop_front();
            self.records -= r;
            self.failed -= f;
        }
        self.records >= self.window && self.failed * 100 > self.records * self.percent as usize
    }

    /// The failed share of the current window, for the error message.
    pub(crate) fn describe(&self) -> String {
        format!(
            "{} of the last {} records failed (more than {} %)",
            self.failed, self.records, self.percent
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(id: i32) -> WriteOp {
        WriteOp::DeleteOne {
            ns: crate::writeop::Namespace {
                database: None,
                collection: "c".into(),
            },
            filter: bson::rawdoc! {"_id": id},
        }
    }

    fn err(kind: FailureKind) -> CallError {
        CallError {
            transform: "t".into(),
            topic: "t".into(),
            partition: 0,
            offset: 0,
            kind,
            message: "boom".into(),
        }
    }

    fn write_failure(record: usize) -> OpFailure {
        OpFailure {
            record,
            code: Some(11000),
            message: "E11000 duplicate key".into(),
        }
    }

    /// Records: 0 → one op, 1 → transform error, 2 → no op (filtered), 3 → two ops.
    fn results() -> Vec<Result<Vec<WriteOp>, CallError>> {
        vec![
            Ok(vec![op(0)]),
            Err(err(FailureKind::BadInput)),
            Ok(vec![]),
            Ok(vec![op(3), op(33)]),
        ]
    }

    #[test]
    fn skip_and_dlq_write_every_record_that_transformed() {
        for policy in [ErrorPolicy::Skip, ErrorPolicy::Dlq] {
            let w = to_write(results(), policy);
            let records: Vec<usize> = w.ops.iter().map(|(r, _)| *r).collect();
            assert_eq!(records, vec![0, 3, 3]);
            assert_eq!(w.failed.len(), 1);
            assert_eq!(w.failed[0].record, 1);
            assert_eq!(w.failed[0].failure.kind(), "bad-input");
        }
    }

    #[test]
    fn fail_writes_nothing_of_the_failed_record_or_after() {
        let w = to_write(results(), ErrorPolicy::Fail);
        let records: Vec<usize> = w.ops.iter().map(|(r, _)| *r).collect();
        assert_eq!(records, vec![0]);
        assert_eq!(w.failed.len(), 1);
    }

    #[test]
    fn an_empty_transform_result_is_done_and_acknowledged() {
        let w = to_write(vec![Ok(vec![]), Ok(vec![])], ErrorPolicy::Fail);
        assert!(w.ops.is_empty() && w.failed.is_empty());
        for policy in [ErrorPolicy::Skip, ErrorPolicy::Dlq, ErrorPolicy::Fail] {
            let v = decide(w.failed.clone(), vec![], policy);
            assert_eq!(v, Verdict::Done { failed: vec![] });
            assert_eq!(ack_after(&[10, 11], &v), 12);
        }
    }

    #[test]
    fn a_write_failure_under_each_policy() {
        let offsets = [100, 101, 102, 103];
        for policy in [ErrorPolicy::Skip, ErrorPolicy::Dlq] {
            let w = to_write(results(), policy);
            let v = decide(w.failed, vec![write_failure(3)], policy);
            let Verdict::Done { failed } = &v else {
                panic!("{v:?}")
            };
            let got: Vec<(usize, &str)> = failed
                .iter()
                .map(|f| (f.record, f.failure.kind()))
                .collect();
            assert_eq!(
                got,
                vec![(1, "bad-input"), (3, "write-error")],
                "in record order"
            );
            assert_eq!(ack_after(&offsets, &v), 104, "the whole batch");
        }
        // Under fail, a write failure before the transform failure stops first.
        let w = to_write(results(), ErrorPolicy::Fail);
        let v = decide(w.failed, vec![write_failure(0)], ErrorPolicy::Fail);
        assert!(
            matches!(
                &v,
                Verdict::Stop(Failed {
                    record: 0,
                    failure: RecordFailure::Write {
                        code: Some(11000),
                        ..
                    }
                })
            ),
            "{v:?}"
        );
        assert_eq!(
            ack_after(&offsets, &v),
            100,
            "nothing past the failed record"
        );
        // Under fail, the transform failure stops when the writes succeeded.
        let w = to_write(results(), ErrorPolicy::Fail);
        let v = decide(w.failed, vec![], ErrorPolicy::Fail);
        assert_eq!(ack_after(&offsets, &v), 101);
    }

    #[test]
    fn failures_have_typed_kinds_and_messages() {
        let f: RecordFailure = err(FailureKind::Timeout).into();
        assert_eq!((f.kind(), f.message()), ("timeout", "boom"));
        assert_eq!(f.to_string(), "timeout: boom");
        let f: RecordFailure = write_failure(0).into();
        assert_eq!(f.kind(), "write-error");
    }

    #[test]
    fn the_breaker_trips_on_a_window_mostly_failed() {
        let mut b = Breaker::new(50, 100);
        assert!(!b.trips(60, 60), "not before a full window");
        assert!(!b.trips(60, 0), "60 of 120: exactly 50 % does not trip");
        let mut b = Breaker::new(50, 100);
        assert!(!b.trips(50, 10));
        assert!(!b.trips(50, 40), "50 of 100");
        assert!(b.trips(10, 10), "60 of 110");
        assert!(
            b.describe().contains("60 of the last 110"),
            "{}",
            b.describe()
        );
    }

    #[test]
    fn the_breaker_forgets_old_batches_and_can_be_off() {
        let mut b = Breaker::new(50, 100);
        for _ in 0..10 {
            assert!(!b.trips(100, 10));
        }
        assert!(b.trips(100, 90));
        let mut off = Breaker::new(0, 100);
        assert!(!off.trips(1000, 1000));
    }
}

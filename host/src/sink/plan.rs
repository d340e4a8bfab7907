//! Where one batch's writes are cut and what each outcome does to the rest:
//! the cursor of [`Sink::write`](super::Sink::write) as a pure state machine,
//! so every branch is unit-tested without a server.
//!
//! The cursor holds the operations still to write (`pending`, indices into
//! the batch's operations, in order) and a position in them. Each request
//! is the longest run from the position up to the next `aggregate` (which
//! goes alone), or one operation after a request was refused as a whole.
//! The outcome of the request moves the position past what the server
//! acknowledged and says what happens next: continue, retry after a
//! backoff, or stop.

use super::classify::Failure;
use super::OpFailure;

/// What the sink does after a request's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    /// Send the next request (if [`Cursor::next`] has one).
    Continue,
    /// Wait (backoff) and send the unacknowledged rest again. `server` is
    /// true for an error that is neither transient nor about one record
    /// (authorization, quota, disk full…): the records are not at fault.
    Retry {
        attempt: u32,
        message: String,
        server: bool,
    },
    /// Retrying cannot help (an unsatisfiable write concern): stop the batch.
    Stop(String),
}

/// The write cursor of one batch. Pure: the caller sends the requests.
#[derive(Debug)]
pub(crate) struct Cursor {
    /// Record index of each operation of the batch.
    records: Vec<usize>,
    /// Whether each operation is an `aggregate` (never part of a bulk request).
    aggregate: Vec<bool>,
    /// Operations still to write, in order; `pending[..pos]` are acknowledged.
    pending: Vec<usize>,
    pos: usize,
    /// Length of the request in flight (`pending[pos..pos + sent]`).
    sent: usize,
    /// After a request refused as a whole: one operation per request, to find the culprit.
    one_at_a_time: bool,
    /// `on-error = "fail"`: nothing after the first permanent failure is written.
    stop_at_failure: bool,
    attempt: u32,
    failures: Vec<OpFailure>,
}

impl Cursor {
    /// `ops`: (record index, is aggregate) of each operation, in order.
    pub(crate) fn new(ops: impl Iterator<Item = (usize, bool)>, stop_at_failure: bool) -> Cursor {
        let (records, aggregate): (Vec<usize>, Vec<bool>) = ops.unzip();
        Cursor {
            pending: (0..records.len()).collect(),
            records,
            aggregate,
            pos: 0,
            sent: 0,
            one_at_a_time: false,
            stop_at_failure,
            attempt: 0,
            failures: Vec::new(),
        }
    }

    /// The operations (indices into the batch's operations) of the next
    /// request, or `None` when the batch is done.
    pub(crate) fn next(&mut self) -> Option<&[usize]> {
        if self.pos >= self.pending.len() {
            return None;
        }
        let rest = &self.pending[self.pos..];
        let len = if self.one_at_a_time || self.aggregate[rest[0]] {
            1
        } else {
            rest.iter()
                .position(|&i| self.aggregate[i])
                .unwrap_or(rest.len())
        };
        self.sent = len;
        Some(&self.pending[self.pos..self.pos + len])
    }

    /// Applies the outcome of the request [`next`](Self::next) returned.
    /// Returns how many of its leading operations the server acknowledged,
    /// and what to do next.
    pub(crate) fn apply(&mut self, outcome: Result<(), Failure>) -> (usize, Step) {
        let sent = self.sent;
        match outcome {
            Ok(()) => {
                self.pos += sent;
                self.attempt = 0;
                (sent, Step::Continue)
            }
            Err(Failure::Op {
                index,
                code,
                message,
            }) => {
                self.fail(self.pos + index, Some(code), message);
                self.attempt = 0;
                (index, Step::Continue)
            }
            Err(Failure::Transient { done, message }) => {
                self.pos += done;
                self.attempt += 1;
                (
                    done,
                    Step::Retry {
                        attempt: self.attempt,
                        message,
                        server: false,
                    },
                )
            }
            Err(Failure::Server { done, message }) => {
                self.pos += done;
                self.attempt += 1;
                (
                    done,
                    Step::Retry {
                        attempt: self.attempt,
                        message,
                        server: true,
                    },
                )
            }
            Err(Failure::Fatal { message }) => (0, Step::Stop(message)),
            Err(Failure::Batch { done, message }) => {
                self.pos += done;
                self.attempt = 0;
                if self.one_at_a_time || sent - done == 1 {
                    // A single operation the server refuses as a whole: that is its error.
                    self.fail(self.pos, None, message);
                } else {
                    tracing::warn!(error = %message, "MongoDB refused a bulk write as a whole; writing its operations one at a time to find the failing one.");
                    self.one_at_a_time = true;
                }
                (done, Step::Continue)
            }
        }
    }

    /// Operation `pending[at]` failed permanently: its record fails, the
    /// record's other operations are dropped, and the cursor resumes at
    /// `at` (with ordered writes, nothing after a failed operation was
    /// written). Under `stop_at_failure` nothing after it is written.
    fn fail(&mut self, at: usize, code: Option<i32>, message: String) {
        let record = self.records[self.pending[at]];
        self.failures.push(OpFailure {
            record,
            code,
            message,
        });
        if self.stop_at_failure {
            self.pending.truncate(at);
        } else {
            let records = &self.records;
            let rest: Vec<usize> = self.pending[at + 1..]
                .iter()
                .copied()
                .filter(|&op| records[op] != record)
                .collect();
            self.pending.truncate(at);
            self.pending.extend(rest);
        }
        self.pos = at;
    }

    /// The records whose operations failed permanently, in the order found.
    pub(crate) fn into_failures(self) -> Vec<OpFailure> {
        self.failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake ordered server: writes a request's operations in order until
    /// one of `bad` (a permanent error of that operation), and answers the
    /// `n`-th request with `inject(n)` instead when it returns one.
    struct Server {
        bad: Vec<usize>,
        written: Vec<usize>,
        requests: Vec<Vec<usize>>,
        retries: Vec<(u32, bool)>,
    }

    fn run(
        ops: &[(usize, bool)],
        bad: &[usize],
        stop_at_failure: bool,
        mut inject: impl FnMut(usize, &[usize]) -> Option<Failure>,
    ) -> (Server, Vec<OpFailure>) {
        let mut server = Server {
            bad: bad.to_vec(),
            written: Vec::new(),
            requests: Vec::new(),
            retries: Vec::new(),
        };
        let mut cursor = Cursor::new(ops.iter().copied(), stop_at_failure);
        while let Some(req) = cursor.next() {
            let req = req.to_vec();
            assert!(
                server.requests.len() < 1000,
                "no progress: {:?}",
                server.requests
            );
            let n = server.requests.len();
            server.requests.push(req.clone());
            let outcome = match inject(n, &req) {
                Some(Failure::Transient { done, message }) => {
                    server.written.extend(&req[..done]);
                    Err(Failure::Transient { done, message })
                }
                Some(f) => Err(f),
                None => match req.iter().position(|i| server.bad.contains(i)) {
                    Some(index) => {
                        server.written.extend(&req[..index]);
                        Err(Failure::Op {
                            index,
                            code: 11000,
                            message: "E11000 duplicate key".into(),
                        })
                    }
                    None => {
                        server.written.extend(&req);
                        Ok(())
                    }
                },
            };
            let (acked, step) = cursor.apply(outcome);
            assert!(acked <= req.len());
            match step {
                Step::Retry {
                    attempt, server: s, ..
                } => server.retries.push((attempt, s)),
                Step::Stop(_) => break,
                Step::Continue => {}
            }
        }
        (server, cursor.into_failures())
    }

    /// Record i has one operation, except record 2 which has two (ops 2 and 3).
    fn ops(n: usize) -> Vec<(usize, bool)> {
        (0..n)
            .map(|i| (if i >= 3 { i - 1 } else { i.min(2) }, false))
            .collect()
    }

    #[test]
    fn a_clean_batch_is_one_request() {
        let (s, failures) = run(&ops(6), &[], false, |_, _| None);
        assert_eq!(s.requests, vec![vec![0, 1, 2, 3, 4, 5]]);
        assert_eq!(s.written, vec![0, 1, 2, 3, 4, 5]);
        assert!(failures.is_empty());
    }

    #[test]
    fn an_empty_batch_sends_nothing() {
        let (s, failures) = run(&[], &[], false, |_, _| None);
        assert!(s.requests.is_empty() && failures.is_empty());
    }

    #[test]
    fn a_permanent_failure_at_every_position_fails_only_its_record() {
        let ops = ops(7);
        for bad in 0..ops.len() {
            let record = ops[bad].0;
            let (s, failures) = run(&ops, &[bad], false, |_, _| None);
            let expected: Vec<usize> = (0..ops.len())
                .filter(|&i| ops[i].0 != record || i < bad)
                .collect();
            assert_eq!(s.written, expected, "bad op {bad}");
            assert_eq!(failures.len(), 1, "bad op {bad}");
            assert_eq!(failures[0].record, record);
            assert_eq!(failures[0].code, Some(11000));
        }
    }

    #[test]
    fn under_fail_nothing_after_the_failed_operation_is_written() {
        let ops = ops(7);
        for bad in 0..ops.len() {
            let (s, failures) = run(&ops, &[bad], true, |_, _| None);
            assert_eq!(s.written, (0..bad).collect::<Vec<_>>(), "bad op {bad}");
            assert_eq!(failures.len(), 1);
            assert_eq!(failures[0].record, ops[bad].0);
        }
        // Two bad operations: only the first is reported, the second never sent.
        let (s, failures) = run(&ops, &[1, 4], true, |_, _| None);
        assert_eq!(s.written, vec![0]);
        assert_eq!(failures.len(), 1);
    }

    #[test]
    fn a_transient_error_mid_batch_resends_only_the_unacknowledged_rest() {
        let (s, failures) = run(&ops(6), &[], false, |n, _| {
            (n == 0).then(|| Failure::Transient {
                done: 3,
                message: "not primary".into(),
            })
        });
        assert_eq!(
            s.written,
            vec![0, 1, 2, 3, 4, 5],
            "each operation once, in order"
        );
        assert_eq!(s.requests[1], vec![3, 4, 5]);
        assert_eq!(s.retries, vec![(1, false)]);
        assert!(failures.is_empty());
    }

    #[test]
    fn retries_count_up_and_reset_after_progress() {
        let (s, _) = run(&ops(4), &[], false, |n, _| {
            (n < 3).then(|| Failure::Transient {
                done: 0,
                message: "down".into(),
            })
        });
        assert_eq!(s.retries, vec![(1, false), (2, false), (3, false)]);
        assert_eq!(s.written, vec![0, 1, 2, 3]);
    }

    #[test]
    fn a_server_wide_error_is_retried_and_fails_no_record() {
        let (s, failures) = run(&ops(4), &[], false, |n, _| {
            (n < 2).then(|| Failure::Server {
                done: 1,
                message: "not authorized (code 13)".into(),
            })
        });
        assert!(failures.is_empty(), "{failures:?}");
        assert_eq!(s.retries, vec![(1, true), (2, true)]);
        assert_eq!(
            s.requests,
            vec![vec![0, 1, 2, 3], vec![1, 2, 3], vec![2, 3]]
        );
    }

    #[test]
    fn an_unsatisfiable_write_concern_stops_the_batch() {
        let mut cursor = Cursor::new(ops(3).into_iter(), false);
        assert_eq!(cursor.next(), Some(&[0, 1, 2][..]));
        let (acked, step) = cursor.apply(Err(Failure::Fatal {
            message: "write concern error (code 100)".into(),
        }));
        assert_eq!(acked, 0);
        assert!(matches!(step, Step::Stop(m) if m.contains("100")));
        assert!(cursor.into_failures().is_empty(), "no record fails for it");
    }

    #[test]
    fn a_request_refused_as_a_whole_is_split_to_find_the_culprit() {
        // The server refuses any request holding op 2 as a whole.
        let (s, failures) = run(&ops(5), &[], false, |_, req| {
            req.contains(&2).then(|| Failure::Batch {
                done: 0,
                message: "document too large".into(),
            })
        });
        assert_eq!(failures.len(), 1);
        assert_eq!(failures[0].record, 2);
        assert_eq!(failures[0].code, None);
        // Record 2's second operation (op 3) is dropped with it.
        assert_eq!(s.written, vec![0, 1, 4]);
        assert_eq!(s.requests[1..], [vec![0], vec![1], vec![2], vec![4]]);
    }

    #[test]
    fn an_aggregate_in_the_middle_goes_alone_between_the_runs() {
        let ops = vec![(0, false), (1, false), (1, true), (2, false), (3, true)];
        let (s, failures) = run(&ops, &[], false, |_, _| None);
        assert_eq!(s.requests, vec![vec![0, 1], vec![2], vec![3], vec![4]]);
        assert!(failures.is_empty());
        // A failing aggregate fails its record; the runs around it are written.
        let (s, failures) = run(&ops, &[2], false, |_, _| None);
        assert_eq!(s.written, vec![0, 1, 3, 4]);
        assert_eq!(failures[0].record, 1);
    }
}

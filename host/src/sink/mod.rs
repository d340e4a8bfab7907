//! The MongoDB sink: executes the write operations of one batch as one
//! ordered bulk write, retries transient errors, and reports which records'
//! operations failed permanently (they go through the record error policy).
//!
//! The server's multi-namespace `bulkWrite` (`Client::bulk_write`) is used when
//! the server supports it (`maxWireVersion` ≥ 25, MongoDB 8.0+); otherwise
//! contiguous operations on one collection are sent as ordered
//! `insert`/`update`/`delete` commands ([`collection`]).
//!
//! An `aggregate` operation (a pipeline ending in `$merge`) is not part of a
//! bulk write: it runs alone, as an `aggregate` command, after the operations
//! before it are acknowledged and before the ones after it are sent.

mod classify;
mod collection;
pub mod model;
pub mod uri;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use bson::doc;
use mongodb::options::{Acknowledgment, ClientOptions, WriteConcern};
use mongodb::Client;
use tokio_util::sync::CancellationToken;

use crate::config::{BulkApi, Config, WValue};
use crate::retry::{Backoff, GiveUp};
use crate::telemetry::Metrics;
use crate::writeop::{Namespace, WriteOp};

pub use classify::{classify, classify_command, is_transient_code, Failure};

/// First wire version with the multi-namespace `bulkWrite` command (MongoDB 8.0).
pub const BULK_WRITE_WIRE_VERSION: i32 = 25;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// One `bulkWrite` command across namespaces.
    Client,
    /// Ordered per-collection `insert`/`update`/`delete` commands.
    Collection,
}

pub struct Sink {
    client: Client,
    default_db: String,
    mode: Mode,
    write_concern: Option<WriteConcern>,
    backoff: Backoff,
    metrics: Arc<Metrics>,
}

/// An operation whose record failed permanently.
#[derive(Debug, Clone)]
pub struct OpFailure {
    /// Index of the record (the `usize` paired with the operation).
    pub record: usize,
    pub code: Option<i32>,
    pub message: String,
}

impl Sink {
    /// Connects and asks the server what it supports. Gives up after `timeout`
    /// with a message that names the (redacted) URI.
    pub async fn connect(
        config: &Config,
        metrics: Arc<Metrics>,
        timeout: Duration,
    ) -> anyhow::Result<Sink> {
        let redacted = uri::redact_uri(&config.mongodb.uri);
        let mut options = ClientOptions::parse(uri::connection_string(&config.mongodb))
            .await
            .map_err(|e| anyhow::anyhow!("mongodb.uri {redacted}: {}", describe(&e)))?;
        if options.server_selection_timeout.is_none() {
            options.server_selection_timeout = Some(timeout);
        }
        options.app_name.get_or_insert_with(|| "smt".to_owned());
        let client = Client::with_options(options)
            .map_err(|e| anyhow::anyhow!("mongodb.uri {redacted}: {}", describe(&e)))?;
        let hello = tokio::time::timeout(
            timeout,
            client.database("admin").run_command(doc! {"hello": 1}),
        )
        .await
        .map_err(|_| anyhow::anyhow!("cannot reach MongoDB at {redacted} within {timeout:?}"))?
        .map_err(|e| anyhow::anyhow!("cannot reach MongoDB at {redacted}: {}", describe(&e)))?;
        let wire = hello
            .get("maxWireVersion")
            .and_then(|v| v.as_i32().or_else(|| v.as_i64().map(|x| x as i32)))
            .unwrap_or(0);
        let mode = match config.mongodb.bulk_api {
            BulkApi::Client => Mode::Client,
            BulkApi::Collection => Mode::Collection,
            BulkApi::Auto if wire >= BULK_WRITE_WIRE_VERSION => Mode::Client,
            BulkApi::Auto => Mode::Collection,
        };
        tracing::info!(uri = %redacted, max_wire_version = wire, mode = ?mode, "Connected to MongoDB.");
        Ok(Sink {
            client,
            default_db: config.mongodb.database.clone(),
            mode,
            write_concern: write_concern(config),
            backoff: Backoff::from_config(&config.pipeline),
            metrics,
        })
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Writes `ops` (each paired with the index of its record) in order.
    /// Transient errors are retried from the first unacknowledged operation;
    /// a permanent error of one operation fails its record, whose remaining
    /// operations are dropped, and the rest continue. Returns the failures.
    /// Bulk writes stop before each `aggregate` operation, which runs alone.
    pub async fn write(
        &self,
        ops: &[(usize, WriteOp)],
        stop: &CancellationToken,
    ) -> Result<Vec<OpFailure>, GiveUp> {
        let mut failures = Vec::new();
        let mut failed_records = HashSet::new();
        let mut pending: Vec<usize> = (0..ops.len()).collect();
        let mut pos = 0;
        let mut attempt = 0u32;
        let mut one_at_a_time = false;
        while pos < pending.len() {
            let is_aggregate = |i: &usize| matches!(ops[*i].1, WriteOp::Aggregate { .. });
            let end = if one_at_a_time || is_aggregate(&pending[pos]) {
                pos + 1
            } else {
                pending[pos..]
                    .iter()
                    .position(is_aggregate)
                    .map_or(pending.len(), |n| pos + n)
            };
            let slice: Vec<&WriteOp> = pending[pos..end].iter().map(|&i| &ops[i].1).collect();
            let result = match (slice[0], self.mode) {
                (WriteOp::Aggregate { ns, pipeline }, _) => self.aggregate(ns, pipeline).await,
                (_, Mode::Client) => self.client_bulk(&slice).await,
                (_, Mode::Collection) => collection::write(self, &slice).await,
            };
            match result {
                Ok(()) => {
                    self.count(&slice);
                    pos = end;
                    attempt = 0;
                }
                Err(Failure::Op {
                    index,
                    code,
                    message,
                }) => {
                    self.count(&slice[..index]);
                    let failed = pending[pos + index];
                    let record = ops[failed].0;
                    tracing::debug!(record, code, %message, "A write operation failed permanently.");
                    failures.push(OpFailure {
                        record,
                        code: Some(code),
                        message,
                    });
                    failed_records.insert(record);
                    let cut = pos + index;
                    let rest: Vec<usize> = pending[cut + 1..]
                        .iter()
                        .copied()
                        .filter(|&i| !failed_records.contains(&ops[i].0))
                        .collect();
                    pending.truncate(cut);
                    pending.extend(rest);
                    pos = cut;
                    attempt = 0;
                }
                Err(Failure::Transient { done, message }) => {
                    self.count(&slice[..done]);
                    pos += done;
                    attempt += 1;
                    self.metrics
                        .retries
                        .get_or_create(&[("target", "mongodb".into())])
                        .inc();
                    tracing::warn!(attempt, error = %message, "Transient MongoDB error; retrying the unacknowledged writes.");
                    self.backoff.wait(attempt, &message, stop).await?;
                }
                Err(Failure::Batch { done, message }) => {
                    self.count(&slice[..done]);
                    pos += done;
                    if one_at_a_time || slice.len() - done == 1 {
                        // A single operation the server refuses as a whole: that is its error.
                        let failed = pending[pos];
                        let record = ops[failed].0;
                        failures.push(OpFailure {
                            record,
                            code: None,
                            message,
                        });
                        failed_records.insert(record);
                        let rest: Vec<usize> = pending[pos + 1..]
                            .iter()
                            .copied()
                            .filter(|&i| !failed_records.contains(&ops[i].0))
                            .collect();
                        pending.truncate(pos);
                        pending.extend(rest);
                    } else {
                        tracing::warn!(error = %message, "MongoDB refused a bulk write as a whole; writing its operations one at a time to find the failing one.");
                        one_at_a_time = true;
                    }
                    attempt = 0;
                }
            }
        }
        Ok(failures)
    }

    fn count(&self, ops: &[&WriteOp]) {
        for op in ops {
            self.metrics
                .ops_written
                .get_or_create(&[("kind", op.kind().into())])
                .inc();
        }
    }

    /// Runs one `aggregate` operation: its pipeline on `ns`, ending in `$merge`,
    /// with the configured write concern (the driver sends it for `$merge`).
    pub(crate) async fn aggregate(
        &self,
        ns: &Namespace,
        pipeline: &[bson::Document],
    ) -> Result<(), Failure> {
        let ns = model::namespace(ns, &self.default_db);
        let coll = self
            .client
            .database(&ns.db)
            .collection::<bson::Document>(&ns.coll);
        let mut action = coll.aggregate(pipeline.iter().cloned());
        if let Some(wc) = &self.write_concern {
            action = action.write_concern(wc.clone());
        }
        // `$merge` returns no documents: the cursor is closed (id 0) already.
        match action.await {
            Ok(_cursor) => Ok(()),
            Err(e) => Err(classify_command(&e)),
        }
    }

    async fn client_bulk(&self, ops: &[&WriteOp]) -> Result<(), Failure> {
        // `write` never puts an aggregate operation in a bulk slice.
        let models: Vec<_> = ops
            .iter()
            .filter_map(|op| model::bulk_model(op, &self.default_db))
            .collect();
        debug_assert_eq!(models.len(), ops.len());
        let mut action = self.client.bulk_write(models).ordered(true);
        if let Some(wc) = &self.write_concern {
            action = action.write_concern(wc.clone());
        }
        match action.await {
            Ok(_) => Ok(()),
            Err(e) => Err(classify(&e)),
        }
    }

    pub(crate) fn default_db(&self) -> &str {
        &self.default_db
    }

    pub(crate) fn write_concern_doc(&self) -> Option<bson::Document> {
        let wc = self.write_concern.as_ref()?;
        let mut d = bson::Document::new();
        match &wc.w {
            Some(Acknowledgment::Nodes(n)) => {
                d.insert("w", *n as i64);
            }
            Some(Acknowledgment::Majority) => {
                d.insert("w", "majority");
            }
            Some(Acknowledgment::Custom(tag)) => {
                d.insert("w", tag.clone());
            }
            _ => {}
        }
        if let Some(j) = wc.journal {
            d.insert("j", j);
        }
        if let Some(t) = wc.w_timeout {
            d.insert("wtimeout", t.as_millis() as i64);
        }
        Some(d)
    }
}

fn write_concern(config: &Config) -> Option<WriteConcern> {
    let c = &config.mongodb.write_concern;
    if c.w.is_none() && c.journal.is_none() && c.timeout_ms.is_none() {
        return None;
    }
    let mut wc = WriteConcern::default();
    wc.w = c.w.as_ref().map(|w| match w {
        WValue::Nodes(n) => Acknowledgment::Nodes(*n),
        WValue::Tag(t) if t == "majority" => Acknowledgment::Majority,
        WValue::Tag(t) => Acknowledgment::Custom(t.clone()),
    });
    wc.journal = c.journal;
    wc.w_timeout = c.timeout_ms.map(Duration::from_millis);
    Some(wc)
}

/// A driver error as one line, without the connection string.
pub fn describe(e: &mongodb::error::Error) -> String {
    e.kind.to_string()
}

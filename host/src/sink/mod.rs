//! The MongoDB sink: executes the write operations of one batch as one
//! ordered bulk write, retries transient errors, and reports which records'
//! operations failed permanently (they go through the record error policy).
//!
//! The server's multi-namespace `bulkWrite` is used when the server supports
//! it (`maxWireVersion` ≥ 25, MongoDB 8.0+); otherwise contiguous operations
//! on one collection are sent as ordered `insert`/`update`/`delete` commands
//! ([`collection`]). Both are written here as raw BSON ([`model`]) and run as
//! commands: the guest's documents are copied once, into the command, not
//! parsed, cloned into the driver's models and serialised again. The driver
//! retries no command; transient errors are retried here ([`plan`]).
//!
//! An `aggregate` operation (a pipeline ending in `$merge`) is not part of a
//! bulk write: it runs alone, as an `aggregate` command, after the operations
//! before it are acknowledged and before the ones after it are sent.

mod classify;
mod collection;
pub mod model;
mod plan;
pub mod uri;

use std::sync::Arc;
use std::time::Duration;

use bson::raw::cstr;
use bson::{doc, RawDocumentBuf};
use mongodb::options::{Acknowledgment, ClientOptions, WriteConcern};
use mongodb::Client;
use tokio_util::sync::CancellationToken;

use crate::config::{BulkApi, Config, WValue};
use crate::retry::{Backoff, GiveUp};
use crate::telemetry::Metrics;
use crate::writeop::{Namespace, WriteOp};

pub use classify::{
    classify, classify_bulk_reply, classify_command, classify_reply, is_data_code,
    is_transient_code, Failure,
};

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
    write_concern: WriteConcern,
    /// `write_concern` as raw BSON, for the commands built here.
    write_concern_doc: RawDocumentBuf,
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
            write_concern_doc: write_concern_doc(&write_concern(config)),
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
        self.write_with(ops, false, stop).await
    }

    /// As [`write`](Self::write); with `stop_at_failure` (`on-error = "fail"`)
    /// nothing after the first permanently failed operation is written, and
    /// that failure is the only one returned.
    pub async fn write_with(
        &self,
        ops: &[(usize, WriteOp)],
        stop_at_failure: bool,
        stop: &CancellationToken,
    ) -> Result<Vec<OpFailure>, GiveUp> {
        let mut cursor = plan::Cursor::new(
            ops.iter()
                .map(|(r, op)| (*r, matches!(op, WriteOp::Aggregate { .. }))),
            stop_at_failure,
        );
        while let Some(request) = cursor.next() {
            let slice: Vec<&WriteOp> = request.iter().map(|&i| &ops[i].1).collect();
            let result = match (slice[0], self.mode) {
                (WriteOp::Aggregate { ns, pipeline }, _) => self.aggregate(ns, pipeline).await,
                (_, Mode::Client) => self.client_bulk(&slice).await,
                (_, Mode::Collection) => collection::write(self, &slice).await,
            };
            if let Err(Failure::Op {
                index,
                code,
                message,
            }) = &result
            {
                let record = ops[request[*index]].0;
                tracing::debug!(record, code, %message, "A write operation failed permanently.");
            }
            let (acked, step) = cursor.apply(result);
            self.count(&slice[..acked]);
            if let plan::Step::Stop(message) = step {
                return Err(GiveUp::Permanent(message));
            }
            if let plan::Step::Retry {
                attempt,
                message,
                server,
            } = step
            {
                self.metrics
                    .retries
                    .get_or_create(&[("target", "mongodb".into())])
                    .inc();
                if server {
                    tracing::error!(attempt, error = %message, "MongoDB refuses writes for a reason that is not the records' (authorization, quota, disk…); retrying, nothing is skipped or dead-lettered.");
                } else {
                    tracing::warn!(attempt, error = %message, "Transient MongoDB error; retrying the unacknowledged writes.");
                }
                self.backoff.wait(attempt, &message, stop).await?;
            }
        }
        Ok(cursor.into_failures())
    }

    /// Counts acknowledged operations: one metric update per run of one kind.
    fn count(&self, ops: &[&WriteOp]) {
        for run in ops.chunk_by(|a, b| a.kind() == b.kind()) {
            self.metrics
                .ops_written
                .get_or_create(&[("kind", run[0].kind().into())])
                .inc_by(run.len() as u64);
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
        let action = coll.aggregate(pipeline.iter().cloned());
        let action = action.write_concern(self.write_concern.clone());
        // `$merge` returns no documents: the cursor is closed (id 0) already.
        match action.await {
            Ok(_cursor) => Ok(()),
            Err(e) => Err(classify_command(&e)),
        }
    }

    /// Writes `ops` (no aggregate among them) as `bulkWrite` commands built
    /// as raw BSON, several when they would not fit in one.
    async fn client_bulk(&self, ops: &[&WriteOp]) -> Result<(), Failure> {
        let admin = self.client.database("admin");
        let mut start = 0;
        while start < ops.len() {
            let mut command = model::BulkCommand::new(&self.default_db);
            for op in &ops[start..] {
                if !command.has_room() {
                    break;
                }
                command.push(op);
            }
            let end = start + command.len();
            let reply = admin
                .run_raw_command(command.finish(&self.write_concern_doc))
                .await
                // A failed command: nothing of it is known to be written.
                .map_err(|e| classify(&e).shifted(start))?;
            if let Some(failure) = classify_bulk_reply(&reply) {
                return Err(failure.shifted(start));
            }
            start = end;
        }
        Ok(())
    }

    pub(crate) fn default_db(&self) -> &str {
        &self.default_db
    }

    pub(crate) fn write_concern_doc(&self) -> &RawDocumentBuf {
        &self.write_concern_doc
    }
}

/// The write concern of every write: `w: "majority"` unless configured, so
/// that an acknowledged write (and the offset committed after it) survives
/// a failover.
fn write_concern(config: &Config) -> WriteConcern {
    let c = &config.mongodb.write_concern;
    let mut wc = WriteConcern::default();
    wc.w = Some(match &c.w {
        None => Acknowledgment::Majority,
        Some(WValue::Nodes(n)) => Acknowledgment::Nodes(*n),
        Some(WValue::Tag(t)) if t == "majority" => Acknowledgment::Majority,
        Some(WValue::Tag(t)) => Acknowledgment::Custom(t.clone()),
    });
    wc.journal = c.journal;
    wc.w_timeout = c.timeout_ms.map(Duration::from_millis);
    wc
}

/// `wc` as the commands carry it (`writeConcern`).
fn write_concern_doc(wc: &WriteConcern) -> RawDocumentBuf {
    let mut d = RawDocumentBuf::new();
    match &wc.w {
        Some(Acknowledgment::Nodes(n)) => d.append(cstr!("w"), *n as i64),
        Some(Acknowledgment::Majority) => d.append(cstr!("w"), "majority"),
        Some(Acknowledgment::Custom(tag)) => d.append(cstr!("w"), tag.as_str()),
        _ => {}
    }
    if let Some(j) = wc.journal {
        d.append(cstr!("j"), j);
    }
    if let Some(t) = wc.w_timeout {
        d.append(cstr!("wtimeout"), t.as_millis() as i64);
    }
    d
}

/// A driver error as one line, without the connection string.
pub fn describe(e: &mongodb::error::Error) -> String {
    e.kind.to_string()
}

//! The raw baselines of `scripts/bench-pipeline` (release build):
//!
//! ```text
//! smt-bench-raw consume BROKERS TOPIC N
//!     (a) rdkafka alone: read N records of TOPIC from the start, no processing.
//! smt-bench-raw write BROKERS TOPIC N MONGODB_URI DB MODULE BATCH CONFIG
//!     (b) the MongoDB driver alone: the operations of the same N records (made
//!     by the same transform beforehand, not timed) written with
//!     `Client::bulk_write`, ordered, BATCH operations per call, one partition
//!     after another.
//! smt-bench-raw write-concurrent BROKERS TOPIC N MONGODB_URI DB MODULE BATCH CONFIG
//!     (b4) as `write`, but the partitions are written concurrently, one task
//!     each on one shared client, as smt's partition workers do: the server's
//!     ceiling for smt's concurrency, without any transform or Kafka cost.
//! ```
//! Prints one JSON line: `{"records": N, "ops": M, "seconds": S, "rate": N/S}`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message as _;
use rdkafka::ClientConfig;
use smt_host::engine::{Engine, EngineConfig, Message};

fn consumer(brokers: &str, topic: &str) -> Result<BaseConsumer> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("bench-raw-{}", std::process::id()))
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()?;
    c.subscribe(&[topic])?;
    Ok(c)
}

fn read(brokers: &str, topic: &str, n: usize, keep: bool) -> Result<(Vec<Message>, Duration)> {
    let c = consumer(brokers, topic)?;
    let mut out = Vec::new();
    let mut count = 0;
    let mut started: Option<Instant> = None;
    let deadline = Instant::now() + Duration::from_secs(600);
    while count < n {
        if Instant::now() > deadline {
            bail!("only {count} of {n} records read");
        }
        match c.poll(Duration::from_millis(200)) {
            None => {}
            Some(Err(e)) => eprintln!("consumer error: {e}"),
            Some(Ok(m)) => {
                started.get_or_insert_with(Instant::now);
                count += 1;
                if keep {
                    out.push(smt_host::source::owned(&m));
                } else {
                    // Touch the payload as a consumer would.
                    std::hint::black_box(m.payload().map(|p| p.len()));
                }
            }
        }
    }
    Ok((out, started.map(|s| s.elapsed()).unwrap_or_default()))
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("consume") if args.len() == 4 => {
            let n: usize = args[3].parse()?;
            let (_, took) = read(&args[1], &args[2], n, false)?;
            println!(
                "{}",
                serde_json::json!({"records": n, "seconds": took.as_secs_f64(), "rate": n as f64 / took.as_secs_f64()})
            );
        }
        Some(verb @ ("write" | "write-concurrent")) if args.len() == 9 => {
            let concurrent = verb == "write-concurrent";
            let n: usize = args[3].parse()?;
            let (uri, db, module, batch) = (&args[4], &args[5], &args[6], args[7].parse::<usize>()?);
            let (records, _) = read(&args[1], &args[2], n, true)?;
            let engine = Engine::new(&EngineConfig::default())?;
            let module = engine.load_file("debezium", std::path::Path::new(module))?;
            let mut inst = module.instantiate(&args[8])?;
            // Per partition, in order (the order smt writes them in).
            let mut per_partition: std::collections::BTreeMap<i32, Vec<mongodb::options::WriteModel>> = Default::default();
            for r in &records {
                let ops = inst.transform(r).map_err(|e| anyhow::anyhow!("{e}"))?;
                per_partition.entry(r.partition).or_default().extend(ops.iter().filter_map(|o| smt_host::sink::model::bulk_model(o, db)));
            }
            let total_ops: usize = per_partition.values().map(Vec::len).sum();
            let rt = tokio::runtime::Runtime::new()?;
            let took = rt.block_on(async {
                let client = Arc::new(mongodb::Client::with_uri_str(uri).await?);
                let started = Instant::now();
                let mut tasks = Vec::new();
                for models in per_partition.into_values() {
                    let client = client.clone();
                    let partition = async move {
                        let mut models = models.into_iter().peekable();
                        while models.peek().is_some() {
                            let chunk: Vec<_> = models.by_ref().take(batch).collect();
                            client.bulk_write(chunk).ordered(true).await.context("bulk write")?;
                        }
                        anyhow::Ok(())
                    };
                    if concurrent {
                        tasks.push(tokio::spawn(partition));
                    } else {
                        partition.await?;
                    }
                }
                for t in tasks {
                    t.await??;
                }
                anyhow::Ok(started.elapsed())
            })?;
            println!(
                "{}",
                serde_json::json!({"records": n, "ops": total_ops, "seconds": took.as_secs_f64(), "rate": n as f64 / took.as_secs_f64()})
            );
        }
        _ => bail!("usage: smt-bench-raw consume BROKERS TOPIC N | write|write-concurrent BROKERS TOPIC N MONGODB_URI DB MODULE BATCH CONFIG"),
    }
    Ok(())
}

//! Hostile guests against the engine's limits (docs/operations.md, "Security
//! model"): many memories, many instances, many tables, table growth, memory
//! growth past the cap across memories, a log flood, an output bomb, an
//! infinite loop, a trap. Each must fail only its own record (or its own
//! instantiation), leave the engine serving well-behaved instances, and be
//! counted.
//!
//! The structural attacks are hand-written WAT components that implement the
//! smt:transform@0.2.0 contract (so they load) around a core module that
//! misbehaves; the behavioural ones are the Rust hostile guest
//! (`guest-transforms/test-guests/hostile`). The last test runs them through
//! `smt run` with real Kafka and MongoDB and checks the process's metrics.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use smt_host::engine::{
    Engine, EngineConfig, EngineMetrics, FailureKind, Limits, LoadError, Message, TransformModule,
};

const HOSTILE: &str = env!("SMT_GUEST_HOSTILE");

fn engine(limits: Limits) -> Engine {
    Engine::new(&EngineConfig {
        limits,
        cache_dir: None,
        no_cache: true,
    })
    .expect("engine")
}

fn limits(memory_mib: u64) -> Limits {
    Limits {
        memory_mib,
        ..Limits::default()
    }
}

fn record(offset: i64, key: &str) -> Message {
    Message {
        topic: "t".into(),
        partition: 0,
        offset,
        timestamp_ms: None,
        key: Some(key.as_bytes().to_vec()),
        value: Some(b"{}".to_vec()),
        headers: vec![],
    }
}

fn hostile(engine: &Engine) -> Arc<TransformModule> {
    engine
        .load_file("hostile", Path::new(HOSTILE))
        .expect("the hostile guest loads")
}

/// A component implementing smt:transform@0.2.0 whose core module has the
/// extra `module_fields` and whose `transform` body is `transform_body`
/// (it returns `Ok([])` after it; `init` returns `Ok(())`). `core_instances`
/// more (empty) core instances are created next to it.
fn contract_component(module_fields: &str, transform_body: &str, core_instances: usize) -> String {
    let extra_instances = "(core instance (instantiate $empty))\n".repeat(core_instances);
    format!(
        r#"(component
  (type $header' (record (field "key" string) (field "value" (option (list u8)))))
  (export $header "header" (type $header'))
  (type $message' (record (field "topic" string) (field "partition" s32) (field "offset" s64)
    (field "timestamp-ms" (option s64)) (field "key" (option (list u8)))
    (field "value" (option (list u8))) (field "headers" (list $header))))
  (export $message "message" (type $message'))
  (type $document' (variant (case "json" string) (case "bson" (list u8))))
  (export $document "document" (type $document'))
  (type $namespace' (record (field "database" (option string)) (field "collection" string)))
  (export $namespace "namespace" (type $namespace'))
  (type $insert-one' (record (field "ns" $namespace) (field "document" $document)))
  (export $insert-one "insert-one" (type $insert-one'))
  (type $replace-one' (record (field "ns" $namespace) (field "filter" $document)
    (field "replacement" $document) (field "upsert" bool)))
  (export $replace-one "replace-one" (type $replace-one'))
  (type $update-body' (variant (case "operators" $document) (case "pipeline" (list $document))))
  (export $update-body "update-body" (type $update-body'))
  (type $update' (record (field "ns" $namespace) (field "filter" $document)
    (field "update" $update-body) (field "upsert" bool) (field "array-filters" (list $document))))
  (export $update "update" (type $update'))
  (type $delete' (record (field "ns" $namespace) (field "filter" $document)))
  (export $delete "delete" (type $delete'))
  (type $aggregate' (record (field "ns" $namespace) (field "pipeline" (list $document))))
  (export $aggregate "aggregate" (type $aggregate'))
  (type $write-op' (variant (case "insert-one" $insert-one) (case "replace-one" $replace-one)
    (case "update-one" $update) (case "update-many" $update) (case "delete-one" $delete)
    (case "delete-many" $delete) (case "aggregate" $aggregate)))
  (export $write-op "write-op" (type $write-op'))
  (type $error-kind' (enum "bad-input" "unsupported" "internal"))
  (export $error-kind "error-kind" (type $error-kind'))
  (type $transform-error' (record (field "kind" $error-kind) (field "message" string)))
  (export $transform-error "transform-error" (type $transform-error'))

  (core module $empty)
  (core module $m
    (memory (export "memory") 1)
    {module_fields}
    (global $bump (mut i32) (i32.const 1024))
    ;; A bump allocator: enough for the host to pass a config and a small record.
    (func (export "realloc") (param i32 i32 i32 i32) (result i32)
      (local $p i32)
      (local.set $p
        (i32.and
          (i32.sub (i32.add (global.get $bump) (local.get 2)) (i32.const 1))
          (i32.sub (i32.const 0) (local.get 2))))
      (global.set $bump (i32.add (local.get $p) (local.get 3)))
      (local.get $p))
    ;; Return areas: all zeros, i.e. `ok` (and an empty list for `transform`).
    (func (export "init") (param i32 i32) (result i32) (i32.const 0))
    (func (export "transform")
      (param i32 i32 i32 i64 i32 i64 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)
      {transform_body}
      (i32.const 16)))
  (core instance $i (instantiate $m))
  {extra_instances}
  (func (export "init") (param "config" string) (result (result (error string)))
    (canon lift (core func $i "init") (memory (core memory $i "memory")) (realloc (core func $i "realloc"))))
  (func (export "transform") (param "msg" $message)
    (result (result (list $write-op) (error $transform-error)))
    (canon lift (core func $i "transform") (memory (core memory $i "memory")) (realloc (core func $i "realloc")))))
"#
    )
}

fn load(engine: &Engine, name: &str, wat: &str) -> Arc<TransformModule> {
    engine
        .load(name, wat.as_bytes(), "inline")
        .unwrap_or_else(|e| panic!("{name} must load (it implements the contract): {e}"))
}

/// The instantiation error of `module`.
fn init_error(module: &Arc<TransformModule>) -> String {
    match module.instantiate("{}") {
        Err(e @ LoadError::Init { .. }) => e.to_string(),
        Err(e) => panic!("expected an init error, got {e:?}"),
        Ok(_) => panic!("{} instantiated; it must be refused", module.name()),
    }
}

#[test]
fn the_wat_template_is_a_well_behaved_transform() {
    // The control: without hostile parts it loads, inits and transforms.
    let e = engine(limits(32));
    let m = load(&e, "plain", &contract_component("", "", 0));
    assert_eq!(m.contract_version(), "0.2.0");
    let mut inst = m.instantiate("{}").unwrap();
    assert!(inst.transform(&record(1, "k")).unwrap().is_empty());
}

#[test]
fn many_memories_are_refused_at_instantiation() {
    let e = engine(limits(256));
    let fields = "(memory 1)\n".repeat(Limits::default().max_memories + 1);
    let m = load(&e, "memories", &contract_component(&fields, "", 0));
    let err = init_error(&m);
    assert!(err.contains("memory count too high"), "{err}");
    // The engine still serves others.
    assert!(hostile(&e).instantiate(r#"{"mode":"ok"}"#).is_ok());
}

#[test]
fn many_instances_and_many_tables_are_refused_at_instantiation() {
    let e = engine(limits(256));
    let m = load(
        &e,
        "instances",
        &contract_component("", "", Limits::default().max_instances),
    );
    let err = init_error(&m);
    assert!(err.contains("instance count too high"), "{err}");

    let fields = "(table 1 funcref)\n".repeat(Limits::default().max_tables + 1);
    let m = load(&e, "tables", &contract_component(&fields, "", 0));
    let err = init_error(&m);
    assert!(err.contains("table count too high"), "{err}");
}

#[test]
fn memories_that_each_fit_the_cap_are_refused_when_together_they_do_not() {
    // Four memories of 40 MiB: each below the 128 MiB cap, 160 MiB together.
    let e = engine(limits(128));
    let fields = "(memory 640)\n".repeat(4);
    let m = load(&e, "wide", &contract_component(&fields, "", 0));
    let err = init_error(&m);
    assert!(err.contains("memory limit exceeded"), "{err}");
    assert!(
        err.contains(&(128u64 << 20).to_string()),
        "names the limit: {err}"
    );
    // Three fit (120 MiB plus the 64 KiB main memory).
    let fields = "(memory 640)\n".repeat(3);
    let m = load(&e, "three", &contract_component(&fields, "", 0));
    assert!(m.instantiate("{}").is_ok());
}

#[test]
fn growing_two_memories_past_the_cap_together_fails_the_record() {
    // 20 MiB in each of two memories, against a 32 MiB cap.
    let e = engine(limits(32));
    let body = r#"
      (if (i32.lt_s (memory.grow $a (i32.const 320)) (i32.const 0)) (then unreachable))
      (if (i32.lt_s (memory.grow $b (i32.const 320)) (i32.const 0)) (then unreachable))"#;
    let m = load(
        &e,
        "grow",
        &contract_component("(memory $a 0)\n(memory $b 0)", body, 0),
    );
    let mut inst = m.instantiate("{}").unwrap();
    let err = inst.transform(&record(1, "k")).unwrap_err();
    assert_eq!(err.kind, FailureKind::MemoryLimit, "{err}");
    assert_eq!(err.offset, 1);
}

#[test]
fn a_table_growing_without_bound_fails_the_record() {
    // A million elements (8 MB) a step, until refused: a trap, never a spin.
    let e = engine(limits(32));
    let body = r#"
      (loop $more
        (if (i32.lt_s (table.grow $t (ref.null func) (i32.const 1000000)) (i32.const 0))
          (then unreachable))
        (br $more))"#;
    let m = load(
        &e,
        "tables",
        &contract_component("(table $t 0 funcref)", body, 0),
    );
    let mut inst = m.instantiate("{}").unwrap();
    let err = inst.transform(&record(1, "k")).unwrap_err();
    assert_eq!(err.kind, FailureKind::MemoryLimit, "{err}");
    // A fresh instance for the next record.
    let err = inst.transform(&record(2, "k")).unwrap_err();
    assert_eq!(err.kind, FailureKind::MemoryLimit, "{err}");
    assert!(hostile(&e).instantiate(r#"{"mode":"ok"}"#).is_ok());
}

#[test]
fn a_log_flood_is_cut_to_the_rate_and_the_dropped_lines_are_counted() {
    let metrics = EngineMetrics::default();
    let e = Engine::with_metrics(
        &EngineConfig {
            limits: Limits {
                log_lines_per_second: 50,
                ..Limits::default()
            },
            cache_dir: None,
            no_cache: true,
        },
        metrics.clone(),
    )
    .unwrap();
    let mut inst = hostile(&e)
        .instantiate(r#"{"mode":"log-flood","lines":5000}"#)
        .unwrap();
    let started = std::time::Instant::now();
    // The record itself succeeds: logging too much is not an error.
    assert_eq!(inst.transform(&record(1, "k")).unwrap().len(), 1);
    let elapsed = started.elapsed().as_secs_f64();
    let dropped = metrics
        .log_lines_dropped
        .get_or_create(&[("transform", "hostile".to_owned())])
        .get();
    // At most the burst (50) plus what refilled during the call got through.
    let allowed = 50.0 + 50.0 * elapsed;
    assert!(
        dropped as f64 >= 5000.0 - allowed - 1.0 && dropped < 5000,
        "dropped {dropped} of 5000 in {elapsed} s"
    );
}

#[test]
fn an_output_bomb_is_refused_by_the_configured_cap() {
    let e = engine(Limits {
        max_output_bytes: 64 * 1024,
        ..Limits::default()
    });
    let module = hostile(&e);
    // 100 kB of documents: above this cap, far below the guest's 1 MiB default.
    let mut bomb = module
        .instantiate(r#"{"mode":"big-output","doc_bytes":100000}"#)
        .unwrap();
    let err = bomb.transform(&record(1, "k")).unwrap_err();
    assert_eq!(err.kind, FailureKind::OutputTooLarge, "{err}");
    assert!(err.message.contains("65536"), "{err}");
    // 10 kB passes: the cap, not the guest's default, made the difference.
    let mut small = module
        .instantiate(r#"{"mode":"big-output","doc_bytes":10000}"#)
        .unwrap();
    assert_eq!(small.transform(&record(2, "k")).unwrap().len(), 1);
}

#[test]
fn an_infinite_loop_and_a_trap_fail_only_their_record() {
    let e = engine(Limits {
        call_timeout_ms: 100,
        ..Limits::default()
    });
    let mut inst = hostile(&e).instantiate(r#"{"mode":"by-key"}"#).unwrap();
    let kinds: Vec<Result<usize, FailureKind>> = ["ok", "loop", "ok", "trap", "ok"]
        .iter()
        .enumerate()
        .map(|(i, key)| {
            inst.transform(&record(i as i64, key))
                .map(|ops| ops.len())
                .map_err(|e| e.kind)
        })
        .collect();
    assert_eq!(
        kinds,
        [
            Ok(1),
            Err(FailureKind::Timeout),
            Ok(1),
            Err(FailureKind::Trap),
            Ok(1)
        ]
    );
}

/// Through `smt run` (real Kafka and MongoDB, `on-error = "skip"`): one
/// partition holding an infinite loop, a memory bomb, a trap, a log flood
/// and an output bomb between good records. Each hostile record fails alone
/// and is counted by kind; the good ones are written; the process stays
/// healthy; and a component with too many memories deployed through the
/// admin API is rejected while the active version keeps running.
#[test]
fn through_smt_run_each_hostile_record_fails_alone_and_is_counted() {
    use serde_json::json;
    use smt_tests::admin::call;
    use smt_tests::config::ConfigBuilder;
    use smt_tests::kafka::producer;
    use smt_tests::services::{unique_name, Services};
    use smt_tests::smt_process::{tail, wait_for, Scratch, Smt};

    let s = Services::shared();
    let dir = Scratch::new("hostile");
    let topic = unique_name("hostile");
    s.create_topic(&topic, 1).unwrap();
    let db = unique_name("db");
    let config = ConfigBuilder::new(&s.brokers(), &s.mongodb_uri(), &db)
        .transform(
            "hostile",
            HOSTILE,
            json!({"mode": "by-key", "lines": 3000, "doc_bytes": 100000}),
        )
        .route(&topic, "hostile", "skip")
        .set(
            &["engine", "limits"],
            json!({"memory-mib": 64, "call-timeout-ms": 300, "max-output-bytes": 65536,
                   "log-lines-per-second": 20}),
        );
    const TOKEN: &str = "hostile-test-token";
    let mut smt = Smt::start_with_env(
        &dir.0,
        "smt",
        &config.build(),
        &[("SMT_ADMIN__TOKEN", TOKEN)],
    )
    .unwrap();
    smt.wait_assigned(Duration::from_secs(60)).unwrap();

    let keys = [
        "ok0",
        "loop",
        "ok1",
        "membomb",
        "ok2",
        "trap",
        "ok3",
        "log-flood",
        "ok4",
        "big-output",
        "ok5",
    ];
    let p = producer(&s.brokers()).unwrap();
    for key in keys {
        p.send(
            rdkafka::producer::BaseRecord::<str, str>::to(&topic)
                .partition(0)
                .key(key)
                .payload("{}"),
        )
        .map_err(|(e, _)| e)
        .unwrap();
    }
    rdkafka::producer::Producer::flush(&p, Duration::from_secs(30)).unwrap();

    wait_for(
        "every record to be handled",
        Duration::from_secs(90),
        || {
            Ok(
                (smt.metric("smt_records_processed_total", &[("topic", &topic)])?
                    >= keys.len() as f64)
                    .then_some(()),
            )
        },
    )
    .unwrap_or_else(|e| panic!("{e:#}\n{}", tail(&smt.log_text(), 4000)));
    let errors = |kind: &str| {
        smt.metric(
            "smt_record_errors_total",
            &[("transform", "hostile"), ("kind", kind), ("policy", "skip")],
        )
        .unwrap()
    };
    for kind in ["timeout", "memory-limit", "trap", "output-too-large"] {
        assert_eq!(errors(kind), 1.0, "{kind}\n{}", tail(&smt.log_text(), 4000));
    }
    let dropped = smt
        .metric(
            "smt_guest_log_lines_dropped_total",
            &[("transform", "hostile")],
        )
        .unwrap();
    assert!(dropped >= 2900.0, "dropped {dropped} of 3000 log lines");
    let flood_lines = smt.log_text().matches("flood line").count();
    assert!(
        flood_lines <= 100,
        "{flood_lines} flood lines reached the log"
    );
    assert_eq!(smt.get("/health").unwrap().0, 200);

    // The good records and the log-flood record (it returns its operation) are written.
    let written = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let client = mongodb::Client::with_uri_str(s.mongodb_uri())
            .await
            .unwrap();
        client
            .database(&db)
            .collection::<mongodb::bson::Document>("hostile")
            .count_documents(mongodb::bson::Document::new())
            .await
            .unwrap()
    });
    assert_eq!(written, 7);

    // A component declaring more memories than allowed is rejected at `init`.
    let fields = "(memory 1)\n".repeat(Limits::default().max_memories + 1);
    let wat = contract_component(&fields, "", 0);
    let (code, body) = call(
        smt.admin_port,
        "PUT",
        "/transforms/hostile",
        Some(TOKEN),
        wat.as_bytes(),
    )
    .unwrap();
    assert_eq!(code, 422, "{body}");
    assert_eq!(body["stage"], "init", "{body}");
    assert!(
        body["reason"]
            .as_str()
            .unwrap()
            .contains("memory count too high"),
        "{body}"
    );
    assert_eq!(
        smt.metric(
            "smt_transform_swaps_total",
            &[("transform", "hostile"), ("outcome", "rejected")]
        )
        .unwrap(),
        1.0
    );
    assert_eq!(smt.get("/health").unwrap().0, 200);
    assert!(smt.try_wait().is_none(), "smt is still running");
}

//! The Wasm engine against real (hostile) guest components built from source
//! by `tests/build.rs`: limits, trap recovery, contract checks, compile cache.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use smt_host::engine::{
    Engine, EngineConfig, FailureKind, Header, Limits, LoadError, NamespacePolicy, Origin,
    TransformModule, CONTRACT_VERSIONS,
};
use smt_tests::native::{rendered, to_guest_message};
use smt_tests::record::{Record, RecordExt as _};

const HOSTILE: &str = env!("SMT_GUEST_HOSTILE");
/// Built against the frozen `wit/history/0.1.0` contract.
const CONTRACT_0_1_0: &str = env!("SMT_GUEST_CONTRACT_0_1_0");

fn engine_with(limits: Limits, cache_dir: Option<&Path>) -> Engine {
    Engine::new(&EngineConfig {
        limits,
        cache_dir: cache_dir.map(Path::to_path_buf),
        no_cache: cache_dir.is_none(),
    })
    .expect("engine")
}

fn hostile(engine: &Engine) -> Arc<TransformModule> {
    engine
        .load_file("hostile", Path::new(HOSTILE))
        .expect("the hostile guest loads")
}

/// A record on partition 3 of topic `t` with this key and `{}` as value.
fn record(offset: i64, key: &str) -> Record {
    smt_tests::record::record("t", Some(key.as_bytes()), Some(b"{}".as_slice())).at(3, offset)
}

#[test]
fn an_infinite_loop_hits_the_deadline_and_the_next_call_gets_a_fresh_instance() {
    let limits = Limits {
        call_timeout_ms: 200,
        ..Limits::default()
    };
    let engine = engine_with(limits, None);
    let mut inst = hostile(&engine).instantiate(r#"{"mode":"loop"}"#).unwrap();
    for offset in 0..2 {
        let started = Instant::now();
        let err = inst.transform(&record(offset, "k")).unwrap_err();
        let took = started.elapsed();
        // A poisoned instance would answer "cannot enter component instance"
        // (a trap) at once; a fresh one loops again until its deadline.
        assert_eq!(err.kind, FailureKind::Timeout, "{err}");
        assert!(
            took >= Duration::from_millis(200),
            "interrupted early: {took:?}"
        );
        assert!(took < Duration::from_secs(2), "deadline overshot: {took:?}");
        assert_eq!((err.partition, err.offset), (3, offset));
        assert!(
            err.to_string().contains("hostile") && err.to_string().contains("t/3@"),
            "{err}"
        );
    }
}

#[test]
fn a_memory_bomb_hits_the_cap_and_the_host_survives() {
    let limits = Limits {
        memory_mib: 32,
        ..Limits::default()
    };
    let engine = engine_with(limits, None);
    let module = hostile(&engine);
    let mut bomb = module.instantiate(r#"{"mode":"membomb"}"#).unwrap();
    let err = bomb.transform(&record(1, "k")).unwrap_err();
    assert_eq!(err.kind, FailureKind::MemoryLimit, "{err}");
    assert!(
        err.message.contains("33554432"),
        "names the limit: {}",
        err.message
    );
    // The same engine still serves well-behaved instances.
    let mut ok = module.instantiate(r#"{"mode":"ok"}"#).unwrap();
    assert_eq!(ok.transform(&record(2, "k")).unwrap().len(), 1);
}

#[test]
fn a_trap_names_transform_and_record_and_the_next_record_is_processed() {
    let engine = engine_with(Limits::default(), None);
    let mut inst = hostile(&engine)
        .instantiate(r#"{"mode":"trap","trap_key":"boom"}"#)
        .unwrap();
    let ok = inst.transform(&record(10, "fine")).unwrap();
    assert_eq!(ok.len(), 1);
    let err = inst.transform(&record(11, "boom")).unwrap_err();
    assert_eq!(err.kind, FailureKind::Trap, "{err}");
    assert_eq!(
        (err.transform.as_str(), err.topic.as_str(), err.offset),
        ("hostile", "t", 11)
    );
    let after = inst.transform(&record(12, "fine")).unwrap();
    let offset = &after[0].to_extjson()["document"]["offset"];
    assert_eq!(
        offset,
        &serde_json::json!({"$numberInt": "12"}),
        "the record after the trap"
    );
}

#[test]
fn a_failing_init_is_an_error_naming_the_transform() {
    let engine = engine_with(Limits::default(), None);
    let err = hostile(&engine)
        .instantiate(r#"{"mode":"init-fails"}"#)
        .err()
        .expect("init must fail");
    assert!(
        matches!(err, LoadError::Init { ref name, .. } if name == "hostile"),
        "{err:?}"
    );
    assert!(err.to_string().contains("init refused"), "{err}");
}

#[test]
fn oversized_output_is_refused() {
    let limits = Limits {
        max_output_bytes: 64 * 1024,
        ..Limits::default()
    };
    let engine = engine_with(limits, None);
    let module = hostile(&engine);
    // 100 kB of documents: above the 64 KiB cap (and far below the guest's
    // 1 MiB default, so the cap is what is tested).
    let mut inst = module
        .instantiate(r#"{"mode":"big-output","doc_bytes":100000}"#)
        .unwrap();
    let err = inst.transform(&record(1, "k")).unwrap_err();
    assert_eq!(err.kind, FailureKind::OutputTooLarge, "{err}");
    assert!(err.message.contains("the limit is 65536"), "{err}");
    // 10 kB fits: the guest read `doc_bytes`.
    let mut fits = module
        .instantiate(r#"{"mode":"big-output","doc_bytes":10000}"#)
        .unwrap();
    assert_eq!(fits.transform(&record(2, "k")).unwrap().len(), 1);
    // Too many operations, each small, are refused by their own cap.
    let mut many = module
        .instantiate(r#"{"mode":"big-output","ops":10001,"doc_bytes":1}"#)
        .unwrap();
    let err = many.transform(&record(3, "k")).unwrap_err();
    assert_eq!(err.kind, FailureKind::OutputTooLarge, "{err}");
    assert!(err.message.contains("10001 operations"), "{err}");
}

#[test]
fn a_component_with_the_wrong_interface_is_rejected_at_load() {
    let engine = engine_with(Limits::default(), None);
    // Exports `init` with the wrong type and no `transform` at all.
    let wrong = r#"(component
        (core module $m (func (export "f")))
        (core instance $i (instantiate $m))
        (func $f (canon lift (core func $i "f")))
        (export "init" (func $f)))"#;
    let err = engine
        .load("wrong", wrong.as_bytes(), "inline")
        .unwrap_err();
    assert!(matches!(err, LoadError::Contract { .. }), "{err:?}");
    assert!(
        err.to_string().contains("missing export `transform`"),
        "{err}"
    );

    // Both names exported, but `init` has the wrong signature.
    let mistyped = r#"(component
        (core module $m (func (export "f")))
        (core instance $i (instantiate $m))
        (func $f (canon lift (core func $i "f")))
        (export "init" (func $f))
        (export "transform" (func $f)))"#;
    let err = engine
        .load("mistyped", mistyped.as_bytes(), "inline")
        .unwrap_err();
    assert!(matches!(err, LoadError::Contract { .. }), "{err:?}");
    assert!(err.to_string().contains("init"), "names the export: {err}");

    let core_module = wat_core_module();
    let err = engine.load("core", &core_module, "inline").unwrap_err();
    assert!(err.to_string().contains("not a component"), "{err}");
    let err = engine
        .load("garbage", b"definitely not wasm", "inline")
        .unwrap_err();
    assert!(matches!(err, LoadError::Compile { .. }), "{err:?}");
}

/// The smallest core module: the magic and version 1.
fn wat_core_module() -> Vec<u8> {
    b"\0asm\x01\0\0\0".to_vec()
}

#[test]
fn the_compile_cache_loads_what_it_compiled_and_survives_a_corrupt_artifact() {
    let dir = tempdir("cache");
    let first = hostile(&engine_with(Limits::default(), Some(&dir)));
    assert_eq!(first.origin(), Origin::Compiled);
    // A new engine (a restart) with the same settings loads, never recompiles.
    let second = hostile(&engine_with(Limits::default(), Some(&dir)));
    assert_eq!(second.origin(), Origin::Cached);
    assert_eq!(first.hash(), second.hash());
    let hash = first.hash().to_owned();
    let mut inst = second.instantiate(r#"{"mode":"ok"}"#).unwrap();
    assert_eq!(inst.transform(&record(1, "k")).unwrap().len(), 1);

    let artifacts: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(artifacts.len(), 1, "{artifacts:?}");
    let name = artifacts[0]
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert!(
        name.starts_with(&hash) && name.contains("wasmtime48.0.8"),
        "{name}"
    );
    // Artifacts are mapped into memory while in use, so the cache only ever
    // replaces a file by renaming over it; corrupt it the same way.
    drop((first, second, inst));
    let tmp = dir.join("corrupt.tmp");
    std::fs::write(&tmp, b"garbage").unwrap();
    std::fs::rename(&tmp, &artifacts[0]).unwrap();
    let third = hostile(&engine_with(Limits::default(), Some(&dir)));
    assert_eq!(
        third.origin(),
        Origin::Compiled,
        "a corrupt artifact is replaced"
    );
    assert_eq!(
        hostile(&engine_with(Limits::default(), Some(&dir))).origin(),
        Origin::Cached
    );
}

/// An artifact this user did not write — another owner, or a mode that lets
/// others write — is never loaded (it would be native code run outside the
/// sandbox): the module is compiled again and the artifact replaced by a
/// private one. The cache directory is created 0700.
#[test]
fn the_compile_cache_refuses_artifacts_it_cannot_trust() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let dir = tempdir("cache-trust").join("compiled");
    let first = hostile(&engine_with(Limits::default(), Some(&dir)));
    assert_eq!(first.origin(), Origin::Compiled);
    assert_eq!(
        std::fs::metadata(&dir).unwrap().mode() & 0o777,
        0o700,
        "the cache directory is private"
    );
    let artifact = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "cwasm"))
        .expect("an artifact");
    assert_eq!(std::fs::metadata(&artifact).unwrap().mode() & 0o777, 0o600);
    drop(first);

    // A valid artifact, but group- or world-writable: someone else may have written it.
    for mode in [0o666, 0o620] {
        std::fs::set_permissions(&artifact, std::fs::Permissions::from_mode(mode)).unwrap();
        let m = hostile(&engine_with(Limits::default(), Some(&dir)));
        assert_eq!(m.origin(), Origin::Compiled, "mode {mode:o} refused");
        assert_eq!(
            std::fs::metadata(&artifact).unwrap().mode() & 0o777,
            0o600,
            "replaced by a private artifact"
        );
        assert_eq!(
            hostile(&engine_with(Limits::default(), Some(&dir))).origin(),
            Origin::Cached
        );
    }

    // Owned by another user (only root can plant that; as another user the
    // mode cases above are the test).
    if unsafe { libc::geteuid() } == 0 {
        let c_path = std::ffi::CString::new(artifact.to_str().unwrap()).unwrap();
        assert_eq!(unsafe { libc::chown(c_path.as_ptr(), 4242, 4242) }, 0);
        let m = hostile(&engine_with(Limits::default(), Some(&dir)));
        assert_eq!(m.origin(), Origin::Compiled, "a foreign owner is refused");
        assert_eq!(std::fs::metadata(&artifact).unwrap().uid(), 0);
    }

    // A symlink at the artifact's name is not followed.
    let elsewhere = dir.with_file_name("elsewhere.cwasm");
    std::fs::rename(&artifact, &elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &artifact).unwrap();
    let m = hostile(&engine_with(Limits::default(), Some(&dir)));
    assert_eq!(m.origin(), Origin::Compiled, "a symlink is refused");
    assert!(!std::fs::symlink_metadata(&artifact)
        .unwrap()
        .file_type()
        .is_symlink());

    // A world-writable cache directory is not used at all.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    assert_eq!(
        hostile(&engine_with(Limits::default(), Some(&dir))).origin(),
        Origin::Compiled
    );
    assert_eq!(
        hostile(&engine_with(Limits::default(), Some(&dir))).origin(),
        Origin::Compiled,
        "never cached there"
    );
}

/// `mongodb.allowed-namespaces`: every operation kind, to an allowed and to
/// a refused namespace; an aggregate refused for its `$merge` target or for
/// a collection its `$lookup` reads. A refusal fails the record only.
#[test]
fn operations_outside_the_allowed_namespaces_fail_their_record() {
    let engine = engine_with(Limits::default(), None).with_namespace_policy(NamespacePolicy::new(
        "app",
        &["app".into(), "audit.log".into()],
    ));
    let module = hostile(&engine);
    let run = |config: serde_json::Value| {
        let mut inst = module.instantiate(&config.to_string()).unwrap();
        inst.transform(&record(1, "k"))
    };
    for kind in [
        "insert-one",
        "replace-one",
        "update-one",
        "update-many",
        "delete-one",
        "delete-many",
        "aggregate",
    ] {
        for (db, coll, allowed) in [
            (None, "c", true),
            (Some("app"), "c", true),
            (Some("audit"), "log", true),
            (Some("audit"), "other", false),
            (Some("admin"), "c", false),
        ] {
            let mut config = serde_json::json!({"mode": "op", "kind": kind, "collection": coll});
            if let Some(db) = db {
                config["database"] = db.into();
            }
            match run(config) {
                Ok(ops) => assert!(allowed && ops.len() == 1, "{kind} to {db:?}.{coll} passed"),
                Err(e) => {
                    assert!(!allowed, "{kind} to {db:?}.{coll} refused: {e}");
                    assert_eq!(e.kind, FailureKind::ForbiddenNamespace, "{e}");
                    assert_eq!(e.kind.as_str(), "forbidden-namespace");
                    assert!(
                        e.message.contains(&format!("{}.{coll}", db.unwrap())),
                        "names the namespace: {e}"
                    );
                }
            }
        }
    }
    // An aggregate on an allowed collection that merges elsewhere, or reads elsewhere.
    let merge_elsewhere = serde_json::json!({"mode": "op", "kind": "aggregate", "pipeline": [
        {"$merge": {"into": {"db": "admin", "coll": "c"}}}]});
    let e = run(merge_elsewhere).unwrap_err();
    assert_eq!(e.kind, FailureKind::ForbiddenNamespace, "{e}");
    assert!(e.message.contains("admin.c"), "{e}");
    let strict = engine_with(Limits::default(), None)
        .with_namespace_policy(NamespacePolicy::new("app", &["app.c".into()]));
    let lookup_elsewhere = serde_json::json!({"mode": "op", "kind": "aggregate", "pipeline": [
        {"$lookup": {"from": "secrets", "localField": "a", "foreignField": "b", "as": "s"}},
        {"$merge": {"into": "c"}}]});
    let e = hostile(&strict)
        .instantiate(&lookup_elsewhere.to_string())
        .unwrap()
        .transform(&record(1, "k"))
        .unwrap_err();
    assert_eq!(e.kind, FailureKind::ForbiddenNamespace, "{e}");
    assert!(e.message.contains("app.secrets"), "{e}");
}

fn tempdir(tag: &str) -> std::path::PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let dir = std::env::temp_dir().join(format!("smt-engine-{tag}-{}-{nanos}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn a_guest_built_against_contract_0_1_0_loads_runs_and_reports_its_version() {
    assert_eq!(CONTRACT_VERSIONS, ["0.2.0", "0.1.0"]);
    let engine = engine_with(Limits::default(), None);
    assert_eq!(hostile(&engine).contract_version(), "0.2.0");
    let old = engine
        .load_file("old", Path::new(CONTRACT_0_1_0))
        .expect("a 0.1.0 guest loads");
    assert_eq!(old.contract_version(), "0.1.0");

    // Its message arrives whole (headers included) and every operation kind
    // it returns, JSON and BSON documents, converts to the current types.
    let mut inst = old.instantiate("{}").unwrap();
    let mut msg = record(7, "k");
    msg.headers = vec![
        Header {
            key: "h".into(),
            value: Some(b"v".to_vec()),
        },
        Header {
            key: "n".into(),
            value: None,
        },
    ];
    let ops = inst
        .transform(&msg)
        .expect("the 0.1.0 guest maps the record");
    let rendered: Vec<serde_json::Value> = ops.iter().map(|op| op.to_extjson()).collect();
    let int = |n: i32| serde_json::json!({"$numberInt": n.to_string()});
    assert_eq!(
        serde_json::Value::Array(rendered),
        serde_json::json!([
            {"op": "insert-one", "db": null, "coll": "c",
             "document": {"_id": int(7), "key": "k", "topic": "t", "headers": int(2)}},
            {"op": "replace-one", "db": "other", "coll": "c", "filter": {"_id": int(7)},
             "replacement": {"_id": int(7), "r": true}, "upsert": true},
            {"op": "update-one", "db": null, "coll": "c", "filter": {"_id": int(7)},
             "update": {"$set": {"a.$[e].x": int(1)}}, "upsert": false,
             "arrayFilters": [{"e.k": int(2)}]},
            {"op": "update-many", "db": null, "coll": "c", "filter": {},
             "pipeline": [{"$set": {"n": int(1)}}], "upsert": false},
            {"op": "delete-one", "db": null, "coll": "c", "filter": {"_id": int(7)}},
            {"op": "delete-many", "db": null, "coll": "d", "filter": {}},
        ])
    );

    // Its errors keep their kind; the instance stays usable.
    let err = inst.transform(&record(8, "bad")).unwrap_err();
    assert_eq!(err.kind, FailureKind::BadInput, "{err}");
    assert_eq!(err.message, "the key is bad");
    assert_eq!(inst.transform(&record(9, "k")).unwrap().len(), 6);

    // And so does a refused configuration.
    let Err(err) = old.instantiate(r#""reject""#) else {
        panic!("init accepted the configuration it must refuse")
    };
    assert!(matches!(err, LoadError::Init { .. }), "{err:?}");
    assert!(err.to_string().contains("rejected by request"), "{err}");
}

/// One JSON dialect for write operations: the SDK's `ops::describe` (what a
/// Rust transform's unit tests assert) and `smt test` (the host's
/// `to_extjson`) print one operation of every kind alike, keys and their
/// order included. The one documented difference, documents as written vs
/// canonical, is taken out by `native::rendered`, which parses the SDK's
/// documents as the host does.
#[test]
fn the_sdk_and_smt_test_print_every_operation_alike() {
    use smt_guest::Transform as _;
    let config = r#"{"mode": "every-op"}"#;
    let msg = record(7, "k");
    let native = hostile_guest::Hostile::init(config)
        .unwrap()
        .transform(&to_guest_message(&msg))
        .unwrap();
    let engine = engine_with(Limits::default(), None);
    let wasm = hostile(&engine)
        .instantiate(config)
        .unwrap()
        .transform(&msg)
        .unwrap();
    assert_eq!(
        wasm.iter().map(|op| op.kind()).collect::<Vec<_>>(),
        [
            "insert-one",
            "replace-one",
            "update-one",
            "update-many",
            "delete-one",
            "delete-many",
            "aggregate"
        ]
    );
    assert_eq!(native.len(), wasm.len());
    for (n, w) in native.iter().zip(&wasm) {
        let (sdk, host) = (rendered(n).unwrap().to_string(), w.to_extjson().to_string());
        assert_eq!(sdk, host, "{}", w.kind());
    }
    // The names of the dialect, as the SDK prints them.
    let described: Vec<Value> = native.iter().map(smt_guest::ops::describe).collect();
    assert_eq!(
        (&described[1]["db"], &described[1]["coll"]),
        (&json!("other"), &json!("c"))
    );
    assert_eq!(described[2]["arrayFilters"], json!([{"e.k": 2}]));
    assert_eq!(described[3]["pipeline"][1], json!({"$unset": "tmp"}));
    assert_eq!(described[6]["pipeline"][0], json!({"$match": {"_id": 7}}));
}

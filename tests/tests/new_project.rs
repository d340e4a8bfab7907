//! `smt new` as a new user runs it: create a project in each language,
//! build it with its own build script (which installs the toolchain on first
//! use), and run its sample records through `smt test` and its `test.sh`.

use std::path::{Path, PathBuf};
use std::process::Command;

use smt_tests::smt_process::smt_bin;

fn smt_cache() -> PathBuf {
    std::env::var_os("SMT_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/smt"))
}

fn run(cmd: &mut Command, what: &str) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn new_build_and_test(lang: &str) {
    let dir = std::env::temp_dir().join(format!("smt-new-{}-{lang}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let name = format!("my-{lang}-transform");
    let project = dir.join(&name);
    run(
        Command::new(smt_bin()).args(["new", project.to_str().unwrap(), "--lang", lang]),
        "smt new",
    );

    let mut build = Command::new(project.join("build.sh"));
    build.current_dir(&project);
    // Host build settings must not leak into the guest build; a shared target
    // directory keeps the Rust template's dependencies compiled across runs.
    for var in ["RUSTFLAGS", "CARGO_ENCODED_RUSTFLAGS", "CARGO_BUILD_TARGET"] {
        build.env_remove(var);
    }
    build.env("CARGO_TARGET_DIR", smt_cache().join("target/smt-new-rust"));
    run(&mut build, &format!("{lang}: ./build.sh"));
    let wasm = project.join(format!("{name}.wasm"));
    assert!(
        wasm.exists(),
        "{lang}: the build made no {}",
        wasm.display()
    );

    // As the README says: smt test over the sample records ...
    let out = run(
        Command::new(smt_bin())
            .args(["test", "--transform"])
            .arg(&wasm)
            .arg("--input")
            .arg(project.join("test/records.jsonl")),
        &format!("{lang}: smt test"),
    );
    // Compared as JSON: the key order of `smt test` output is not part of its contract.
    let lines = |text: &str| -> Vec<serde_json::Value> {
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let expected = std::fs::read_to_string(project.join("test/expected.jsonl")).unwrap();
    assert_eq!(lines(&out), lines(&expected), "{lang}: smt test output");
    // ... and the project's own test script.
    let test = run(
        Command::new(project.join("test.sh")).env("SMT", smt_bin()),
        &format!("{lang}: ./test.sh"),
    );
    assert!(test.contains("ok:"), "{lang}: {test}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_new_python_project_builds_and_passes_its_test() {
    new_build_and_test("python");
}

#[test]
fn a_new_rust_project_builds_and_passes_its_test() {
    new_build_and_test("rust");
}

#[test]
fn a_new_js_project_builds_and_passes_its_test() {
    new_build_and_test("js");
}

#[test]
fn a_new_c_project_builds_and_passes_its_test() {
    new_build_and_test("c");
}

#[test]
fn a_new_go_project_builds_and_passes_its_test() {
    new_build_and_test("go");
}

#[test]
fn new_refuses_a_bad_name_and_an_existing_project() {
    let dir = std::env::temp_dir().join(format!("smt-new-refuse-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("taken")).unwrap();
    std::fs::write(dir.join("taken/file"), "x").unwrap();
    for (path, lang) in [
        (dir.join("taken"), "python"),
        (dir.join("9bad"), "js"),
        (dir.join("ok"), "cobol"),
    ] {
        let out = Command::new(smt_bin())
            .arg("new")
            .arg(&path)
            .args(["--lang", lang])
            .output()
            .unwrap();
        assert!(!out.status.success(), "{} {lang}", path.display());
    }
    std::fs::remove_dir_all(&dir).unwrap();
    let _ = Path::new("");
}

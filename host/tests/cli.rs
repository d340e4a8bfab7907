//! The `smt` binary's answers to mistakes: one clear message, a non-zero exit.

use std::process::Command;

fn smt(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_smt"))
        .args(args)
        .output()
        .expect("running smt");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_missing_module_file_is_named() {
    let (code, _, stderr) = smt(&["check", "--transform", "/nonexistent/t.wasm"]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("/nonexistent/t.wasm") && !stderr.contains("panicked"),
        "{stderr}"
    );
}

#[test]
fn a_file_that_is_not_wasm_is_refused() {
    let path = std::env::temp_dir().join(format!("smt-cli-not-wasm-{}.wasm", std::process::id()));
    std::fs::write(&path, b"hello").unwrap();
    let (code, _, stderr) = smt(&["check", "--transform", path.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("not a valid WebAssembly component"),
        "{stderr}"
    );
}

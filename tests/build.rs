//! Builds the guest transforms the tests and benchmarks run to
//! `wasm32-wasip2` components, from source, and tells the tests where they
//! are (`env!("SMT_GUEST_<NAME>")`). Nothing built here is committed.

use std::path::{Path, PathBuf};
use std::process::Command;

/// (cargo package, env var suffix). Every guest built for the tests.
const GUESTS: &[(&str, &str)] = &[
    ("debezium-mongo", "DEBEZIUM_MONGO"),
    ("relational-mapper", "RELATIONAL_MAPPER"),
    ("hostile-guest", "HOSTILE"),
    ("versioned-guest", "VERSIONED"),
    ("contract-0-1-0-guest", "CONTRACT_0_1_0"),
    ("example-customers", "EXAMPLE_CUSTOMERS"),
];

fn main() {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest_dir
        .parent()
        .expect("tests/ sits in the workspace root");
    // `.cargo/config.toml`: the guests' compiler flags.
    for watched in [
        "guest-transforms",
        "wit",
        "examples/customers/rust",
        ".cargo/config.toml",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }
    println!("cargo:rerun-if-changed=build.rs");

    // A target directory of its own: the outer build holds the lock on its own.
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    let target_dir = out_dir
        .ancestors()
        .nth(4)
        .map(|t| t.join("wasm-guests"))
        .unwrap_or_else(|| out_dir.join("wasm-guests"));

    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root)
        .args(["build", "--profile", "guest", "--target", "wasm32-wasip2"])
        .arg("--target-dir")
        .arg(&target_dir);
    for (package, _) in GUESTS {
        cmd.args(["-p", package]);
    }
    // Flags meant for the host build must not leak into the guest build.
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd
        .status()
        .expect("running cargo to build the guest transforms");
    if !status.success() {
        panic!(
            "building the guest transforms for wasm32-wasip2 failed (see the output above); \
             is the target installed? `rustup target add wasm32-wasip2`"
        );
    }
    for (package, var) in GUESTS {
        let file = artifact(&target_dir, package);
        assert!(
            file.exists(),
            "the guest build did not produce {}",
            file.display()
        );
        println!("cargo:rustc-env=SMT_GUEST_{var}={}", file.display());
    }
}

fn artifact(target_dir: &Path, package: &str) -> PathBuf {
    target_dir
        .join("wasm32-wasip2")
        .join("guest")
        .join(format!("{}.wasm", package.replace('-', "_")))
}

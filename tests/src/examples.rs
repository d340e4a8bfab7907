//! The runnable examples (`examples/*/run`) as tests: each starts its own
//! services, as a user's run does, and exits 0 only once MongoDB holds what
//! it computes from the source.

use crate::smt_process::smt_bin;

/// Runs `examples/<name>/run` with the built `smt` and `envs`, without the
/// suite's services; panics with its output unless it exits 0. Its stdout.
pub fn run(name: &str, envs: &[(&str, &str)]) -> String {
    let script = crate::services::repo_root().join(format!("examples/{name}/run"));
    let out = std::process::Command::new(&script)
        .env("SMT_BIN", smt_bin())
        .envs(envs.iter().copied())
        .env_remove("SMT_KAFKA_BROKERS")
        .env_remove("SMT_MONGODB_URI")
        .env_remove("SMT_POSTGRES_URL")
        .env_remove("SMT_MARIADB_URL")
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", script.display()));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "examples/{name}/run failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

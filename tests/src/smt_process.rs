//! The `smt` process harness for the end-to-end tests of `smt run`: the real
//! `smt` binary as a child process ([`Smt`]: start, signals, exit, log), its
//! admin endpoint (`GET`, Prometheus metrics, readiness), polling with a
//! deadline ([`wait_for`]) and scratch directories. The configuration it runs
//! is written by [`crate::config::ConfigBuilder`].
//!
//! The binary is `target/<profile>/smt` next to the test executable: build it
//! before the tests (`cargo build -p smt-host --bin smt`), or set `SMT_BIN`.

use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

use crate::services::unique_name;

/// The `smt` binary of this build.
pub fn smt_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("SMT_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("the test executable's path");
    // target/<profile>/deps/<test>-<hash> -> target/<profile>/smt
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>");
    let bin = profile_dir.join("smt");
    assert!(
        bin.exists(),
        "{} is missing: build it before the tests with `cargo build -p smt-host --bin smt` (or set SMT_BIN)",
        bin.display()
    );
    bin
}

/// A free loopback port.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `cond` every 100 ms until it returns `Some`, or fails after `timeout` saying `what`.
pub fn wait_for<T>(
    what: &str,
    timeout: Duration,
    mut cond: impl FnMut() -> Result<Option<T>>,
) -> Result<T> {
    let deadline = Instant::now() + timeout;
    let mut last_err = None;
    loop {
        match cond() {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => {}
            Err(e) => last_err = Some(e),
        }
        if Instant::now() > deadline {
            bail!(
                "timed out after {timeout:?} waiting for {what}{}",
                last_err
                    .map(|e| format!(" (last error: {e:#})"))
                    .unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A running `smt run` process. Killed when dropped.
pub struct Smt {
    child: Option<Child>,
    pub admin_port: u16,
    pub log: PathBuf,
    pub config: PathBuf,
}

impl Smt {
    /// Writes `config` (TOML; `{admin}` is replaced by a free admin address,
    /// see [`crate::config::ADMIN`]) into `dir` and starts `smt run` on it.
    pub fn start(dir: &Path, name: &str, config: &str) -> Result<Smt> {
        Self::start_with_env(dir, name, config, &[])
    }

    pub fn start_with_env(
        dir: &Path,
        name: &str,
        config: &str,
        env: &[(&str, &str)],
    ) -> Result<Smt> {
        std::fs::create_dir_all(dir)?;
        let admin_port = free_port();
        let config_path = dir.join(format!("{name}.toml"));
        std::fs::write(
            &config_path,
            config.replace(crate::config::ADMIN, &format!("127.0.0.1:{admin_port}")),
        )?;
        let log = dir.join(format!("{name}.log"));
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)?;
        let mut cmd = Command::new(smt_bin());
        // Dies with the test (thread) that started it, even when the test process is killed.
        unsafe {
            use std::os::unix::process::CommandExt;
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = cmd
            .args(["run", "--config"])
            .arg(&config_path)
            .env(
                "SMT_LOG",
                std::env::var("SMT_TEST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .context("starting smt")?;
        Ok(Smt {
            child: Some(child),
            admin_port,
            log,
            config: config_path,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// SIGKILL.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, then waits for the exit.
    pub fn terminate(&mut self, timeout: Duration) -> Result<ExitStatus> {
        let mut c = self.child.take().ok_or_else(|| anyhow!("not running"))?;
        unsafe_kill(c.id(), "TERM");
        let status = wait_for("smt to exit after SIGTERM", timeout, || Ok(c.try_wait()?));
        if status.is_err() {
            let _ = c.kill();
        }
        status
    }

    /// The exit status if it has exited.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// GET `path` of the admin endpoint: (status, body).
    pub fn get(&self, path: &str) -> Result<(u16, String)> {
        http(
            self.admin_port,
            "GET",
            path,
            None,
            b"",
            Duration::from_secs(5),
        )
    }

    /// Sum of the samples of metric `name` whose labels contain every `label=value` of `labels`.
    pub fn metric(&self, name: &str, labels: &[(&str, &str)]) -> Result<f64> {
        let (_, body) = self.get("/metrics")?;
        Ok(sum_metric(&body, name, labels))
    }

    /// Waits until the process is consuming (`/ready` answers 200 and partitions are assigned).
    pub fn wait_assigned(&mut self, timeout: Duration) -> Result<()> {
        wait_for("smt to be ready with partitions assigned", timeout, || {
            if let Some(status) = self.try_wait() {
                bail!(
                    "smt exited with {status}:\n{}",
                    tail(&self.log_text(), 3000)
                );
            }
            let ready = matches!(self.get("/ready"), Ok((200, _)));
            Ok((ready && self.metric("smt_assigned_partitions", &[])? > 0.0).then_some(()))
        })
    }
}

impl Drop for Smt {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One HTTP/1.1 request to `127.0.0.1:port` (a bearer `token` if given),
/// waiting at most `timeout` for the answer: (status, body).
pub fn http(
    port: u16,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &[u8],
    timeout: Duration,
) -> Result<(u16, String)> {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(timeout))?;
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n{auth}Content-Length: {}\r\n\r\n",
        body.len()
    )?;
    s.write_all(body)?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let status: u16 = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| anyhow!("bad HTTP answer: {text}"))?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

fn unsafe_kill(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status();
}

/// The last `n` bytes of `s`.
pub fn tail(s: &str, n: usize) -> &str {
    let mut start = s.len().saturating_sub(n);
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

pub fn sum_metric(body: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    body.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (n, rest) = match series.find('{') {
                Some(i) => (&series[..i], &series[i..]),
                None => (series, ""),
            };
            if n != name {
                return None;
            }
            let ok = labels
                .iter()
                .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")));
            ok.then(|| value.parse::<f64>().ok()).flatten()
        })
        .sum()
}

/// Runs an `smt` command (`smt status`, `smt reset`, …) to its end, without
/// `SMT_ADMIN__TOKEN` from the environment: (exit code, stdout, stderr).
pub fn smt_command<I, S>(args: I) -> (i32, String, String)
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let out = Command::new(smt_bin())
        .args(args)
        .env_remove("SMT_ADMIN__TOKEN")
        .output()
        .expect("running smt");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs `smt run` on `config` and waits for it to exit; returns (status, output).
pub fn run_to_exit(dir: &Path, config: &str, timeout: Duration) -> Result<(ExitStatus, String)> {
    let mut smt = Smt::start(dir, &unique_name("smt"), config)?;
    let status = wait_for("smt to exit", timeout, || Ok(smt.try_wait()))?;
    Ok((status, smt.log_text()))
}

/// A scratch directory under the system temp dir, removed on drop unless the test panicked.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Scratch {
        let p = std::env::temp_dir().join(unique_name(name));
        std::fs::create_dir_all(&p).unwrap();
        Scratch(p)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("test files kept in {}", self.0.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// Runs `cmd` to its end, but for at most `timeout`: stdin closed, stdout and
/// stderr captured, the child in a process group of its own (its children
/// too) that dies with the test process. Past the deadline the whole group is
/// killed and the error says `what` was being waited for, with the end of the
/// output (whatever the child said last is where it stopped).
pub fn run_bounded(
    mut cmd: Command,
    what: &str,
    timeout: Duration,
) -> Result<std::process::Output> {
    use std::os::unix::process::CommandExt;
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let mut child = cmd.spawn().with_context(|| format!("starting {what}"))?;
    let pgid = child.id() as i32;
    // readers on threads, answers through channels: a grandchild that keeps a
    // pipe open cannot block the caller past the deadline either
    let drain = |r: Option<Box<dyn Read + Send>>| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut buf);
            }
            let _ = tx.send(buf);
        });
        rx
    };
    let out = drain(
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    );
    let err = drain(
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    );
    let collect = |rx: &std::sync::mpsc::Receiver<Vec<u8>>| {
        rx.recv_timeout(Duration::from_secs(5))
            .unwrap_or_else(|_| b"(output not collected: a pipe stayed open)".to_vec())
    };
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        if Instant::now() >= deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let Some(status) = status else {
        // the group: a wrapper script's children too (a service it started in
        // the background has a session of its own and is not touched)
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
        let _ = child.wait();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&collect(&out)),
            String::from_utf8_lossy(&collect(&err))
        );
        bail!(
            "{what}: no end after {timeout:?}, killed (process group {pgid}); its last output:\n{}",
            tail(&text, 4000)
        );
    };
    Ok(std::process::Output {
        status,
        stdout: collect(&out),
        stderr: collect(&err),
    })
}

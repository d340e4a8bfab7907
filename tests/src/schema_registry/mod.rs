//! Helpers of the schema-registry tests: the Apicurio Registry service
//! (started on demand through `scripts/services start registry`, once per
//! test binary), schema registration over its Confluent-compatible API, and
//! a small HTTP proxy in front of it that can play a registry that is down
//! or that refuses the credentials.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;

use crate::services::Services;

static URL: Mutex<Option<String>> = Mutex::new(None);
/// The run directory of the registry started by [`registry_url`].
static DIR: Mutex<Option<std::path::PathBuf>> = Mutex::new(None);

/// The ccompat base URL (`http://127.0.0.1:PORT/apis/ccompat/v7`) of the
/// registry of `s`'s run directory, starting it on first use.
pub fn registry_url(s: &Services) -> Result<String> {
    let mut g = URL.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(u) = &*g {
        return Ok(u.clone());
    }
    let out = s
        .run_script(&["start", "registry"])
        .context("starting the schema registry")?;
    let url = out
        .lines()
        .find_map(|l| l.strip_prefix("SMT_SCHEMA_REGISTRY_URL="))
        .ok_or_else(|| anyhow!("scripts/services start registry printed no URL: {out}"))?
        .to_owned();
    *g = Some(url.clone());
    *DIR.lock().unwrap_or_else(|e| e.into_inner()) = Some(s.dir().to_owned());
    Ok(url)
}

/// Asks the registry's JVM for a thread dump (SIGQUIT: it prints every
/// thread's stack to its log and goes on), for a request to it that got no
/// answer. Returns where the dump went.
pub fn registry_thread_dump() -> Option<String> {
    let dir = DIR.lock().unwrap_or_else(|e| e.into_inner()).clone()?;
    let state: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("registry.json")).ok()?).ok()?;
    let pid = i32::try_from(state["pid"].as_i64()?).ok()?;
    // (only the registry this test binary's harness started, by its recorded pid)
    let ok = unsafe { libc::kill(pid, libc::SIGQUIT) } == 0;
    ok.then(|| {
        format!(
            "the registry's thread dump is in {}",
            dir.join("registry.log").display()
        )
    })
}

fn curl(args: &[&str]) -> Result<(u16, String)> {
    let out = Command::new("curl")
        .args([
            "-sS",
            "--connect-timeout",
            "5",
            "-m",
            "30",
            "-w",
            "\n%{http_code}",
        ])
        .args(args)
        .output()
        .context("running curl")?;
    if !out.status.success() {
        bail!("curl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    Ok((code.trim().parse().unwrap_or(0), body.to_owned()))
}

/// Registers `schema` (of `schema_type`: AVRO, JSON) under `subject`; returns its id.
pub fn register(url: &str, subject: &str, schema_type: &str, schema: &str) -> Result<u32> {
    let body = serde_json::json!({"schemaType": schema_type, "schema": schema}).to_string();
    let (code, text) = curl(&[
        "-X",
        "POST",
        "-H",
        "Content-Type: application/vnd.schemaregistry.v1+json",
        "--data-binary",
        &body,
        &format!("{url}/subjects/{subject}/versions"),
    ])?;
    if code != 200 {
        bail!("registering {subject}: {code} {text}");
    }
    let v: Value = serde_json::from_str(&text)?;
    v["id"]
        .as_u64()
        .map(|i| i as u32)
        .ok_or_else(|| anyhow!("registering {subject}: no id in {text}"))
}

/// `0x00`, the id big-endian, the data.
pub fn frame(id: u32, data: &[u8]) -> Vec<u8> {
    let mut out = vec![0];
    out.extend(id.to_be_bytes());
    out.extend_from_slice(data);
    out
}

/// What the proxy does with a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Mode {
    /// Accepts the connection and closes it at once: the registry is down.
    Down = 0,
    /// Answers 401 to everything.
    Unauthorized = 1,
    /// Forwards requests with the expected `Authorization` header; 401 otherwise.
    Forward = 2,
}

/// An HTTP proxy in front of the registry that checks basic authentication.
pub struct AuthProxy {
    pub url: String,
    mode: Arc<AtomicU8>,
    /// Requests seen, with the mode they met.
    pub seen: Arc<Mutex<Vec<Mode>>>,
}

impl AuthProxy {
    /// Proxies to `upstream` (the ccompat base URL); `user_info` is the `user:password` it expects.
    pub fn start(upstream: &str, user_info: &str) -> Result<AuthProxy> {
        let rest = upstream
            .strip_prefix("http://")
            .ok_or_else(|| anyhow!("not an http URL: {upstream}"))?;
        let (hostport, path) = rest.split_once('/').unwrap_or((rest, ""));
        let hostport = hostport.to_owned();
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let url = format!("http://{}/{path}", listener.local_addr()?);
        let mode = Arc::new(AtomicU8::new(Mode::Down as u8));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let expected = format!("basic {}", b64(user_info.as_bytes())).to_lowercase();
        let (m, s) = (mode.clone(), seen.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let mode = match m.load(Ordering::SeqCst) {
                    0 => Mode::Down,
                    1 => Mode::Unauthorized,
                    _ => Mode::Forward,
                };
                s.lock().unwrap().push(mode);
                let (hostport, expected) = (hostport.clone(), expected.clone());
                std::thread::spawn(move || {
                    let _ = serve(conn, mode, &hostport, &expected);
                });
            }
        });
        Ok(AuthProxy { url, mode, seen })
    }

    pub fn set(&self, mode: Mode) {
        self.mode.store(mode as u8, Ordering::SeqCst);
    }

    /// Requests that met `mode`.
    pub fn count(&self, mode: Mode) -> usize {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|m| **m == mode)
            .count()
    }
}

fn b64(data: &[u8]) -> String {
    const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in data.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= c.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn serve(mut conn: TcpStream, mode: Mode, upstream: &str, expected: &str) -> Result<()> {
    if mode == Mode::Down {
        conn.shutdown(Shutdown::Both)?;
        return Ok(());
    }
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    conn.set_write_timeout(Some(Duration::from_secs(10)))?;
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = conn.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let authorized = text
        .lines()
        .filter_map(|l| l.split_once(':'))
        .any(|(k, v)| {
            k.eq_ignore_ascii_case("authorization") && v.trim().to_lowercase() == expected
        });
    if mode == Mode::Unauthorized || !authorized {
        let body = r#"{"error_code":401,"message":"Unauthorized"}"#;
        write!(
            conn,
            "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"registry\"\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )?;
        return Ok(());
    }
    // GET requests only (no body): the request line and headers, made one-shot
    let mut lines = text.split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    let addr = std::net::ToSocketAddrs::to_socket_addrs(upstream)?
        .next()
        .ok_or_else(|| anyhow!("no address for {upstream}"))?;
    let mut up = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    up.set_read_timeout(Some(Duration::from_secs(10)))?;
    up.set_write_timeout(Some(Duration::from_secs(10)))?;
    write!(up, "{request_line}\r\nHost: {upstream}\r\nAccept: application/json\r\nConnection: close\r\n\r\n")?;
    let mut resp = Vec::new();
    up.read_to_end(&mut resp)?;
    conn.write_all(&resp)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64() {
        assert_eq!(super::b64(b"u:p"), "dTpw");
        assert_eq!(super::b64(b"user:pw"), "dXNlcjpwdw==");
    }
}

/// `produce.py` (beside this file): the same Debezium-shaped change events in
/// one format, framed by Confluent's Python serializers.
pub const PRODUCE_PY: &str = include_str!("produce.py");

/// Records of `produce.py`.
pub const PRODUCED: i64 = 7;

/// The longest `produce.py` may run: it produces 7 records and makes a few
/// registry requests (each with a 10 s timeout and 2 retries in the client).
pub const PRODUCE_TIMEOUT: Duration = Duration::from_secs(120);

/// Runs `produce.py` in the services venv (with Confluent's serializers
/// installed): `format` is `json`, `avro`, `json-schema` or `protobuf`.
/// Bounded: past [`PRODUCE_TIMEOUT`] it is killed, and the error shows the
/// step it was at (it says each one on stderr before taking it, and Python's
/// faulthandler prints where it stood shortly before the deadline).
pub fn produce_with_python(brokers: &str, registry: &str, format: &str, topic: &str) -> Result<()> {
    static INSTALL: Mutex<()> = Mutex::new(());
    let script = crate::services::script();
    let out = {
        let _one_at_a_time = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
        let mut cmd = Command::new(&script);
        cmd.args(["install", "registry-clients"]);
        crate::smt_process::run_bounded(
            cmd,
            "scripts/services install registry-clients (pip)",
            Duration::from_secs(600),
        )?
    };
    if !out.status.success() {
        bail!(
            "installing the registry clients: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let mut cmd = Command::new(&script);
    cmd.args(["python", "-c", PRODUCE_PY, brokers, registry, format, topic])
        .env(
            "SMT_PRODUCE_TRACEBACK_AFTER_S",
            (PRODUCE_TIMEOUT.as_secs() - 10).to_string(),
        );
    let out = crate::smt_process::run_bounded(
        cmd,
        &format!("produce.py {format} {topic} (Confluent's serializers, registry {registry})"),
        PRODUCE_TIMEOUT,
    )
    .map_err(|e| match registry_thread_dump() {
        Some(dump) => e.context(dump),
        None => e,
    })?;
    if !out.status.success() {
        bail!(
            "produce.py {format} {topic} failed ({}): {}{}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout),
            registry_thread_dump()
                .map(|d| format!("\n({d})"))
                .unwrap_or_default()
        );
    }
    Ok(())
}

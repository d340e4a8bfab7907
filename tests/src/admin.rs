//! Raw HTTP requests to the admin endpoint of a running `smt`, with full
//! control of the headers (`Host`, `Origin`, `Authorization`): what the
//! security tests need and an HTTP client library would not let them send.

use std::io::{Read, Write};
use std::time::Duration;

use anyhow::{anyhow, Result};
use serde_json::Value;

/// Sends `method path` with exactly `headers` (plus `Connection: close` and
/// `Content-Length`) and `body`; returns (status, body as JSON or a string).
pub fn request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<(u16, Value)> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut head = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    s.write_all(head.as_bytes())?;
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
        .map(|(_, b)| b)
        .unwrap_or_default();
    Ok((
        status,
        serde_json::from_str(body).unwrap_or_else(|_| Value::String(body.to_owned())),
    ))
}

/// A request from a well-behaved local client: `Host: localhost`, the bearer
/// token when given.
pub fn call(
    port: u16,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &[u8],
) -> Result<(u16, Value)> {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("Host", "localhost")];
    if let Some(a) = &auth {
        headers.push(("Authorization", a.as_str()));
    }
    request(port, method, path, &headers, body)
}

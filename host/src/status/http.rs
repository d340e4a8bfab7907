//! The smallest HTTP/1.1 client the admin commands need (`smt status`):
//! plain HTTP to the admin listener (which speaks nothing else), one
//! request per connection, a bearer token when given. The token is sent,
//! never printed: errors name the URL and the status only.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use anyhow::{anyhow, bail, Context};

/// An admin endpoint: `http://host:port` (a trailing path is refused).
#[derive(Debug, Clone)]
pub struct Endpoint {
    host: String,
    port: u16,
}

impl Endpoint {
    pub fn parse(url: &str) -> anyhow::Result<Self> {
        let rest = url.strip_prefix("http://").ok_or_else(|| {
            anyhow!("--admin {url}: the admin endpoint speaks plain HTTP: give http://host:port")
        })?;
        let authority = rest.trim_end_matches('/');
        if authority.contains('/') || authority.is_empty() {
            bail!("--admin {url}: give the endpoint only (http://host:port), no path");
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => (
                h.to_owned(),
                p.parse::<u16>()
                    .map_err(|_| anyhow!("--admin {url}: bad port `{p}`"))?,
            ),
            _ => (authority.to_owned(), 80),
        };
        Ok(Endpoint { host, port })
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}:{}{path}", self.host, self.port)
    }

    /// `method path` with `body`: (status, body text).
    pub fn request(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: &[u8],
        timeout: Duration,
    ) -> anyhow::Result<(u16, String)> {
        let url = self.url(path);
        let host = self.host.trim_start_matches('[').trim_end_matches(']');
        let addr = (host, self.port)
            .to_socket_addrs()
            .with_context(|| format!("cannot resolve {url}"))?
            .next()
            .ok_or_else(|| anyhow!("cannot resolve {url}"))?;
        let mut s = TcpStream::connect_timeout(&addr, timeout)
            .with_context(|| format!("cannot connect to {url} (is `smt run` running?)"))?;
        s.set_read_timeout(Some(timeout))?;
        s.set_write_timeout(Some(timeout))?;
        let auth = token
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}:{}\r\nConnection: close\r\nAccept: application/json\r\n{auth}Content-Length: {}\r\n\r\n",
            self.host,
            self.port,
            body.len()
        );
        s.write_all(head.as_bytes())
            .and_then(|()| s.write_all(body))
            .with_context(|| format!("sending to {url}"))?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw)
            .with_context(|| format!("reading the answer of {url}"))?;
        parse_response(&raw).with_context(|| format!("the answer of {url}"))
    }
}

/// (status, body) of a whole HTTP/1.1 response (`Content-Length`, chunked or to EOF).
fn parse_response(raw: &[u8]) -> anyhow::Result<(u16, String)> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| anyhow!("no HTTP header"))?;
    let head = std::str::from_utf8(&raw[..split]).context("the header is not text")?;
    let body = &raw[split + 4..];
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| anyhow!("not an HTTP status line"))?;
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    let body = if chunked {
        dechunk(body)?
    } else {
        body.to_vec()
    };
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

fn dechunk(mut body: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = body
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or_else(|| anyhow!("a truncated chunk"))?;
        let size_text = std::str::from_utf8(&body[..line_end])?;
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| anyhow!("a bad chunk size `{size_text}`"))?;
        body = &body[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        if body.len() < size {
            bail!("a truncated chunk");
        }
        out.extend_from_slice(&body[..size]);
        body = body.get(size + 2..).unwrap_or(&[]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse() {
        let e = Endpoint::parse("http://127.0.0.1:9464/").unwrap();
        assert_eq!((e.host.as_str(), e.port), ("127.0.0.1", 9464));
        let e = Endpoint::parse("http://[::1]:9").unwrap();
        assert_eq!((e.host.as_str(), e.port), ("[::1]", 9));
        assert!(Endpoint::parse("https://x:1").is_err());
        assert!(Endpoint::parse("http://x:1/status").is_err());
        assert!(Endpoint::parse("http://x:port").is_err());
    }

    #[test]
    fn responses_parse_with_length_or_chunks() {
        let (s, b) = parse_response(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}").unwrap();
        assert_eq!((s, b.as_str()), (200, "{}"));
        let (s, b) = parse_response(
            b"HTTP/1.1 401 Unauthorized\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=1\r\nde\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!((s, b.as_str()), (401, "abcde"));
        assert!(parse_response(b"garbage").is_err());
    }
}

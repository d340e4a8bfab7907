//! A real browser for the status-page test: headless Chromium (the Debian
//! package `chromium`, installed by `scripts/setup`) driven over the Chrome
//! DevTools Protocol on a WebSocket. Pages are loaded and run by the browser;
//! the test reads the live DOM with `Runtime.evaluate`, clicks with real
//! mouse events (`Input.dispatchMouseEvent` at the element's position),
//! types with `Input.insertText` and takes screenshots. The browser and its
//! profile directory go away on drop.
//!
//! CDP over `tungstenite` rather than a WebDriver client: the smallest
//! addition to the build (a WebDriver client brings an HTTP client stack and
//! ICU data) and no `chromedriver` process.

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use base64::Engine as _;
use serde_json::{json, Value};
use tungstenite::{Message, WebSocket};

use crate::smt_process::wait_for;

/// Where tests leave files for people (screenshots): `SMT_TEST_OUTPUT`, or
/// `test-output/` in the target directory.
pub fn output_dir() -> PathBuf {
    let dir = match std::env::var_os("SMT_TEST_OUTPUT") {
        Some(d) => PathBuf::from(d),
        None => {
            let exe = std::env::current_exe().expect("the test executable's path");
            // target/<profile>/deps/<test> -> target/test-output
            exe.ancestors()
                .nth(3)
                .expect("target/<profile>/deps")
                .join("test-output")
        }
    };
    std::fs::create_dir_all(&dir).expect("creating the test output directory");
    dir
}

/// The Chromium binary: `SMT_CHROMIUM`, else `chromium` on the PATH.
fn chromium() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("SMT_CHROMIUM") {
        return Ok(PathBuf::from(p));
    }
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        let found = std::env::var_os("PATH").and_then(|path| {
            std::env::split_paths(&path)
                .map(|d| d.join(name))
                .find(|p| p.is_file())
        });
        if let Some(p) = found {
            return Ok(p);
        }
    }
    bail!(
        "Chromium is missing: `apt-get install chromium` (scripts/setup does), or set SMT_CHROMIUM"
    )
}

/// A WebSocket to DevTools at `url` (on `port` of the loopback interface).
fn connect(url: &str, port: u16) -> Result<WebSocket<TcpStream>> {
    let stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    let (ws, _) = tungstenite::client(url, stream)
        .map_err(|e| anyhow!("connecting to DevTools at {url}: {e}"))?;
    Ok(ws)
}

/// A headless Chromium with one page, driven over CDP.
pub struct Browser {
    child: Child,
    ws: WebSocket<TcpStream>,
    next_id: u64,
}

impl Browser {
    /// Starts Chromium with a fresh profile in `dir` and attaches to its page.
    pub fn launch(dir: &Path) -> Result<Browser> {
        let profile = dir.join("chromium-profile");
        std::fs::create_dir_all(&profile)?;
        let mut cmd = Command::new(chromium()?);
        cmd.args([
            "--headless=new",
            "--disable-gpu",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-extensions",
            "--disable-background-networking",
            "--window-size=1400,900",
            "--remote-debugging-address=127.0.0.1",
            "--remote-debugging-port=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("about:blank")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
        // Chromium's sandbox refuses to run as root (CI containers).
        if unsafe { libc::geteuid() } == 0 {
            cmd.arg("--no-sandbox");
        }
        unsafe {
            use std::os::unix::process::CommandExt;
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mut child = cmd.spawn().context("starting chromium")?;
        let stderr = child.stderr.take().expect("piped stderr");
        // "DevTools listening on ws://127.0.0.1:PORT/devtools/browser/ID"
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("DevTools listening on ") {
                    let _ = tx.send(url.trim().to_owned());
                }
            }
        });
        let browser_url = rx
            .recv_timeout(Duration::from_secs(60))
            .map_err(|_| anyhow!("chromium did not say where DevTools listen within 60 s"))?;
        let port: u16 = browser_url
            .trim_start_matches("ws://")
            .split(['/', ':'])
            .nth(1)
            .and_then(|p| p.parse().ok())
            .ok_or_else(|| anyhow!("unexpected DevTools address {browser_url}"))?;
        // The page's socket: its target id from the browser's socket.
        let mut browser = Browser {
            child,
            ws: connect(&browser_url, port)?,
            next_id: 0,
        };
        let page = wait_for("chromium's page target", Duration::from_secs(30), || {
            let targets = browser.call("Target.getTargets", json!({}))?;
            Ok(targets["targetInfos"].as_array().and_then(|ts| {
                ts.iter()
                    .find(|t| t["type"] == "page")
                    .and_then(|t| t["targetId"].as_str())
                    .map(str::to_owned)
            }))
        })?;
        let _ = browser.ws.close(None);
        browser.ws = connect(&format!("ws://127.0.0.1:{port}/devtools/page/{page}"), port)?;
        let mut b = browser;
        b.call("Page.enable", json!({}))?;
        b.call("Runtime.enable", json!({}))?;
        Ok(b)
    }

    /// One CDP command; its `result` (events read meanwhile are dropped).
    pub fn call(&mut self, method: &str, params: Value) -> Result<Value> {
        self.next_id += 1;
        let id = self.next_id;
        let text = json!({"id": id, "method": method, "params": params}).to_string();
        self.ws
            .send(Message::Text(text.into()))
            .with_context(|| format!("sending {method}"))?;
        loop {
            let msg = self
                .ws
                .read()
                .with_context(|| format!("reading the answer to {method}"))?;
            let Message::Text(t) = msg else { continue };
            let v: Value = serde_json::from_str(t.as_str())?;
            if v["id"] != json!(id) {
                continue;
            }
            if let Some(e) = v.get("error") {
                bail!("{method}: {e}");
            }
            return Ok(v["result"].clone());
        }
    }

    /// Loads `url` and waits until the document is complete.
    pub fn open(&mut self, url: &str) -> Result<()> {
        self.call("Page.navigate", json!({"url": url}))?;
        wait_for("the page to load", Duration::from_secs(30), || {
            Ok((self.eval("document.readyState")? == json!("complete")).then_some(()))
        })
    }

    /// Evaluates `expression` in the page (promises awaited); its value as JSON.
    pub fn eval(&mut self, expression: &str) -> Result<Value> {
        let r = self.call(
            "Runtime.evaluate",
            json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
        )?;
        if let Some(e) = r.get("exceptionDetails") {
            bail!("evaluating `{expression}`: {e}");
        }
        Ok(r["result"]["value"].clone())
    }

    /// The text of the first element matching `selector` (`None`: no such element).
    pub fn text(&mut self, selector: &str) -> Result<Option<String>> {
        let sel = serde_json::to_string(selector)?;
        let v = self.eval(&format!(
            "(() => {{ const e = document.querySelector({sel}); return e ? e.textContent : null; }})()"
        ))?;
        Ok(v.as_str().map(str::to_owned))
    }

    /// The value of attribute `name` of the first element matching `selector`.
    pub fn attribute(&mut self, selector: &str, name: &str) -> Result<Option<String>> {
        let (sel, name) = (
            serde_json::to_string(selector)?,
            serde_json::to_string(name)?,
        );
        let v = self.eval(&format!(
            "(() => {{ const e = document.querySelector({sel}); return e ? e.getAttribute({name}) : null; }})()"
        ))?;
        Ok(v.as_str().map(str::to_owned))
    }

    /// Clicks the middle of the first element matching `selector` with the
    /// mouse (pressed and released), as a user would.
    pub fn click(&mut self, selector: &str) -> Result<()> {
        let sel = serde_json::to_string(selector)?;
        let at = self.eval(&format!(
            "(() => {{ const e = document.querySelector({sel}); if (!e) return null; \
             e.scrollIntoView({{block: 'center'}}); const r = e.getBoundingClientRect(); \
             return [r.left + r.width / 2, r.top + r.height / 2]; }})()"
        ))?;
        let (Some(x), Some(y)) = (at[0].as_f64(), at[1].as_f64()) else {
            bail!("no element {selector} to click");
        };
        for kind in ["mouseMoved", "mousePressed", "mouseReleased"] {
            self.call(
                "Input.dispatchMouseEvent",
                json!({"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1}),
            )?;
        }
        Ok(())
    }

    /// Clicks into the element matching `selector` and types `text`.
    pub fn type_into(&mut self, selector: &str, text: &str) -> Result<()> {
        self.click(selector)?;
        self.call("Input.insertText", json!({"text": text}))?;
        Ok(())
    }

    /// A PNG of the page's viewport, written to `path`.
    pub fn screenshot(&mut self, path: &Path) -> Result<()> {
        let r = self.call(
            "Page.captureScreenshot",
            json!({"format": "png", "captureBeyondViewport": true}),
        )?;
        let data = r["data"]
            .as_str()
            .ok_or_else(|| anyhow!("no screenshot data"))?;
        let png = base64::engine::general_purpose::STANDARD.decode(data)?;
        std::fs::write(path, png).with_context(|| format!("writing {}", path.display()))
    }

    /// Polls the page until `cond` holds, up to `timeout`.
    pub fn wait_until<T>(
        &mut self,
        what: &str,
        timeout: Duration,
        mut cond: impl FnMut(&mut Browser) -> Result<Option<T>>,
    ) -> Result<T> {
        wait_for(&format!("{what} (in the browser)"), timeout, || cond(self))
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.ws.close(None);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

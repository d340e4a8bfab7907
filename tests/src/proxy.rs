//! A TCP proxy between `smt` and a server, for network faults in the
//! end-to-end tests: answers made slow (a write whose acknowledgement takes
//! longer than a timeout), or every connection cut and refused (the server
//! unreachable) until it is let through again. Threads, no runtime; stopped
//! when dropped.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result;

use crate::services::Services;

#[derive(Default)]
struct State {
    /// Delay of each chunk the server sends back, in ms.
    delay_ms: AtomicU64,
    /// Connections are refused and existing ones cut.
    down: AtomicBool,
    stopped: AtomicBool,
    conns: Mutex<Vec<TcpStream>>,
}

pub struct Proxy {
    pub port: u16,
    state: Arc<State>,
}

impl Proxy {
    /// Listens on a free loopback port and forwards every connection to `target`.
    pub fn start(target: SocketAddr) -> Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        listener.set_nonblocking(true)?;
        let state = Arc::new(State::default());
        let st = state.clone();
        std::thread::spawn(move || {
            while !st.stopped.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((client, _)) => {
                        if st.down.load(Ordering::Relaxed) {
                            drop(client);
                            continue;
                        }
                        let _ = client.set_nonblocking(false);
                        let Ok(server) = TcpStream::connect(target) else {
                            continue;
                        };
                        let _ = client.set_nodelay(true);
                        let _ = server.set_nodelay(true);
                        if let (Ok(c), Ok(s)) = (client.try_clone(), server.try_clone()) {
                            st.conns.lock().unwrap().extend([c, s]);
                        }
                        pump(&st, &client, &server, false);
                        pump(&st, &server, &client, true);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Ok(Proxy { port, state })
    }

    /// `host:port` of the proxy.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Every answer of the server arrives `delay` later (zero: at once);
    /// answers already waiting follow the new delay.
    pub fn set_delay(&self, delay: Duration) {
        self.state
            .delay_ms
            .store(delay.as_millis() as u64, Ordering::Relaxed);
    }

    /// Cuts every connection and refuses new ones (`true`), or lets them through.
    pub fn set_down(&self, down: bool) {
        self.state.down.store(down, Ordering::Relaxed);
        if down {
            for c in self.state.conns.lock().unwrap().drain(..) {
                let _ = c.shutdown(Shutdown::Both);
            }
        }
    }
}

/// The address of the services' MongoDB server (its URI is `mongodb://127.0.0.1:PORT…`).
pub fn mongodb_addr(s: &Services) -> SocketAddr {
    let uri = s.mongodb_uri();
    let hostport = uri
        .trim_start_matches("mongodb://")
        .split(['/', '?'])
        .next()
        .unwrap()
        .to_owned();
    hostport.parse().expect("mongodb://127.0.0.1:PORT")
}

/// The services' MongoDB URI through `proxy` (a direct connection: the
/// proxy's address is not a replica set member's).
pub fn through(s: &Services, proxy: &Proxy) -> String {
    let uri = s.mongodb_uri();
    let direct = uri.replace(&mongodb_addr(s).to_string(), &proxy.addr());
    if direct.contains('?') {
        format!("{direct}&directConnection=true")
    } else {
        format!("{}/?directConnection=true", direct.trim_end_matches('/'))
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.state.stopped.store(true, Ordering::Relaxed);
        self.set_down(true);
    }
}

/// Copies `from` to `to` on a thread of its own; answers (`delayed`) wait the delay.
fn pump(state: &Arc<State>, from: &TcpStream, to: &TcpStream, delayed: bool) {
    let (Ok(mut from), Ok(mut to)) = (from.try_clone(), to.try_clone()) else {
        return;
    };
    let state = state.clone();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if delayed {
                // The fault itself: a slow answer, held until the delay
                // current at each step has passed (so that a shorter delay
                // set later releases it).
                let arrived = std::time::Instant::now();
                while !state.down.load(Ordering::Relaxed)
                    && arrived.elapsed()
                        < Duration::from_millis(state.delay_ms.load(Ordering::Relaxed))
                {
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
            if state.down.load(Ordering::Relaxed) || to.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Both);
        let _ = from.shutdown(Shutdown::Both);
    });
}

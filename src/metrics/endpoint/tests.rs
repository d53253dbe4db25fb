//! The endpoint under hostile clients: idle floods, slow headers, the probes-only listener.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::{EndpointLimits, Paths, bind, serve};
use crate::metrics::Metrics;

/// A running endpoint on a loopback port, served from its own thread and runtime as in the
/// service; stopped when dropped.
struct Endpoint {
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    stop: tokio::sync::watch::Sender<bool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Endpoint {
    fn start(limits: EndpointLimits, paths: Paths) -> Endpoint {
        let listener = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        let metrics = Metrics::new();
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        let m = metrics.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let l = tokio::net::TcpListener::from_std(listener).unwrap();
                serve(l, m, stop_rx, limits, paths).await;
            });
        });
        Endpoint {
            addr,
            metrics,
            stop,
            thread: Some(thread),
        }
    }

    /// One request on a fresh connection: (status, body, time from connect to the end of the
    /// response).
    fn get(&self, path: &str) -> (u16, String, Duration) {
        let start = Instant::now();
        let mut s = TcpStream::connect(self.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        let took = start.elapsed();
        let status = text
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
        (status, body, took)
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Waits (at most 10 s) until the endpoint has closed `n` connections for the cap.
fn wait_for_evictions(e: &Endpoint, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while e.metrics.http_connections_evicted.load(Ordering::Relaxed) < n {
        assert!(
            Instant::now() < deadline,
            "the endpoint did not accept the flood"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Issue 15: the endpoint spawned a task per connection without a cap, so idle clients could
/// hold it. With 1,000 idle connections open (none of them ever sending a byte, and a header
/// timeout longer than the test) `/livez` answers on a fresh connection as fast as it does
/// without them: within 100 ms, or 20 times the unloaded time on a machine too busy for that.
#[test]
fn livez_answers_while_a_thousand_idle_connections_are_held() {
    let limits = EndpointLimits {
        header_read_timeout: Duration::from_secs(60),
        max_connections: 64,
    };
    let e = Endpoint::start(limits, Paths::All);
    let mut unloaded: Vec<Duration> = (0..5).map(|_| e.get("/livez").2).collect();
    unloaded.sort();
    let bound = Duration::from_millis(100).max(unloaded[2] * 20);
    let idle: Vec<TcpStream> = (0..1000)
        .map(|_| TcpStream::connect(e.addr).unwrap())
        .collect();
    wait_for_evictions(&e, 1000 - 64);
    let (status, body, took) = e.get("/livez");
    eprintln!(
        "/livez with 1,000 idle connections: {took:?} (unloaded median {:?})",
        unloaded[2]
    );
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    assert!(
        took < bound,
        "/livez took {took:?} with 1,000 idle connections (bound {bound:?}, unloaded median {:?})",
        unloaded[2]
    );
    // The cap held: the endpoint closed all but the 64 newest idle connections (and one more
    // for the probe itself).
    assert!(e.metrics.http_connections_evicted.load(Ordering::Relaxed) > 1000 - 64);
    let mut first = &idle[0];
    first
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    assert_eq!(
        first.read(&mut [0; 16]).unwrap_or(0),
        0,
        "the oldest is closed"
    );
}

/// Issue 15: hyper ran without a timer, so its header-read timeout never fired and a client
/// trickling a request head held its connection forever. Now it is dropped after the timeout,
/// and so is one that connects and sends nothing.
#[test]
fn a_slow_header_client_is_dropped_after_the_timeout() {
    let timeout = Duration::from_millis(300);
    let limits = EndpointLimits {
        header_read_timeout: timeout,
        max_connections: 64,
    };
    let e = Endpoint::start(limits, Paths::All);
    let mut slow = TcpStream::connect(e.addr).unwrap();
    let silent = TcpStream::connect(e.addr).unwrap();
    let start = Instant::now();
    slow.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = Vec::new();
    // The server closes without a response (hyper may answer 408 first); either way the
    // stream ends.
    let _ = slow.read_to_end(&mut buf);
    let took = start.elapsed();
    assert!(
        took >= timeout.mul_f32(0.9),
        "dropped early, after {took:?}"
    );
    assert!(took < Duration::from_secs(10), "not dropped: {took:?}");
    let text = String::from_utf8_lossy(&buf);
    assert!(
        !text.contains("credtrail_"),
        "a slow client got the metrics: {text}"
    );
    let mut silent = silent;
    silent
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    assert_eq!(
        silent.read(&mut [0; 16]).unwrap_or(0),
        0,
        "the silent one is closed"
    );
    assert!(start.elapsed() < Duration::from_secs(10));
    // The endpoint still serves.
    assert_eq!(e.get("/livez").0, 200);
}

/// Issue 15: probes can have a listener that reveals nothing about the rules.
#[test]
fn the_probes_listener_does_not_serve_metrics() {
    let e = Endpoint::start(EndpointLimits::default(), Paths::Probes);
    e.metrics.rule_matches("Secret read by a new identity", 3);
    assert_eq!(e.get("/metrics").0, 404);
    assert_eq!(e.get("/livez").0, 200);
    assert_eq!(e.get("/readyz").0, 503);
    let all = Endpoint::start(EndpointLimits::default(), Paths::All);
    all.metrics.rule_matches("Secret read by a new identity", 3);
    let (status, body, _) = all.get("/metrics");
    assert_eq!(status, 200);
    assert!(body.contains("Secret read by a new identity"));
}

//! `credtrail health`, the container HEALTHCHECK: exit 0 only when the URL answers 200, exit 1
//! (never 2, which Docker reserves) for an error status, a closed port, silence or a bad URL.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

fn health(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_credtrail"))
        .arg("health")
        .args(args)
        .output()
        .expect("run credtrail health");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A listener on a free loopback port answering every connection with `answer` (after reading
/// the request head), or holding it open without a word when `answer` is `None`.
fn tiny_server(answer: Option<&'static str>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/livez", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap_or(0) == 1 {
                head.push(byte[0]);
            }
            assert!(head.starts_with(b"GET /livez HTTP/1.1\r\n"), "{head:?}");
            match answer {
                Some(a) => {
                    let _ = stream.write_all(a.as_bytes());
                }
                None => std::thread::sleep(Duration::from_secs(10)),
            }
        }
    });
    url
}

#[test]
fn health_exits_0_when_the_endpoint_answers_200() {
    let url = tiny_server(Some(
        "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 3\r\nconnection: close\r\n\r\nok\n",
    ));
    let (code, out, err) = health(&["--url", &url]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("ok"), "{out}");
}

#[test]
fn health_exits_1_naming_the_status_and_reason_on_503() {
    let url = tiny_server(Some(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 16\r\nconnection: close\r\n\r\nstuck: shard-0\n",
    ));
    let (code, _, err) = health(&["--url", &url]);
    assert_eq!(code, 1);
    assert!(
        err.contains("503") && err.contains("stuck: shard-0"),
        "{err}"
    );
}

#[test]
fn health_exits_1_on_a_closed_port() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let (code, _, err) = health(&["--url", &format!("http://127.0.0.1:{port}/livez")]);
    assert_eq!(code, 1);
    assert!(err.contains("cannot connect"), "{err}");
}

#[test]
fn health_gives_up_on_a_silent_server_within_its_timeout() {
    let url = tiny_server(None);
    let start = Instant::now();
    let (code, _, err) = health(&["--url", &url, "--timeout", "500ms"]);
    assert_eq!(code, 1);
    assert!(err.contains("no answer within"), "{err}");
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn health_exits_1_not_2_on_a_bad_url_or_timeout() {
    for args in [
        &["--url", "https://127.0.0.1:9464/livez"][..],
        &["--url", "http://127.0.0.1/livez"],
        &["--timeout", "soon"],
    ] {
        let (code, _, err) = health(args);
        assert_eq!(code, 1, "{args:?}: {err}");
        assert!(err.starts_with("credtrail health: "), "{err}");
    }
}

/// Against the service's own endpoint (hyper, the probes listener): 200 while live, 503 once
/// the service found itself failed, and no wait for a kept-alive connection.
#[test]
fn health_reads_the_real_livez_endpoint() {
    use credtrail::metrics::{self, EndpointLimits, Metrics, Paths};
    let listener = metrics::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let url = format!("http://{}/livez", listener.local_addr().unwrap());
    let m = Metrics::new();
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let served = Arc::clone(&m);
    let server = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let l = tokio::net::TcpListener::from_std(listener).unwrap();
            let limits = EndpointLimits {
                header_read_timeout: Duration::from_secs(5),
                max_connections: 8,
            };
            metrics::serve(l, served, stop_rx, limits, Paths::Probes).await;
        });
    });
    let start = Instant::now();
    let (code, _, err) = health(&["--url", &url]);
    assert_eq!(code, 0, "{err}");
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    m.failed.store(true, Ordering::Relaxed);
    let (code, _, err) = health(&["--url", &url]);
    assert_eq!(code, 1);
    assert!(err.contains("503") && err.contains("failed"), "{err}");
    stop.send(true).unwrap();
    server.join().unwrap();
}

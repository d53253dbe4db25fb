//! `credtrail health`: one HTTP/1.1 GET of the service's `/livez`, for a container
//! `HEALTHCHECK` (the runtime image has no curl). Exit 0 when the endpoint answers 200, 1 for
//! anything else, bad arguments included: Docker reserves exit code 2 of a health check, so this
//! command never uses it (clap's own usage errors aside).
//!
//! Plain `std::net::TcpStream`: the endpoint is ours, on loopback, and speaks HTTP/1.1 with
//! `Connection: close`, so a status line is all there is to read; no client crate is worth it.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Args;

use credtrail::time::Span;

#[derive(Args)]
pub struct HealthArgs {
    /// The endpoint to ask (plain `http://`, no TLS): `/livez` of `metrics.listen` or
    /// `metrics.probes_listen`.
    #[arg(long, default_value = "http://127.0.0.1:9464/livez")]
    url: String,
    /// Give up after this long, connection and answer together (e.g. 3s, 500ms).
    #[arg(long, default_value = "3s")]
    timeout: String,
}

/// Why the endpoint was not found healthy.
#[derive(Debug, thiserror::Error)]
enum ProbeError {
    #[error("--url {url}: {why} (expected http://HOST:PORT/PATH)")]
    Url { url: String, why: &'static str },
    #[error("--timeout {text}: give a duration such as 3s or 500ms, more than zero")]
    Timeout { text: String },
    #[error("{authority}: cannot resolve: {source}")]
    Resolve {
        authority: String,
        source: std::io::Error,
    },
    #[error("{addr}: cannot connect: {source}")]
    Connect {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("{addr}: no answer within {timeout:?}: {source}")]
    Exchange {
        addr: SocketAddr,
        timeout: Duration,
        source: std::io::Error,
    },
    #[error("{addr}: not an HTTP answer: {head:?}")]
    Malformed { addr: SocketAddr, head: String },
    #[error("{url}: {status} {body}")]
    Status {
        url: String,
        status: u16,
        body: String,
    },
}

/// An `http://host:port/path` split into what the request needs.
struct Target {
    /// `host:port`, for resolving and the `Host` header.
    authority: String,
    path: String,
}

/// The most of an answer read: a status line and the start of a short body.
const MAX_ANSWER_BYTES: usize = 4096;

pub fn run(args: HealthArgs) -> ExitCode {
    match probe(&args) {
        Ok(()) => {
            println!("{}: ok", args.url);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("credtrail health: {e}");
            ExitCode::from(1)
        }
    }
}

fn probe(args: &HealthArgs) -> Result<(), ProbeError> {
    let timeout = match Span::parse(&args.timeout) {
        Ok(s) if s.0 > 0 => Duration::from_nanos(s.0 as u64),
        _ => {
            return Err(ProbeError::Timeout {
                text: args.timeout.clone(),
            });
        }
    };
    let target = parse_url(&args.url)?;
    let deadline = Instant::now() + timeout;
    let addrs: Vec<SocketAddr> = target
        .authority
        .to_socket_addrs()
        .map_err(|source| ProbeError::Resolve {
            authority: target.authority.clone(),
            source,
        })?
        .collect();
    // `localhost` may resolve to ::1 and 127.0.0.1 while the service listens on one of them.
    let mut last = None;
    for addr in addrs {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        match TcpStream::connect_timeout(&addr, left) {
            Ok(stream) => return exchange(stream, addr, &target, &args.url, deadline, timeout),
            Err(source) => last = Some(ProbeError::Connect { addr, source }),
        }
    }
    Err(last.unwrap_or_else(|| ProbeError::Resolve {
        authority: target.authority.clone(),
        source: std::io::Error::new(std::io::ErrorKind::NotFound, "no address"),
    }))
}

fn parse_url(url: &str) -> Result<Target, ProbeError> {
    let bad = |why| ProbeError::Url {
        url: url.to_string(),
        why,
    };
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| bad("not http://"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/livez"),
    };
    if authority.is_empty() {
        return Err(bad("no host"));
    }
    // A port is required: the service has no default one worth guessing.
    let port = authority.rsplit_once(':').map(|(_, p)| p);
    if port.is_none_or(|p| p.parse::<u16>().is_err()) {
        return Err(bad("no port"));
    }
    if path.bytes().any(|b| b.is_ascii_control() || b == b' ') {
        return Err(bad("a path with spaces or control characters"));
    }
    Ok(Target {
        authority: authority.to_string(),
        path: path.to_string(),
    })
}

fn exchange(
    mut stream: TcpStream,
    addr: SocketAddr,
    target: &Target,
    url: &str,
    deadline: Instant,
    timeout: Duration,
) -> Result<(), ProbeError> {
    let io = |source| ProbeError::Exchange {
        addr,
        timeout,
        source,
    };
    let timed_out = || std::io::Error::new(std::io::ErrorKind::TimedOut, "deadline passed");
    let left = |deadline: Instant| {
        let d = deadline.saturating_duration_since(Instant::now());
        if d.is_zero() { None } else { Some(d) }
    };
    stream
        .set_write_timeout(Some(left(deadline).ok_or_else(timed_out).map_err(io)?))
        .map_err(io)?;
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: credtrail-health\r\nConnection: close\r\n\r\n",
        target.path, target.authority
    );
    stream.write_all(request.as_bytes()).map_err(io)?;
    let mut answer = Vec::with_capacity(256);
    let mut buf = [0u8; 1024];
    // Read until the server closes, the buffer cap, or the deadline: whichever comes first.
    while answer.len() < MAX_ANSWER_BYTES {
        let Some(d) = left(deadline) else {
            if answer.is_empty() {
                return Err(io(timed_out()));
            }
            break;
        };
        stream.set_read_timeout(Some(d)).map_err(io)?;
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            // A status line already read is the answer, whatever happens to the rest.
            Err(_) if answer.windows(2).any(|w| w == b"\r\n") => break,
            Err(e) => return Err(io(e)),
        }
    }
    let text = String::from_utf8_lossy(&answer);
    let status_line = text.lines().next().unwrap_or("");
    let status = status_line
        .strip_prefix("HTTP/1.")
        .and_then(|s| s.get(2..5))
        .and_then(|code| code.parse::<u16>().ok())
        .ok_or_else(|| ProbeError::Malformed {
            addr,
            head: status_line.chars().take(80).collect(),
        })?;
    if status == 200 {
        return Ok(());
    }
    // The body of a 503 says why (`stuck: shard-0`, `failed: see the log`): keep its first line.
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.lines().next().unwrap_or("").trim())
        .unwrap_or("");
    Err(ProbeError::Status {
        url: url.to_string(),
        status,
        body: body.chars().take(200).collect(),
    })
}

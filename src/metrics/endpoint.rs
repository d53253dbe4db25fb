//! The HTTP endpoint: `/metrics`, `/livez` and `/readyz` over hyper, with the limits that keep
//! a slow or hostile client from starving it.
//!
//! Each listener holds at most [`EndpointLimits::max_connections`] connections; a connection
//! beyond the cap closes the oldest one (a scrape or probe takes milliseconds, so the oldest is
//! the one idling or trickling its headers). A client that has not sent a whole request head
//! within [`EndpointLimits::header_read_timeout`] (after connecting, or after its previous
//! response) is dropped. Together they bound what any number of clients can hold, and a fresh
//! probe is always accepted and answered.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::{Metrics, MetricsError};

/// What an endpoint listener will hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EndpointLimits {
    /// A connection that has not sent a complete request head in this time is closed.
    pub header_read_timeout: Duration,
    /// Open connections per listener; at the cap the oldest is closed for a new one. At least 1.
    pub max_connections: usize,
}

impl Default for EndpointLimits {
    fn default() -> Self {
        EndpointLimits {
            header_read_timeout: Duration::from_secs(5),
            max_connections: 64,
        }
    }
}

/// The paths a listener answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Paths {
    /// `/metrics`, `/livez`, `/readyz`.
    All,
    /// `/livez` and `/readyz` only (404 for `/metrics`): a listener for probes, which reveals
    /// nothing about the rules.
    Probes,
}

/// The largest request head accepted: a probe or scrape needs a few hundred bytes (hyper's
/// smallest read buffer is 8 KiB).
const MAX_HEAD_BYTES: usize = 8192;

/// Answers one request: `/metrics`, `/livez`, `/readyz`, or 404.
pub fn respond(metrics: &Metrics, path: &str) -> (u16, &'static str, String) {
    match path {
        "/metrics" => (200, "text/plain; version=0.0.4", metrics.render()),
        "/livez" if metrics.failed.load(Ordering::Relaxed) => {
            (503, "text/plain", "failed: see the log\n".into())
        }
        "/livez" if !metrics.heartbeats.stuck().is_empty() => (
            503,
            "text/plain",
            format!("stuck: {}\n", metrics.heartbeats.stuck().join(", ")),
        ),
        "/livez" => (200, "text/plain", "ok\n".into()),
        "/readyz" if metrics.is_ready() => (200, "text/plain", "ready\n".into()),
        "/readyz" => (503, "text/plain", "not ready\n".into()),
        _ => (404, "text/plain", "not found\n".into()),
    }
}

/// Serves `paths` on `listener` until `shutdown` changes, within `limits`; connections still
/// open then are closed. Runs inside a tokio runtime with time enabled.
pub async fn serve(
    listener: tokio::net::TcpListener,
    metrics: Arc<Metrics>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
    limits: EndpointLimits,
    paths: Paths,
) {
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(MAX_HEAD_BYTES);
    let cap = limits.max_connections.max(1);
    let mut open = tokio::task::JoinSet::new();
    // Oldest first; finished connections are removed as the join set reports them.
    let mut order: VecDeque<(tokio::task::Id, tokio::task::AbortHandle)> = VecDeque::new();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            Some(done) = open.join_next_with_id() => {
                let id = match done {
                    Ok((id, ())) => id,
                    Err(e) => e.id(),
                };
                order.retain(|(i, _)| *i != id);
                continue;
            }
            _ = shutdown.changed() => return,
        };
        // Accept errors (out of descriptors, a reset before accept) concern one connection.
        let Ok((stream, _)) = accepted else { continue };
        while order.len() >= cap {
            let Some((_, oldest)) = order.pop_front() else {
                break;
            };
            oldest.abort();
            Metrics::add(&metrics.http_connections_evicted, 1);
        }
        let metrics = metrics.clone();
        let conn = builder.serve_connection(
            hyper_util::rt::TokioIo::new(stream),
            hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let resp = answer(&metrics, paths, req.uri().path());
                async move { Ok::<_, std::convert::Infallible>(resp) }
            }),
        );
        let handle = open.spawn(async move {
            // A client that hangs up, times out or sends garbage is its own problem.
            let _ = conn.await;
        });
        order.push_back((handle.id(), handle));
    }
}

fn answer(
    metrics: &Metrics,
    paths: Paths,
    path: &str,
) -> hyper::Response<http_body_util::Full<hyper::body::Bytes>> {
    let (status, content_type, body) = match (paths, path) {
        (Paths::Probes, "/metrics") => (404, "text/plain", "not found\n".to_string()),
        _ => respond(metrics, path),
    };
    let mut resp = hyper::Response::new(http_body_util::Full::new(body.into()));
    *resp.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::OK);
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(content_type),
    );
    resp
}

/// Binds `addr` (blocking, so a bad address fails the start loudly).
pub fn bind(addr: SocketAddr) -> Result<std::net::TcpListener, MetricsError> {
    let l =
        std::net::TcpListener::bind(addr).map_err(|source| MetricsError::Bind { addr, source })?;
    l.set_nonblocking(true)
        .map_err(|source| MetricsError::Bind { addr, source })?;
    Ok(l)
}

#[cfg(test)]
mod tests;

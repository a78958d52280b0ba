//! Prometheus text metrics for relay operators, served by hyper (HTTP/1): a client gets
//! [`HEADER_TIMEOUT`] to send its request and [`CONNECTION_TIMEOUT`] in all, so a slow or
//! half-open client holds one task, never the listener; an accept error is logged and
//! waited out, never spun on.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use libp2p::relay;

use crate::registry::Outcome;

/// How long a client has to send its request headers.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one metrics connection may last.
pub const CONNECTION_TIMEOUT: Duration = Duration::from_secs(15);
/// How long to wait after an accept error (out of file descriptors, say) before the next.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(200);

#[derive(Default)]
struct Counters {
    connections: AtomicI64,
    connections_denied_total: AtomicU64,
    reservations: AtomicI64,
    reservations_total: AtomicU64,
    circuits: AtomicI64,
    circuits_total: AtomicU64,
    circuits_denied_total: AtomicU64,
    codes: AtomicI64,
    code_requests_total: AtomicU64,
    code_requests_refused_total: AtomicU64,
    code_requests_rate_limited_total: AtomicU64,
}

/// Shared counters, updated by the swarm loop and read by the HTTP handler.
#[derive(Clone, Default)]
pub struct Stats(Arc<Counters>);

impl Stats {
    /// Counts a newly established connection to the relay.
    pub fn connection_opened(&self) {
        self.0.connections.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a closed connection.
    pub fn connection_closed(&self) {
        self.0.connections.fetch_sub(1, Ordering::Relaxed);
    }

    /// Counts an inbound connection refused by a limit.
    pub fn connection_denied(&self) {
        self.0
            .connections_denied_total
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one short-code request and what became of it; `codes` is the registry's size.
    pub fn code_request(&self, outcome: Outcome, codes: usize) {
        let c = &self.0;
        c.code_requests_total.fetch_add(1, Ordering::Relaxed);
        match outcome {
            Outcome::Served => {}
            Outcome::Refused => {
                c.code_requests_refused_total
                    .fetch_add(1, Ordering::Relaxed);
            }
            Outcome::RateLimited => {
                c.code_requests_rate_limited_total
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
        self.codes(codes);
    }

    /// Sets the number of registered codes.
    pub fn codes(&self, codes: usize) {
        self.0
            .codes
            .store(i64::try_from(codes).unwrap_or(i64::MAX), Ordering::Relaxed);
    }

    /// Updates the reservation and circuit gauges and totals from one relay behaviour event.
    pub fn relay_event(&self, event: &relay::Event) {
        let c = &self.0;
        match event {
            relay::Event::ReservationReqAccepted { renewed: false, .. } => {
                c.reservations.fetch_add(1, Ordering::Relaxed);
                c.reservations_total.fetch_add(1, Ordering::Relaxed);
            }
            relay::Event::ReservationClosed { .. } | relay::Event::ReservationTimedOut { .. } => {
                c.reservations.fetch_sub(1, Ordering::Relaxed);
            }
            relay::Event::CircuitReqAccepted { .. } => {
                c.circuits.fetch_add(1, Ordering::Relaxed);
                c.circuits_total.fetch_add(1, Ordering::Relaxed);
            }
            relay::Event::CircuitClosed { .. } => {
                c.circuits.fetch_sub(1, Ordering::Relaxed);
            }
            relay::Event::CircuitReqDenied { .. } => {
                c.circuits_denied_total.fetch_add(1, Ordering::Relaxed);
            }
            _ => {}
        }
    }

    fn render(&self) -> String {
        let c = &self.0;
        let gauges = [
            ("connections", c.connections.load(Ordering::Relaxed)),
            ("reservations", c.reservations.load(Ordering::Relaxed)),
            ("circuits", c.circuits.load(Ordering::Relaxed)),
            ("codes", c.codes.load(Ordering::Relaxed)),
        ];
        let counters = [
            ("connections_denied_total", &c.connections_denied_total),
            ("reservations_total", &c.reservations_total),
            ("circuits_total", &c.circuits_total),
            ("circuits_denied_total", &c.circuits_denied_total),
            ("code_requests_total", &c.code_requests_total),
            (
                "code_requests_refused_total",
                &c.code_requests_refused_total,
            ),
            (
                "code_requests_rate_limited_total",
                &c.code_requests_rate_limited_total,
            ),
        ];
        let mut out = String::new();
        for (name, value) in gauges {
            out.push_str(&format!(
                "# TYPE whatnext_relay_{name} gauge\nwhatnext_relay_{name} {value}\n"
            ));
        }
        for (name, value) in counters {
            let value = value.load(Ordering::Relaxed);
            out.push_str(&format!(
                "# TYPE whatnext_relay_{name} counter\nwhatnext_relay_{name} {value}\n"
            ));
        }
        out
    }
}

/// Binds `addr` and answers every HTTP request with the metrics text.
pub async fn serve(addr: SocketAddr, stats: Stats) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, "serving metrics");
    tokio::spawn(async move {
        loop {
            let socket = match listener.accept().await {
                Ok((socket, _)) => socket,
                Err(error) => {
                    tracing::warn!(%error, "metrics: cannot accept a connection");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            };
            let stats = stats.clone();
            tokio::spawn(async move {
                let service = service_fn(move |_: Request<hyper::body::Incoming>| {
                    let body = stats.render();
                    async move {
                        let response = Response::builder()
                            .header("content-type", "text/plain; version=0.0.4")
                            .body(body);
                        Ok::<_, Infallible>(response.unwrap_or_default())
                    }
                });
                let connection = http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(HEADER_TIMEOUT)
                    .keep_alive(false)
                    .serve_connection(TokioIo::new(socket), service);
                let _ = tokio::time::timeout(CONNECTION_TIMEOUT, connection).await;
            });
        }
    });
    Ok(())
}

//! Prometheus text metrics for relay operators, over a minimal HTTP endpoint.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use libp2p::relay;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Default)]
struct Counters {
    connections: AtomicI64,
    reservations: AtomicI64,
    reservations_total: AtomicU64,
    circuits: AtomicI64,
    circuits_total: AtomicU64,
    circuits_denied_total: AtomicU64,
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
        let g = |a: &AtomicI64| a.load(Ordering::Relaxed);
        let t = |a: &AtomicU64| a.load(Ordering::Relaxed);
        format!(
            "# TYPE whatnext_relay_connections gauge\nwhatnext_relay_connections {}\n\
             # TYPE whatnext_relay_reservations gauge\nwhatnext_relay_reservations {}\n\
             # TYPE whatnext_relay_reservations_total counter\nwhatnext_relay_reservations_total {}\n\
             # TYPE whatnext_relay_circuits gauge\nwhatnext_relay_circuits {}\n\
             # TYPE whatnext_relay_circuits_total counter\nwhatnext_relay_circuits_total {}\n\
             # TYPE whatnext_relay_circuits_denied_total counter\nwhatnext_relay_circuits_denied_total {}\n",
            g(&c.connections),
            g(&c.reservations),
            t(&c.reservations_total),
            g(&c.circuits),
            t(&c.circuits_total),
            t(&c.circuits_denied_total),
        )
    }
}

/// Binds `addr` and answers every HTTP request with the metrics text.
pub async fn serve(addr: SocketAddr, stats: Stats) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, "serving metrics");
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                continue;
            };
            let body = stats.render();
            tokio::spawn(async move {
                let mut request = [0u8; 1024];
                let _ = socket.read(&mut request).await;
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/plain; version=0.0.4\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(response.as_bytes()).await;
            });
        }
    });
    Ok(())
}

//! Reservations and circuits held per network at once. libp2p's relay counts them per peer
//! and in total, but peer ids cost nothing: without this, one address could take every
//! circuit slot for an hour. The check runs as a `relay::RateLimiter` (the only hook the
//! relay offers, and it sees the remote address); the counts follow the relay's events.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use libp2p::{Multiaddr, PeerId};

use crate::prefix::Prefix;

/// Forget the networks of peers holding nothing once this many are remembered.
const REMEMBER_AT_MOST: usize = 10_000;

#[derive(Default)]
struct Inner {
    network_of: HashMap<PeerId, Prefix>,
    by_peer: HashMap<PeerId, usize>,
    by_network: HashMap<Prefix, usize>,
}

/// What one network holds of one resource (reservations, or circuits by their source).
#[derive(Clone)]
pub struct HeldPerNetwork {
    max: usize,
    /// A peer already holding one may ask again (a reservation renewal looks like a new one).
    holders_may_renew: bool,
    inner: Arc<Mutex<Inner>>,
}

impl HeldPerNetwork {
    /// At most `max` held at once per network.
    pub fn new(max: usize, holders_may_renew: bool) -> Self {
        Self {
            max,
            holders_may_renew,
            inner: Arc::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// May `peer`, connected from `addr`, take one more? Remembers the peer's network.
    pub fn admits(&self, peer: PeerId, addr: &Multiaddr) -> bool {
        let Some(prefix) = Prefix::of(addr) else {
            return true;
        };
        let mut inner = self.lock();
        if inner.network_of.len() >= REMEMBER_AT_MOST {
            let Inner {
                network_of,
                by_peer,
                ..
            } = &mut *inner;
            network_of.retain(|p, _| by_peer.contains_key(p));
        }
        inner.network_of.insert(peer, prefix);
        if self.holders_may_renew && inner.by_peer.contains_key(&peer) {
            return true;
        }
        inner.by_network.get(&prefix).copied().unwrap_or(0) < self.max
    }

    /// The check as a relay rate limiter.
    pub fn limiter(&self) -> Box<dyn libp2p::relay::RateLimiter> {
        let held = self.clone();
        Box::new(move |peer: PeerId, addr: &Multiaddr, _: Instant| held.admits(peer, addr))
    }

    /// `peer` now holds one more.
    pub fn opened(&self, peer: PeerId) {
        let mut inner = self.lock();
        *inner.by_peer.entry(peer).or_default() += 1;
        if let Some(prefix) = inner.network_of.get(&peer).copied() {
            *inner.by_network.entry(prefix).or_default() += 1;
        }
    }

    /// `peer` holds one fewer.
    pub fn closed(&self, peer: PeerId) {
        let mut inner = self.lock();
        let Some(n) = inner.by_peer.get_mut(&peer) else {
            return;
        };
        *n -= 1;
        if *n == 0 {
            inner.by_peer.remove(&peer);
        }
        if let Some(prefix) = inner.network_of.get(&peer).copied()
            && let Some(n) = inner.by_network.get_mut(&prefix)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                inner.by_network.remove(&prefix);
            }
        }
    }

    /// Updates the reservation counts from a relay event.
    pub fn on_reservation_event(&self, event: &libp2p::relay::Event) {
        use libp2p::relay::Event as E;
        match event {
            E::ReservationReqAccepted {
                src_peer_id,
                renewed: false,
            } => self.opened(*src_peer_id),
            E::ReservationClosed { src_peer_id } | E::ReservationTimedOut { src_peer_id } => {
                self.closed(*src_peer_id)
            }
            _ => {}
        }
    }

    /// Updates the circuit counts (by source) from a relay event.
    pub fn on_circuit_event(&self, event: &libp2p::relay::Event) {
        use libp2p::relay::Event as E;
        match event {
            E::CircuitReqAccepted { src_peer_id, .. } => self.opened(*src_peer_id),
            E::CircuitClosed { src_peer_id, .. } => self.closed(*src_peer_id),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(ip: &str) -> Multiaddr {
        format!("/ip4/{ip}/tcp/1").parse().expect("addr")
    }

    #[test]
    fn fresh_peer_ids_from_one_network_share_its_cap_until_one_closes() {
        let held = HeldPerNetwork::new(2, false);
        let peers: Vec<PeerId> = (0..3).map(|_| PeerId::random()).collect();
        for p in &peers[..2] {
            assert!(held.admits(*p, &addr("10.0.0.1")));
            held.opened(*p);
        }
        assert!(!held.admits(peers[2], &addr("10.0.0.1")));
        assert!(
            !held.admits(peers[0], &addr("10.0.0.1")),
            "a circuit holder gets no extra"
        );
        assert!(held.admits(peers[2], &addr("10.0.0.2")), "another network");
        held.closed(peers[0]);
        assert!(held.admits(peers[2], &addr("10.0.0.1")));
    }

    #[test]
    fn a_reservation_holder_may_renew_at_the_cap() {
        let held = HeldPerNetwork::new(1, true);
        let (a, b) = (PeerId::random(), PeerId::random());
        assert!(held.admits(a, &addr("10.0.0.1")));
        held.opened(a);
        assert!(held.admits(a, &addr("10.0.0.1")), "a renewal");
        assert!(!held.admits(b, &addr("10.0.0.1")));
    }
}

//! The reservation on one of the user's relays: dialling it (the relay manager decides which,
//! and when to retry), listening on its circuit address, and noticing when it goes.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use libp2p::core::transport::ListenerId;
use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};
use tracing::info;

use super::Task;
use crate::NetEvent;
use crate::relays::{RelayManager, Status, Step};

/// The relay side of the task's state.
#[derive(Default)]
pub(super) struct RelayLink {
    pub(super) manager: RelayManager,
    /// The circuit listener we opened on each relay, to know which relay a closed one was.
    circuit_listeners: HashMap<ListenerId, String>,
    /// Relays by peer id, for connection events.
    relay_by_peer: HashMap<PeerId, String>,
    last_statuses: Vec<(String, Status)>,
}

impl RelayLink {
    /// This peer is one of our relays.
    pub(super) fn is_relay(&self, peer: &PeerId) -> bool {
        self.relay_by_peer.contains_key(peer)
    }

    /// The relay we hold a reservation on: its address and peer id.
    pub(super) fn reserved(&self) -> Option<(String, PeerId)> {
        let addr = self.manager.reserved()?;
        relay_peer(addr).map(|(_, peer)| (addr.to_owned(), peer))
    }
}

/// The relay a circuit address or dial goes through: its multiaddr and peer id.
pub(super) fn relay_peer(addr: &str) -> Option<(Multiaddr, PeerId)> {
    let multiaddr: Multiaddr = addr.parse().ok()?;
    let peer = multiaddr.iter().find_map(|p| match p {
        Protocol::P2p(peer) => Some(peer),
        _ => None,
    })?;
    Some((multiaddr, peer))
}

impl Task {
    pub(super) fn publish_statuses(&mut self) {
        let statuses = self.relays.manager.statuses();
        if statuses != self.relays.last_statuses {
            self.relays.last_statuses = statuses.clone();
            self.out.emit(NetEvent::RelayStatus(statuses));
        }
    }

    fn relay_failed(&mut self, addr: &str, reason: String) {
        info!(relay = addr, %reason, "relay link failed");
        self.relays
            .manager
            .failed(addr, reason, Instant::now(), &mut rand::thread_rng());
        self.publish_statuses();
    }

    /// Runs the relay manager's next step; returns when to look again.
    pub(super) fn drive_relays(&mut self) -> Instant {
        let now = Instant::now();
        loop {
            match self.relays.manager.next_step(now) {
                Step::Idle => return now + Duration::from_secs(3600),
                Step::WaitUntil(at) => {
                    self.publish_statuses();
                    return at;
                }
                Step::Dial(addr) => {
                    self.publish_statuses();
                    let Some((multiaddr, peer)) = relay_peer(&addr) else {
                        self.relay_failed(&addr, "the address has no /p2p/<peer id>".into());
                        continue;
                    };
                    self.relays.relay_by_peer.insert(peer, addr.clone());
                    if self.swarm.is_connected(&peer) {
                        self.listen_via(&addr, multiaddr);
                    } else if let Err(e) = self.swarm.dial(multiaddr) {
                        self.relay_failed(&addr, format!("cannot dial: {e}"));
                        continue;
                    }
                    return now + Duration::from_secs(3600);
                }
            }
        }
    }

    /// Asks the relay for a reservation by listening on its circuit address.
    fn listen_via(&mut self, addr: &str, relay: Multiaddr) {
        if self.relays.circuit_listeners.values().any(|a| a == addr) {
            return;
        }
        match self.swarm.listen_on(relay.with(Protocol::P2pCircuit)) {
            Ok(id) => {
                self.relays.circuit_listeners.insert(id, addr.to_owned());
            }
            Err(e) => self.relay_failed(addr, format!("cannot listen through the relay: {e}")),
        }
    }

    /// A connection to `peer` is up; `true` if it is a relay's (then handled here).
    pub(super) fn relay_connected(&mut self, peer: &PeerId) -> bool {
        let Some(addr) = self.relays.relay_by_peer.get(peer).cloned() else {
            return false;
        };
        if self.relays.manager.active_addr() == Some(addr.as_str())
            && let Some((multiaddr, _)) = relay_peer(&addr)
        {
            self.listen_via(&addr, multiaddr);
        }
        true
    }

    /// A connection to `peer` closed; `true` if it was a relay's (then handled here).
    pub(super) fn relay_closed(
        &mut self,
        peer: &PeerId,
        num_established: u32,
        cause: Option<String>,
    ) -> bool {
        let Some(addr) = self.relays.relay_by_peer.get(peer).cloned() else {
            return false;
        };
        if num_established == 0 {
            let reason = cause.unwrap_or_else(|| "the relay closed the connection".to_owned());
            self.relay_failed(&addr, reason);
        }
        true
    }

    /// A dial failed; if it was to a relay, the relay manager hears of it.
    pub(super) fn relay_unreachable(&mut self, peer: &PeerId, error: &str) {
        if let Some(addr) = self.relays.relay_by_peer.get(peer).cloned() {
            self.relay_failed(&addr, format!("cannot connect: {error}"));
        }
    }

    /// A listener closed; if it was a relay's circuit, the reservation is gone.
    pub(super) fn circuit_closed(
        &mut self,
        listener: ListenerId,
        reason: Result<(), std::io::Error>,
    ) {
        if let Some(addr) = self.relays.circuit_listeners.remove(&listener) {
            let reason = match reason {
                Ok(()) => "the reservation ended".to_owned(),
                Err(e) => format!("the reservation failed: {e}"),
            };
            self.relay_failed(&addr, reason);
        }
    }

    /// A relay accepted our reservation; `true` if it is one of ours.
    pub(super) fn reserved(&mut self, relay: &PeerId, renewal: bool) -> bool {
        let Some(addr) = self.relays.relay_by_peer.get(relay).cloned() else {
            return false;
        };
        if !renewal {
            info!(relay = %addr, "reserved a slot on the relay");
        }
        self.relays.manager.reserved_on(&addr);
        self.publish_statuses();
        true
    }
}

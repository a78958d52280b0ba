//! How each (non-relay) peer is connected: direct, relayed or LAN, and the best of them
//! published to Bevy when it changes. Once a direct connection is up, relayed ones close.

use std::collections::{HashMap, HashSet};

use libp2p::core::ConnectedPoint;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::ConnectionId;
use libp2p::{Multiaddr, PeerId};
use tracing::{debug, info};

use super::Task;
use crate::{ConnectionKind, NetEvent};

/// The connection side of the task's state.
#[derive(Default)]
pub(super) struct Connections {
    /// Peers mDNS found on the LAN.
    pub(super) lan_peers: HashSet<PeerId>,
    /// Open connections to each peer, and how each goes.
    links: HashMap<PeerId, HashMap<ConnectionId, ConnectionKind>>,
}

impl Connections {
    fn best(&self, peer: &PeerId) -> Option<ConnectionKind> {
        let links = self.links.get(peer)?;
        [
            ConnectionKind::Lan,
            ConnectionKind::Direct,
            ConnectionKind::Relayed,
        ]
        .into_iter()
        .find(|k| links.values().any(|v| v == k))
    }
}

fn kind_of(
    endpoint: &ConnectedPoint,
    lan_peers: &HashSet<PeerId>,
    peer: &PeerId,
) -> ConnectionKind {
    // An inbound circuit shows the relay in its local address, an outbound one in the
    // remote address.
    let through_relay = |addr: &Multiaddr| addr.iter().any(|p| matches!(p, Protocol::P2pCircuit));
    let relayed = match endpoint {
        ConnectedPoint::Dialer { address, .. } => through_relay(address),
        ConnectedPoint::Listener {
            local_addr,
            send_back_addr,
        } => through_relay(local_addr) || through_relay(send_back_addr),
    };
    if relayed {
        ConnectionKind::Relayed
    } else if lan_peers.contains(peer) {
        ConnectionKind::Lan
    } else {
        ConnectionKind::Direct
    }
}

impl Task {
    fn publish_link(&self, peer: PeerId, before: Option<ConnectionKind>) {
        let now = self.connections.best(&peer);
        if now != before {
            self.out.emit(NetEvent::PeerLink { peer, kind: now });
        }
    }

    pub(super) fn peer_connected(
        &mut self,
        peer: PeerId,
        connection: ConnectionId,
        endpoint: &ConnectedPoint,
    ) {
        let kind = kind_of(endpoint, &self.connections.lan_peers, &peer);
        debug!(%peer, ?kind, "connected");
        let before = self.connections.best(&peer);
        let links = self.connections.links.entry(peer).or_default();
        links.insert(connection, kind);
        if kind != ConnectionKind::Relayed {
            // Requests are spread over every connection to a peer; once a direct one is up
            // (hole punched, or on the LAN), the relayed ones only cost the relay's bandwidth
            // and our latency. The peers dial the relay again if the direct path dies.
            let relayed: Vec<ConnectionId> = links
                .iter()
                .filter(|(_, k)| **k == ConnectionKind::Relayed)
                .map(|(id, _)| *id)
                .collect();
            for id in relayed {
                info!(%peer, ?kind, "a direct connection is up; closing the relayed one");
                self.swarm.close_connection(id);
            }
        }
        self.publish_link(peer, before);
    }

    pub(super) fn peer_closed(&mut self, peer: PeerId, connection: ConnectionId) {
        let before = self.connections.best(&peer);
        if let Some(links) = self.connections.links.get_mut(&peer) {
            links.remove(&connection);
            if links.is_empty() {
                self.connections.links.remove(&peer);
            }
        }
        self.publish_link(peer, before);
    }
}

//! The best current connection to each peer, on the Bevy side.

use std::collections::HashMap;

use bevy::prelude::*;
use whatnext_core::prelude::*;

use crate::{ConnectionKind, NetEvent, peer_of};

/// The best current connection to each peer, kept by [`track_links`] from
/// [`NetEvent::PeerLink`]. A peer missing from the map has no connection.
#[derive(Resource, Default, Debug)]
pub struct PeerLinks(pub HashMap<PeerId, ConnectionKind>);

/// How a participant shows, given the best connection to it: online while there is one,
/// and how it goes (`None`: offline, shown as the relayed way it would come back).
pub fn presence_of(kind: Option<ConnectionKind>) -> Presence {
    Presence {
        online: kind.is_some(),
        connection: kind.map_or(Connection::Relayed, Connection::from),
    }
}

/// Keeps [`PeerLinks`] in step with the network's link events.
pub(crate) fn track_links(mut events: MessageReader<NetEvent>, mut links: ResMut<PeerLinks>) {
    for event in events.read() {
        let NetEvent::PeerLink { peer, kind } = event else {
            continue;
        };
        let peer = peer_of(peer);
        match kind {
            Some(kind) => {
                links.0.insert(peer, *kind);
            }
            None => {
                links.0.remove(&peer);
            }
        }
    }
}

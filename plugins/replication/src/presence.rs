//! What each device knows for itself rather than from the host: participants' presence, and,
//! on the host, playback returning to it when its owner drops.

use bevy::prelude::*;
use whatnext_core::prelude::*;
use whatnext_network::{NetEvent, PeerLinks, peer_of, presence_of};

/// Presence is this device's own knowledge, never replicated: fill it in for mirrored
/// participants from the connections we have.
pub(crate) fn give_presence(
    mut commands: Commands,
    local: Res<LocalPeer>,
    links: Res<PeerLinks>,
    participants: Query<(Entity, &Participant), Without<Presence>>,
) {
    for (entity, p) in &participants {
        let presence = if p.peer == local.peer {
            Presence {
                online: true,
                connection: Connection::Myself,
            }
        } else {
            presence_of(links.0.get(&p.peer).copied())
        };
        commands.entity(entity).insert(presence);
    }
}

/// Participants' presence follows the network's link events: online while a connection is
/// up, and how it goes.
pub(crate) fn follow_links(
    mut events: MessageReader<NetEvent>,
    mut presences: Query<(&Participant, &mut Presence)>,
) {
    for event in events.read() {
        let NetEvent::PeerLink { peer, kind } = event else {
            continue;
        };
        let peer = peer_of(peer);
        for (p, mut presence) in &mut presences {
            if p.peer == peer && presence.connection != Connection::Myself {
                presence.set_if_neq(presence_of(*kind));
            }
        }
    }
}

/// On the authority: when the playback owner drops, playback returns to the host.
pub(crate) fn return_ownership(
    local: Res<LocalPeer>,
    mut sessions: Query<(&Host, &mut PlaybackOwner)>,
    mut events: MessageReader<NetEvent>,
) {
    let Ok((host, mut owner)) = sessions.single_mut() else {
        return;
    };
    if host.0 != local.peer {
        return;
    }
    for event in events.read() {
        if let NetEvent::PeerLink { peer, kind: None } = event
            && owner.0 == peer_of(peer)
        {
            tracing::info!(%peer, "the playback owner dropped; playback returns to the host");
            owner.0 = host.0.clone();
        }
    }
}

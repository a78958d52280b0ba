//! What each device knows for itself rather than from the host: participants' presence, and,
//! on the host, playback returning to it when its owner drops.

use bevy::prelude::*;
use whatnext_core::prelude::*;
use whatnext_network::{ConnectionKind, NetEvent, PeerLinks};

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
            let kind = links.0.get(&p.peer);
            Presence {
                online: kind.is_some(),
                connection: match kind {
                    Some(ConnectionKind::Direct) => Connection::Direct,
                    Some(ConnectionKind::Lan) => Connection::Lan,
                    _ => Connection::Relayed,
                },
            }
        };
        commands.entity(entity).insert(presence);
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
            && owner.0.as_str() == peer
        {
            tracing::info!(%peer, "the playback owner dropped; playback returns to the host");
            owner.0 = host.0.clone();
        }
    }
}

//! What a member's host tells it outside updates: it was removed, the party ended, or the
//! host stepped down to a newer host. Only its host can say so, and only about its session.

use bevy::prelude::*;
use whatnext_core::prelude::*;
use whatnext_network::NetCommand;

use crate::joining::Admitted;
use crate::protocol::{self, SessionRequest, SessionResponse};

/// A member its host removed, or whose host ended the session, leaves it, says why
/// (`removed`, `ended`), and forgets its rejoin link. Only the current host can say so, and
/// only about the current session.
pub(crate) fn leave_when_removed(
    mut commands: Commands,
    mut net: MessageWriter<NetCommand>,
    local: Res<LocalPeer>,
    sessions: Query<(&Session, &Host)>,
    mut requests: MessageReader<protocol::PeerRequest>,
) {
    for protocol::PeerRequest {
        peer,
        reply,
        request,
    } in requests.read()
    {
        let (session, reason) = match request {
            SessionRequest::Removed { session } => (session, LeaveReason::Removed),
            SessionRequest::Ended { session } => (session, LeaveReason::Ended),
            _ => continue,
        };
        let ours = sessions
            .iter()
            .any(|(s, h)| s.id == *session && h.0 == *peer && h.0 != local.peer);
        if !ours {
            protocol::respond(
                &mut net,
                *reply,
                &SessionResponse::Refused {
                    reason: "you do not host this device's session".into(),
                },
            );
            continue;
        }
        protocol::respond(&mut net, *reply, &SessionResponse::Ack);
        tracing::info!(%session, reason = reason.as_str(), "the host put an end to this device's session");
        commands.queue(move |world: &mut World| {
            world.resource_mut::<PendingLeaveReason>().0 = Some(reason);
            whatnext_core::session::despawn_session(world);
        });
    }
}

/// A member whose host stepped down to a newer host of the session follows that one: its
/// next hello goes there, and the welcome replaces its copy. Only its host can say so,
/// about its session; a device that already follows (or is) that host just acknowledges.
pub(crate) fn follow_a_host_that_stepped_down(
    mut commands: Commands,
    mut net: MessageWriter<NetCommand>,
    local: Res<LocalPeer>,
    mut admitted: ResMut<Admitted>,
    sessions: Query<(Entity, &Session, &Host, Option<&HostTerm>)>,
    mut requests: MessageReader<protocol::PeerRequest>,
) {
    for protocol::PeerRequest {
        peer,
        reply,
        request,
    } in requests.read()
    {
        let SessionRequest::SteppedDown {
            session,
            host,
            term,
        } = request
        else {
            continue;
        };
        let current = sessions.iter().find(|(_, s, _, _)| s.id == *session);
        let response = match current {
            Some((_, _, h, _)) if h.0 == *host => SessionResponse::Ack,
            // Never told to host: only a welcome or a takeover makes this device the host.
            _ if *host == local.peer => SessionResponse::Ack,
            Some((_, _, _, t)) if t.map_or(0, |t| t.term) >= *term => SessionResponse::Ack,
            Some((entity, _, h, _)) if h.0 == *peer && h.0 != local.peer => {
                tracing::info!(from = %peer, to = %host, "the host stepped down; following the new host");
                commands.entity(entity).insert(Host(host.clone()));
                admitted.0 = None;
                SessionResponse::Ack
            }
            _ => SessionResponse::Refused {
                reason: "you do not host this device's session".into(),
            },
        };
        protocol::respond(&mut net, *reply, &response);
    }
}

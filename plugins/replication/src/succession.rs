//! Who can host after the host: the session's access (its key, bans, the invite's
//! generation) travels from the host to each co-host over their link, so that whoever the
//! host role moves to can check the same links and keep the same people out. The one owner
//! of that copy: the host sends it, a co-host keeps it, a demoted co-host drops it, and a
//! hosted session always has one.

use std::collections::HashMap;

use bevy::prelude::*;
use whatnext_core::prelude::*;
use whatnext_network::{NetCommand, PeerLinks, RequestTokens};

use crate::membership::Members;
use crate::protocol::{self, Answer, PeerAnswer, PeerRequest, SessionRequest, SessionResponse};

/// A session this device hosts always has its access. One stored before sessions had keys
/// gets a new one (the links made before it stop working).
pub(crate) fn ensure_hosted_access(
    mut commands: Commands,
    local: Res<LocalPeer>,
    sessions: Query<(Entity, &Host), (With<Session>, Without<SessionAccess>)>,
) {
    for (entity, host) in &sessions {
        if host.0 == local.peer {
            commands.entity(entity).insert(SessionAccess::default());
        }
    }
}

/// What the host last sent each co-host, and the sends waiting for an answer.
#[derive(Resource, Default)]
pub(crate) struct SharedAccess {
    sent: HashMap<PeerId, SessionAccess>,
    in_flight: HashMap<u64, PeerId>,
}

/// Host: each co-host it has a link to gets the session's access, and again whenever it
/// changes (a ban, a rotated invite); a copy that did not arrive is sent again.
pub(crate) fn share_access_with_cohosts(
    mut net: MessageWriter<NetCommand>,
    mut tokens: ResMut<RequestTokens>,
    local: Res<LocalPeer>,
    members: Res<Members>,
    links: Res<PeerLinks>,
    mut shared: ResMut<SharedAccess>,
    sessions: Query<(&Session, &Host, &CoHosts, &SessionAccess)>,
    mut answers: MessageReader<PeerAnswer>,
) {
    for PeerAnswer { token, answer, .. } in answers.read() {
        if let Some(peer) = shared.in_flight.remove(token)
            && !matches!(answer, Answer::Session(SessionResponse::Ack))
        {
            shared.sent.remove(&peer);
        }
    }
    let Some((session, _, cohosts, access)) =
        sessions.iter().find(|(_, h, _, _)| h.0 == local.peer)
    else {
        shared.sent.clear();
        return;
    };
    shared.sent.retain(|peer, _| cohosts.0.contains(peer));
    let due: Vec<PeerId> = cohosts
        .0
        .iter()
        .filter(|c| members.0.contains(*c) && links.0.contains_key(*c))
        .filter(|c| shared.sent.get(*c) != Some(access))
        .cloned()
        .collect();
    for cohost in due {
        let token = tokens.fresh();
        shared.in_flight.insert(token, cohost.clone());
        shared.sent.insert(cohost.clone(), access.clone());
        let request = SessionRequest::Access {
            session: session.id.clone(),
            access: access.clone(),
        };
        protocol::send(&mut net, token, &cohost, &request);
    }
}

/// Co-host: keeps the access its host sends (it is saved with the session); an access from
/// anyone else, or for a device that is no co-host, is refused.
pub(crate) fn keep_access_copy(
    mut commands: Commands,
    mut net: MessageWriter<NetCommand>,
    local: Res<LocalPeer>,
    sessions: Query<(Entity, &Session, &Host, &CoHosts)>,
    mut requests: MessageReader<PeerRequest>,
) {
    for PeerRequest {
        peer,
        reply,
        request,
    } in requests.read()
    {
        let SessionRequest::Access { session, access } = request else {
            continue;
        };
        let ours = sessions.iter().find(|(_, s, h, c)| {
            s.id == *session && h.0 == *peer && h.0 != local.peer && c.0.contains(&local.peer)
        });
        let response = match ours {
            Some((entity, ..)) => {
                commands.entity(entity).insert(access.clone());
                SessionResponse::Ack
            }
            None => SessionResponse::Refused {
                reason: "this device is not a co-host of your session".into(),
            },
        };
        protocol::respond(&mut net, *reply, &response);
    }
}

/// A device that is neither the host nor a co-host of its session holds no copy of its
/// access: a demoted co-host drops it.
pub(crate) fn drop_access_when_demoted(
    mut commands: Commands,
    local: Res<LocalPeer>,
    sessions: Query<(Entity, &Host, &CoHosts), With<SessionAccess>>,
) {
    for (entity, host, cohosts) in &sessions {
        if host.0 != local.peer && !cohosts.0.contains(&local.peer) {
            commands.entity(entity).remove::<SessionAccess>();
        }
    }
}

//! Who hosts after the host. The session's access (its key, bans, the invite's generation)
//! travels from the host to each co-host over their link, so that whoever the host role
//! moves to can check the same links and keep the same people out: the host sends it, a
//! co-host keeps it, a demoted co-host drops it, and a hosted session always has one. When
//! the host is out of reach past a deadline, the first co-host in line takes over
//! (`take_over`); members find it by saying hello to each co-host in turn (`joining`).

use std::collections::HashMap;
use std::time::Duration;

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

/// How long a host may be out of reach before the first co-host in line takes over.
pub const TAKEOVER_AFTER: Duration = Duration::from_secs(10);

/// The takeover deadline this app uses (`--takeover-after`; [`TAKEOVER_AFTER`] by default).
/// The n-th co-host in line waits n times as long, so the first one that is up takes over.
#[derive(Resource, Clone, Copy, Debug)]
pub struct TakeoverAfter(pub Duration);

impl Default for TakeoverAfter {
    fn default() -> Self {
        Self(TAKEOVER_AFTER)
    }
}

/// Since when this device has had no link to its session's host (the host, and when).
#[derive(Resource, Default, Debug)]
pub(crate) struct HostLoss(Option<(PeerId, Duration)>);

/// A member notes when its link to the host went (or, after a restart, that there is none).
pub(crate) fn watch_the_host(
    time: Res<Time<Real>>,
    local: Res<LocalPeer>,
    links: Res<PeerLinks>,
    hosts: Query<&Host>,
    mut loss: ResMut<HostLoss>,
) {
    let host = hosts
        .iter()
        .next()
        .map(|h| h.0.clone())
        .filter(|h| *h != local.peer);
    match host {
        Some(host) if !links.0.contains_key(&host) => {
            if loss.0.as_ref().is_none_or(|(lost, _)| *lost != host) {
                loss.0 = Some((host, time.elapsed()));
            }
        }
        _ => loss.0 = None,
    }
}

/// A co-host takes over when the host has been out of reach past its deadline: the first in
/// line (the earliest promoted) after [`TakeoverAfter`], the next after twice that, and so on,
/// unless a new host welcomed it meanwhile. Only a co-host that holds the session's access
/// (so it can admit the members) and a relay reservation (so they can reach it; a device cut
/// off from everything must not start a party of one) takes over. It becomes the host of
/// the next term; the old host becomes the last co-host; playback that was the old host's
/// is its own, its clock going on from where it was. `begin_hosting` starts its authority.
pub(crate) fn take_over(
    mut commands: Commands,
    time: Res<Time<Real>>,
    local: Res<LocalPeer>,
    relays: Option<Res<Relays>>,
    after: Res<TakeoverAfter>,
    loss: Res<HostLoss>,
    sessions: Query<
        (Entity, &Host, &CoHosts, Option<&HostTerm>, &PlaybackOwner),
        With<SessionAccess>,
    >,
) {
    let Some((lost, since)) = loss.0.as_ref() else {
        return;
    };
    let Some((entity, host, cohosts, term, owner)) = sessions.iter().next() else {
        return;
    };
    let Some(rank) = cohosts.0.iter().position(|c| *c == local.peer) else {
        return;
    };
    let reserved = relays
        .as_deref()
        .is_some_and(|r| r.0.iter().any(|r| r.status == RelayStatus::Reserved));
    let due = *since + after.0.saturating_mul(rank as u32 + 1);
    if host.0 != *lost || !reserved || time.elapsed() < due {
        return;
    }
    let mut term = term.copied().unwrap_or_default().next(HostChange::Takeover);
    // The n-th in line takes the n-th next term: two co-hosts cut off from the host and from
    // each other that both take over never host the same term (once they meet, the higher
    // term stays host).
    term.term += rank as u64;
    tracing::info!(host = %lost, term = term.term, "the host is out of reach; this co-host takes over");
    let mut next = cohosts.clone();
    next.0.retain(|c| *c != local.peer);
    next.0.push(lost.clone());
    let mut session = commands.entity(entity);
    session.insert((Host(local.peer.clone()), next, term));
    if owner.0 == *lost {
        session.insert(PlaybackOwner(local.peer.clone()));
    }
}

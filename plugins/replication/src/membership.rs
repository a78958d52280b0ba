//! Who is in the hosted session: the invite link and short code kept current, guests'
//! hellos answered (admit with the link's secret, knock with the code, else refuse), and the
//! welcome sent once the authority's snapshot includes the new member. The one owner of
//! admitting a member on the host.

use bevy::prelude::*;
use tracing::{info, warn};
use whatnext_core::invite::{InviteUrl, ShortCode};
use whatnext_core::prelude::*;
use whatnext_network::{NetCommand, NetEvent, NetKeys, PeerLinks, presence_of};

use crate::authority::Authority;
use crate::protocol::{self, Hello, PeerRequest, SessionRequest, SessionResponse, Welcome};
use crate::registry::Registry;

/// Admitted members of the hosted session: they get its updates, and only they.
#[derive(Resource, Default, Debug, Clone)]
pub struct Members(pub std::collections::HashSet<PeerId>);

/// Welcomes waiting for this frame's flush, so that their snapshot already holds the
/// joiner's own participant entity: (reply, guest, welcome without its snapshot).
#[derive(Resource, Default, Debug)]
pub struct PendingWelcomes(pub Vec<(u64, PeerId, Welcome)>);

/// The invite secret for a session: a signature by this device's key, so it is the same
/// after a restart and nobody else can make one.
pub fn invite_secret(keys: &NetKeys, session: &SessionId) -> String {
    let message = format!("whatnext invite secret v1 {}", session.0);
    let signature = keys.sign(message.as_bytes());
    signature
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Keeps `SessionInvite` and the registered short code in step with the hosted session and
/// the reserved relay.
pub(crate) fn keep_invite_current(
    mut net: MessageWriter<NetCommand>,
    keys: Res<NetKeys>,
    local: Res<LocalPeer>,
    relays: Res<Relays>,
    sessions: Query<(&Session, &Host)>,
    mut invite: ResMut<SessionInvite>,
    mut events: MessageReader<NetEvent>,
    mut code: Local<Option<(SessionId, ShortCode)>>,
) {
    let hosted = sessions
        .iter()
        .find(|(_, h)| h.0 == local.peer)
        .map(|(s, _)| s.id.clone());
    // One code per hosted session, for as long as this app runs it.
    let wanted = match (&hosted, code.as_ref()) {
        (Some(id), Some((cid, c))) if cid == id => Some(c.clone()),
        (Some(id), _) => {
            let fresh = ShortCode::random(&mut rand::thread_rng());
            *code = Some((id.clone(), fresh.clone()));
            net.write(NetCommand::SetCode(Some(fresh.as_str().to_owned())));
            Some(fresh)
        }
        (None, Some(_)) => {
            *code = None;
            net.write(NetCommand::SetCode(None));
            None
        }
        (None, None) => None,
    };
    let mut registered = invite.short_code.clone();
    for event in events.read() {
        match event {
            NetEvent::CodeRegistered(c) if wanted.as_ref().is_some_and(|w| w.as_str() == c) => {
                registered = Some(c.clone());
            }
            NetEvent::CodeProblem(problem) => warn!(%problem, "short code"),
            _ => {}
        }
    }
    let reserved = relays
        .0
        .iter()
        .find(|r| r.status == RelayStatus::Reserved)
        .map(|r| r.addr.clone());
    let next = match &hosted {
        None => SessionInvite::default(),
        // Without a reserved relay the link still works on the local network (mDNS finds
        // the host by its peer id); say so, because friends elsewhere cannot use it.
        Some(id) => SessionInvite {
            url: Some(
                InviteUrl {
                    host: local.peer.clone(),
                    relay: reserved.clone(),
                    session: id.clone(),
                    key: Some(invite_secret(&keys, id)),
                }
                .to_string(),
            ),
            short_code: reserved
                .as_ref()
                .and(registered.filter(|c| wanted.as_ref().is_some_and(|w| w.as_str() == c))),
            problem: match (&reserved, relays.0.is_empty()) {
                (Some(_), _) => None,
                (None, true) => Some(
                    "no relay is set up, so this link works only on your local network and there is no short code".into(),
                ),
                (None, false) => Some(
                    "no relay is reserved yet, so this link works only on your local network and there is no short code".into(),
                ),
            },
        },
    };
    if *invite != next {
        *invite = next;
    }
}

/// The sentence both sides show when their protocol hashes differ.
pub fn versions_differ(ours: u64, theirs: u64) -> String {
    format!(
        "the versions differ: this host speaks session protocol {ours:016x} and you speak {theirs:016x}; update whatnext on both devices"
    )
}

/// The host's side of a hello: admit with the secret, knock with the code, else refuse.
pub(crate) fn answer_hellos(
    mut commands: Commands,
    mut net: MessageWriter<NetCommand>,
    keys: Res<NetKeys>,
    local: Res<LocalPeer>,
    links: Res<PeerLinks>,
    invite: Res<SessionInvite>,
    registry: Res<Registry>,
    mut knocks: ResMut<Knocks>,
    sessions: Query<(&Session, &Host)>,
    mut participants: Query<(&mut Participant, &mut Presence)>,
    mut requests: MessageReader<PeerRequest>,
    mut welcomes: ResMut<PendingWelcomes>,
) {
    for PeerRequest {
        peer: guest,
        reply,
        request,
    } in requests.read()
    {
        let SessionRequest::Hello(hello) = request else {
            continue;
        };
        let hosted = sessions.iter().find(|(_, h)| h.0 == local.peer);
        let refuse = |reason: String| SessionResponse::Refused { reason };
        let response = match hosted {
            None => refuse("this peer is not hosting a session".into()),
            Some(_) if hello.protocol != registry.protocol_hash() => {
                let reason = versions_differ(registry.protocol_hash(), hello.protocol);
                warn!(peer = %guest, %reason, "refused a hello");
                refuse(reason)
            }
            Some((session, _)) => {
                let by_link = hello.session.as_ref() == Some(&session.id)
                    && hello.key.as_deref() == Some(invite_secret(&keys, &session.id).as_str());
                let by_code = hello.code.is_some() && hello.code == invite.short_code;
                let decision = knocks
                    .0
                    .iter()
                    .find(|k| k.peer == *guest)
                    .and_then(|k| k.decision);
                if by_link || (by_code && decision == Some(true)) {
                    admit(&mut commands, &mut participants, &links, guest, hello);
                    let welcome = Welcome {
                        protocol: registry.protocol_hash(),
                        session: session.id.clone(),
                        name: session.name.clone(),
                        host: local.peer.clone(),
                        snapshot: Default::default(),
                        rejoin: invite.url.clone(),
                    };
                    // Sent after this frame's flush, once the snapshot includes the joiner.
                    welcomes.0.push((*reply, guest.clone(), welcome));
                    continue;
                } else if by_code && decision == Some(false) {
                    refuse("the host declined your request to join".into())
                } else if by_code {
                    if !knocks.0.iter().any(|k| k.peer == *guest) {
                        info!(peer = %guest, name = %hello.display_name, "knock");
                        knocks.0.push(Knock {
                            peer: guest.clone(),
                            display_name: hello.display_name.clone(),
                            display: hello.display,
                            decision: None,
                        });
                    }
                    SessionResponse::Knocked
                } else if hello.session.is_some() {
                    refuse("the invite link is not valid for this session".into())
                } else {
                    refuse("that short code is not this session's".into())
                }
            }
        };
        protocol::respond(&mut net, *reply, &response);
    }
}

fn admit(
    commands: &mut Commands,
    participants: &mut Query<(&mut Participant, &mut Presence)>,
    links: &PeerLinks,
    guest: &PeerId,
    hello: &Hello,
) {
    let presence = presence_of(links.0.get(guest).copied());
    if let Some((mut p, mut pr)) = participants.iter_mut().find(|(p, _)| p.peer == *guest) {
        p.display_name = hello.display_name.clone();
        *pr = presence;
        return;
    }
    info!(peer = %guest, name = %hello.display_name, "admitted");
    commands.spawn((
        Participant {
            peer: guest.clone(),
            display_name: hello.display_name.clone(),
            display: hello.display,
        },
        presence,
        NetId::fresh(),
        Replicated,
    ));
}

/// After the flush: each admitted guest's welcome goes out with a snapshot that includes
/// it, and from then on it is a member.
pub(crate) fn send_welcomes(
    mut net: MessageWriter<NetCommand>,
    auth: Res<Authority>,
    mut members: ResMut<Members>,
    mut welcomes: ResMut<PendingWelcomes>,
) {
    if welcomes.0.is_empty() {
        return;
    }
    let snapshot = auth.snapshot();
    for (reply, guest, mut welcome) in welcomes.0.drain(..) {
        welcome.snapshot = snapshot.clone();
        protocol::respond(&mut net, reply, &SessionResponse::Welcome(welcome));
        members.0.insert(guest);
    }
}

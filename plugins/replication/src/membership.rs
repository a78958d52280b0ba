//! Who is in the hosted session: the invite link and short code kept current, guests'
//! hellos answered (admit with the link's secret, knock with the code, else refuse), and the
//! welcome sent once the authority's snapshot includes the new member. The one owner of
//! admitting a member on the host.

use std::collections::HashMap;
use std::time::Duration;

use bevy::prelude::*;
use tracing::{info, warn};
use whatnext_core::invite::{InviteUrl, ShortCode, hello_proof, welcome_proof};
use whatnext_core::limits;
use whatnext_core::prelude::*;
use whatnext_network::{NetCommand, NetEvent, PeerLinks, RequestTokens, presence_of};

use crate::authority::Authority;
use crate::outbox::RateBucket;
use crate::protocol::{self, Hello, PeerRequest, SessionRequest, SessionResponse, Welcome};
use crate::registry::Registry;

/// Admitted members of the hosted session: they get its updates, and only they.
#[derive(Resource, Default, Debug, Clone)]
pub struct Members(pub std::collections::HashSet<PeerId>);

/// Welcomes waiting for this frame's flush, so that their snapshot already holds the
/// joiner's own participant entity: (reply, guest, welcome without its snapshot).
#[derive(Resource, Default, Debug)]
pub struct PendingWelcomes(pub Vec<(u64, PeerId, Welcome)>);

/// The invite secret for a session's link: a keyed hash, under the session's own key, of the
/// session and the invite's generation. It is the same after a restart, only holders of the
/// key (the host and its co-hosts) can make or check one, so a co-host that takes over still
/// admits the old link, and rotating the invite (a new generation) makes a new one.
pub fn invite_secret(key: &SessionKey, session: &SessionId, generation: u32) -> String {
    key.secret(&format!(
        "whatnext invite secret v2 {} rotation {generation}",
        session.0
    ))
}

/// A member's own rejoin secret: bound to its peer id, so it is worth nothing to anyone
/// else, survives the invite's rotation and the host changing, and stops working when the
/// member is removed.
pub fn member_secret(key: &SessionKey, session: &SessionId, member: &PeerId) -> String {
    key.secret(&format!(
        "whatnext member secret v2 {} {}",
        session.0, member
    ))
}

/// The relay this device holds a reservation on, for links.
fn reserved_relay(relays: &Relays) -> Option<String> {
    relays
        .0
        .iter()
        .find(|r| r.status == RelayStatus::Reserved)
        .map(|r| r.addr.clone())
}

/// Keeps `SessionInvite` and the registered short code in step with the hosted session, its
/// invite's generation, and the reserved relay.
pub(crate) fn keep_invite_current(
    mut net: MessageWriter<NetCommand>,
    local: Res<LocalPeer>,
    relays: Res<Relays>,
    sessions: Query<(&Session, &Host, Option<&SessionAccess>)>,
    mut invite: ResMut<SessionInvite>,
    mut events: MessageReader<NetEvent>,
    mut code: Local<Option<ShortCode>>,
) {
    // A hosted session always has its access (made with it, restored with it, or added at
    // start for a session stored before keys existed).
    let hosted = sessions
        .iter()
        .find(|(_, h, _)| h.0 == local.peer)
        .and_then(|(s, _, access)| access.map(|a| (s.id.clone(), a.generation, a.key.clone())));
    // The code follows from the link's secret: a co-host that takes over registers the same
    // one, and a restarted host keeps it.
    let wanted = hosted
        .as_ref()
        .map(|(id, generation, key)| ShortCode::of_link(&invite_secret(key, id, *generation)));
    if *code != wanted {
        *code = wanted.clone();
        net.write(NetCommand::SetCode(
            wanted.as_ref().map(|c| c.as_str().to_owned()),
        ));
    }
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
    let reserved = reserved_relay(&relays);
    let next = match &hosted {
        None => SessionInvite::default(),
        // Without a reserved relay the link still works on the local network (mDNS finds
        // the host by its peer id); say so, because friends elsewhere cannot use it.
        Some((id, generation, key)) => SessionInvite {
            url: Some(
                InviteUrl {
                    host: local.peer.clone(),
                    relay: reserved.clone(),
                    session: id.clone(),
                    key: Some(invite_secret(key, id, *generation)),
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

/// Most knocks waiting for an answer at once; more are refused until some are answered.
pub const MAX_WAITING_KNOCKS: usize = 20;
/// A knock whose knocker stopped asking (it polls every half second) for this long goes.
pub const KNOCK_STALE: Duration = Duration::from_secs(10);
/// Each peer may say hello this many times a second (a knocker polls twice a second), with
/// bursts up to `HELLO_BURST`: each admitted hello costs the host a whole snapshot.
pub const HELLOS_PER_SECOND: f64 = 4.0;
/// How many hellos a peer may send at once before the steady rate applies.
pub const HELLO_BURST: f64 = 10.0;

/// The host's hello bookkeeping: each peer's rate and when each knocker last asked.
#[derive(Resource, Default)]
pub(crate) struct HelloLimits {
    buckets: HashMap<PeerId, RateBucket>,
    knocked_at: HashMap<PeerId, Duration>,
}

/// What the host makes of one hello.
enum Verdict {
    /// In, with the secret the hello proved (none for an approved knock).
    Admit(Option<String>),
    Knock,
    Refuse(String),
    Deny(String),
}

/// The host's side of a hello: admit with the link's secret or the member's own, knock with
/// the code, else refuse; banned peers are denied, and every hello is rate-limited.
pub(crate) fn answer_hellos(
    mut commands: Commands,
    mut net: MessageWriter<NetCommand>,
    local: Res<LocalPeer>,
    links: Res<PeerLinks>,
    invite: Res<SessionInvite>,
    relays: Option<Res<Relays>>,
    registry: Res<Registry>,
    time: Res<Time<Real>>,
    mut limits: ResMut<HelloLimits>,
    mut knocks: ResMut<Knocks>,
    mut sessions: Query<(
        &Session,
        &Host,
        Option<&HostTerm>,
        Option<&mut SessionAccess>,
    )>,
    mut participants: Query<(&mut Participant, &mut Presence)>,
    mut requests: MessageReader<PeerRequest>,
    mut welcomes: ResMut<PendingWelcomes>,
) {
    let now = time.elapsed();
    for PeerRequest {
        peer: guest,
        reply,
        request,
    } in requests.read()
    {
        let SessionRequest::Hello(hello) = request else {
            continue;
        };
        let Some((session, _, term, mut access)) =
            sessions.iter_mut().find(|(_, h, _, _)| h.0 == local.peer)
        else {
            // A link made before the host role moved away from this device: point the
            // joiner at the session's host now.
            let moved = sessions
                .iter()
                .find(|(s, h, _, _)| hello.session.as_ref() == Some(&s.id) && h.0 != local.peer)
                .map(|(_, h, _, _)| SessionResponse::Moved { host: h.0.clone() });
            let answer =
                moved.unwrap_or_else(|| refused("this peer is not hosting a session".into()));
            protocol::respond(&mut net, *reply, &answer);
            continue;
        };
        let access_now = access.as_deref().cloned().unwrap_or_default();
        let welcomed_before = participants.iter().any(|(p, _)| p.peer == *guest);
        let verdict = judge(
            &registry,
            &invite,
            &knocks,
            &mut limits,
            now,
            session,
            &access_now,
            participants.iter().count(),
            welcomed_before,
            guest,
            hello,
        );
        let response = match verdict {
            Verdict::Admit(secret) => {
                if let Some(access) = access.as_deref_mut()
                    && access.revoked.contains(guest)
                {
                    access.revoked.remove(guest);
                }
                admit(&mut commands, &mut participants, &links, guest, hello);
                let rejoin = InviteUrl {
                    host: local.peer.clone(),
                    relay: relays.as_deref().and_then(reserved_relay),
                    session: session.id.clone(),
                    key: Some(member_secret(&access_now.key, &session.id, guest)),
                };
                let welcome = Welcome {
                    protocol: registry.protocol_hash(),
                    session: session.id.clone(),
                    name: session.name.clone(),
                    host: local.peer.clone(),
                    term: term.map_or(0, |t| t.term),
                    snapshot: Default::default(),
                    rejoin: Some(rejoin.to_string()),
                    proof: secret.map(|secret| welcome_proof(&secret, guest)),
                };
                // Sent after this frame's flush, once the snapshot includes the joiner.
                welcomes.0.push((*reply, guest.clone(), welcome));
                continue;
            }
            Verdict::Knock => {
                limits.knocked_at.insert(guest.clone(), now);
                if !knocks.0.iter().any(|k| k.peer == *guest) {
                    info!(peer = %guest, fingerprint = %guest.fingerprint(), name = %hello.display_name, "knock");
                    knocks.0.push(Knock {
                        peer: guest.clone(),
                        display_name: hello.display_name.clone(),
                        display: hello.display,
                        decision: None,
                    });
                }
                SessionResponse::Knocked
            }
            Verdict::Refuse(reason) => {
                info!(peer = %guest, %reason, "refused a hello");
                refused(reason)
            }
            Verdict::Deny(reason) => SessionResponse::Denied { reason },
        };
        protocol::respond(&mut net, *reply, &response);
    }
}

fn refused(reason: String) -> SessionResponse {
    SessionResponse::Refused { reason }
}

/// Decides one hello, in order: rate, version, name, ban, then the invite it carries.
fn judge(
    registry: &Registry,
    invite: &SessionInvite,
    knocks: &Knocks,
    limits: &mut HelloLimits,
    now: Duration,
    session: &Session,
    access: &SessionAccess,
    participants: usize,
    welcomed_before: bool,
    guest: &PeerId,
    hello: &Hello,
) -> Verdict {
    let bucket = limits
        .buckets
        .entry(guest.clone())
        .or_insert_with(|| RateBucket::limit(now, HELLOS_PER_SECOND, HELLO_BURST));
    if !bucket.take(now) {
        return Verdict::Refuse("too many join attempts at once; wait a moment".into());
    }
    if hello.protocol != registry.protocol_hash() {
        return Verdict::Refuse(versions_differ(registry.protocol_hash(), hello.protocol));
    }
    if let Err(error) = limits::check_text("your display name", &hello.display_name) {
        return Verdict::Refuse(error.message);
    }
    if access.banned.contains(guest) {
        return Verdict::Deny("the host removed you from this party".into());
    }
    let for_this_session = hello.session.as_ref() == Some(&session.id);
    // The hello proves a secret without carrying it (`hello_proof`).
    let proves =
        |secret: &String| hello.key.as_deref() == Some(hello_proof(secret, guest).as_str());
    let link = invite_secret(&access.key, &session.id, access.generation);
    let own = member_secret(&access.key, &session.id, guest);
    let by_link = for_this_session && proves(&link);
    let by_own_key = for_this_session && !access.revoked.contains(guest) && proves(&own);
    let by_code = hello.code.is_some() && hello.code == invite.short_code;
    let decision = knocks
        .0
        .iter()
        .find(|k| k.peer == *guest)
        .and_then(|k| k.decision);
    let admitted = by_link || by_own_key || (by_code && decision == Some(true));
    if admitted && !welcomed_before && participants >= limits::MAX_PARTICIPANTS {
        return Verdict::Refuse(format!(
            "the party is full ({} people)",
            limits::MAX_PARTICIPANTS
        ));
    }
    if by_link {
        Verdict::Admit(Some(link))
    } else if by_own_key {
        Verdict::Admit(Some(own))
    } else if admitted {
        Verdict::Admit(None)
    } else if by_code && decision == Some(false) {
        Verdict::Refuse("the host declined your request to join".into())
    } else if by_code {
        let waiting = knocks.0.iter().filter(|k| k.decision.is_none()).count();
        let known = knocks.0.iter().any(|k| k.peer == *guest);
        if !known && waiting >= MAX_WAITING_KNOCKS {
            Verdict::Refuse(
                "too many people are waiting to be let in; try again in a minute".into(),
            )
        } else {
            Verdict::Knock
        }
    } else if hello.session.is_some() {
        Verdict::Refuse("the invite link is not valid for this session".into())
    } else {
        Verdict::Refuse("that short code is not this session's".into())
    }
}

/// Knocks whose knocker stopped asking go, so the list holds only people still waiting.
pub(crate) fn expire_knocks(
    time: Res<Time<Real>>,
    mut limits: ResMut<HelloLimits>,
    mut knocks: ResMut<Knocks>,
) {
    let now = time.elapsed();
    let stale = |at: Option<&Duration>| at.is_none_or(|at| now.saturating_sub(*at) > KNOCK_STALE);
    if knocks
        .0
        .iter()
        .any(|k| stale(limits.knocked_at.get(&k.peer)))
    {
        knocks.0.retain(|k| !stale(limits.knocked_at.get(&k.peer)));
    }
    limits
        .knocked_at
        .retain(|_, at| now.saturating_sub(*at) <= KNOCK_STALE);
    // Buckets refill in under three seconds; older ones hold nothing worth keeping.
    limits
        .buckets
        .retain(|_, b| now.saturating_sub(b.last_take()) < Duration::from_secs(60));
}

/// A removed member is told, and gets nothing more: not updates, not its welcome.
pub(crate) fn forget_removed_members(
    mut net: MessageWriter<NetCommand>,
    mut tokens: ResMut<RequestTokens>,
    mut members: ResMut<Members>,
    mut welcomes: ResMut<PendingWelcomes>,
    sessions: Query<&Session>,
    mut removed: MessageReader<MemberRemoved>,
) {
    for MemberRemoved { peer, banned } in removed.read() {
        members.0.remove(peer);
        welcomes.0.retain(|(_, guest, _)| guest != peer);
        info!(%peer, banned, "removed from the session");
        if let Some(session) = sessions.iter().next() {
            let notice = SessionRequest::Removed {
                session: session.id.clone(),
            };
            protocol::send(&mut net, tokens.fresh(), peer, &notice);
        }
    }
}

/// When the hosted session ends, every membership ends with it: each member is told (after
/// this frame's flush, which carries the session's despawn), and former members get no
/// updates and no snapshots, even if the host starts another session. When the host role
/// moved to a co-host instead, the members are only forgotten: they follow the new host.
pub(crate) fn revoke_members_when_the_session_ends(
    local: Res<LocalPeer>,
    mut net: MessageWriter<NetCommand>,
    mut tokens: ResMut<RequestTokens>,
    mut members: ResMut<Members>,
    mut welcomes: ResMut<PendingWelcomes>,
    mut limits: ResMut<HelloLimits>,
    mut hosted: Local<Option<(Entity, SessionId)>>,
    hosts: Query<(Entity, &Session, &Host)>,
) {
    let now_hosted = hosts
        .iter()
        .find(|(_, _, h)| h.0 == local.peer)
        .map(|(e, s, _)| (e, s.id.clone()));
    if *hosted == now_hosted {
        return;
    }
    if let Some((_, ended)) = hosted.take() {
        // The session goes on under another host (the role was handed over): its members
        // follow the new host, who admits them afresh.
        let handed_over = hosts
            .iter()
            .any(|(_, s, h)| s.id == ended && h.0 != local.peer);
        if handed_over {
            members.0.clear();
        } else {
            // A member that lost the despawn would otherwise stay in a party nobody hosts.
            let notice = SessionRequest::Ended { session: ended };
            for member in members.0.drain() {
                protocol::send(&mut net, tokens.fresh(), &member, &notice);
            }
        }
        welcomes.0.clear();
        limits.knocked_at.clear();
    }
    *hosted = now_hosted;
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
    mut auth: ResMut<Authority>,
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
        // The welcome is not an acknowledgement (the guest may take it or, hosting a newer
        // term itself, not): the latest update follows it until the guest acknowledges
        // one, so a party that does not change still learns its members hold it.
        auth.resend_latest_to(&guest, snapshot.seq);
        members.0.insert(guest);
    }
}

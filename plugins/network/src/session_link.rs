//! Joining and hosting over the network, on the Bevy side: invites for the hosted session,
//! answering guests' hellos (admit, knock, refuse), driving this device's own joins, and
//! keeping participants' presence in step with the connections.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bevy::prelude::*;
use tracing::{info, warn};
use whatnext_core::invite::{Invite, InviteUrl, ShortCode};
use whatnext_core::prelude::*;

use crate::protocol::{Hello, SessionRequest, SessionResponse, Snapshot, Welcome};
use crate::{ConnectionKind, NetBridge, NetCommand, NetEvent};

/// A join gives up after this long without an answer, or a knock without a decision.
pub const JOIN_TIMEOUT: Duration = Duration::from_secs(30);
/// How long to wait before trying an unreachable host again, within `JOIN_TIMEOUT`: mDNS
/// may not have found it yet, or its relay may be restarting.
const JOIN_RETRY: Duration = Duration::from_secs(1);
pub const KNOCK_TIMEOUT: Duration = Duration::from_secs(300);
/// How often a knocking guest asks again whether it was let in.
const KNOCK_POLL: Duration = Duration::from_millis(500);

pub struct SessionLinkPlugin;

impl Plugin for SessionLinkPlugin {
    fn build(&self, app: &mut App) {
        app.init_resource::<Joins>()
            .init_resource::<JoinProgress>()
            .init_resource::<Members>()
            .init_resource::<PendingWelcomes>()
            .add_systems(
                Update,
                (
                    track_links,
                    keep_invite_current,
                    answer_requests,
                    start_joins,
                    finish_joins,
                    rejoin_when_cut_off,
                )
                    .chain()
                    .after(SessionSet::Apply),
            );
    }
}

/// This device's network key: the invite secret is derived from it.
#[derive(Resource, Clone)]
pub struct NetKeys(pub libp2p::identity::Keypair);

/// Welcomes waiting for the next replication tick, so that their snapshot already holds
/// the joiner's own participant entity: (reply, guest, welcome without its snapshot).
#[derive(Resource, Default, Debug)]
pub struct PendingWelcomes(pub Vec<(u64, PeerId, Welcome)>);

/// Admitted members of the hosted session: they get its updates, and only they.
#[derive(Resource, Default, Debug, Clone)]
pub struct Members(pub std::collections::HashSet<PeerId>);

/// The best current connection to each peer.
#[derive(Resource, Default, Debug)]
pub struct PeerLinks(pub HashMap<PeerId, ConnectionKind>);

fn connection_of(kind: Option<&ConnectionKind>) -> Connection {
    match kind {
        Some(ConnectionKind::Direct) => Connection::Direct,
        Some(ConnectionKind::Lan) => Connection::Lan,
        Some(ConnectionKind::Relayed) | None => Connection::Relayed,
    }
}

/// The invite secret for a session: a signature by this device's key, so it is the same
/// after a restart and nobody else can make one.
pub fn invite_secret(keys: &libp2p::identity::Keypair, session: &SessionId) -> String {
    let message = format!("whatnext invite secret v1 {}", session.0);
    let signature = keys.sign(message.as_bytes()).unwrap_or_default();
    signature
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn track_links(
    mut events: MessageReader<NetEvent>,
    mut links: ResMut<PeerLinks>,
    mut presences: Query<(&Participant, &mut Presence)>,
) {
    for event in events.read() {
        let NetEvent::PeerLink { peer, kind } = event else {
            continue;
        };
        let peer = PeerId::new(peer.clone());
        match kind {
            Some(kind) => {
                links.0.insert(peer.clone(), *kind);
            }
            None => {
                links.0.remove(&peer);
            }
        }
        for (p, mut presence) in &mut presences {
            if p.peer == peer && presence.connection != Connection::Myself {
                let new = Presence {
                    online: kind.is_some(),
                    connection: connection_of(kind.as_ref()),
                };
                if *presence != new {
                    *presence = new;
                }
            }
        }
    }
}

/// Keeps `SessionInvite` and the registered short code in step with the hosted session and
/// the reserved relay.
#[allow(clippy::too_many_arguments)]
fn keep_invite_current(
    bridge: Res<NetBridge>,
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
            bridge.send(NetCommand::SetCode(Some(fresh.as_str().to_owned())));
            Some(fresh)
        }
        (None, Some(_)) => {
            *code = None;
            bridge.send(NetCommand::SetCode(None));
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
                    key: Some(invite_secret(&keys.0, id)),
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

/// The host's side of a hello: admit with the secret, knock with the code, else refuse.
#[allow(clippy::too_many_arguments)]
fn answer_requests(
    mut commands: Commands,
    bridge: Res<NetBridge>,
    keys: Res<NetKeys>,
    local: Res<LocalPeer>,
    links: Res<PeerLinks>,
    invite: Res<SessionInvite>,
    mut knocks: ResMut<Knocks>,
    sessions: Query<(&Session, &Host)>,
    mut participants: Query<(&mut Participant, &mut Presence)>,
    mut events: MessageReader<NetEvent>,
    mut welcomes: ResMut<PendingWelcomes>,
) {
    for event in events.read() {
        let NetEvent::Request {
            peer,
            reply,
            request,
        } = event
        else {
            continue;
        };
        let SessionRequest::Hello(hello) = request else {
            continue;
        };
        let guest = PeerId::new(peer.clone());
        let hosted = sessions.iter().find(|(_, h)| h.0 == local.peer);
        let response = match hosted {
            None => SessionResponse::Refused {
                reason: "this peer is not hosting a session".into(),
            },
            Some((session, _)) => {
                let by_link = hello.session.as_ref() == Some(&session.id)
                    && hello.key.as_deref() == Some(invite_secret(&keys.0, &session.id).as_str());
                let by_code = hello.code.is_some() && hello.code == invite.short_code;
                let decision = knocks
                    .0
                    .iter()
                    .find(|k| k.peer == guest)
                    .and_then(|k| k.decision);
                if by_link || (by_code && decision == Some(true)) {
                    admit(&mut commands, &mut participants, &links, &guest, hello);
                    let welcome = Welcome {
                        session: session.id.clone(),
                        name: session.name.clone(),
                        host: local.peer.clone(),
                        snapshot: Snapshot::default(),
                        rejoin: invite.url.clone(),
                    };
                    // Answered by replication once the snapshot includes the joiner.
                    welcomes.0.push((*reply, guest.clone(), welcome));
                    continue;
                } else if by_code && decision == Some(false) {
                    SessionResponse::Refused {
                        reason: "the host declined your request to join".into(),
                    }
                } else if by_code {
                    if !knocks.0.iter().any(|k| k.peer == guest) {
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
                    SessionResponse::Refused {
                        reason: "the invite link is not valid for this session".into(),
                    }
                } else {
                    SessionResponse::Refused {
                        reason: "that short code is not this session's".into(),
                    }
                }
            }
        };
        bridge.send(NetCommand::Respond {
            reply: *reply,
            response,
        });
    }
}

fn admit(
    commands: &mut Commands,
    participants: &mut Query<(&mut Participant, &mut Presence)>,
    links: &PeerLinks,
    guest: &PeerId,
    hello: &Hello,
) {
    let presence = Presence {
        online: links.0.contains_key(guest),
        connection: connection_of(links.0.get(guest)),
    };
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
        NetId(rand::random()),
        Replicated,
    ));
}

/// This device's joins in progress, by token (the intent counter).
#[derive(Resource, Default)]
struct Joins(HashMap<u64, Join>);

struct Join {
    intent: IntentId,
    command: NetCommand,
    started: Instant,
    knocked: bool,
    retry_at: Option<Instant>,
    /// What went wrong on the last attempt, for the final answer.
    last_error: Option<String>,
}

fn start_joins(
    bridge: Res<NetBridge>,
    local: Res<LocalPeer>,
    as_display: Option<Res<JoinAsDisplay>>,
    sessions: Query<(), With<Session>>,
    mut joins: ResMut<Joins>,
    mut intents: MessageReader<Intent>,
    mut outcomes: MessageWriter<IntentOutcome>,
) {
    for intent in intents.read() {
        let Action::Local(LocalAction::JoinSession { invite }) = &intent.action else {
            continue;
        };
        let fail = |code, message: String| IntentOutcome {
            id: intent.id.clone(),
            result: Err(IntentError::new(code, message)),
        };
        if !sessions.is_empty() {
            outcomes.write(fail(
                ErrorCode::BadRequest,
                "already in a session; leave it first".into(),
            ));
            continue;
        }
        let parsed: Invite = match invite.parse() {
            Ok(parsed) => parsed,
            Err(e) => {
                outcomes.write(fail(ErrorCode::InvalidInvite, e.to_string()));
                continue;
            }
        };
        let token = intent.id.counter;
        let hello = |session, key, code| Hello {
            session,
            key,
            code,
            display_name: local.display_name.clone(),
            display: as_display.is_some(),
        };
        let command = match parsed {
            Invite::Url(url) => {
                if url.host == local.peer {
                    outcomes.write(fail(
                        ErrorCode::InvalidInvite,
                        "that invite is your own session's".into(),
                    ));
                    continue;
                }
                NetCommand::JoinViaUrl {
                    token,
                    host: url.host.0,
                    relay: url.relay,
                    hello: hello(Some(url.session), url.key, None),
                }
            }
            Invite::Code(code) => NetCommand::JoinViaCode {
                token,
                code: code.as_str().to_owned(),
                hello: hello(None, None, Some(code.as_str().to_owned())),
            },
        };
        bridge.send(command.clone());
        joins.0.insert(
            token,
            Join {
                intent: intent.id.clone(),
                command,
                started: Instant::now(),
                knocked: false,
                retry_at: None,
                last_error: None,
            },
        );
    }
}

fn finish_joins(
    bridge: Res<NetBridge>,
    mut rejoin: ResMut<RejoinInvite>,
    mut joins: ResMut<Joins>,
    links: Res<PeerLinks>,
    mut progress: ResMut<JoinProgress>,
    mut events: MessageReader<NetEvent>,
    mut outcomes: MessageWriter<IntentOutcome>,
) {
    // Knock polls and timeouts are checked every frame; the headless loop idles at most
    // 100 ms, so they are on time without waking it.
    let now = Instant::now();
    let mut done: Vec<(u64, Result<Applied, IntentError>)> = Vec::new();
    for event in events.read() {
        match event {
            NetEvent::JoinAnswer {
                token,
                host,
                response,
            } => {
                let Some(join) = joins.0.get_mut(token) else {
                    continue;
                };
                match response {
                    SessionResponse::Welcome(welcome) => {
                        // Replication applies the welcome's snapshot.
                        rejoin.0 = welcome.rejoin.clone();
                        done.push((*token, Ok(Applied::SessionJoined(welcome.session.clone()))));
                    }
                    SessionResponse::Knocked => {
                        join.knocked = true;
                        join.retry_at = Some(now + KNOCK_POLL);
                        // Ask again at the host we now know, without resolving the code again.
                        if let NetCommand::JoinViaCode { token, hello, .. } = &join.command {
                            join.command = NetCommand::JoinViaUrl {
                                token: *token,
                                host: host.clone(),
                                relay: None,
                                hello: hello.clone(),
                            };
                        }
                    }
                    // Not answers to a hello.
                    SessionResponse::Pong(_)
                    | SessionResponse::Time { .. }
                    | SessionResponse::Ack
                    | SessionResponse::IntentResult(_)
                    | SessionResponse::Updates(_)
                    | SessionResponse::Snapshot(_) => {}
                    SessionResponse::Refused { reason } => {
                        let code = if join.knocked {
                            ErrorCode::Denied
                        } else {
                            ErrorCode::InvalidInvite
                        };
                        done.push((*token, Err(IntentError::new(code, reason.clone()))));
                    }
                }
            }
            NetEvent::JoinFailed {
                token,
                code,
                message,
            } => {
                let Some(join) = joins.0.get_mut(token) else {
                    continue;
                };
                // Unreachable can be passing (a connection closed under the request, say,
                // as a relayed one does once a direct one is up): try again until the
                // join's time is up. A bad or unknown invite is final.
                if *code == ErrorCode::Unreachable {
                    join.last_error = Some(message.clone());
                    // Still linked to the host: only one connection went (a relayed one
                    // closed for a direct one), so ask again at once.
                    let linked = match &join.command {
                        NetCommand::JoinViaUrl { host, .. } => {
                            links.0.keys().any(|peer| peer.as_str() == host)
                        }
                        _ => false,
                    };
                    join.retry_at = Some(if linked { now } else { now + JOIN_RETRY });
                } else {
                    done.push((*token, Err(IntentError::new(*code, message.clone()))));
                }
            }
            _ => {}
        }
    }
    for (token, join) in &mut joins.0 {
        let limit = if join.knocked {
            KNOCK_TIMEOUT
        } else {
            JOIN_TIMEOUT
        };
        if now.duration_since(join.started) > limit {
            let message = if join.knocked {
                "the host did not answer the knock in time".to_owned()
            } else {
                format!(
                    "the host could not be reached within {} s (tried the relay in the link, and the local network){}",
                    JOIN_TIMEOUT.as_secs(),
                    join.last_error
                        .as_ref()
                        .map(|e| format!("; last error: {e}"))
                        .unwrap_or_default()
                )
            };
            done.push((
                *token,
                Err(IntentError::new(ErrorCode::Unreachable, message)),
            ));
        } else if join.retry_at.is_some_and(|at| at <= now) {
            join.retry_at = None;
            bridge.send(join.command.clone());
        }
    }
    for (token, result) in done {
        if let Some(join) = joins.0.remove(&token) {
            outcomes.write(IntentOutcome {
                id: join.intent,
                result,
            });
        }
    }
    let now_at = match joins.0.values().next() {
        None => JoinProgress::Idle,
        Some(join) if join.knocked => JoinProgress::WaitingForApproval,
        Some(Join {
            command: NetCommand::JoinViaCode { .. },
            ..
        }) => JoinProgress::LookingUpCode,
        Some(_) => JoinProgress::ConnectingToHost,
    };
    progress.set_if_neq(now_at);
}

/// How often a guest cut off from its host tries to get back in.
const REJOIN_EVERY: Duration = Duration::from_secs(2);

/// A guest whose host link is gone (the relay restarted, or this app did) says hello again
/// with the invite it was given, until the host welcomes it back.
#[allow(clippy::too_many_arguments)]
fn rejoin_when_cut_off(
    bridge: Res<NetBridge>,
    local: Res<LocalPeer>,
    links: Res<PeerLinks>,
    rejoin: Res<RejoinInvite>,
    as_display: Option<Res<JoinAsDisplay>>,
    hosts: Query<&Host>,
    mut last_try: Local<Option<Instant>>,
    mut token: Local<u64>,
) {
    let Some(host) = hosts.iter().next().map(|h| h.0.clone()) else {
        return;
    };
    if host == local.peer || links.0.contains_key(&host) {
        return;
    }
    let Some(Ok(Invite::Url(url))) = rejoin.0.as_deref().map(str::parse::<Invite>) else {
        return;
    };
    if last_try.is_some_and(|at| at.elapsed() < REJOIN_EVERY) {
        return;
    }
    *last_try = Some(Instant::now());
    *token += 1;
    // Its own token range, so the join bookkeeping never mistakes it for a user's join.
    bridge.send(NetCommand::JoinViaUrl {
        token: (1 << 61) + *token,
        host: url.host.0,
        relay: url.relay,
        hello: Hello {
            session: Some(url.session),
            key: url.key,
            code: None,
            display_name: local.display_name.clone(),
            display: as_display.is_some(),
        },
    });
}

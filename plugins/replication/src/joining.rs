//! This device joining someone else's session: the hello from an invite link or a short code,
//! waiting while it knocks, retrying an unreachable host, the welcome, and saying hello again
//! after being cut off. The one owner of a welcome on the member side: it checks the host's
//! protocol, hands the snapshot to the mirror, and answers the join intent.

use std::collections::HashMap;
use std::time::Duration;

use bevy::prelude::*;
use whatnext_core::invite::{Invite, ShortCode, hello_proof, welcome_proof};
use whatnext_core::prelude::*;
use whatnext_network::{NetCommand, NetEvent, PeerLinks, RequestTokens, net_peer, peer_of};

use crate::membership::{member_secret, versions_differ};
use crate::protocol::{self, Answer, Hello, SessionRequest, SessionResponse, Snapshot};
use crate::registry::Registry;

/// A join gives up after this long without an answer.
pub const JOIN_TIMEOUT: Duration = Duration::from_secs(30);
/// How long to wait before trying an unreachable host again, within `JOIN_TIMEOUT`: mDNS
/// may not have found it yet, or its relay may be restarting.
const JOIN_RETRY: Duration = Duration::from_secs(1);
/// A knock gives up after this long without a decision.
pub const KNOCK_TIMEOUT: Duration = Duration::from_secs(300);
/// How often a knocking guest asks again whether it was let in.
const KNOCK_POLL: Duration = Duration::from_millis(500);
/// How often a guest cut off from its host tries to get back in (to the host, then each
/// co-host in turn).
const REJOIN_EVERY: Duration = Duration::from_secs(1);
/// How often a host asks one of its co-hosts whether it hosts a newer term.
const PROBE_EVERY: Duration = Duration::from_secs(3);

/// A host's welcome, checked: the mirror applies its snapshot in the same frame.
#[derive(Message, Clone, Debug)]
pub(crate) struct Welcomed(pub(crate) Snapshot);

/// Which host welcomed this device over the link it has now. A guest sends its intents only
/// to that host, and only while it is the session's host: a restarted host knows nobody until
/// their hello, and a new host (after a transfer) knows nobody either. Set by a welcome;
/// cleared when the link to that host goes.
#[derive(Resource, Default, Debug)]
pub(crate) struct Admitted(pub(crate) Option<PeerId>);

/// This device's joins in progress, by token.
#[derive(Resource, Default)]
pub(crate) struct Joins(HashMap<u64, Join>);

struct Join {
    intent: IntentId,
    /// What to send (again): a code join becomes a link join at the host once it knocked.
    command: NetCommand,
    started: Duration,
    knocked: bool,
    retry_at: Option<Duration>,
    /// What went wrong on the last attempt, for the final answer.
    last_error: Option<String>,
    /// How many times a former host pointed this join at the session's host now.
    moves: u8,
    /// For a link join: the link's code looked up on the link's relay, which finds whoever
    /// hosts the party now when the host the link names is out of reach (it went, and a
    /// co-host took over).
    by_code: Option<NetCommand>,
    /// The attempt in flight is `by_code`.
    asking_code: bool,
    /// The link's host refused once already (a second refusal is final).
    refused_once: bool,
    /// The link's secret: its welcome must prove it too (`welcome_proof`), or it comes
    /// from a device answering for the party without being its host.
    secret: Option<String>,
}

/// A join follows at most this many "the party moved" answers.
const MAX_MOVES: u8 = 3;

fn hello(local: &LocalPeer, display: bool, registry: &Registry) -> Hello {
    Hello {
        protocol: registry.protocol_hash(),
        session: None,
        key: None,
        code: None,
        display_name: local.display_name.clone(),
        display,
    }
}

/// Starts a join for each `JoinSession` intent.
pub(crate) fn start_joins(
    mut net: MessageWriter<NetCommand>,
    time: Res<Time<Real>>,
    local: Res<LocalPeer>,
    registry: Res<Registry>,
    as_display: Option<Res<JoinAsDisplay>>,
    sessions: Query<(), With<Session>>,
    mut tokens: ResMut<RequestTokens>,
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
        let token = tokens.fresh();
        let base = hello(&local, as_display.is_some(), &registry);
        let mut by_code = None;
        let mut secret = None;
        let command = match parsed {
            Invite::Url(url) => {
                if url.host == local.peer {
                    outcomes.write(fail(
                        ErrorCode::InvalidInvite,
                        "that invite is your own session's".into(),
                    ));
                    continue;
                }
                let hello = Hello {
                    session: Some(url.session.clone()),
                    key: url.key.as_deref().map(|k| hello_proof(k, &local.peer)),
                    ..base
                };
                match link_join(token, &url.host, url.relay.as_deref(), &hello) {
                    Ok(command) => {
                        by_code = code_of_link(&command, url.key.as_deref());
                        secret = url.key;
                        command
                    }
                    Err(error) => {
                        outcomes.write(IntentOutcome {
                            id: intent.id.clone(),
                            result: Err(error),
                        });
                        continue;
                    }
                }
            }
            Invite::Code(code) => {
                let hello = Hello {
                    code: Some(code.as_str().to_owned()),
                    ..base
                };
                let Ok(hello) = protocol::encode(&SessionRequest::Hello(hello)) else {
                    outcomes.write(fail(ErrorCode::Internal, "cannot encode a hello".into()));
                    continue;
                };
                NetCommand::JoinViaCode {
                    token,
                    code: code.as_str().to_owned(),
                    relay: None,
                    hello,
                }
            }
        };
        net.write(command.clone());
        joins.0.insert(
            token,
            Join {
                intent: intent.id.clone(),
                command,
                started: time.elapsed(),
                knocked: false,
                retry_at: None,
                last_error: None,
                moves: 0,
                by_code,
                asking_code: false,
                refused_once: false,
                secret,
            },
        );
    }
}

/// The lookup that finds a link's party at its host now: the link's code (which follows
/// from its secret) on the link's relay, with the same hello.
fn code_of_link(link_join: &NetCommand, secret: Option<&str>) -> Option<NetCommand> {
    let NetCommand::JoinViaUrl {
        token,
        relay: Some(relay),
        hello,
        ..
    } = link_join
    else {
        return None;
    };
    Some(NetCommand::JoinViaCode {
        token: *token,
        code: ShortCode::of_link(secret?).as_str().to_owned(),
        relay: Some(relay.clone()),
        hello: hello.clone(),
    })
}

/// The command that says `hello` to `host` through `relay` (or the LAN), parsed once here.
fn link_join(
    token: u64,
    host: &PeerId,
    relay: Option<&str>,
    hello: &Hello,
) -> Result<NetCommand, IntentError> {
    let invalid = |message: String| IntentError::new(ErrorCode::InvalidInvite, message);
    let host = net_peer(host).ok_or_else(|| invalid(format!("`{host}` is not a peer ID")))?;
    let relay = relay
        .map(|r| {
            r.parse()
                .map_err(|e| invalid(format!("the relay address `{r}` is not valid: {e}")))
        })
        .transpose()?;
    let hello = protocol::encode(&SessionRequest::Hello(hello.clone()))
        .map_err(|e| IntentError::new(ErrorCode::Internal, e.to_string()))?;
    Ok(NetCommand::JoinViaUrl {
        token,
        host,
        relay,
        hello,
    })
}

/// The host's answers to our hellos: a welcome (checked, then handed to the mirror), a knock
/// acknowledged, or a refusal; and joins that time out or must be retried.
pub(crate) fn finish_joins(
    mut net: MessageWriter<NetCommand>,
    time: Res<Time<Real>>,
    registry: Res<Registry>,
    mut rejoin: ResMut<RejoinInvite>,
    mut joins: ResMut<Joins>,
    links: Res<PeerLinks>,
    mut progress: ResMut<JoinProgress>,
    mut admitted: ResMut<Admitted>,
    (local, sessions): (Res<LocalPeer>, Query<(&Session, &Host, Option<&HostTerm>)>),
    mut events: MessageReader<NetEvent>,
    mut welcomed: MessageWriter<Welcomed>,
    mut outcomes: MessageWriter<IntentOutcome>,
) {
    // Knock polls and timeouts are checked every frame; the headless loop idles at most
    // 100 ms, so they are on time without waking it.
    let now = time.elapsed();
    let mut done: Vec<(u64, Result<Applied, IntentError>)> = Vec::new();
    for event in events.read() {
        match event {
            NetEvent::JoinAnswer {
                token,
                host,
                response,
            } => {
                let answer = protocol::answer_of(response);
                let mut join = joins.0.get_mut(token);
                match answer {
                    Answer::Session(SessionResponse::Welcome(welcome)) => {
                        if welcome.protocol != registry.protocol_hash() {
                            let reason =
                                versions_differ(welcome.protocol, registry.protocol_hash());
                            tracing::warn!(%reason, "refused a welcome");
                            if join.is_some() {
                                done.push((
                                    *token,
                                    Err(IntentError::new(ErrorCode::Denied, reason)),
                                ));
                            }
                            continue;
                        }
                        if let Some(join) = join.as_deref_mut()
                            && let Some(secret) = &join.secret
                            && welcome.proof != Some(welcome_proof(secret, &local.peer))
                        {
                            tracing::warn!(%host, "a welcome that does not prove the link's secret was ignored");
                            join.last_error = Some(format!(
                                "{host} answered for the party without holding its key"
                            ));
                            join.asking_code = false;
                            join.retry_at = Some(now + JOIN_RETRY);
                            continue;
                        }
                        // A rejoin's welcome has no join entry: it counts if it comes from the
                        // host this device follows, or from a newer one of the same session.
                        if join.is_some() {
                            done.push((
                                *token,
                                Ok(Applied::SessionJoined(welcome.session.clone())),
                            ));
                        } else if !follows(&local.peer, sessions.iter().next(), &welcome) {
                            tracing::info!(host = %welcome.host, term = welcome.term, "a welcome from an older or other host was ignored");
                            continue;
                        }
                        rejoin.0 = welcome.rejoin.clone();
                        welcomed.write(Welcomed(welcome.snapshot));
                        admitted.0 = Some(peer_of(host));
                    }
                    Answer::Session(SessionResponse::Knocked) => {
                        let Some(join) = join else { continue };
                        join.knocked = true;
                        join.retry_at = Some(now + KNOCK_POLL);
                        // Ask again at the host we now know, without resolving the code again.
                        if let NetCommand::JoinViaCode { token, hello, .. } = &join.command {
                            join.command = NetCommand::JoinViaUrl {
                                token: *token,
                                host: *host,
                                relay: None,
                                hello: hello.clone(),
                            };
                        }
                    }
                    Answer::Session(SessionResponse::Moved { host: moved_to }) => {
                        let Some(join) = join else { continue };
                        // Follow a moved session a few times at most (no redirect loops).
                        join.moves += 1;
                        let target = net_peer(&moved_to);
                        match (&mut join.command, target) {
                            (NetCommand::JoinViaUrl { host, .. }, Some(target))
                                if join.moves <= MAX_MOVES =>
                            {
                                *host = target;
                                join.retry_at = Some(now);
                            }
                            _ => done.push((
                                *token,
                                Err(IntentError::new(
                                    ErrorCode::Unreachable,
                                    "the party moved to another host too many times",
                                )),
                            )),
                        }
                    }
                    Answer::Session(SessionResponse::Denied { reason }) => {
                        if join.is_some() {
                            done.push((*token, Err(IntentError::new(ErrorCode::Denied, reason))));
                        }
                    }
                    Answer::Session(SessionResponse::Refused { reason }) => {
                        let Some(join) = join else { continue };
                        // The link's host may have left the party it handed over (it runs,
                        // but hosts nothing): ask who holds the link's code before giving up.
                        if !join.asking_code && !join.refused_once && join.by_code.is_some() {
                            join.refused_once = true;
                            join.asking_code = true;
                            join.last_error = Some(reason);
                            join.retry_at = Some(now);
                            continue;
                        }
                        let code = if join.knocked {
                            ErrorCode::Denied
                        } else {
                            ErrorCode::InvalidInvite
                        };
                        done.push((*token, Err(IntentError::new(code, reason))));
                    }
                    Answer::Failed(reason) => {
                        if join.is_some() {
                            done.push((
                                *token,
                                Err(IntentError::new(
                                    ErrorCode::InvalidInvite,
                                    format!("the host's answer was not usable: {reason}"),
                                )),
                            ));
                        }
                    }
                    // Not answers to a hello.
                    Answer::Session(_) | Answer::Time { .. } => {}
                }
            }
            NetEvent::PeerLink { peer, kind: None }
                if admitted.0.as_ref() == Some(&peer_of(peer)) =>
            {
                admitted.0 = None;
            }
            NetEvent::JoinFailed {
                token,
                code,
                message,
            } => {
                let Some(join) = joins.0.get_mut(token) else {
                    continue;
                };
                // The lookup of the link's code found nobody (yet): try the link's host again,
                // then the code, until the join's time is up.
                if join.asking_code {
                    join.asking_code = false;
                    join.last_error = Some(message.clone());
                    join.retry_at = Some(now + JOIN_RETRY);
                    continue;
                }
                // Unreachable can be passing (a connection closed under the request, say,
                // as a relayed one does once a direct one is up): try again until the
                // join's time is up. A bad or unknown invite is final.
                if *code == ErrorCode::Unreachable {
                    join.last_error = Some(message.clone());
                    // Still linked to the host: only one connection went (a relayed one
                    // closed for a direct one), so ask again at once.
                    let linked = match &join.command {
                        NetCommand::JoinViaUrl { host, .. } => links.0.contains_key(&peer_of(host)),
                        _ => false,
                    };
                    join.retry_at = Some(if linked { now } else { now + JOIN_RETRY });
                    // The host the link names is out of reach: next, ask who holds its code.
                    if !linked && join.by_code.is_some() {
                        join.asking_code = true;
                        join.retry_at = Some(now);
                    }
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
        if now.saturating_sub(join.started) > limit {
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
            let next = match (&join.by_code, join.asking_code) {
                (Some(by_code), true) => by_code,
                _ => &join.command,
            };
            net.write(next.clone());
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

/// Whether a welcome this device did not ask for as a join (a rejoin's) is one to follow:
/// from the host of its session, or from a newer host of it (a higher term; between two
/// hosts of one term, say after a partition, the one whose peer id sorts first), which is
/// how a host that was cut off, or restarted after a takeover, steps down.
fn follows(
    me: &PeerId,
    current: Option<(&Session, &Host, Option<&HostTerm>)>,
    welcome: &crate::protocol::Welcome,
) -> bool {
    let Some((session, host, term)) = current else {
        return false;
    };
    let term = term.map_or(0, |t| t.term);
    welcome.session == session.id
        && (welcome.host == host.0
            || welcome.term > term
            || (welcome.term == term && host.0 == *me && welcome.host.as_str() < me.as_str()))
}

/// A member whose host link is gone (the relay restarted, or this app did), that the host has
/// not welcomed over the link it has now, or whose session has a new host (the role was
/// handed over), says hello until it is welcomed: to the host, and in turn to each co-host,
/// one of which may have taken over. A host says hello to each of its co-hosts in turn, now
/// and then: if one of them hosts a newer term (this device was cut off, or restarted after
/// a takeover), its welcome makes this device step down and follow it.
/// The way in: the rejoin link the host gave, or, on a device that holds the session's key
/// (a co-host, a former host), its own secret under that key; whoever hosts checks both.
pub(crate) fn rejoin_when_cut_off(
    mut net: MessageWriter<NetCommand>,
    time: Res<Time<Real>>,
    local: Res<LocalPeer>,
    links: Res<PeerLinks>,
    rejoin: Res<RejoinInvite>,
    relays: Option<Res<Relays>>,
    registry: Res<Registry>,
    as_display: Option<Res<JoinAsDisplay>>,
    admitted: Res<Admitted>,
    sessions: Query<(&Session, &Host, &CoHosts, Option<&SessionAccess>)>,
    mut tokens: ResMut<RequestTokens>,
    mut last_try: Local<Option<Duration>>,
    mut turn: Local<usize>,
) {
    let Some((session, host, cohosts, access)) = sessions.iter().next() else {
        return;
    };
    let me = &local.peer;
    let hosting = host.0 == *me;
    let candidates: Vec<&PeerId> = if hosting {
        // All of them, members too: a newer host may have said hello to this one first
        // and be its member now.
        cohosts.0.iter().filter(|c| *c != me).collect()
    } else if links.0.contains_key(&host.0) && admitted.0.as_ref() == Some(&host.0) {
        return;
    } else {
        std::iter::once(&host.0)
            .chain(cohosts.0.iter().filter(|c| *c != me))
            .collect()
    };
    if candidates.is_empty() {
        return;
    }
    let link = match rejoin.0.as_deref().map(str::parse::<Invite>) {
        Some(Ok(Invite::Url(url))) if url.session == session.id => Some(url),
        _ => None,
    };
    let key = access
        .map(|a| member_secret(&a.key, &session.id, me))
        .or_else(|| link.as_ref().and_then(|l| l.key.clone()));
    let Some(key) = key else {
        return; // no way back in: nothing to say
    };
    let relay = link.and_then(|l| l.relay).or_else(|| {
        relays.as_deref().and_then(|r| {
            r.0.iter()
                .find(|r| r.status == RelayStatus::Reserved)
                .map(|r| r.addr.clone())
        })
    });
    let now = time.elapsed();
    let every = if hosting { PROBE_EVERY } else { REJOIN_EVERY };
    if last_try.is_some_and(|at| now.saturating_sub(at) < every) {
        return;
    }
    *last_try = Some(now);
    let target = candidates[*turn % candidates.len()];
    *turn = turn.wrapping_add(1);
    let hello = Hello {
        session: Some(session.id.clone()),
        key: Some(hello_proof(&key, me)),
        ..hello(&local, as_display.is_some(), &registry)
    };
    match link_join(tokens.fresh(), target, relay.as_deref(), &hello) {
        Ok(command) => {
            net.write(command);
        }
        Err(error) => tracing::warn!(%error, "cannot say hello again"),
    }
}

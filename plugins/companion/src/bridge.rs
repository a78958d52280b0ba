//! The Bevy side: starts and stops the server with the hosted session, turns phones'
//! requests into intents authored by each phone, answers them from the intents' outcomes,
//! and publishes the page's state when the session changes.

use std::collections::HashMap;

use bevy::prelude::*;
use crossbeam_channel::{Receiver, Sender};
use serde_json::json;
use tokio::sync::oneshot;
use whatnext_core::limits::MAX_PARTICIPANTS;
use whatnext_core::prelude::*;

use crate::phones::{PHONE_SUFFIX, random_secret};
use crate::server::{Published, Server};
use crate::{Answer, CompanionConfig, PhoneAsk, PhoneRequest, lan, state};

/// Most library tracks one search answers with.
pub const MAX_SEARCH_RESULTS: usize = 30;

/// Both ends of the channel phones' requests come through.
#[derive(Resource)]
pub(crate) struct Requests {
    pub tx: Sender<PhoneRequest>,
    pub rx: Receiver<PhoneRequest>,
}

/// The server while a session is hosted, and what it waits for.
#[derive(Resource, Default)]
pub(crate) struct Running {
    server: Option<Server>,
    /// The hosted session and its invite generation the server's token belongs to.
    key: Option<(SessionId, u32)>,
    /// Phones' intents waiting for their outcome.
    waiting: HashMap<IntentId, oneshot::Sender<Answer>>,
    /// The state last published (empty: publish at the next chance).
    last_json: String,
}

fn link_of(server: &Server, token: &str) -> Option<String> {
    server
        .addrs
        .first()
        .map(|addr| format!("http://{addr}/c/{token}/"))
}

/// In `PostUpdate`: the server runs while this device hosts a session, with a new token per
/// session and per invite rotation.
pub(crate) fn follow_session(
    config: Res<CompanionConfig>,
    mut running: ResMut<Running>,
    requests: Res<Requests>,
    mut link: ResMut<CompanionLink>,
    local: Res<LocalPeer>,
    sessions: Query<(&Session, &Host, Option<&SessionAccess>)>,
    waker: Option<Res<AppWaker>>,
) {
    let key = sessions
        .iter()
        .find(|(_, host, _)| host.0 == local.peer)
        .map(|(s, _, access)| (s.id.clone(), access.map_or(0, |a| a.generation)));
    if config.disabled {
        let off = CompanionLink {
            url: None,
            problem: Some("no phone page: it is turned off (--no-companion)".into()),
        };
        link.set_if_neq(off);
        return;
    }
    if key == running.key {
        return;
    }
    let same_session = matches!((&key, &running.key), (Some((a, _)), Some((b, _))) if a == b);
    running.key = key.clone();
    if key.is_none() {
        running.server = None;
        running.waiting.clear();
        running.last_json.clear();
        link.set_if_neq(CompanionLink::default());
        return;
    }
    let token = random_secret();
    if same_session && let Some(server) = &running.server {
        // The invite was rotated: the old link stops working, open pages on it end.
        server.publish(Published {
            token: token.clone(),
            json: running.last_json.clone(),
        });
        link.url = link_of(server, &token);
        return;
    }
    running.server = None;
    running.last_json.clear();
    let ips = config
        .listen
        .clone()
        .unwrap_or_else(lan::private_ipv4_addresses);
    if ips.is_empty() {
        *link = CompanionLink {
            url: None,
            problem: Some("no phone page: this device has no local network address".into()),
        };
        return;
    }
    let waker = waker.map(|w| w.clone()).unwrap_or_else(AppWaker::none);
    let published = Published {
        token: token.clone(),
        json: "null".into(),
    };
    match Server::start(&ips, config.port, published, requests.tx.clone(), waker) {
        Ok(server) => {
            tracing::info!(addrs = ?server.addrs, "serving the phone page");
            *link = CompanionLink {
                url: link_of(&server, &token),
                problem: None,
            };
            running.server = Some(server);
        }
        Err(e) => {
            tracing::warn!("the phone page cannot listen: {e}");
            *link = CompanionLink {
                url: None,
                problem: Some(format!("no phone page: cannot listen ({e})")),
            };
        }
    }
}

/// In `PostUpdate`: open pages get the session's state when it changed.
pub(crate) fn publish_state(
    mut running: ResMut<Running>,
    reader: SessionReader,
    mut events: MessageReader<SessionEvent>,
    people: Query<(), Or<(Changed<Participant>, Changed<Presence>)>>,
    reactions: Query<&Reactions>,
    wall: Res<WallClock>,
) {
    let news = events.read().count() > 0 || !people.is_empty();
    let Some(server) = &running.server else {
        return;
    };
    if !news && !running.last_json.is_empty() {
        return;
    }
    let Some(session) = reader.snapshot() else {
        return;
    };
    let json = state::page_state(&session, reactions.iter().next(), wall.now_ms).to_string();
    if json != running.last_json {
        server.publish(Published {
            token: server.token(),
            json: json.clone(),
        });
        running.last_json = json;
    }
}

/// How a refusal reads over HTTP.
fn status_of(code: ErrorCode) -> u16 {
    match code {
        ErrorCode::BadRequest | ErrorCode::InvalidInvite => 400,
        ErrorCode::NotPermitted | ErrorCode::Denied => 403,
        ErrorCode::NotFound => 404,
        ErrorCode::NotInSession => 409,
        ErrorCode::TooLarge => 413,
        ErrorCode::Unreachable => 503,
        _ => 500,
    }
}

fn refuse(reply: oneshot::Sender<Answer>, status: u16, message: &str) {
    let _ = reply.send(Err((status, message.to_owned())));
}

/// In `Update`, before `SessionSet::Apply`: phones' requests. Searches are answered from the
/// library; a hello makes (or renames) the phone's participant; adds and reactions become
/// intents authored by the phone, answered once applied.
pub(crate) fn take_requests(
    requests: Res<Requests>,
    mut running: ResMut<Running>,
    mut commands: Commands,
    library: Res<Library>,
    local: Res<LocalPeer>,
    sessions: Query<(&Host, Option<&SessionAccess>)>,
    participants: Query<(Entity, &Participant)>,
    mut counter: ResMut<IntentCounter>,
    mut intents: MessageWriter<Intent>,
) {
    let hosted = sessions.iter().find(|(host, _)| host.0 == local.peer);
    for PhoneRequest { ask, reply } in requests.rx.try_iter() {
        let Some((_, access)) = hosted else {
            refuse(reply, 409, "the party has ended");
            continue;
        };
        let action = match ask {
            PhoneAsk::Search { query } => {
                let found: Vec<_> = library
                    .search(&query)
                    .take(MAX_SEARCH_RESULTS)
                    .map(|t| {
                        json!({"track_id": t.id.to_string(), "title": t.title,
                            "artist": t.artist, "duration_ms": t.duration_ms})
                    })
                    .collect();
                let _ = reply.send(Ok(json!({"tracks": found})));
                continue;
            }
            PhoneAsk::Hello { peer, name } => {
                let removed =
                    access.is_some_and(|a| a.banned.contains(&peer) || a.revoked.contains(&peer));
                if removed {
                    refuse(reply, 403, "the host removed this phone from the party");
                    continue;
                }
                let display_name = format!("{name}{PHONE_SUFFIX}");
                let mine = participants.iter().find(|(_, p)| p.peer == peer);
                match mine {
                    Some((entity, p)) => {
                        if p.display_name != display_name {
                            let mut renamed = p.clone();
                            renamed.display_name = display_name;
                            commands.entity(entity).insert(renamed);
                        }
                    }
                    None if participants.iter().count() >= MAX_PARTICIPANTS => {
                        refuse(reply, 413, "the party is full");
                        continue;
                    }
                    None => {
                        commands.spawn((
                            Participant {
                                peer,
                                display_name,
                                display: false,
                            },
                            Presence {
                                online: true,
                                connection: Connection::Lan,
                            },
                            NetId::fresh(),
                            Replicated,
                        ));
                    }
                }
                let _ = reply.send(Ok(json!({})));
                continue;
            }
            PhoneAsk::Add { peer, track_id } => {
                let Some(track) = library.0.iter().find(|t| t.id == track_id) else {
                    refuse(reply, 404, "that track is not in the host's library");
                    continue;
                };
                let action = track.queue_action(TrackId::random(&mut rand::thread_rng()));
                (peer, action, reply)
            }
            PhoneAsk::React { peer, emoji } => (
                peer,
                Action::Session(SessionAction::React {
                    emoji,
                    track_id: None,
                }),
                reply,
            ),
        };
        let (author, action, reply) = action;
        counter.0 += 1;
        let id = IntentId {
            author,
            counter: counter.0,
        };
        running.waiting.insert(id.clone(), reply);
        intents.write(Intent { id, action });
    }
}

/// In `Update`, after `SessionSet::Apply`: answers phones whose intents were applied.
pub(crate) fn answer_outcomes(
    mut running: ResMut<Running>,
    mut outcomes: MessageReader<IntentOutcome>,
) {
    if running.waiting.is_empty() {
        return;
    }
    for outcome in outcomes.read() {
        let Some(reply) = running.waiting.remove(&outcome.id) else {
            continue;
        };
        let answer = match &outcome.result {
            Ok(Applied::TrackAdded(id)) => Ok(json!({"track_id": id.to_string()})),
            Ok(_) => Ok(json!({})),
            Err(e) => Err((status_of(e.code), e.message.clone())),
        };
        let _ = reply.send(answer);
    }
}

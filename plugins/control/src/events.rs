//! Events: what happens in the session, on the relays and to our outbox, pushed as
//! `{"event", "data"}` lines without being asked.

use std::collections::HashMap;

use bevy::prelude::*;
use serde_json::{Value, json};
use whatnext_core::prelude::*;

use super::{Channels, relay_json, send_line};

/// `intent.refused`: an intent of ours that waited in the outbox was refused by the host.
fn refused_json(refused: &IntentRefused) -> Value {
    let mut data = json!({
        "intent_id": format!("{}/{}", refused.intent.id.author, refused.intent.id.counter),
        "code": refused.error.code.as_str(),
        "message": refused.error.message,
    });
    if let Action::Session(SessionAction::AddTrack {
        track_id, title, ..
    }) = &refused.intent.action
    {
        data["track_id"] = json!(track_id.to_string());
        data["title"] = json!(title);
    }
    data
}

/// Event lines held until the frame's write to disk: those of a session this device hosts.
#[derive(Resource, Default)]
pub(super) struct HeldEvents(Vec<Value>);

/// Pushes session events, relay status changes, knocks and refused outbox intents as
/// `{"event", "data"}` lines. It runs before the frame's write to disk: a member's copy of
/// the session is the host's, which published it before its own write, so its events go out
/// at once; a host's wait in [`HeldEvents`] until its write is done (`flush_held_events`).
pub(super) fn push_events(
    channels: Res<Channels>,
    mut held: ResMut<HeldEvents>,
    mut events: MessageReader<SessionEvent>,
    mut refusals: MessageReader<IntentRefused>,
    reader: SessionReader,
    relays: Res<Relays>,
    knocks: Res<Knocks>,
    mut last_relays: Local<Vec<RelayEntry>>,
    mut announced_knocks: Local<Vec<PeerId>>,
) {
    let hosted_elsewhere = reader.my_role().is_some_and(|role| role != Role::Host);
    let mut emit = |line: Value| {
        if hosted_elsewhere {
            send_line(&channels, line);
        } else {
            held.0.push(line);
        }
    };
    if relays.is_changed() {
        for relay in &relays.0 {
            if !last_relays.contains(relay) {
                emit(json!({"event": "relay.status", "data": relay_json(relay)}));
            }
        }
        *last_relays = relays.0.clone();
    }
    for knock in knocks.0.iter().filter(|k| k.decision.is_none()) {
        if !announced_knocks.contains(&knock.peer) {
            announced_knocks.push(knock.peer.clone());
            let data = json!({"peer_id": knock.peer, "display_name": knock.display_name,
                "fingerprint": knock.peer.fingerprint()});
            emit(json!({"event": "knock", "data": data}));
        }
    }
    announced_knocks.retain(|p| {
        knocks
            .0
            .iter()
            .any(|k| k.peer == *p && k.decision.is_none())
    });
    for refused in refusals.read() {
        emit(json!({"event": "intent.refused", "data": refused_json(refused)}));
    }
    for event in events.read() {
        let (name, data) = match event {
            SessionEvent::SessionJoined { session_id } => (
                "session.joined",
                json!({"session_id": session_id, "name": reader.snapshot().map(|s| s.name)}),
            ),
            SessionEvent::SessionLeft { session_id, reason } => (
                "session.left",
                json!({"session_id": session_id, "reason": reason.as_str()}),
            ),
            SessionEvent::ParticipantJoined { peer } => {
                ("participant.joined", json!({"peer_id": peer}))
            }
            SessionEvent::ParticipantLeft { peer } => {
                ("participant.left", json!({"peer_id": peer}))
            }
            SessionEvent::TrackAdded { track_id } => (
                "track.added",
                reader
                    .track(*track_id)
                    .and_then(|t| serde_json::to_value(t).ok())
                    .unwrap_or_else(|| json!({"track_id": track_id.to_string()})),
            ),
            SessionEvent::TrackRemoved { track_id } => {
                ("track.removed", json!({"track_id": track_id.to_string()}))
            }
            SessionEvent::TrackStarted { track_id } => {
                ("track.started", json!({"track_id": track_id.to_string()}))
            }
            SessionEvent::QueueChanged => ("queue.changed", json!({"length": reader.queue_len()})),
            SessionEvent::PlaybackChanged => (
                "playback.changed",
                reader
                    .playback()
                    .and_then(|p| serde_json::to_value(p).ok())
                    .unwrap_or(Value::Null),
            ),
            SessionEvent::OwnerChanged { owner } => ("owner.changed", json!({"peer_id": owner})),
            SessionEvent::CohostsChanged => (
                "cohosts.changed",
                json!({"cohosts": reader.snapshot().map(|s| s.cohosts).unwrap_or_default()}),
            ),
            SessionEvent::HostChanged {
                host,
                previous,
                why,
            } => (
                "host.changed",
                json!({"host": host, "previous": previous, "reason": why.as_str()}),
            ),
            SessionEvent::Reaction {
                emoji,
                from,
                track_id,
            } => (
                "reaction",
                json!({"emoji": emoji.as_str(), "from": from,
                    "track_id": track_id.map(|t| t.to_string())}),
            ),
        };
        emit(json!({"event": name, "data": data}));
    }
}

/// Sends the event lines [`push_events`] held back, after the frame's write to disk.
pub(super) fn flush_held_events(channels: Res<Channels>, mut held: ResMut<HeldEvents>) {
    for line in held.0.drain(..) {
        send_line(&channels, line);
    }
}

/// `media.changed {track_id, state, progress}`: a track's file changed state here, or its
/// transfer moved on by a tenth. Only hashes with something to say are looked at.
pub(super) fn push_media_events(
    channels: Res<Channels>,
    states: Res<MediaStates>,
    files: Res<LocalFiles>,
    tracks: Query<&Track>,
    mut shown: Local<HashMap<ContentHash, (&'static str, u8)>>,
) {
    if !states.is_changed() && !files.is_changed() {
        return;
    }
    let hashes: std::collections::HashSet<ContentHash> =
        states.0.keys().chain(shown.keys()).copied().collect();
    for hash in hashes {
        let now = if files.path_of(&hash).is_some() {
            MediaState::Here
        } else {
            states.0.get(&hash).cloned().unwrap_or(MediaState::Missing)
        };
        let key = (now.name(), (now.progress() * 10.0) as u8);
        if shown.get(&hash) == Some(&key) {
            continue;
        }
        shown.insert(hash, key);
        for track in tracks
            .iter()
            .filter(|t| t.media.is_some_and(|m| m.hash == hash))
        {
            let data = json!({"track_id": track.id.to_string(), "state": now.name(),
                "progress": now.progress()});
            send_line(&channels, json!({"event": "media.changed", "data": data}));
        }
    }
}

#[cfg(test)]
mod tests {
    use bevy::prelude::*;
    use crossbeam_channel::Receiver;
    use whatnext_core::prelude::*;
    use whatnext_test_support::{Author, session_app};

    use crate::{ControlIo, ControlPlugin};

    /// The control output as the frame's write to disk sees it: lines sent earlier in the
    /// frame, and lines sent before the frame began.
    #[derive(Resource)]
    struct Output {
        lines: Receiver<String>,
        before_frame: Vec<String>,
        before_write: Vec<String>,
    }

    /// `peer`'s app with a session it hosts, or, with `host_elsewhere`, a copy of one hosted
    /// by another device; a track added this frame is reported as a `track.added` event.
    fn app_with_an_added_track(host_elsewhere: bool) -> App {
        let mut app = session_app("me");
        let (io, _input, lines) = ControlIo::channels();
        app.add_plugins(ControlPlugin::new(io))
            .insert_resource(Output {
                lines,
                before_frame: Vec::new(),
                before_write: Vec::new(),
            })
            .add_systems(First, |mut out: ResMut<Output>| {
                let lines: Vec<String> = out.lines.try_iter().collect();
                out.before_frame.extend(lines);
            })
            .add_systems(
                Last,
                (|mut out: ResMut<Output>| {
                    let lines: Vec<String> = out.lines.try_iter().collect();
                    out.before_write.extend(lines);
                })
                .in_set(PersistSet),
            );
        Author::new("me")
            .act(
                &mut app,
                Action::Local(LocalAction::CreateSession {
                    session_id: SessionId("S".into()),
                    name: "Party".into(),
                }),
            )
            .expect("create");
        if host_elsewhere {
            let mut hosts = app.world_mut().query::<&mut Host>();
            for mut host in hosts.iter_mut(app.world_mut()) {
                host.0 = PeerId::new("the-host");
            }
        }
        app.update();
        app.world_mut()
            .resource_mut::<Output>()
            .before_write
            .clear();
        app.world_mut().write_message(SessionEvent::TrackAdded {
            track_id: TrackId(7),
        });
        app.update();
        app
    }

    fn added(lines: &[String]) -> bool {
        lines.iter().any(|l| l.contains("\"track.added\""))
    }

    #[test]
    fn a_members_events_go_out_before_its_write_to_disk() {
        let app = app_with_an_added_track(true);
        let out = app.world().resource::<Output>();
        assert!(added(&out.before_write), "{:?}", out.before_write);
    }

    #[test]
    fn a_hosts_events_wait_for_its_write_to_disk() {
        let mut app = app_with_an_added_track(false);
        let out = app.world().resource::<Output>();
        assert!(!added(&out.before_write), "{:?}", out.before_write);
        let after: Vec<String> = out.lines.try_iter().collect();
        assert!(
            added(&after),
            "the event went out after the write: {after:?}"
        );
        app.update();
        let out = app.world().resource::<Output>();
        assert!(!added(&out.before_write), "{:?}", out.before_write);
    }
}

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

/// Pushes session events, relay status changes, knocks and refused outbox intents as
/// `{"event", "data"}` lines.
pub(super) fn push_events(
    channels: Res<Channels>,
    mut events: MessageReader<SessionEvent>,
    mut refusals: MessageReader<IntentRefused>,
    reader: SessionReader,
    relays: Res<Relays>,
    knocks: Res<Knocks>,
    mut last_relays: Local<Vec<RelayEntry>>,
    mut announced_knocks: Local<Vec<PeerId>>,
) {
    if relays.is_changed() {
        for relay in &relays.0 {
            if !last_relays.contains(relay) {
                send_line(
                    &channels,
                    json!({"event": "relay.status", "data": relay_json(relay)}),
                );
            }
        }
        *last_relays = relays.0.clone();
    }
    for knock in knocks.0.iter().filter(|k| k.decision.is_none()) {
        if !announced_knocks.contains(&knock.peer) {
            announced_knocks.push(knock.peer.clone());
            let data = json!({"peer_id": knock.peer, "display_name": knock.display_name,
                "fingerprint": knock.peer.fingerprint()});
            send_line(&channels, json!({"event": "knock", "data": data}));
        }
    }
    announced_knocks.retain(|p| {
        knocks
            .0
            .iter()
            .any(|k| k.peer == *p && k.decision.is_none())
    });
    for refused in refusals.read() {
        send_line(
            &channels,
            json!({"event": "intent.refused", "data": refused_json(refused)}),
        );
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
        send_line(&channels, json!({"event": name, "data": data}));
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

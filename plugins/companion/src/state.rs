//! What the phone page shows, as JSON, from the session's read model: now playing with the
//! clock's position, up next with who added each track, who is here, recent reactions.

use std::collections::HashMap;

use serde_json::{Value, json};
use whatnext_core::prelude::*;
use whatnext_core::view::TrackView;

/// Most upcoming tracks sent to a page (it says how many more there are).
pub const MAX_UP_NEXT: usize = 30;

/// Pseudo peer ids of phones start with this.
pub const PHONE_PEER_PREFIX: &str = "phone-";

/// The page's state for `session` at host time `at_ms`, with its recent `reactions`.
pub fn page_state(session: &SessionSnapshot, reactions: Option<&Reactions>, at_ms: u64) -> Value {
    let names: HashMap<&PeerId, &str> = session
        .participants
        .iter()
        .map(|p| (&p.peer_id, p.display_name.as_str()))
        .collect();
    let name_of = |peer: &PeerId| names.get(peer).copied().unwrap_or("someone who left");
    let track_json = |t: &TrackView| {
        json!({"track_id": t.track_id.to_string(), "title": t.title, "artist": t.artist,
            "duration_ms": t.duration_ms, "added_by": name_of(&t.added_by)})
    };
    let current = session.playback.track_id;
    let now = current.and_then(|id| session.queue.iter().find(|t| t.track_id == id));
    let upcoming: Vec<&TrackView> = match current {
        Some(id) => session
            .queue
            .iter()
            .skip_while(|t| t.track_id != id)
            .skip(1)
            .collect(),
        None => session.queue.iter().collect(),
    };
    let people: Vec<Value> = session
        .participants
        .iter()
        .map(|p| {
            json!({"name": p.display_name, "role": p.role.as_str(), "online": p.online,
                "phone": p.peer_id.as_str().starts_with(PHONE_PEER_PREFIX)})
        })
        .collect();
    let reactions: Vec<Value> = reactions
        .map(|r| r.recent.as_slice())
        .unwrap_or_default()
        .iter()
        .map(|r| {
            json!({"id": r.id, "emoji": r.emoji.as_str(), "glyph": r.emoji.glyph(),
                "from": name_of(&r.from), "track_id": r.track_id.map(|t| t.to_string())})
        })
        .collect();
    json!({
        "session": session.name,
        "now": now.map(track_json),
        "playback": {
            "state": session.playback.state,
            "position_ms": session.playback.position_ms,
            "at_ms": at_ms,
        },
        "up_next": upcoming.iter().take(MAX_UP_NEXT).map(|t| track_json(t)).collect::<Vec<_>>(),
        "up_next_total": upcoming.len(),
        "people": people,
        "reactions": reactions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn track(id: u64, title: &str, by: &str) -> TrackView {
        TrackView {
            track_id: TrackId(id),
            title: title.into(),
            artist: "Band".into(),
            duration_ms: 1000,
            added_by: PeerId::new(by),
            pending: false,
            media: None,
        }
    }

    fn person(peer: &str, name: &str) -> whatnext_core::view::ParticipantView {
        whatnext_core::view::ParticipantView {
            peer_id: PeerId::new(peer),
            display_name: name.into(),
            role: Role::Guest,
            online: true,
            connection: Connection::Lan,
        }
    }

    #[test]
    fn up_next_follows_the_current_track_and_names_who_added_each() {
        let session = SessionSnapshot {
            session_id: SessionId("S".into()),
            name: "Friday".into(),
            host: PeerId::new("h"),
            cohosts: vec![],
            playback_owner: PeerId::new("h"),
            participants: vec![person("h", "Host"), person("phone-1", "Ana (phone)")],
            queue: vec![
                track(1, "One", "h"),
                track(2, "Two", "phone-1"),
                track(3, "Three", "gone"),
            ],
            playback: whatnext_core::view::PlaybackView {
                state: PlayState::Playing,
                track_id: Some(TrackId(1)),
                position_ms: 400,
            },
            listening: false,
        };
        let state = page_state(&session, None, 99);
        assert_eq!(state["now"]["title"], "One");
        assert_eq!(state["now"]["added_by"], "Host");
        assert_eq!(state["up_next"][0]["added_by"], "Ana (phone)");
        assert_eq!(state["up_next"][1]["added_by"], "someone who left");
        assert_eq!(state["up_next_total"], 2);
        assert_eq!(state["people"][1]["phone"], true);
        assert_eq!(state["playback"]["position_ms"], 400);
    }
}

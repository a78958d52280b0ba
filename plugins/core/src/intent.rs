//! Intents: every user action, from any front end, as data. See docs/architecture.md.

use bevy::prelude::*;
use serde::{Deserialize, Serialize};

use crate::ids::{IntentId, PeerId, SessionId, TrackId};

/// Outcomes carry these; they live in `error` (which `rules` shares) and are named here too.
pub use crate::error::{ErrorCode, IntentError};

/// One user action with a unique id. Front ends write these; `SessionPlugin` applies them.
#[derive(Message, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Intent {
    pub id: IntentId,
    pub action: Action,
}

/// Every action a user can take.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Action {
    /// Applies on this device only; no role rules.
    Local(LocalAction),
    /// Applies to the shared session; the authority checks the role rules.
    Session(SessionAction),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LocalAction {
    SetDisplayName {
        name: String,
    },
    AddRelay {
        addr: String,
    },
    RemoveRelay {
        addr: String,
    },
    CreateSession {
        session_id: SessionId,
        name: String,
    },
    JoinSession {
        invite: String,
    },
    LeaveSession,
    /// Adds a track to this device's library (not to a session).
    AddToLibrary {
        track_id: TrackId,
        title: String,
        artist: String,
        duration_ms: u64,
        path: Option<String>,
    },
    /// Reads the audio files under a folder into the library (tags and durations); answered
    /// by the library plugin once the scan is done.
    ImportFolder {
        path: String,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SessionAction {
    AddTrack {
        track_id: TrackId,
        title: String,
        artist: String,
        duration_ms: u64,
        path: Option<String>,
    },
    RemoveTrack {
        track_id: TrackId,
    },
    /// Moves a track after another one, or to the front when `after` is `None`.
    MoveTrack {
        track_id: TrackId,
        after: Option<TrackId>,
    },
    Play,
    Pause,
    Next,
    Seek {
        position_ms: u64,
    },
    TakePlayback,
    HandOff {
        to: PeerId,
    },
    AddCohost {
        peer: PeerId,
    },
    RemoveCohost {
        peer: PeerId,
    },
    ApproveKnock {
        peer: PeerId,
    },
    DenyKnock {
        peer: PeerId,
    },
}

impl SessionAction {
    /// Every kind of session action once, with placeholder arguments: for rule tables.
    pub fn all_kinds() -> Vec<SessionAction> {
        let peer = PeerId::new("peer");
        let track_id = TrackId(1);
        vec![
            SessionAction::AddTrack {
                track_id,
                title: String::new(),
                artist: String::new(),
                duration_ms: 0,
                path: None,
            },
            SessionAction::RemoveTrack { track_id },
            SessionAction::MoveTrack {
                track_id,
                after: None,
            },
            SessionAction::Play,
            SessionAction::Pause,
            SessionAction::Next,
            SessionAction::Seek { position_ms: 0 },
            SessionAction::TakePlayback,
            SessionAction::HandOff { to: peer.clone() },
            SessionAction::AddCohost { peer: peer.clone() },
            SessionAction::RemoveCohost { peer: peer.clone() },
            SessionAction::ApproveKnock { peer: peer.clone() },
            SessionAction::DenyKnock { peer },
        ]
    }
}

/// The result of applying an intent, matched to its request by id.
#[derive(Message, Clone, Debug, PartialEq)]
pub struct IntentOutcome {
    pub id: IntentId,
    pub result: Result<Applied, IntentError>,
}

/// What an applied intent produced, for the reply to its author.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Applied {
    Done,
    SessionCreated(SessionId),
    /// Admitted by the host and given the session.
    SessionJoined(SessionId),
    /// The host could not be reached: the intent waits in the outbox, and will have this
    /// result once delivered.
    Pending(Box<Applied>),
    TrackAdded(TrackId),
    /// A folder import: files added to the library, and files that could not be read.
    Imported {
        added: u32,
        skipped: u32,
    },
}

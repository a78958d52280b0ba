//! Intents: every user action, from any front end, as data. See docs/architecture.md.

use bevy::prelude::*;
use serde::{Deserialize, Serialize};

use crate::ids::{IntentId, PeerId, SessionId, TrackId};

/// Outcomes carry these; they live in `error` (which `rules` shares) and are named here too.
pub use crate::error::{ErrorCode, IntentError};

/// One user action with a unique id. Front ends write these; `SessionPlugin` applies them.
#[derive(Message, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Intent {
    /// Unique for ever: its author and counter.
    pub id: IntentId,
    /// What the user asked for.
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

/// Actions that change this device only, or start and end its session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LocalAction {
    /// Sets the name others see.
    SetDisplayName {
        /// The new name.
        name: String,
    },
    /// Adds a relay to the user's list.
    AddRelay {
        /// The relay's multiaddr, with its `/p2p/<id>`.
        addr: String,
    },
    /// Removes a relay from the user's list.
    RemoveRelay {
        /// The relay's address as listed.
        addr: String,
    },
    /// Starts a session hosted here.
    CreateSession {
        /// The new session's id.
        session_id: SessionId,
        /// What to call it.
        name: String,
    },
    /// Joins a session with an invite link or short code.
    JoinSession {
        /// The link or code as typed.
        invite: String,
    },
    /// Leaves the current session.
    LeaveSession,
    /// Adds a track to this device's library (not to a session).
    AddToLibrary {
        /// A new id for the track.
        track_id: TrackId,
        /// The track's title.
        title: String,
        /// The artist, possibly empty.
        artist: String,
        /// Its length.
        duration_ms: u64,
        /// The audio file, if any.
        path: Option<String>,
    },
    /// Queues a track from an audio file on this device: the media plugin reads the file
    /// (is it audio it can decode? under the size cap?), names it by its BLAKE3 hash, keeps
    /// the path here, and sends [`SessionAction::AddTrack`] with the media under this same
    /// intent id, so the answer is the addition's.
    AddFile {
        /// A new id for the track.
        track_id: TrackId,
        /// The track's title.
        title: String,
        /// The artist, possibly empty.
        artist: String,
        /// Its length.
        duration_ms: u64,
        /// The audio file.
        path: String,
    },
    /// Switches "Listen along" on or off: this device plays the current track at the shared
    /// clock's position though it does not own playback.
    SetListening {
        /// On or off.
        on: bool,
    },
    /// Reads the audio files under a folder into the library (tags and durations); answered
    /// by the library plugin once the scan is done.
    ImportFolder {
        /// The folder to scan.
        path: String,
    },
    /// Makes a new invite secret and short code for the hosted session: the old link and
    /// code stop working (members keep their own rejoin links).
    RotateInvite,
    /// Ends the hosted session for everyone (host only; anyone else leaves with
    /// `LeaveSession`).
    EndSession,
}

/// Actions on the shared session, checked against the role rules by the authority.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SessionAction {
    /// Appends a track to the queue.
    AddTrack {
        /// A new id for the track.
        track_id: TrackId,
        /// The track's title.
        title: String,
        /// The artist, possibly empty.
        artist: String,
        /// Its length.
        duration_ms: u64,
        /// The audio, by content, when the track comes from a file (front ends with a path
        /// send [`LocalAction::AddFile`], which names it).
        media: Option<crate::media::Media>,
    },
    /// Removes a track from the queue.
    RemoveTrack {
        /// The track to remove.
        track_id: TrackId,
    },
    /// Moves a track after another one, or to the front when `after` is `None`.
    MoveTrack {
        /// The track to move.
        track_id: TrackId,
        /// The track it goes after; `None` for the front.
        after: Option<TrackId>,
    },
    /// Plays the current track (or the first one).
    Play,
    /// Pauses playback.
    Pause,
    /// Skips to the next track.
    Next,
    /// Moves the current track's position.
    Seek {
        /// Where to, from the track's start.
        position_ms: u64,
    },
    /// Makes the author the playback owner.
    TakePlayback,
    /// Gives playback to another peer.
    HandOff {
        /// The new playback owner.
        to: PeerId,
    },
    /// Makes a participant a co-host.
    AddCohost {
        /// The participant to promote.
        peer: PeerId,
    },
    /// Makes a co-host a guest again.
    RemoveCohost {
        /// The co-host to demote.
        peer: PeerId,
    },
    /// Lets a knocking peer in.
    ApproveKnock {
        /// Who knocked.
        peer: PeerId,
    },
    /// Turns a knocking peer away.
    DenyKnock {
        /// Who knocked.
        peer: PeerId,
    },
    /// Removes a participant from the session; `ban` also refuses its joins from now on.
    RemoveMember {
        /// Who is removed.
        peer: PeerId,
        /// Refuse this peer's joins for the rest of the session.
        ban: bool,
    },
    /// Sends a reaction about a track (the one playing when `track_id` is `None`).
    React {
        /// Which of the six reactions.
        emoji: crate::reaction::Emoji,
        /// The track it is about; `None` for the one playing now.
        track_id: Option<TrackId>,
    },
    /// Makes a co-host the host (a planned move, before the host leaves, say): the term goes
    /// up, and the old host stays on as the last co-host.
    TransferHost {
        /// The co-host who becomes the host.
        to: PeerId,
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
                media: None,
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
            SessionAction::DenyKnock { peer: peer.clone() },
            SessionAction::RemoveMember { peer, ban: false },
            SessionAction::React {
                emoji: crate::reaction::Emoji::Fire,
                track_id: None,
            },
            SessionAction::TransferHost {
                to: PeerId::new("peer"),
            },
        ]
    }
}

/// The result of applying an intent, matched to its request by id.
#[derive(Message, Clone, Debug, PartialEq)]
pub struct IntentOutcome {
    /// The intent this answers.
    pub id: IntentId,
    /// What it produced, or why it changed nothing.
    pub result: Result<Applied, IntentError>,
}

/// A guest's intent that waited in the outbox and that the host refused. Its `pending`
/// reply went out long ago, so front ends tell its author this way.
#[derive(Message, Clone, Debug, PartialEq)]
pub struct IntentRefused {
    /// The refused intent.
    pub intent: Intent,
    /// Why the host refused it.
    pub error: IntentError,
}

/// What an applied intent produced, for the reply to its author.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Applied {
    /// Applied; nothing more to report.
    Done,
    /// A session was created with this id.
    SessionCreated(SessionId),
    /// Admitted by the host and given the session.
    SessionJoined(SessionId),
    /// The host could not be reached: the intent waits in the outbox, and will have this
    /// result once delivered.
    Pending(Box<Applied>),
    /// The track was added to the queue.
    TrackAdded(TrackId),
    /// A folder import: files added to the library, and files that could not be read.
    Imported {
        /// Audio files added.
        added: u32,
        /// Files that could not be read.
        skipped: u32,
    },
}

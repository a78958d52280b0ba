//! Sessions, participants and tracks as ECS components. Only systems change them.

use bevy::prelude::*;
use serde::{Deserialize, Serialize};

use crate::ids::{PeerId, SessionId, TrackId};
use crate::order::QueueKey;
use crate::rules::Role;

mod queue_index;
pub use queue_index::{Positions, QueueIndex};

/// Marks an entity whose registered components are sent to session members.
#[derive(Component, Copy, Clone, Debug, Default)]
pub struct Replicated;

/// The session entity. There is at most one active session per app.
#[derive(Component, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// Unique, named in invites.
    pub id: SessionId,
    /// What the host called the session.
    pub name: String,
}

/// On the session entity: the host, who is also the session's authority.
#[derive(Component, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Host(pub PeerId);

/// On the session entity: the co-hosts, in the order they were added.
#[derive(Component, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CoHosts(pub Vec<PeerId>);

/// On the session entity: how many times the host role has moved in this session (a planned
/// transfer, or a co-host taking over from a host that went away). Every update carries it,
/// so a member follows the newest host, and a host that sees a higher term steps down.
#[derive(Component, Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostTerm {
    /// 0 for the host who started the session; one more at each move.
    pub term: u64,
    /// Why the role last moved.
    pub why: HostChange,
}

impl HostTerm {
    /// The next term, for a move made for `why`.
    pub fn next(self, why: HostChange) -> Self {
        Self {
            term: self.term + 1,
            why,
        }
    }
}

/// Why the host role last moved.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum HostChange {
    /// It never moved: the host started the session.
    #[default]
    Started,
    /// The host handed it to a co-host (`host.handoff`).
    Handoff,
    /// The host left the party and handed it to a co-host.
    HostLeft,
    /// The host could not be reached, and the first co-host in line took over.
    Takeover,
}

impl HostChange {
    /// The name the control protocol uses (`host.changed`'s `reason`).
    pub fn as_str(self) -> &'static str {
        match self {
            HostChange::Started => "started",
            HostChange::Handoff => "handoff",
            HostChange::HostLeft => "left",
            HostChange::Takeover => "takeover",
        }
    }
}

/// On the session entity: the one peer whose device drives playback.
#[derive(Component, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlaybackOwner(pub PeerId);

/// A participant entity.
#[derive(Component, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Participant {
    /// Who this participant is.
    pub peer: PeerId,
    /// The name the participant chose.
    pub display_name: String,
    /// Joined as a party screen (the read-only `display` role).
    pub display: bool,
}

/// How this device reaches a participant.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Connection {
    /// The participant is this device.
    #[serde(rename = "self")]
    Myself,
    /// A direct connection (hole-punched or dialled).
    Direct,
    /// Through a relay.
    Relayed,
    /// On the local network.
    Lan,
}

impl Connection {
    /// The lowercase name used by the control protocol.
    pub fn as_str(self) -> &'static str {
        match self {
            Connection::Myself => "self",
            Connection::Direct => "direct",
            Connection::Relayed => "relayed",
            Connection::Lan => "lan",
        }
    }
}

/// On a participant entity: whether it is reachable now, and how. Local to each device.
#[derive(Component, Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Presence {
    /// Reachable now.
    pub online: bool,
    /// How this device reaches the participant.
    pub connection: Connection,
}

/// A track entity in the session queue.
#[derive(Component, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
// `on_remove`, not `on_discard`: replacing a track's value is not removing the track.
#[component(on_insert = queue_index::index_track, on_remove = queue_index::unindex_track)]
pub struct Track {
    /// The track's id, the same on every peer.
    pub id: TrackId,
    /// The track's title.
    pub title: String,
    /// The artist, possibly empty.
    pub artist: String,
    /// Its length.
    pub duration_ms: u64,
    /// The audio, by content, when the track came from a file. (Where the file is on a
    /// device is local: see [`crate::media::LocalFiles`].)
    pub media: Option<crate::media::Media>,
    /// The peer who added it to the queue.
    pub added_by: PeerId,
}

/// On a track entity: its place in the queue.
#[derive(Component, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[component(
    on_insert = queue_index::index_position,
    on_discard = queue_index::unindex_position
)]
pub struct QueuePosition(pub QueueKey);

/// On a track entity: a guest's own addition that the authority has not confirmed yet.
#[derive(Component, Copy, Clone, Debug, Default)]
pub struct Pending;

/// A track left the queue (removed, or its session closed). Written by the `Track` hook, so
/// it is seen for every removal whatever caused it; storage and front ends read it.
#[derive(Message, Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrackRemoved {
    /// The track that left.
    pub track_id: TrackId,
}

/// This device's own identity, loaded by storage at start.
#[derive(Resource, Clone, Debug, PartialEq, Eq)]
pub struct LocalPeer {
    /// The device's peer id, from its key.
    pub peer: PeerId,
    /// The name others see.
    pub display_name: String,
}

/// The user's relays, in the user's order. Persisted; status is filled in by the network.
#[derive(Resource, Clone, Debug, Default, PartialEq, Eq)]
pub struct Relays(pub Vec<RelayEntry>);

/// One relay in the user's list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RelayEntry {
    /// The relay's multiaddr, in canonical form (ends in `/p2p/<id>`).
    pub addr: String,
    /// Where this device stands with the relay.
    pub status: RelayStatus,
}

/// How this device stands with one relay.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RelayStatus {
    /// Dialling it, or asking for a reservation.
    Connecting,
    /// A reservation is held: the relay forwards to this device.
    Reserved,
    /// The relay refused or could not be reached.
    Failed {
        /// Why, in words.
        reason: String,
    },
    /// Not connected (not tried yet, or dropped).
    Disconnected,
}

impl RelayStatus {
    /// The lowercase name shown and reported.
    pub fn as_str(&self) -> &'static str {
        match self {
            RelayStatus::Connecting => "connecting",
            RelayStatus::Reserved => "reserved",
            RelayStatus::Failed { .. } => "failed",
            RelayStatus::Disconnected => "disconnected",
        }
    }
}

/// The role of `peer` in a session with this host and these co-hosts.
pub fn role_of(
    peer: &PeerId,
    host: &Host,
    cohosts: &CoHosts,
    participant: Option<&Participant>,
) -> Role {
    if *peer == host.0 {
        Role::Host
    } else if cohosts.0.contains(peer) {
        Role::CoHost
    } else if participant.is_some_and(|p| p.display) {
        Role::Display
    } else {
        Role::Guest
    }
}

/// How to invite people to the hosted session, filled in by the network once it can: the
/// link needs a reserved relay, the short code a registration on that relay.
#[derive(Resource, Clone, Debug, Default, PartialEq, Eq)]
pub struct SessionInvite {
    /// The invite link, once a relay reservation is held.
    pub url: Option<String>,
    /// The short code, once registered on the relay.
    pub short_code: Option<String>,
    /// Why there is no link or code yet, in words for the user.
    pub problem: Option<String>,
}

/// The phone page's link for the hosted session, with its token, filled in by the companion
/// plugin while it serves the page; front ends show it (the party screen's QR code, the
/// Share panel) and the control protocol's `session.companion` answers with it.
#[derive(Resource, Clone, Debug, Default, PartialEq, Eq)]
pub struct CompanionLink {
    /// `http://<LAN address>:<port>/c/<token>/`, while the page is served.
    pub url: Option<String>,
    /// Why there is no page, in words for the user.
    pub problem: Option<String>,
}

/// One track in this device's library: what can be added to a session's queue.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LibraryTrack {
    /// The track's id (a new one is made when it is queued).
    pub id: TrackId,
    /// The track's title.
    pub title: String,
    /// The artist, possibly empty.
    pub artist: String,
    /// Its length.
    pub duration_ms: u64,
    /// The audio file, when the track came from one.
    pub path: Option<String>,
}

impl LibraryTrack {
    /// The action that queues this track as a new track `track_id`: from its file when it
    /// has one (the media plugin names it by content), else as a plain entry.
    pub fn queue_action(&self, track_id: TrackId) -> crate::intent::Action {
        use crate::intent::{Action, LocalAction, SessionAction};
        match &self.path {
            Some(path) => Action::Local(LocalAction::AddFile {
                track_id,
                title: self.title.clone(),
                artist: self.artist.clone(),
                duration_ms: self.duration_ms,
                path: path.clone(),
            }),
            None => Action::Session(SessionAction::AddTrack {
                track_id,
                title: self.title.clone(),
                artist: self.artist.clone(),
                duration_ms: self.duration_ms,
                media: None,
            }),
        }
    }
}

/// This device's library, in the order tracks were added. Local: never replicated.
#[derive(Resource, Clone, Debug, Default, PartialEq, Eq)]
pub struct Library(pub Vec<LibraryTrack>);

impl Library {
    /// Tracks whose title, artist or file name contains every word of `query`, ignoring case.
    pub fn search<'a>(&'a self, query: &str) -> impl Iterator<Item = &'a LibraryTrack> + 'a {
        let words: Vec<String> = query.split_whitespace().map(str::to_lowercase).collect();
        self.0.iter().filter(move |t| {
            let text = format!(
                "{} {} {}",
                t.title,
                t.artist,
                t.path.as_deref().unwrap_or("")
            )
            .to_lowercase();
            words.iter().all(|w| text.contains(w.as_str()))
        })
    }
}

/// Present when a plugin scans folders for `ImportFolder` (the library plugin).
#[derive(Resource, Clone, Copy, Debug, Default)]
pub struct FolderImporter;

/// Where this device's join stands, for front ends (written by the network plugin).
#[derive(Resource, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum JoinProgress {
    /// Not joining.
    #[default]
    Idle,
    /// Looking a short code up on the relay.
    LookingUpCode,
    /// Reaching the host (through the relay, or directly).
    ConnectingToHost,
    /// Knocked: the host or a co-host has to approve.
    WaitingForApproval,
}

/// This device is a party screen: it joins sessions as the read-only `display` role.
#[derive(Resource, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct JoinAsDisplay;

/// Whether this device's user ever chose a display name (front ends ask on first run).
/// Inserted by storage; absent means "do not ask".
#[derive(Resource, Clone, Copy, Debug, PartialEq, Eq)]
pub struct DisplayNameChosen(pub bool);

/// People who knocked with a short code, waiting for the host or a co-host.
#[derive(Resource, Clone, Debug, Default, PartialEq, Eq)]
pub struct Knocks(pub Vec<Knock>);

/// One person knocking with a short code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Knock {
    /// Who knocks.
    pub peer: PeerId,
    /// The name they gave.
    pub display_name: String,
    /// They join as a party screen (the `display` role).
    pub display: bool,
    /// `Some(true)` approved, `Some(false)` denied, `None` still waiting.
    pub decision: Option<bool>,
}

/// A session's own secret: invite links' and members' rejoin secrets are derived from it, so
/// whoever holds it can check them: the host, and its co-hosts, who get it over the
/// (encrypted) link to the host, so that one of them can host the party after the host.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionKey(pub [u8; 32]);

impl SessionKey {
    /// A new random key.
    pub fn fresh() -> Self {
        Self(rand::random())
    }

    /// A short keyed hash of `message` (32 hex digits): the secrets in links.
    pub fn secret(&self, message: &str) -> String {
        blake3::keyed_hash(&self.0, message.as_bytes()).to_hex()[..32].to_owned()
    }
}

/// A fresh random key: every new session gets its own.
impl Default for SessionKey {
    fn default() -> Self {
        Self::fresh()
    }
}

/// Never printed: it admits people.
impl std::fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionKey(…)")
    }
}

/// On the session entity, on the host and its co-hosts only (never replicated; the host
/// sends it to each co-host over their link): who may come in. Rotating the invite bumps
/// `generation`, which changes the link's secret and the code.
#[derive(Component, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionAccess {
    /// How many times the invite was rotated; part of the link's secret.
    pub generation: u32,
    /// Peers whose joins are refused for the rest of the session.
    pub banned: std::collections::BTreeSet<PeerId>,
    /// Removed peers whose own rejoin links no longer work; a current invite lets them in
    /// again (unless banned).
    pub revoked: std::collections::BTreeSet<PeerId>,
    /// What links' and members' secrets are derived from.
    pub key: SessionKey,
}

/// A participant was removed by the host or a co-host: replication tells it and stops
/// sending it anything.
#[derive(Message, Clone, Debug, PartialEq, Eq)]
pub struct MemberRemoved {
    /// Who was removed.
    pub peer: PeerId,
    /// Also refused from now on.
    pub banned: bool,
}

/// Why this device's session ended, for the `SessionLeft` event; set by whoever ends it.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum LeaveReason {
    /// This device left (or, as the host, closed the session).
    Left,
    /// The host ended the session.
    Ended,
    /// The host or a co-host removed this device.
    Removed,
}

impl LeaveReason {
    /// The reason's text in the control protocol.
    pub fn as_str(self) -> &'static str {
        match self {
            LeaveReason::Left => "left",
            LeaveReason::Ended => "ended",
            LeaveReason::Removed => "removed",
        }
    }
}

/// A host that left its party with co-hosts online handed it to one first; it leaves in the
/// next frame, once the update that hands it over is on its way.
#[derive(Resource, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LeaveAfterHandover(pub bool);

/// The reason for the next `SessionLeft`, when known; taken when the event is written.
#[derive(Resource, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PendingLeaveReason(pub Option<LeaveReason>);

/// Present when a network plugin handles joins; without it a join answers "offline".
#[derive(Resource, Clone, Copy, Debug, Default)]
pub struct NetworkPresent;

/// A guest's session intents that could not reach the host yet, in order. Persisted, and
/// delivered when the host is reachable again; the host ignores ids it has already applied.
#[derive(Resource, Clone, Debug, Default, PartialEq, Eq)]
pub struct Outbox(pub Vec<crate::intent::Intent>);

/// The invite that lets this guest back into its session after a drop or a restart.
#[derive(Resource, Clone, Debug, Default, PartialEq, Eq)]
pub struct RejoinInvite(pub Option<String>);

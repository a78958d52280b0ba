//! The database layout, its version, and the ordered migrations between versions.
//! Each step is tested by opening a database written in the previous version's format.

use redb::{ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};
use whatnext_core::clock::PlaybackClock;
use whatnext_core::ids::PeerId;

use crate::StorageError;

/// The version this build writes. Bump it with a new step in [`migrate`].
pub const SCHEMA_VERSION: u64 = 5;

/// `schema_version`, `intent_counter`.
pub const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// `display_name`, `active_session`.
pub const SETTINGS: TableDefinition<&str, &str> = TableDefinition::new("settings");
/// The user's relays: position in the list → multiaddr.
pub const RELAYS: TableDefinition<u32, &str> = TableDefinition::new("relays");
/// Tracks on this machine: track id → postcard `LibraryTrack`.
pub const LIBRARY: TableDefinition<u64, &[u8]> = TableDefinition::new("library");
/// Session id → postcard [`SessionRecord`].
pub const SESSIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("sessions");
/// (session id, track id) → postcard [`TrackRecord`].
pub const SESSION_TRACKS: TableDefinition<(&str, u64), &[u8]> =
    TableDefinition::new("session_tracks");
/// Intents already applied here as the authority: postcard `IntentId` → postcard `Applied`.
/// Added in version 3, so a guest's outbox redelivered after a host restart applies once.
pub const APPLIED_INTENTS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("applied_intents");
/// Who may come into a session hosted here (or that this device co-hosts): session id →
/// postcard `SessionAccess` (the invite's generation, bans, revoked member links, and since
/// version 4 the session's key). The table came without a version bump: older builds never
/// open it.
pub const SESSION_ACCESS: TableDefinition<&str, &[u8]> = TableDefinition::new("session_access");
/// The user's own audio files, used in place: BLAKE3 hash (32 bytes) → path. Added in
/// version 5, when tracks came to be named by content and paths stopped being replicated.
pub const OWN_FILES: TableDefinition<&[u8], &str> = TableDefinition::new("own_files");
/// Intents not yet confirmed by an unreachable authority: sequence → postcard `Intent`.
pub const OUTBOX: TableDefinition<u64, &[u8]> = TableDefinition::new("outbox");

/// A session member as stored inside a [`SessionRecord`] (unchanged since version 1).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParticipantRecord {
    /// The member's peer id.
    pub peer: PeerId,
    /// The name the member chose.
    pub display_name: String,
    /// Whether the member joined as a party screen (the read-only `display` role).
    pub display: bool,
    /// The replicated entity's id, so it matches the same entity on other machines.
    pub net_id: u64,
}

/// A session as stored since version 2.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRecord {
    /// The session's name.
    pub name: String,
    /// The replicated entity's id, so it matches the same entity on other machines.
    pub net_id: u64,
    /// The session's authority.
    pub host: PeerId,
    /// Whose device plays the sound.
    pub playback_owner: PeerId,
    /// The shared playback clock as last written.
    pub clock: PlaybackClock,
    /// Everyone who was in the session.
    pub participants: Vec<ParticipantRecord>,
    /// Added in version 2, as the original app added its co-host list.
    pub cohosts: Vec<PeerId>,
    /// Added in version 4: how many times the host role moved.
    pub term: u64,
}

/// A queued track of a session, stored under (session id, track id).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackRecord {
    /// The track's title.
    pub title: String,
    /// The track's artist.
    pub artist: String,
    /// Its length in milliseconds.
    pub duration_ms: u64,
    /// Added in version 5 (in place of a path): the audio, by content.
    pub media: Option<whatnext_core::media::Media>,
    /// Who added it to the queue.
    pub added_by: PeerId,
    /// Its fractional-index position in the queue, as text.
    pub queue_key: String,
}

/// Frozen formats of earlier versions, kept to migrate from them (and to test that).
pub mod v1 {
    use super::*;

    /// A session as stored in version 1: no co-hosts.
    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub struct SessionRecord {
        /// The session's name.
        pub name: String,
        /// The replicated entity's id.
        pub net_id: u64,
        /// The session's authority.
        pub host: PeerId,
        /// Whose device plays the sound.
        pub playback_owner: PeerId,
        /// The shared playback clock as last written.
        pub clock: PlaybackClock,
        /// Everyone who was in the session.
        pub participants: Vec<ParticipantRecord>,
    }

    /// A session as stored in versions 2 and 3: no host term.
    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub struct SessionRecordV3 {
        /// The session's name.
        pub name: String,
        /// The replicated entity's id.
        pub net_id: u64,
        /// The session's authority.
        pub host: PeerId,
        /// Whose device plays the sound.
        pub playback_owner: PeerId,
        /// The shared playback clock as last written.
        pub clock: PlaybackClock,
        /// Everyone who was in the session.
        pub participants: Vec<ParticipantRecord>,
        /// The co-hosts, in the order they were promoted.
        pub cohosts: Vec<PeerId>,
    }

    /// Who may come in, as stored up to version 3: no session key (secrets were signed
    /// with the host's own key then).
    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub struct SessionAccessV3 {
        /// How many times the invite was rotated.
        pub generation: u32,
        /// Peers refused for the rest of the session.
        pub banned: std::collections::BTreeSet<PeerId>,
        /// Removed peers whose own rejoin links no longer work.
        pub revoked: std::collections::BTreeSet<PeerId>,
    }

    /// A queued track as stored up to version 4: the adder's path, no media.
    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub struct TrackRecordV4 {
        /// The track's title.
        pub title: String,
        /// The track's artist.
        pub artist: String,
        /// Its length in milliseconds.
        pub duration_ms: u64,
        /// The audio file on the machine of whoever added it, if known.
        pub path: Option<String>,
        /// Who added it to the queue.
        pub added_by: PeerId,
        /// Its fractional-index position in the queue, as text.
        pub queue_key: String,
    }

    /// Creates the version 1 tables. Also the first migration step from an empty file.
    pub fn create_tables(txn: &WriteTransaction) -> Result<(), redb::Error> {
        txn.open_table(META)?;
        txn.open_table(SETTINGS)?;
        txn.open_table(RELAYS)?;
        txn.open_table(LIBRARY)?;
        txn.open_table(SESSIONS)?;
        txn.open_table(SESSION_TRACKS)?;
        txn.open_table(OUTBOX)?;
        Ok(())
    }
}

/// Reads the schema version of an open database; 0 for a new, empty file.
pub fn read_version(db: &impl ReadableDatabase) -> Result<u64, StorageError> {
    let txn = db.begin_read().map_err(redb::Error::from)?;
    match txn.open_table(META) {
        Ok(table) => Ok(table
            .get("schema_version")
            .map_err(redb::Error::from)?
            .map(|v| v.value())
            .unwrap_or(0)),
        Err(redb::TableError::TableDoesNotExist(_)) => Ok(0),
        Err(e) => Err(redb::Error::from(e).into()),
    }
}

/// Runs every step from `from` up to [`SCHEMA_VERSION`], one transaction per step, so a
/// crash leaves the database at a whole version.
pub fn migrate(db: &redb::Database, from: u64) -> Result<(), StorageError> {
    for version in from..SCHEMA_VERSION {
        let txn = db.begin_write().map_err(redb::Error::from)?;
        match version {
            0 => v1::create_tables(&txn)?,
            1 => add_cohost_list(&txn)?,
            2 => {
                txn.open_table(APPLIED_INTENTS)?;
            }
            3 => add_host_term_and_session_key(&txn)?,
            4 => name_tracks_by_content(&txn)?,
            _ => unreachable!("no migration step from version {version}"),
        }
        txn.open_table(META)?
            .insert("schema_version", version + 1)?;
        txn.commit().map_err(redb::Error::from)?;
        tracing::info!(from = version, to = version + 1, "migrated the database");
    }
    Ok(())
}

/// Version 1 → 2: every session gets an empty co-host list.
fn add_cohost_list(txn: &WriteTransaction) -> Result<(), StorageError> {
    let mut sessions = txn.open_table(SESSIONS)?;
    let mut rewritten = Vec::new();
    for row in sessions.iter()? {
        let (id, bytes) = row?;
        let old: v1::SessionRecord = postcard::from_bytes(bytes.value())
            .map_err(|e| StorageError::CorruptRecord(format!("session {}: {e}", id.value())))?;
        let new = v1::SessionRecordV3 {
            name: old.name,
            net_id: old.net_id,
            host: old.host,
            playback_owner: old.playback_owner,
            clock: old.clock,
            participants: old.participants,
            cohosts: Vec::new(),
        };
        rewritten.push((id.value().to_owned(), encode(&new)?));
    }
    for (id, bytes) in rewritten {
        sessions.insert(id.as_str(), bytes.as_slice())?;
    }
    Ok(())
}

/// Version 3 → 4: every session gets host term 0, and every stored access a fresh session
/// key. Links made before (signed with the host's own key) stop working; members' rejoin
/// links too, so a member of such a session joins again with a new link.
fn add_host_term_and_session_key(txn: &WriteTransaction) -> Result<(), StorageError> {
    let corrupt = |what: &str, id: &str, e: postcard::Error| {
        StorageError::CorruptRecord(format!("{what} {id}: {e}"))
    };
    let mut sessions = txn.open_table(SESSIONS)?;
    let mut rewritten = Vec::new();
    for row in sessions.iter()? {
        let (id, bytes) = row?;
        let old: v1::SessionRecordV3 =
            postcard::from_bytes(bytes.value()).map_err(|e| corrupt("session", id.value(), e))?;
        let new = SessionRecord {
            name: old.name,
            net_id: old.net_id,
            host: old.host,
            playback_owner: old.playback_owner,
            clock: old.clock,
            participants: old.participants,
            cohosts: old.cohosts,
            term: 0,
        };
        rewritten.push((id.value().to_owned(), encode(&new)?));
    }
    for (id, bytes) in rewritten {
        sessions.insert(id.as_str(), bytes.as_slice())?;
    }
    let mut access = txn.open_table(SESSION_ACCESS)?;
    let mut rewritten = Vec::new();
    for row in access.iter()? {
        let (id, bytes) = row?;
        let old: v1::SessionAccessV3 = postcard::from_bytes(bytes.value())
            .map_err(|e| corrupt("session access", id.value(), e))?;
        let new = whatnext_core::components::SessionAccess {
            generation: old.generation,
            banned: old.banned,
            revoked: old.revoked,
            key: whatnext_core::components::SessionKey::fresh(),
        };
        rewritten.push((id.value().to_owned(), encode(&new)?));
    }
    for (id, bytes) in rewritten {
        access.insert(id.as_str(), bytes.as_slice())?;
    }
    Ok(())
}

/// Version 4 → 5: a track's path becomes its media. A path to a readable audio file here is
/// hashed, the track gets its media and the file is kept as one of this device's own; any
/// other path (a guest's device, a file since gone) is dropped, and the track has no media.
fn name_tracks_by_content(txn: &WriteTransaction) -> Result<(), StorageError> {
    use whatnext_core::media::{AudioFormat, ContentHash, Media};
    let mut tracks = txn.open_table(SESSION_TRACKS)?;
    let mut own = txn.open_table(OWN_FILES)?;
    let mut rewritten = Vec::new();
    for row in tracks.iter()? {
        let (key, bytes) = row?;
        let (session, track) = key.value();
        let old: v1::TrackRecordV4 = postcard::from_bytes(bytes.value())
            .map_err(|e| StorageError::CorruptRecord(format!("track {track}: {e}")))?;
        let media = old.path.as_deref().and_then(|path| {
            let path = std::path::Path::new(path);
            let format = AudioFormat::from_extension(path.extension()?.to_str()?)?;
            let (hash, size) = ContentHash::of_file(path).ok()?;
            Some((
                Media { hash, size, format },
                path.to_string_lossy().into_owned(),
            ))
        });
        if let Some((media, path)) = &media {
            own.insert(media.hash.0.as_slice(), path.as_str())?;
        }
        let new = TrackRecord {
            title: old.title,
            artist: old.artist,
            duration_ms: old.duration_ms,
            media: media.map(|(m, _)| m),
            added_by: old.added_by,
            queue_key: old.queue_key,
        };
        rewritten.push(((session.to_owned(), track), encode(&new)?));
    }
    for ((session, track), bytes) in rewritten {
        tracks.insert((session.as_str(), track), bytes.as_slice())?;
    }
    Ok(())
}

/// Serializes a record with postcard, the format of every stored value.
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, StorageError> {
    postcard::to_allocvec(value).map_err(|e| StorageError::CorruptRecord(e.to_string()))
}

impl TrackRecord {
    /// The queued track this record stores, as track `id`.
    pub fn track(&self, id: whatnext_core::ids::TrackId) -> whatnext_core::components::Track {
        whatnext_core::components::Track {
            id,
            title: self.title.clone(),
            artist: self.artist.clone(),
            duration_ms: self.duration_ms,
            media: self.media,
            added_by: self.added_by.clone(),
        }
    }
}

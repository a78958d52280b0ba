//! `StoragePlugin`: the identity key file and one redb database in the data directory.
//!
//! At start it loads the identity, the relays and the active session into the world. Then,
//! once per frame at most, it writes what changed in one transaction (`PersistSet`, in `Last`), so anything a front end confirms after that set is on disk.

mod flush;
mod private;
pub mod schema;
mod undo;

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use bevy::prelude::*;
use redb::{Database, ReadableDatabase, ReadableTable};
use whatnext_core::prelude::*;

use schema::*;
pub use whatnext_identity::{self as identity, Identity, IdentityError};

/// The identity key file's name inside the data directory.
pub const KEY_FILE: &str = "identity.key";
/// The redb database's name inside the data directory.
pub const DB_FILE: &str = "whatnext.redb";

/// Why the data directory could not be opened, read or written. Each message tells the user
/// what to do, because opening errors are shown before any window.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The identity key file could not be read or created.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// The database was written by a newer build; it is refused without being touched.
    #[error(
        "the database {path} was written by a newer whatnext (schema version {found}; this build \
         reads up to version {supported}). It was left untouched: run a newer whatnext, or pass \
         another --data-dir"
    )]
    NewerSchema {
        /// The database file that was refused.
        path: PathBuf,
        /// The schema version written in it.
        found: u64,
        /// The newest schema version this build reads ([`schema::SCHEMA_VERSION`]).
        supported: u64,
    },
    /// Another whatnext process holds the database's lock.
    #[error(
        "the database {path} is open in another whatnext; close that one, or pass another --data-dir"
    )]
    AlreadyOpen {
        /// The database file that is locked.
        path: PathBuf,
    },
    /// redb refused the file for another reason; nothing was written to it.
    #[error("the database {path} cannot be opened ({reason}); it was left as it is")]
    Unreadable {
        /// The database file that was refused.
        path: PathBuf,
        /// redb's explanation.
        reason: String,
    },
    /// A record could not be decoded (or encoded) with postcard; says which kind of record.
    #[error("a stored record cannot be read: {0}")]
    CorruptRecord(String),
    /// The data directory does not exist and could not be created.
    #[error("cannot create the data directory {path}: {source}")]
    DataDir {
        /// The directory that was asked for.
        path: PathBuf,
        /// The file-system error.
        #[source]
        source: std::io::Error,
    },
    /// The data directory, the key file or the database could not be made private (0700 /
    /// 0600).
    #[error("cannot make {path} private to this user: {source}")]
    Permissions {
        /// The directory or file.
        path: PathBuf,
        /// The file-system error.
        #[source]
        source: std::io::Error,
    },
    /// Any other redb failure while reading or writing.
    #[error("database error: {0}")]
    Db(#[from] redb::Error),
}

macro_rules! via_redb_error {
    ($($t:ty),*) => {$(
        impl From<$t> for StorageError {
            fn from(e: $t) -> Self {
                StorageError::Db(e.into())
            }
        }
    )*};
}
via_redb_error!(
    redb::TableError,
    redb::StorageError,
    redb::TransactionError,
    redb::CommitError
);

/// The open database and identity of one data directory.
#[derive(Resource)]
pub struct Store {
    /// The migrated database, open for the whole run; `None` between a failed write (redb
    /// refuses every operation after an I/O error) and the reopening that follows it.
    db: Option<Database>,
    /// The database file.
    path: PathBuf,
    /// The data directory it lives in.
    pub dir: PathBuf,
    /// This device's key pair, loaded from (or first written to) [`KEY_FILE`].
    pub identity: Identity,
}

/// A stored session with its tracks.
pub type StoredSession = (SessionId, SessionRecord, Vec<(TrackId, TrackRecord)>);

/// What the database held at start.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Intents this device already applied as an authority, so a redelivered one applies once.
    pub applied: Vec<(IntentId, Applied)>,
    /// The name the user chose; `None` until they choose one.
    pub display_name: Option<String>,
    /// The user's relays as multiaddrs, in their order.
    pub relays: Vec<String>,
    /// Intents waiting for an unreachable authority, oldest first.
    pub outbox: Vec<Intent>,
    /// The link to rejoin the last session as a guest, if any.
    pub rejoin_invite: Option<String>,
    /// The next counter for this device's intent ids, so ids stay unique across restarts.
    pub intent_counter: u64,
    /// The session that was active when the app last ran.
    pub session: Option<StoredSession>,
    /// The active session's access (bans, rotations), when this device hosted it.
    pub access: Option<SessionAccess>,
    /// The tracks imported on this machine.
    pub library: Vec<LibraryTrack>,
    /// The user's own audio files, used in place, by hash.
    pub own_files: std::collections::HashMap<ContentHash, std::path::PathBuf>,
}

impl Store {
    /// Opens (creating if needed) the data directory's key file and database, and migrates
    /// the database to this build's schema. A newer database is refused untouched.
    pub fn open(dir: &Path) -> Result<Self, StorageError> {
        private::create_dir(dir)?;
        let key = dir.join(KEY_FILE);
        let identity = identity::load_or_create(&key)?;
        private::restrict_file(&key)?;
        let path = dir.join(DB_FILE);
        if path.exists() {
            // Read the version without write access, so a newer file is never touched.
            match redb::ReadOnlyDatabase::open(&path) {
                Ok(db) => check_not_newer(&path, read_version(&db)?)?,
                Err(redb::DatabaseError::DatabaseAlreadyOpen) => {
                    return Err(StorageError::AlreadyOpen { path });
                }
                // Not closed cleanly (a crash): the read-write open below repairs it.
                Err(redb::DatabaseError::RepairAborted) | Err(redb::DatabaseError::Storage(_)) => {}
                Err(e) => {
                    return Err(StorageError::Unreadable {
                        path,
                        reason: e.to_string(),
                    });
                }
            }
        }
        let db = create_db(&path)?;
        private::restrict_file(&path)?;
        let version = read_version(&db)?;
        check_not_newer(&path, version)?;
        migrate(&db, version)?;
        Ok(Self {
            db: Some(db),
            path,
            dir: dir.to_owned(),
            identity,
        })
    }

    /// The open database, or why there is none (it is reopened after a failed write).
    pub fn db(&self) -> Result<&Database, StorageError> {
        self.db.as_ref().ok_or_else(|| StorageError::Unreadable {
            path: self.path.clone(),
            reason: "closed after a failed write; it is reopened on the next one".into(),
        })
    }

    /// Closes the database and opens it again: after an I/O error redb refuses everything
    /// until then. Opening repairs it back to its last commit.
    pub fn reopen(&mut self) -> Result<(), StorageError> {
        // The old handle holds the file's lock: it must go before the new one opens.
        self.db = None;
        self.db = Some(create_db(&self.path)?);
        Ok(())
    }

    /// Reads everything the app restores at start.
    pub fn load(&self) -> Result<Loaded, StorageError> {
        let txn = self.db()?.begin_read()?;
        let meta = txn.open_table(META)?;
        let settings = txn.open_table(SETTINGS)?;
        let mut loaded = Loaded {
            intent_counter: meta.get("intent_counter")?.map(|v| v.value()).unwrap_or(0),
            display_name: settings.get("display_name")?.map(|v| v.value().to_owned()),
            ..Default::default()
        };
        for row in txn.open_table(RELAYS)?.iter()? {
            loaded.relays.push(row?.1.value().to_owned());
        }
        for row in txn.open_table(APPLIED_INTENTS)?.iter()? {
            let (id, applied) = row?;
            loaded.applied.push((
                decode(id.value(), "applied intent id")?,
                decode(applied.value(), "applied intent")?,
            ));
        }
        for row in txn.open_table(LIBRARY)?.iter()? {
            loaded
                .library
                .push(decode(row?.1.value(), "library track")?);
        }
        for row in txn.open_table(OWN_FILES)?.iter()? {
            let (hash, path) = row?;
            let hash = <[u8; 32]>::try_from(hash.value()).map_err(|_| {
                StorageError::CorruptRecord("an own file's hash is not 32 bytes".into())
            })?;
            loaded
                .own_files
                .insert(ContentHash(hash), path.value().into());
        }
        for row in txn.open_table(OUTBOX)?.iter()? {
            loaded.outbox.push(decode(row?.1.value(), "outbox intent")?);
        }
        loaded.rejoin_invite = settings.get("rejoin_invite")?.map(|v| v.value().to_owned());
        let active = settings
            .get("active_session")?
            .map(|v| v.value().to_owned());
        if let Some(session_id) = active {
            let sessions = txn.open_table(SESSIONS)?;
            let Some(bytes) = sessions.get(session_id.as_str())? else {
                return Err(StorageError::CorruptRecord(format!(
                    "the active session {session_id} has no record"
                )));
            };
            let record: SessionRecord = decode(bytes.value(), "session")?;
            loaded.access = match txn.open_table(SESSION_ACCESS) {
                Ok(table) => match table.get(session_id.as_str())? {
                    Some(bytes) => Some(decode(bytes.value(), "session access")?),
                    None => None,
                },
                // Written by a build from before bans could be stored.
                Err(redb::TableError::TableDoesNotExist(_)) => None,
                Err(e) => return Err(e.into()),
            };
            let mut tracks = Vec::new();
            let table = txn.open_table(SESSION_TRACKS)?;
            for row in table.range((session_id.as_str(), 0)..=(session_id.as_str(), u64::MAX))? {
                let (key, bytes) = row?;
                let id = TrackId(key.value().1);
                tracks.push((id, decode(bytes.value(), "track")?));
            }
            loaded.session = Some((SessionId(session_id), record, tracks));
        }
        Ok(loaded)
    }
}

/// Opens (creating, or repairing after a crash) the database file read-write.
fn create_db(path: &Path) -> Result<Database, StorageError> {
    Database::create(path).map_err(|e| match e {
        redb::DatabaseError::DatabaseAlreadyOpen => StorageError::AlreadyOpen {
            path: path.to_owned(),
        },
        e => StorageError::Unreadable {
            path: path.to_owned(),
            reason: e.to_string(),
        },
    })
}

fn check_not_newer(path: &Path, found: u64) -> Result<(), StorageError> {
    if found > SCHEMA_VERSION {
        return Err(StorageError::NewerSchema {
            path: path.to_owned(),
            found,
            supported: SCHEMA_VERSION,
        });
    }
    Ok(())
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, StorageError> {
    postcard::from_bytes(bytes).map_err(|e| StorageError::CorruptRecord(format!("{what}: {e}")))
}

/// Persists the app in the data directory. It is opened with [`StoragePlugin::open`] before
/// the app is built, so errors reach the user before any window.
///
/// On build it inserts the restored resources (`LocalPeer`, `DisplayNameChosen`, `Library`,
/// `LocalFiles` (its own files),
/// `Relays`, `Outbox`, `RejoinInvite`, `AppliedIntents`, `IntentCounter`, `QueueIndex`) and
/// the [`Store`], and spawns the stored session's entities marked `Restored`. It adds one
/// system, `flush`, in `Last` in `PersistSet`: it writes everything that changed that frame
/// (reading `TrackRemoved` messages) in one transaction.
pub struct StoragePlugin {
    store: Mutex<Option<(Store, Loaded)>>,
}

impl StoragePlugin {
    /// This data directory's identity, for the network.
    pub fn identity(&self) -> Option<Identity> {
        let store = self.store.lock().ok()?;
        store.as_ref().map(|(s, _)| s.identity.clone())
    }

    /// The data directory, for plugins that keep files of their own there.
    pub fn dir(&self) -> Option<PathBuf> {
        let store = self.store.lock().ok()?;
        store.as_ref().map(|(s, _)| s.dir.clone())
    }

    /// Opens the data directory and reads what the app restores; the plugin inserts it on build.
    pub fn open(dir: &Path) -> Result<Self, StorageError> {
        let store = Store::open(dir)?;
        let loaded = store.load()?;
        Ok(Self {
            store: Mutex::new(Some((store, loaded))),
        })
    }
}

impl Plugin for StoragePlugin {
    fn build(&self, app: &mut App) {
        let taken = self.store.lock().ok().and_then(|mut s| s.take());
        let Some((store, loaded)) = taken else {
            tracing::error!("StoragePlugin was added twice; the second copy does nothing");
            return;
        };
        let peer = PeerId::new(store.identity.peer_id.to_base58());
        let default_name = default_name(&peer);
        app.insert_resource(DisplayNameChosen(loaded.display_name.is_some()));
        app.insert_resource(Library(loaded.library.clone()));
        app.insert_resource(LocalFiles {
            own: loaded.own_files.clone(),
            copies: Default::default(),
        });
        let local = LocalPeer {
            peer,
            display_name: loaded.display_name.unwrap_or(default_name),
        };
        app.init_resource::<QueueIndex>();
        let counter = app
            .world()
            .get_resource::<IntentCounter>()
            .map_or(0, |c| c.0);
        app.insert_resource(IntentCounter(counter.max(loaded.intent_counter)));
        app.insert_resource(flush::Written {
            session: loaded.session.as_ref().map(|(id, _, _)| id.clone()),
            relays: loaded.relays.clone(),
            intent_counter: loaded.intent_counter,
            rewrite_all: false,
            retry_at: None,
        });
        app.insert_resource(AppliedIntents {
            by_id: loaded.applied.into_iter().collect(),
            ..Default::default()
        });
        app.insert_resource(Outbox(loaded.outbox))
            .insert_resource(RejoinInvite(loaded.rejoin_invite));
        app.insert_resource(Relays(
            loaded
                .relays
                .into_iter()
                .map(|addr| RelayEntry {
                    addr,
                    status: RelayStatus::Disconnected,
                })
                .collect(),
        ));
        if let Some((id, record, tracks)) = loaded.session {
            restore_session(app.world_mut(), &local.peer, id, record, tracks);
            restore_access(app.world_mut(), loaded.access);
        }
        app.insert_resource(local)
            .insert_resource(store)
            .init_resource::<Persistence>()
            .add_systems(
                Last,
                (
                    flush::flush,
                    undo::undo_failed_frame.run_if(|p: Res<Persistence>| p.failed_this_frame),
                )
                    .chain()
                    .in_set(PersistSet),
            );
    }
}

/// The name a device has until its user chooses one.
pub(crate) fn default_name(peer: &PeerId) -> String {
    let text = peer.as_str();
    let tail: String = text
        .chars()
        .skip(text.chars().count().saturating_sub(4))
        .collect();
    format!("Listener {tail}")
}

/// Spawns a stored session's entities, marked `Restored` (at start, and when a failed write
/// is undone).
/// Puts the stored access (bans, rotations) back on the restored session, if it had any.
pub(crate) fn restore_access(world: &mut World, access: Option<SessionAccess>) {
    let Some(access) = access else { return };
    let session = world
        .query_filtered::<Entity, With<Session>>()
        .iter(world)
        .next();
    if let Some(session) = session {
        world.entity_mut(session).insert(access);
    }
}

pub(crate) fn restore_session(
    world: &mut World,
    me: &PeerId,
    id: SessionId,
    record: SessionRecord,
    tracks: Vec<(TrackId, TrackRecord)>,
) {
    let session = world
        .spawn((
            Session {
                id,
                name: record.name,
            },
            Host(record.host),
            HostTerm {
                term: record.term,
                why: HostChange::default(),
            },
            CoHosts(record.cohosts),
            PlaybackOwner(record.playback_owner),
            record.clock,
            NetId(record.net_id),
            Replicated,
            Restored,
        ))
        .id();
    let _ = session;
    for p in record.participants {
        spawn_participant(world, me, p);
    }
    for (id, t) in tracks {
        spawn_track(world, id, t);
    }
}

/// Spawns a stored participant; only this device is known to be online.
pub(crate) fn spawn_participant(world: &mut World, me: &PeerId, p: ParticipantRecord) {
    {
        // Presence is live state: only this device is known to be online at start.
        let presence = if p.peer == *me {
            Presence {
                online: true,
                connection: Connection::Myself,
            }
        } else {
            Presence {
                online: false,
                connection: Connection::Relayed,
            }
        };
        world.spawn((
            presence,
            Participant {
                peer: p.peer,
                display_name: p.display_name,
                display: p.display,
            },
            NetId(p.net_id),
            Replicated,
            Restored,
        ));
    }
}

/// Spawns a stored track; a bad queue key puts it last rather than lose it.
pub(crate) fn spawn_track(world: &mut World, id: TrackId, t: TrackRecord) {
    {
        let key = match QueueKey::parse(&t.queue_key) {
            Ok(key) => key,
            Err(e) => {
                // Keep the track, at the end, rather than lose it.
                tracing::warn!(track = %id, error = %e, "a stored track had a bad queue key; it goes last");
                QueueKey::between(world.resource::<QueueIndex>().last_key().as_ref(), None)
            }
        };
        world.spawn((
            t.track(id),
            QueuePosition(key),
            // Any id will do: members resync with a snapshot from a restarted host.
            NetId::fresh(),
            Replicated,
            Restored,
        ));
    }
}

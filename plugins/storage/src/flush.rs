//! The write: everything that changed in a frame, in one transaction, in `Last`
//! (`PersistSet`). A failed write never panics: the frame is marked failed in
//! [`Persistence`] (so nothing confirms it, and `undo` puts the world back as the disk has
//! it), the database is reopened, and the next write rewrites the whole state, at most once a
//! second while the disk keeps failing.

use std::time::{Duration, Instant};

use bevy::prelude::*;
use whatnext_core::prelude::*;

use crate::schema::*;
use crate::{StorageError, Store};

/// While writes fail, a new attempt at most this often; changes in between are refused at
/// once (and undone) without touching the disk.
pub const RETRY_EVERY: Duration = Duration::from_secs(1);

/// What is on disk, to notice what changed since. Starts as what was loaded.
#[derive(Resource, Default)]
pub(crate) struct Written {
    pub(crate) session: Option<SessionId>,
    pub(crate) relays: Vec<String>,
    pub(crate) intent_counter: u64,
    /// A write failed since the last one that landed: the next one writes everything, since
    /// the frames in between are not on disk (a guest's mirror of its host's session is not
    /// undone: it is a copy, and the host holds the original).
    pub(crate) rewrite_all: bool,
    /// While writes fail: no new attempt before this.
    pub(crate) retry_at: Option<Instant>,
}

/// The session entity's persisted components.
type SessionRow<'a> = (
    &'a Session,
    &'a Host,
    &'a CoHosts,
    &'a PlaybackOwner,
    &'a PlaybackClock,
    &'a NetId,
    Has<Restored>,
    Option<&'a SessionAccess>,
    Option<&'a HostTerm>,
);

/// Which parts of the stored state to write this frame.
struct Dirty {
    display_name: bool,
    library: bool,
    own_files: bool,
    relays: bool,
    counter: bool,
    applied: bool,
    outbox: bool,
    rejoin: bool,
    left: bool,
    session: bool,
    /// Every track of the session, not just the changed ones.
    all_tracks: bool,
}

/// This device's stored resources.
#[derive(bevy::ecs::system::SystemParam)]
pub(crate) struct Device<'w> {
    local: Res<'w, LocalPeer>,
    relays: Res<'w, Relays>,
    counter: Res<'w, IntentCounter>,
    outbox: Res<'w, Outbox>,
    rejoin: Res<'w, RejoinInvite>,
    library: Res<'w, Library>,
    files: Option<Res<'w, LocalFiles>>,
    chosen: Option<Res<'w, DisplayNameChosen>>,
}

/// Writes everything that changed this frame in one transaction. Runs in `Last`.
pub(crate) fn flush(
    mut store: ResMut<Store>,
    mut persistence: ResMut<Persistence>,
    device: Device,
    mut written: ResMut<Written>,
    sessions: Query<SessionRow>,
    changed_sessions: Query<
        (),
        (
            Or<(
                Changed<Session>,
                Changed<Host>,
                Changed<CoHosts>,
                Changed<PlaybackOwner>,
                Changed<PlaybackClock>,
                Changed<SessionAccess>,
                Changed<HostTerm>,
            )>,
            Without<Restored>,
        ),
    >,
    participants: Query<(&Participant, &NetId)>,
    changed_participants: Query<(), (Changed<Participant>, Without<Restored>)>,
    mut gone_participants: RemovedComponents<Participant>,
    // A guest's unconfirmed addition lives in the outbox, not in the queue.
    tracks: Query<(Ref<Track>, Ref<QueuePosition>, Has<Restored>), Without<Pending>>,
    mut applied: ResMut<AppliedIntents>,
    mut removed_tracks: MessageReader<TrackRemoved>,
) {
    persistence.bypass_change_detection().failed_this_frame = false;
    let Device {
        local,
        relays,
        counter,
        outbox,
        rejoin,
        library,
        files,
        chosen,
    } = device;
    let session = sessions.iter().next();
    let session_id = session.map(|s| s.0.id.clone());
    let removed: Vec<TrackId> = removed_tracks.read().map(|r| r.track_id).collect();
    let participants_changed =
        !changed_participants.is_empty() || gone_participants.read().count() > 0;
    // Relay statuses change often and are not stored; only the list of addresses is.
    let relay_addrs: Vec<String> = relays.0.iter().map(|r| r.addr.clone()).collect();
    let any_track_changed = tracks
        .iter()
        .any(|(t, p, restored)| !restored && (t.is_changed() || p.is_changed()));
    let now = Dirty {
        display_name: local.is_changed() && !local.is_added(),
        library: library.is_changed() && !library.is_added(),
        // Fetched copies change it too; they are found again in the store at start, so
        // rewriting the own files then costs a small table.
        own_files: files
            .as_ref()
            .is_some_and(|f| f.is_changed() && !f.is_added()),
        relays: written.relays != relay_addrs,
        counter: counter.0 != written.intent_counter,
        applied: !applied.unsaved.is_empty() || applied.forget_stored,
        outbox: outbox.is_changed() && !outbox.is_added(),
        rejoin: rejoin.is_changed() && !rejoin.is_added(),
        left: written.session.is_some() && session_id.is_none(),
        session: session.is_some_and(|s| !s.6)
            && (written.session != session_id
                || !changed_sessions.is_empty()
                || participants_changed),
        all_tracks: false,
    };
    let changes_now = now.display_name
        || now.library
        || now.own_files
        || now.relays
        || now.counter
        || now.applied
        || now.outbox
        || now.rejoin
        || now.left
        || now.session
        || any_track_changed
        || (!removed.is_empty() && session_id.is_some());
    if !changes_now && !written.rewrite_all {
        return;
    }
    let throttled = written.retry_at.is_some_and(|at| Instant::now() < at);
    if throttled {
        // The disk failed less than `RETRY_EVERY` ago: refuse this frame's changes at once.
        persistence.failed_this_frame = changes_now;
        return;
    }
    let dirty = if written.rewrite_all {
        Dirty {
            // Only a name the user chose: the default one must not stop the first-run prompt.
            display_name: chosen.is_some_and(|c| c.0),
            library: true,
            own_files: files.is_some(),
            relays: true,
            counter: true,
            applied: now.applied,
            outbox: true,
            rejoin: true,
            left: session_id.is_none(),
            session: session.is_some(),
            all_tracks: true,
        }
    } else {
        now
    };
    let session_record = session.filter(|_| dirty.session).map(
        |(s, host, cohosts, owner, clock, net_id, _, _, term)| SessionRecord {
            name: s.name.clone(),
            net_id: net_id.0,
            host: host.0.clone(),
            playback_owner: owner.0.clone(),
            clock: clock.clone(),
            participants: participants
                .iter()
                .map(|(p, id)| ParticipantRecord {
                    peer: p.peer.clone(),
                    display_name: p.display_name.clone(),
                    display: p.display,
                    net_id: id.0,
                })
                .collect(),
            cohosts: cohosts.0.clone(),
            term: term.map_or(0, |t| t.term),
        },
    );
    let track_records = tracks
        .iter()
        .filter(|(t, p, restored)| {
            dirty.all_tracks || (!restored && (t.is_changed() || p.is_changed()))
        })
        .map(|(t, position, _)| {
            let record = TrackRecord {
                title: t.title.clone(),
                artist: t.artist.clone(),
                duration_ms: t.duration_ms,
                media: t.media,
                added_by: t.added_by.clone(),
                queue_key: position.0.as_str().to_owned(),
            };
            (t.id, record)
        })
        .collect();
    let state = State {
        local: &local,
        relay_addrs: &relay_addrs,
        counter: counter.0,
        applied: &applied.unsaved,
        forget_applied: applied.forget_stored,
        outbox: &outbox,
        rejoin: &rejoin,
        library: &library,
        own_files: files.as_deref(),
        session: session_id.as_ref().map(|id| (id, session_record)),
        access: session.and_then(|s| s.7).filter(|_| dirty.session),
        tracks: track_records,
        removed: &removed,
    };
    let result = match store.db.is_some() {
        true => Ok(()),
        false => store.reopen(),
    }
    .and_then(|()| write(&store, &dirty, &state));
    match result {
        Ok(()) => {
            applied.unsaved.clear();
            applied.forget_stored = false;
            written.session = session_id;
            written.intent_counter = counter.0;
            written.relays = relay_addrs;
            written.rewrite_all = false;
            written.retry_at = None;
            if persistence.problem.is_some() {
                tracing::info!("writing to the data directory works again");
                persistence.problem = None;
            }
        }
        Err(error) => {
            let problem = format!(
                "cannot save to {}: {error}. Changes are refused until it works again",
                store.dir.display()
            );
            // Said once, and again only when the reason changes: it is retried every second.
            if persistence.problem.as_ref() != Some(&problem) {
                tracing::error!("{problem}");
            }
            // redb refuses everything after an I/O error until it is reopened.
            store.db = None;
            written.rewrite_all = true;
            written.retry_at = Some(Instant::now() + RETRY_EVERY);
            persistence.failed_this_frame = changes_now;
            persistence.problem = Some(problem);
        }
    }
}

/// What one write reads from the world.
struct State<'a> {
    local: &'a LocalPeer,
    relay_addrs: &'a [String],
    counter: u64,
    applied: &'a [(IntentId, Applied)],
    /// The stored applied intents go first.
    forget_applied: bool,
    outbox: &'a Outbox,
    rejoin: &'a RejoinInvite,
    library: &'a Library,
    own_files: Option<&'a LocalFiles>,
    /// The current session, with its record when that changed.
    session: Option<(&'a SessionId, Option<SessionRecord>)>,
    /// Its access (on the host and its co-hosts), written with its record.
    access: Option<&'a SessionAccess>,
    /// The tracks to write (changed ones, or all of them).
    tracks: Vec<(TrackId, TrackRecord)>,
    removed: &'a [TrackId],
}

/// One transaction with the parts of `state` that `dirty` names.
fn write(store: &Store, dirty: &Dirty, state: &State) -> Result<(), StorageError> {
    let txn = store.db()?.begin_write()?;
    {
        let mut settings = txn.open_table(SETTINGS)?;
        if dirty.display_name {
            settings.insert("display_name", state.local.display_name.as_str())?;
        }
        if dirty.library {
            // Rewritten whole: imports append thousands at once, edits are rare.
            let mut table = txn.open_table(LIBRARY)?;
            table.retain(|_, _| false)?;
            for (i, track) in state.library.0.iter().enumerate() {
                table.insert(i as u64, encode(track)?.as_slice())?;
            }
        }
        if dirty.own_files
            && let Some(files) = state.own_files
        {
            let mut table = txn.open_table(OWN_FILES)?;
            table.retain(|_, _| false)?;
            for (hash, path) in &files.own {
                table.insert(hash.0.as_slice(), path.to_string_lossy().as_ref())?;
            }
        }
        if dirty.relays {
            let mut table = txn.open_table(RELAYS)?;
            table.retain(|_, _| false)?;
            for (i, addr) in state.relay_addrs.iter().enumerate() {
                table.insert(i as u32, addr.as_str())?;
            }
        }
        if dirty.counter {
            txn.open_table(META)?
                .insert("intent_counter", state.counter)?;
        }
        if dirty.applied {
            let mut table = txn.open_table(APPLIED_INTENTS)?;
            if state.forget_applied {
                table.retain(|_, _| false)?;
            }
            for (id, result) in state.applied {
                table.insert(encode(id)?.as_slice(), encode(result)?.as_slice())?;
            }
        }
        if dirty.outbox {
            let mut table = txn.open_table(OUTBOX)?;
            table.retain(|_, _| false)?;
            for (i, intent) in state.outbox.0.iter().enumerate() {
                table.insert(i as u64, encode(intent)?.as_slice())?;
            }
        }
        if dirty.rejoin {
            match &state.rejoin.0 {
                Some(invite) => settings.insert("rejoin_invite", invite.as_str())?,
                None => settings.remove("rejoin_invite")?,
            };
        }
        if dirty.left {
            // The session's record stays; it is just no longer the one to restore.
            settings.remove("active_session")?;
        }
        let Some((session_id, record)) = &state.session else {
            drop(settings);
            txn.commit()?;
            return Ok(());
        };
        let id = session_id.0.as_str();
        if let Some(record) = record {
            txn.open_table(SESSIONS)?
                .insert(id, encode(record)?.as_slice())?;
            if let Some(access) = state.access {
                txn.open_table(SESSION_ACCESS)?
                    .insert(id, encode(access)?.as_slice())?;
            }
            settings.insert("active_session", id)?;
        }
        let mut table = txn.open_table(SESSION_TRACKS)?;
        if dirty.all_tracks {
            table.retain_in((id, 0)..=(id, u64::MAX), |_, _| false)?;
        } else {
            for track_id in state.removed {
                table.remove((id, track_id.0))?;
            }
        }
        for (track_id, record) in &state.tracks {
            table.insert((id, track_id.0), encode(record)?.as_slice())?;
        }
    }
    txn.commit()?;
    Ok(())
}

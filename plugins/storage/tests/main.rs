//! Storage against real redb files in temporary directories.

use std::path::Path;

use bevy::prelude::*;
use redb::Database;
use whatnext_core::clock::PlaybackClock;
use whatnext_core::prelude::*;
use whatnext_core::session::apply_intent;
use whatnext_storage::schema::{self, *};
use whatnext_storage::{DB_FILE, StorageError, StoragePlugin, Store};

fn app_on(dir: &Path) -> App {
    let mut app = App::new();
    app.add_plugins(SessionPlugin);
    app.add_plugins(StoragePlugin::open(dir).expect("open storage"));
    app.update();
    app
}

fn send(app: &mut App, action: Action) -> Result<Applied, IntentError> {
    let author = app.world().resource::<LocalPeer>().peer.clone();
    let counter = {
        let mut c = app.world_mut().resource_mut::<IntentCounter>();
        c.0 += 1;
        c.0
    };
    let result = apply_intent(
        app.world_mut(),
        &Intent {
            id: IntentId { author, counter },
            action,
        },
    );
    app.update();
    result
}

fn queue_titles(app: &mut App) -> Vec<String> {
    let world = app.world_mut();
    let order: Vec<Entity> = world
        .resource::<QueueIndex>()
        .in_order()
        .map(|(_, e)| e)
        .collect();
    order
        .into_iter()
        .filter_map(|e| world.get::<Track>(e).map(|t| t.title.clone()))
        .collect()
}

fn add(app: &mut App, id: u64, title: &str) {
    send(
        app,
        Action::Session(SessionAction::AddTrack {
            track_id: TrackId(id),
            title: title.into(),
            artist: "A".into(),
            duration_ms: 1_000,
            media: None,
        }),
    )
    .expect("add");
}

#[test]
fn a_session_its_queue_and_settings_survive_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let peer;
    {
        let mut app = app_on(dir.path());
        peer = app.world().resource::<LocalPeer>().peer.clone();
        send(
            &mut app,
            Action::Local(LocalAction::SetDisplayName { name: "Dee".into() }),
        )
        .expect("name");
        let relay =
            "/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN";
        send(
            &mut app,
            Action::Local(LocalAction::AddRelay { addr: relay.into() }),
        )
        .expect("relay");
        send(
            &mut app,
            Action::Local(LocalAction::CreateSession {
                session_id: SessionId("S1".into()),
                name: "Party".into(),
            }),
        )
        .expect("create");
        add(&mut app, 1, "One");
        add(&mut app, 2, "Two");
        add(&mut app, 3, "Three");
        send(
            &mut app,
            Action::Session(SessionAction::MoveTrack {
                track_id: TrackId(3),
                after: None,
            }),
        )
        .expect("move");
        send(
            &mut app,
            Action::Session(SessionAction::RemoveTrack {
                track_id: TrackId(2),
            }),
        )
        .expect("remove");
    }
    let mut app = app_on(dir.path());
    let local = app.world().resource::<LocalPeer>().clone();
    assert_eq!(local.peer, peer);
    assert_eq!(local.display_name, "Dee");
    assert_eq!(app.world().resource::<Relays>().0.len(), 1);
    assert_eq!(queue_titles(&mut app), ["Three", "One"]);
    let world = app.world_mut();
    let session = world
        .query::<&Session>()
        .single(world)
        .expect("session")
        .clone();
    assert_eq!(session.name, "Party");
}

#[test]
fn a_restored_session_keeps_working_and_saving() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let mut app = app_on(dir.path());
        send(
            &mut app,
            Action::Local(LocalAction::CreateSession {
                session_id: SessionId("S".into()),
                name: "P".into(),
            }),
        )
        .expect("create");
        add(&mut app, 1, "One");
    }
    {
        let mut app = app_on(dir.path());
        add(&mut app, 2, "Two");
        send(
            &mut app,
            Action::Session(SessionAction::AddCohost {
                peer: PeerId::new("nobody"),
            }),
        )
        .expect_err("not a participant");
    }
    let mut app = app_on(dir.path());
    assert_eq!(queue_titles(&mut app), ["One", "Two"]);
}

#[test]
fn leaving_means_the_next_start_has_no_session() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let mut app = app_on(dir.path());
        send(
            &mut app,
            Action::Local(LocalAction::CreateSession {
                session_id: SessionId("S".into()),
                name: "P".into(),
            }),
        )
        .expect("create");
        send(&mut app, Action::Local(LocalAction::LeaveSession)).expect("leave");
    }
    let mut app = app_on(dir.path());
    let world = app.world_mut();
    assert_eq!(world.query::<&Session>().iter(world).count(), 0);
}

/// Writes a database exactly as version 1 of the schema laid it out.
fn write_version_1(path: &Path, host: &PeerId) {
    let db = Database::create(path).expect("create v1");
    let txn = db.begin_write().expect("txn");
    schema::v1::create_tables(&txn).expect("tables");
    {
        let mut meta = txn.open_table(META).expect("meta");
        meta.insert("schema_version", 1).expect("version");
        let record = schema::v1::SessionRecord {
            name: "Old party".into(),
            net_id: 9,
            host: host.clone(),
            playback_owner: host.clone(),
            clock: PlaybackClock::stopped(),
            participants: vec![ParticipantRecord {
                peer: host.clone(),
                display_name: "Old".into(),
                display: false,
                net_id: 10,
            }],
        };
        let bytes = postcard::to_allocvec(&record).expect("encode");
        txn.open_table(SESSIONS)
            .expect("sessions")
            .insert("OLD", bytes.as_slice())
            .expect("insert");
        let track = schema::v1::TrackRecordV4 {
            title: "Kept".into(),
            artist: "A".into(),
            duration_ms: 5,
            path: None,
            added_by: host.clone(),
            queue_key: "V".into(),
        };
        let bytes = postcard::to_allocvec(&track).expect("encode");
        txn.open_table(SESSION_TRACKS)
            .expect("tracks")
            .insert(("OLD", 77), bytes.as_slice())
            .expect("insert");
        txn.open_table(SETTINGS)
            .expect("settings")
            .insert("active_session", "OLD")
            .expect("insert");
    }
    txn.commit().expect("commit");
}

#[test]
fn migrations_from_version_1_add_the_cohost_list_and_the_applied_intents_and_keep_everything() {
    let dir = tempfile::tempdir().expect("tempdir");
    let host =
        whatnext_storage::identity::load_or_create(&dir.path().join(whatnext_storage::KEY_FILE))
            .expect("identity")
            .peer_id;
    let host = PeerId::new(host.to_base58());
    write_version_1(&dir.path().join(DB_FILE), &host);
    let store = Store::open(dir.path()).expect("open and migrate");
    assert_eq!(
        read_version(store.db().expect("open")).expect("version"),
        SCHEMA_VERSION
    );
    {
        use redb::{ReadableDatabase, ReadableTableMetadata};
        let txn = store.db().expect("open").begin_read().expect("read");
        let table = txn
            .open_table(APPLIED_INTENTS)
            .expect("version 3 made the applied-intents table");
        assert_eq!(table.len().expect("len"), 0);
    }
    let loaded = store.load().expect("load");
    let (id, record, tracks) = loaded.session.expect("session kept");
    assert_eq!(id.0, "OLD");
    assert_eq!(record.name, "Old party");
    assert!(record.cohosts.is_empty());
    assert_eq!(record.participants.len(), 1);
    assert_eq!(tracks.len(), 1);
    assert_eq!(tracks[0].1.title, "Kept");
    drop(store);
    // And the app starts on it.
    let mut app = app_on(dir.path());
    assert_eq!(queue_titles(&mut app), ["Kept"]);
}

/// A database as an older build left it: version `version`'s tables (from version 3 on,
/// the applied-intents table too), what `fill` writes, and `active` as the active session.
fn old_database(
    path: &Path,
    version: u64,
    active: &str,
    fill: impl FnOnce(&redb::WriteTransaction),
) {
    let db = Database::create(path).expect("create an old database");
    let txn = db.begin_write().expect("txn");
    schema::v1::create_tables(&txn).expect("tables");
    if version >= 3 {
        txn.open_table(APPLIED_INTENTS).expect("v3 table");
    }
    txn.open_table(META)
        .expect("meta")
        .insert("schema_version", version)
        .expect("version");
    fill(&txn);
    txn.open_table(SETTINGS)
        .expect("settings")
        .insert("active_session", active)
        .expect("insert");
    txn.commit().expect("commit");
}

#[test]
fn migration_from_version_3_adds_the_host_term_and_a_session_key_and_keeps_bans() {
    let dir = tempfile::tempdir().expect("tempdir");
    let host = PeerId::new("12D3KooW9tHTtS3inCZiYykw4u5G4frbjVFqhkmJX12gSNCVeH3e");
    let cohost = PeerId::new("12D3KooW9xCm2jWjNVrwh51SWCQBMYdMyeU3NpT85QhLVkF6PcNM");
    let banned = PeerId::new("12D3KooWA284B2yjxoAAqAFwwVj6eRQ8DogF3t8wdpMzZ8Hh8wh4");
    old_database(&dir.path().join(DB_FILE), 3, "P", |txn| {
        let record = schema::v1::SessionRecordV3 {
            name: "Party".into(),
            net_id: 9,
            host: host.clone(),
            playback_owner: host.clone(),
            clock: PlaybackClock::stopped(),
            participants: Vec::new(),
            cohosts: vec![cohost.clone()],
        };
        let bytes = postcard::to_allocvec(&record).expect("encode");
        txn.open_table(SESSIONS)
            .expect("sessions")
            .insert("P", bytes.as_slice())
            .expect("insert");
        let access = schema::v1::SessionAccessV3 {
            generation: 2,
            banned: [banned.clone()].into(),
            revoked: [banned.clone()].into(),
        };
        let bytes = postcard::to_allocvec(&access).expect("encode");
        txn.open_table(schema::SESSION_ACCESS)
            .expect("access")
            .insert("P", bytes.as_slice())
            .expect("insert");
    });
    let store = Store::open(dir.path()).expect("open and migrate");
    let loaded = store.load().expect("load");
    let (_, record, _) = loaded.session.expect("session kept");
    assert_eq!(record.term, 0);
    assert_eq!(record.cohosts, vec![cohost]);
    let access = loaded.access.expect("access kept");
    assert_eq!(access.generation, 2);
    assert!(access.banned.contains(&banned));
    assert_ne!(
        access.key,
        SessionKey([0; 32]),
        "a random key, not a zero one"
    );
}

/// Version 4 tracks carried a path on the adder's device. A path to an audio file here
/// becomes the track's media (hashed) and one of this device's own files; any other path
/// (a guest's device, a file since gone) is dropped, and the track stays, without media.
#[test]
fn migration_from_version_4_names_tracks_by_content_and_keeps_own_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let host = PeerId::new("12D3KooW9tHTtS3inCZiYykw4u5G4frbjVFqhkmJX12gSNCVeH3e");
    let song = dir.path().join("song.wav");
    std::fs::write(&song, b"RIFF not checked by the migration, only hashed").expect("write");
    let paths = [
        Some(song.to_string_lossy().into_owned()),
        Some("/home/guest/Music/theirs.flac".to_owned()),
        None,
    ];
    old_database(&dir.path().join(DB_FILE), 4, "P", |txn| {
        let record = SessionRecord {
            name: "Party".into(),
            net_id: 9,
            host: host.clone(),
            playback_owner: host.clone(),
            clock: PlaybackClock::stopped(),
            participants: Vec::new(),
            cohosts: Vec::new(),
            term: 2,
        };
        let bytes = postcard::to_allocvec(&record).expect("encode");
        txn.open_table(SESSIONS)
            .expect("sessions")
            .insert("P", bytes.as_slice())
            .expect("insert");
        for (i, path) in paths.iter().enumerate() {
            let track = schema::v1::TrackRecordV4 {
                title: format!("T{i}"),
                artist: "A".into(),
                duration_ms: 5,
                path: path.clone(),
                added_by: host.clone(),
                queue_key: format!("V{i}"),
            };
            let bytes = postcard::to_allocvec(&track).expect("encode");
            txn.open_table(SESSION_TRACKS)
                .expect("tracks")
                .insert(("P", i as u64), bytes.as_slice())
                .expect("insert");
        }
    });
    let store = Store::open(dir.path()).expect("open and migrate");
    let loaded = store.load().expect("load");
    let (_, record, tracks) = loaded.session.expect("session kept");
    assert_eq!(record.term, 2);
    let (hash, size) = ContentHash::of_file(&song).expect("hash");
    let media: Vec<Option<Media>> = tracks.iter().map(|(_, t)| t.media).collect();
    assert_eq!(
        media,
        vec![
            Some(Media {
                hash,
                size,
                format: AudioFormat::Wav
            }),
            None,
            None
        ]
    );
    assert_eq!(loaded.own_files.get(&hash), Some(&song));
    assert_eq!(loaded.own_files.len(), 1, "a guest's path is not kept");
    drop(store);
    let app = app_on(dir.path());
    assert_eq!(
        app.world().resource::<LocalFiles>().path_of(&hash),
        Some(&song),
        "the app opens with its own file known"
    );
}

#[test]
fn a_database_from_a_newer_version_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().expect("tempdir");
    drop(Store::open(dir.path()).expect("create"));
    let path = dir.path().join(DB_FILE);
    {
        let db = Database::create(&path).expect("open");
        let txn = db.begin_write().expect("txn");
        txn.open_table(META)
            .expect("meta")
            .insert("schema_version", SCHEMA_VERSION + 1)
            .expect("bump");
        txn.commit().expect("commit");
    }
    let before = std::fs::read(&path).expect("read");
    let error = Store::open(dir.path()).err().expect("newer refused");
    assert!(
        matches!(error, StorageError::NewerSchema { found, .. } if found == SCHEMA_VERSION + 1)
    );
    assert!(error.to_string().contains("newer whatnext"), "{error}");
    assert_eq!(
        std::fs::read(&path).expect("read"),
        before,
        "file unchanged"
    );
}

#[test]
fn a_file_that_is_not_a_database_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join(DB_FILE);
    std::fs::write(&path, b"this is not a redb file at all, just some text").expect("write");
    let error = Store::open(dir.path()).err().expect("refused");
    assert!(error.to_string().contains("left as it is"), "{error}");
    assert_eq!(
        std::fs::read(&path).expect("read"),
        b"this is not a redb file at all, just some text"
    );
}

#[test]
fn a_second_app_on_the_same_data_dir_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let _first = Store::open(dir.path()).expect("first");
    let error = Store::open(dir.path()).err().expect("second refused");
    assert!(matches!(error, StorageError::AlreadyOpen { .. }), "{error}");
}

#[test]
fn an_intent_redelivered_after_a_restart_is_not_applied_twice() {
    let dir = tempfile::tempdir().expect("tempdir");
    let add = |author: PeerId| Intent {
        id: IntentId { author, counter: 7 },
        action: Action::Session(SessionAction::AddTrack {
            track_id: TrackId(70),
            title: "Once".into(),
            artist: "A".into(),
            duration_ms: 1,
            media: None,
        }),
    };
    {
        let mut app = app_on(dir.path());
        send(
            &mut app,
            Action::Local(LocalAction::CreateSession {
                session_id: SessionId("S".into()),
                name: "P".into(),
            }),
        )
        .expect("create");
        let me = app.world().resource::<LocalPeer>().peer.clone();
        apply_intent(app.world_mut(), &add(me.clone())).expect("first delivery");
        send(
            &mut app,
            Action::Session(SessionAction::RemoveTrack {
                track_id: TrackId(70),
            }),
        )
        .expect("removed since");
    }
    let mut app = app_on(dir.path());
    let me = app.world().resource::<LocalPeer>().peer.clone();
    // The same intent again (an outbox redelivery): the first answer, and no second track.
    assert_eq!(
        apply_intent(app.world_mut(), &add(me)),
        Ok(Applied::TrackAdded(TrackId(70)))
    );
    app.update();
    assert!(queue_titles(&mut app).is_empty());
}

#[test]
fn the_data_dir_key_and_database_are_made_private_on_open() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).expect("metadata").permissions().mode() & 0o777;
    let chmod = |p: &Path, m: u32| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).expect("chmod")
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("new");
    drop(Store::open(&dir).expect("open"));
    let (key, db) = (dir.join(whatnext_storage::KEY_FILE), dir.join(DB_FILE));
    assert_eq!(
        (mode(&dir), mode(&key), mode(&db)),
        (0o700, 0o600, 0o600),
        "created private"
    );
    chmod(&dir, 0o755);
    chmod(&key, 0o644);
    chmod(&db, 0o666);
    drop(Store::open(&dir).expect("open again"));
    assert_eq!(
        (mode(&dir), mode(&key), mode(&db)),
        (0o700, 0o600, 0o600),
        "fixed on open"
    );
}

#[test]
fn bans_and_a_rotated_invite_survive_a_host_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let banned = PeerId::new("12D3KooWA284B2yjxoAAqAFwwVj6eRQ8DogF3t8wdpMzZ8Hh8wh4");
    {
        let mut app = app_on(dir.path());
        send(
            &mut app,
            Action::Local(LocalAction::CreateSession {
                session_id: SessionId("S1".into()),
                name: "Party".into(),
            }),
        )
        .expect("create");
        app.world_mut().spawn((
            Participant {
                peer: banned.clone(),
                display_name: "Mallory".into(),
                display: false,
            },
            Presence {
                online: true,
                connection: Connection::Relayed,
            },
            NetId(9),
            Replicated,
        ));
        app.update();
        send(
            &mut app,
            Action::Session(SessionAction::RemoveMember {
                peer: banned.clone(),
                ban: true,
            }),
        )
        .expect("ban");
        send(&mut app, Action::Local(LocalAction::RotateInvite)).expect("rotate");
        app.update();
    }
    let mut app = app_on(dir.path());
    let access = app
        .world_mut()
        .query::<&SessionAccess>()
        .single(app.world())
        .expect("the restored session has its access")
        .clone();
    assert!(access.banned.contains(&banned), "{access:?}");
    assert_eq!(access.generation, 1);
}

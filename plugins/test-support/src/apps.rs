//! Apps to test against: a session app, the same with replication, and an intent author.

use std::time::Duration;

use bevy::ecs::system::SystemState;
use bevy::prelude::*;
use bevy::time::TimeUpdateStrategy;
use whatnext_core::prelude::*;
use whatnext_core::session::apply_intent;
use whatnext_replication::ReplicationPlugin;

/// How far the test apps' clock (`Time<Real>`) moves each `update`: short next to the
/// replication's pacing and clock sampling (200 ms), like a real frame.
pub const FRAME: Duration = Duration::from_millis(1);

/// An app with the session model for `peer`: `SessionPlugin`, this device's `LocalPeer`
/// and its relays. No time plugin and a running wall clock, like the benches want.
pub fn session_app(peer: &str) -> App {
    let mut app = App::new();
    app.add_plugins(SessionPlugin);
    app.insert_resource(LocalPeer {
        peer: PeerId::new(peer),
        display_name: peer.into(),
    });
    app.init_resource::<Relays>();
    app
}

/// A host or member app for `peer`: the session model and `ReplicationPlugin`, a wall clock
/// frozen at a fixed time, and a `Time<Real>` that moves `FRAME` each update. Updated once.
pub fn replicating_app(peer: &str) -> App {
    let mut app = session_app(peer);
    app.add_plugins(ReplicationPlugin)
        .add_plugins(bevy::time::TimePlugin)
        .insert_resource(TimeUpdateStrategy::ManualDuration(FRAME));
    app.insert_resource(WallClock {
        now_ms: 5_000_000,
        frozen: true,
        ..Default::default()
    });
    single_threaded(&mut app);
    app.update();
    app
}

/// Runs every schedule of `app` on the calling thread, as the headless app does: a frame of
/// a test app is a few systems over a few entities, and waking worker threads for it costs
/// more than the work (and many apps in one test would fight over them).
pub fn single_threaded(app: &mut App) {
    let mut schedules = app.world_mut().resource_mut::<Schedules>();
    for (_, schedule) in schedules.iter_mut() {
        schedule.set_executor(bevy::ecs::schedule::SingleThreadedExecutor::new());
    }
}

/// Writes intents as one author, numbering them.
pub struct Author {
    /// Whose intents these are.
    pub peer: PeerId,
    /// The last intent's counter.
    pub counter: u64,
}

impl Author {
    /// An author whose first intent has counter 1.
    pub fn new(peer: &str) -> Self {
        Self {
            peer: PeerId::new(peer),
            counter: 0,
        }
    }

    /// The next intent for `action`.
    pub fn intent(&mut self, action: Action) -> Intent {
        self.counter += 1;
        Intent {
            id: IntentId {
                author: self.peer.clone(),
                counter: self.counter,
            },
            action,
        }
    }

    /// Applies the next intent for `action` on `app` directly, as its authority would.
    pub fn act(&mut self, app: &mut App, action: Action) -> Result<Applied, IntentError> {
        let intent = self.intent(action);
        apply_intent(app.world_mut(), &intent)
    }
}

/// What must match between host and member: the session as `session.state` shows it,
/// without per-device presence, and the participants as (peer, name).
pub fn session_state(app: &mut App) -> Option<(SessionSnapshot, Vec<(String, String)>)> {
    let mut system = SystemState::<SessionReader>::new(app.world_mut());
    let reader = system.get(app.world()).expect("the session reader");
    let mut snapshot = reader.snapshot()?;
    let people = snapshot
        .participants
        .iter()
        .map(|p| (p.peer_id.to_string(), p.display_name.clone()))
        .collect();
    snapshot.participants.clear();
    Some((snapshot, people))
}

/// On `app` (for `host`): a hosted session with `guest` in it; then `adder` (the host or the
/// guest) queues a track with `media`, and the host plays it, a frame after each. For plugins
/// that open a track's file only when this device holds it.
pub fn host_plays_a_track_from(app: &mut App, host: &str, guest: &str, adder: &str, media: Media) {
    let mut hosting = Author::new(host);
    hosting
        .act(
            app,
            Action::Local(LocalAction::CreateSession {
                session_id: SessionId("S".into()),
                name: "Party".into(),
            }),
        )
        .expect("create");
    app.world_mut().spawn((
        Participant {
            peer: PeerId::new(guest),
            display_name: "Gus".into(),
            display: false,
        },
        Presence {
            online: true,
            connection: Connection::Relayed,
        },
    ));
    let mut guesting = Author::new(guest);
    let author = if adder == host {
        &mut hosting
    } else {
        &mut guesting
    };
    author
        .act(
            app,
            Action::Session(SessionAction::AddTrack {
                track_id: TrackId(1),
                title: "Song".into(),
                artist: String::new(),
                duration_ms: 60_000,
                media: Some(media),
            }),
        )
        .expect("add");
    app.update();
    hosting
        .act(app, Action::Session(SessionAction::Play))
        .expect("play");
    app.update();
}

/// A track's media for tests: `byte` names the content.
pub fn test_media(byte: u8) -> Media {
    Media {
        hash: ContentHash([byte; 32]),
        size: 1_000,
        format: AudioFormat::Wav,
    }
}

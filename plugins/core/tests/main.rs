//! The core crate's integration tests: one binary, one module per behaviour.

mod fuzz;
mod mutate;
mod reactions;
mod roles;
mod session;

use bevy::prelude::*;
use whatnext_core::prelude::*;
use whatnext_core::session::apply_intent;
use whatnext_test_support::session_app;

pub(crate) const HOST: &str = "host-peer";
pub(crate) const COHOST: &str = "cohost-peer";
pub(crate) const GUEST: &str = "guest-peer";
pub(crate) const SCREEN: &str = "screen-peer";

/// An app with `SessionPlugin`, this device being `HOST`, and a frozen wall clock.
pub(crate) fn host_app() -> App {
    let mut app = session_app(HOST);
    app.insert_resource(LocalPeer {
        peer: PeerId::new(HOST),
        display_name: "Hana".into(),
    });
    app.insert_resource(WallClock {
        now_ms: 1_000_000,
        frozen: true,
        ..Default::default()
    });
    app.update();
    app
}

/// Applies `action` as authored by `author`, with a fresh intent id.
pub(crate) fn act(
    app: &mut App,
    author: &str,
    action: SessionAction,
) -> Result<Applied, IntentError> {
    act_any(app, author, Action::Session(action))
}

pub(crate) fn act_any(app: &mut App, author: &str, action: Action) -> Result<Applied, IntentError> {
    let counter = {
        let mut c = app.world_mut().resource_mut::<IntentCounter>();
        c.0 += 1;
        c.0
    };
    let intent = Intent {
        id: IntentId {
            author: PeerId::new(author),
            counter,
        },
        action,
    };
    apply_intent(app.world_mut(), &intent)
}

/// A session "Party" hosted here, with a co-host, a guest and a display screen joined.
pub(crate) fn party() -> App {
    let mut app = host_app();
    act_any(
        &mut app,
        HOST,
        Action::Local(LocalAction::CreateSession {
            session_id: SessionId("SESSION".into()),
            name: "Party".into(),
        }),
    )
    .expect("create");
    for (peer, name, display) in [
        (COHOST, "Cole", false),
        (GUEST, "Gus", false),
        (SCREEN, "TV", true),
    ] {
        app.world_mut().spawn((
            Participant {
                peer: PeerId::new(peer),
                display_name: name.into(),
                display,
            },
            Presence {
                online: true,
                connection: Connection::Relayed,
            },
        ));
    }
    act(
        &mut app,
        HOST,
        SessionAction::AddCohost {
            peer: PeerId::new(COHOST),
        },
    )
    .expect("cohost");
    app.update();
    app
}

pub(crate) fn add_track(
    app: &mut App,
    author: &str,
    id: u64,
    title: &str,
) -> Result<Applied, IntentError> {
    act(
        app,
        author,
        SessionAction::AddTrack {
            track_id: TrackId(id),
            title: title.into(),
            artist: "Artist".into(),
            duration_ms: 180_000,
            media: None,
        },
    )
}

pub(crate) fn titles(app: &mut App) -> Vec<String> {
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

pub(crate) fn clock(app: &mut App) -> PlaybackClock {
    let world = app.world_mut();
    world
        .query::<&PlaybackClock>()
        .single(world)
        .expect("one session")
        .clone()
}

pub(crate) fn owner(app: &mut App) -> String {
    let world = app.world_mut();
    world
        .query::<&PlaybackOwner>()
        .single(world)
        .expect("one session")
        .0
        .to_string()
}

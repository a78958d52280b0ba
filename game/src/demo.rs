//! `--demo`: a fixture party to look at (and to screenshot): a dozen tracks added by three
//! people, a co-host owning playback mid-song. Built with the same intents a user's clicks
//! send; the two other people are stand-ins with no device behind them.

use bevy::prelude::*;
use whatnext_core::prelude::*;
use whatnext_core::session::{apply_intent, now_ms};

/// Fills the app with the demo party: one system in `Startup` that applies the party's
/// intents directly (no resources or messages of its own).
pub struct DemoPlugin;

impl Plugin for DemoPlugin {
    fn build(&self, app: &mut App) {
        app.add_systems(Startup, fill_demo_party);
    }
}

const TRACKS: [(&str, &str, u64, usize); 12] = [
    ("Harbour Lights", "The Quiet Tides", 214_000, 1),
    ("Paper Satellites", "Nova Kin", 187_000, 0),
    ("Slow Bloom", "Marigold Avenue", 243_000, 2),
    ("Night Bus Home", "The Late Shift", 198_000, 2),
    ("Glasshouse", "Iris & the Ferns", 226_000, 0),
    ("Northbound", "Cold Coast", 205_000, 1),
    ("Static Summer", "Halfmoon Radio", 176_000, 2),
    ("Orchard Road", "Pale Canary", 232_000, 0),
    ("Low Tide Dancing", "Sea Glass Club", 219_000, 1),
    ("Kite Season", "Nova Kin", 191_000, 2),
    ("Borrowed Light", "The Quiet Tides", 257_000, 0),
    ("Last Tram", "The Late Shift", 208_000, 1),
];

fn fill_demo_party(world: &mut World) {
    world.resource_mut::<WallClock>().now_ms = now_ms();
    let me = world.resource::<LocalPeer>().peer.clone();
    let cole = PeerId::new("12D3KooWDemoCoHostCole1111111111111111111111111111");
    let gus = PeerId::new("12D3KooWDemoGuestGus22222222222222222222222222222");
    let mut counter = 0;
    let mut act = |world: &mut World, author: &PeerId, action: Action| {
        counter += 1;
        let intent = Intent {
            id: IntentId {
                author: author.clone(),
                counter: 1_000_000 + counter,
            },
            action,
        };
        if let Err(error) = apply_intent(world, &intent) {
            warn!(%error, "the demo party could not be filled in");
        }
    };
    act(
        world,
        &me,
        Action::Local(LocalAction::SetDisplayName {
            name: "Hana".into(),
        }),
    );
    act(
        world,
        &me,
        Action::Local(LocalAction::CreateSession {
            session_id: SessionId::random(&mut rand::thread_rng()),
            name: "Friday night on the roof".into(),
        }),
    );
    for (peer, name, connection) in [
        (&cole, "Cole", Connection::Direct),
        (&gus, "Gus", Connection::Relayed),
    ] {
        world.spawn((
            Participant {
                peer: peer.clone(),
                display_name: name.into(),
                display: false,
            },
            Presence {
                online: true,
                connection,
            },
            NetId(rand::random()),
            Replicated,
        ));
    }
    act(
        world,
        &me,
        Action::Session(SessionAction::AddCohost { peer: cole.clone() }),
    );
    let people = [me.clone(), cole.clone(), gus.clone()];
    for (i, (title, artist, duration_ms, by)) in TRACKS.iter().enumerate() {
        // Made-up files (named by their titles), so the queue shows where each one is.
        let media = Media {
            hash: ContentHash::of_bytes(title.as_bytes()),
            size: 4_000_000 + 100_000 * i as u64,
            format: AudioFormat::Flac,
        };
        let action = SessionAction::AddTrack {
            track_id: TrackId(0xDE30_0000 + i as u64),
            title: (*title).into(),
            artist: (*artist).into(),
            duration_ms: *duration_ms,
            media: Some(media),
        };
        act(world, &people[*by], Action::Session(action));
        let state = match i {
            0 | 1 => Some(MediaState::Here),
            2 => Some(MediaState::Fetching {
                progress: 0.4,
                from: gus.clone(),
            }),
            _ => None,
        };
        if let Some(state) = state {
            world
                .resource_mut::<MediaStates>()
                .0
                .insert(media.hash, state);
        }
    }
    // A made-up invite, so the share panel shows what a real one looks like.
    let session_id = world
        .query::<&Session>()
        .iter(world)
        .next()
        .map(|s| s.id.0.clone())
        .unwrap_or_default();
    *world.resource_mut::<SessionInvite>() = SessionInvite {
        url: Some(format!(
            "whtnxt://connect/{me}?relay=%2Fip4%2F203.0.113.7%2Ftcp%2F4001%2Fp2p%2F12D3KooWDemoRelay&session={session_id}&key=00000000000000000000000000000000"
        )),
        short_code: Some("HX7K2M".into()),
        problem: Some("Demo party: this invite is for show, nobody can join it.".into()),
    };
    act(world, &me, Action::Session(SessionAction::Play));
    act(
        world,
        &me,
        Action::Session(SessionAction::Seek {
            position_ms: 83_000,
        }),
    );
    act(
        world,
        &me,
        Action::Session(SessionAction::HandOff { to: cole }),
    );
}

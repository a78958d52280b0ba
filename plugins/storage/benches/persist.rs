//! Prints the cost of persisting one changed track in a session of 10,000 tracks.
//! Run: cargo bench -p whatnext-storage --bench persist

use std::time::Instant;

use bevy::prelude::*;
use whatnext_core::prelude::*;
use whatnext_core::session::apply_intent;
use whatnext_storage::StoragePlugin;

fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut app = App::new();
    app.add_plugins(SessionPlugin);
    app.add_plugins(StoragePlugin::open(dir.path()).expect("storage"));
    app.update();
    let me = app.world().resource::<LocalPeer>().peer.clone();
    apply_intent(
        app.world_mut(),
        &Intent {
            id: IntentId {
                author: me.clone(),
                counter: 0,
            },
            action: Action::Local(LocalAction::CreateSession {
                session_id: SessionId("B".into()),
                name: "Bench".into(),
            }),
        },
    )
    .expect("create");
    let mut counter = 0;
    let mut send = |app: &mut App, action: SessionAction| {
        counter += 1;
        let intent = Intent {
            id: IntentId {
                author: me.clone(),
                counter,
            },
            action: Action::Session(action),
        };
        apply_intent(app.world_mut(), &intent).expect("apply");
    };
    let n = 10_000u64;
    let start = Instant::now();
    for i in 0..n {
        send(
            &mut app,
            SessionAction::AddTrack {
                track_id: TrackId(i + 1),
                title: format!("Track {i}"),
                artist: "Artist".into(),
                duration_ms: 200_000,
                media: None,
            },
        );
    }
    app.update();
    println!(
        "persist 10,000 added tracks in one frame: {:.1} ms",
        start.elapsed().as_secs_f64() * 1e3
    );

    let rounds = 200;
    let mut samples = Vec::with_capacity(rounds);
    for r in 0..rounds {
        let track = TrackId((r as u64 * 37) % n + 1);
        send(
            &mut app,
            SessionAction::MoveTrack {
                track_id: track,
                after: None,
            },
        );
        let t = Instant::now();
        app.update(); // the frame that writes the one changed track
        samples.push(t.elapsed().as_secs_f64() * 1e6);
    }
    samples.sort_by(f64::total_cmp);
    println!(
        "figure: storage, persist one changed track (commit + fsync) p50 | {:.0} µs | —",
        samples[rounds / 2]
    );
    println!(
        "persist one changed track (frame incl. commit + fsync), 10,000 tracks: p50 {:.0} µs, p99 {:.0} µs",
        samples[rounds / 2],
        samples[rounds * 99 / 100]
    );
    let size = std::fs::metadata(dir.path().join(whatnext_storage::DB_FILE))
        .map(|m| m.len())
        .unwrap_or(0);
    println!(
        "database size with 10,000 tracks: {:.1} MiB",
        size as f64 / 1048576.0
    );
    println!(
        "figure: storage, database with 10,000 tracks | {:.1} MiB | —",
        size as f64 / 1048576.0
    );
}

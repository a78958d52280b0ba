//! Prints the authority's per-frame replication cost with 10,000 replicated tracks and 1%
//! of them changing each frame, and the update size per added track.
//! Run: cargo bench -p whatnext-replication --bench diff

use std::time::{Duration, Instant};

use bevy::prelude::*;
use whatnext_core::prelude::*;
use whatnext_network::{NetConfig, NetworkPlugin};
use whatnext_replication::{Registry, ReplicationPlugin};
use whatnext_test_support::{Author, session_app};

const TRACKS: u64 = 10_000;

fn main() {
    let mut app = session_app("bench-host");
    let mut config = NetConfig::new(libp2p::identity::Keypair::generate_ed25519());
    config.listen.clear();
    config.mdns = false;
    app.add_plugins(NetworkPlugin::new(config))
        .add_plugins(ReplicationPlugin);
    app.update();
    let mut me = Author::new("bench-host");
    let mut send = |app: &mut App, action: Action| {
        me.act(app, action).expect("apply");
    };
    send(
        &mut app,
        Action::Local(LocalAction::CreateSession {
            session_id: SessionId("B".into()),
            name: "Bench".into(),
        }),
    );
    for i in 0..TRACKS {
        send(
            &mut app,
            Action::Session(SessionAction::AddTrack {
                track_id: TrackId(i + 1),
                title: format!("Track number {i}"),
                artist: "Some Artist".into(),
                duration_ms: 200_000,
                media: None,
            }),
        );
    }
    let t = Instant::now();
    app.update();
    println!(
        "first frame after 10,000 adds (diff + encode all): {:.1} ms",
        t.elapsed().as_secs_f64() * 1e3
    );
    // A quiet frame: nothing changed.
    let quiet: Vec<Duration> = (0..50)
        .map(|_| {
            let t = Instant::now();
            app.update();
            t.elapsed()
        })
        .collect();
    let changing_per_frame = (TRACKS / 100) as usize;
    let mut busy = Vec::new();
    for round in 0..50u64 {
        // 1% of the tracks move each frame.
        for k in 0..changing_per_frame as u64 {
            let track = TrackId((round * 977 + k * 101) % TRACKS + 1);
            send(
                &mut app,
                Action::Session(SessionAction::MoveTrack {
                    track_id: track,
                    after: None,
                }),
            );
        }
        let t = Instant::now();
        app.update();
        busy.push(t.elapsed());
    }
    let median = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let (mut quiet, mut busy) = (quiet, busy);
    let q = median(&mut quiet);
    let b = median(&mut busy);
    println!(
        "frame with 10,000 replicated tracks: {:.3} ms idle, {:.3} ms with 1% (100) moving; replication share ≈ {:.3} ms",
        q.as_secs_f64() * 1e3,
        b.as_secs_f64() * 1e3,
        b.saturating_sub(q).as_secs_f64() * 1e3
    );
    println!(
        "figure: diff, replication's share of a host frame, 10,000 tracks, 1% moving | {:.3} ms | —",
        b.saturating_sub(q).as_secs_f64() * 1e3
    );
    let track = Track {
        id: TrackId(1),
        title: "Windowlicker".into(),
        artist: "Aphex Twin".into(),
        duration_ms: 366_000,
        media: None,
        added_by: PeerId::new("12D3KooWCgGdKwhBMXUEgtzxRHtBoRH5VxnqUcNYdXMV7V6ptq9a"),
    };
    let registry = app.world().resource::<Registry>();
    let id_of_track = registry.id_of::<Track>().expect("registered");
    let id_of_position = registry.id_of::<QueuePosition>().expect("registered");
    let update = whatnext_replication::protocol::Update {
        epoch: 1,
        seq: 1,
        changes: vec![
            whatnext_replication::protocol::Change::Insert {
                net_id: 1,
                component: whatnext_replication::protocol::ComponentBytes {
                    id: id_of_track,
                    bytes: postcard::to_allocvec(&track).expect("encode"),
                },
            },
            whatnext_replication::protocol::Change::Insert {
                net_id: 1,
                component: whatnext_replication::protocol::ComponentBytes {
                    id: id_of_position,
                    bytes: postcard::to_allocvec(&QueuePosition(QueueKey::between(None, None)))
                        .expect("encode"),
                },
            },
        ],
    };
    // The session message, in the transport's payload, in one frame.
    let payload = whatnext_replication::protocol::encode(
        &whatnext_replication::protocol::SessionRequest::Update(update),
    )
    .expect("payload");
    let frame =
        whatnext_network::transport::encode_frame(&whatnext_network::Request::Payload(payload))
            .expect("frame");
    println!(
        "bytes on the wire per added track (one update frame, before noise/yamux framing): {}",
        frame.len()
    );
    println!(
        "figure: diff, bytes on the wire per added track | {} B | —",
        frame.len()
    );
}

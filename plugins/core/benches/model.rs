//! Prints how fast the session model applies intents and orders a 10,000-track queue.
//! Run: cargo bench --workspace --bench model

use std::time::Instant;

use bevy::prelude::*;
use whatnext_core::prelude::*;
use whatnext_core::session::apply_intent;
use whatnext_test_support::{Author, session_app};

const TRACKS: u64 = 10_000;

fn main() {
    let me = "bench-host";
    let mut app = session_app(me);
    app.update();
    let mut author = Author::new(me);
    let mut intent = |action: Action| author.intent(action);
    let create = intent(Action::Local(LocalAction::CreateSession {
        session_id: SessionId("BENCH".into()),
        name: "Bench".into(),
    }));
    apply_intent(app.world_mut(), &create).expect("create");

    let adds: Vec<Intent> = (0..TRACKS)
        .map(|i| {
            intent(Action::Session(SessionAction::AddTrack {
                track_id: TrackId(i + 1),
                title: format!("Track {i}"),
                artist: "Artist".into(),
                duration_ms: 200_000,
                media: None,
            }))
        })
        .collect();
    let start = Instant::now();
    for add in &adds {
        apply_intent(app.world_mut(), add).expect("add");
    }
    let elapsed = start.elapsed();
    println!(
        "apply 10,000 add intents: {:.1} ms total, {:.2} µs per intent",
        elapsed.as_secs_f64() * 1e3,
        elapsed.as_secs_f64() * 1e6 / TRACKS as f64
    );
    println!(
        "figure: core, apply an add intent (10,000 in a row) | {:.2} µs | —",
        elapsed.as_secs_f64() * 1e6 / TRACKS as f64
    );

    // Moves to spread-out places, so keys get longer as they would in real use.
    let moves: Vec<Intent> = (0..1_000u64)
        .map(|i| {
            intent(Action::Session(SessionAction::MoveTrack {
                track_id: TrackId((i * 7919) % TRACKS + 1),
                after: Some(TrackId((i * 104_729 + 13) % TRACKS + 1))
                    .filter(|a| a.0 != (i * 7919) % TRACKS + 1),
            }))
        })
        .collect();
    let start = Instant::now();
    for m in &moves {
        apply_intent(app.world_mut(), m).expect("move");
    }
    let elapsed = start.elapsed();
    println!(
        "apply 1,000 move intents on 10,000 tracks: {:.1} ms total, {:.2} µs per intent",
        elapsed.as_secs_f64() * 1e3,
        elapsed.as_secs_f64() * 1e6 / 1_000.0
    );
    println!(
        "figure: core, apply a move intent on 10,000 tracks | {:.2} µs | —",
        elapsed.as_secs_f64() * 1e6 / 1_000.0
    );

    let rounds = 50;
    let start = Instant::now();
    let mut n = 0;
    for _ in 0..rounds {
        let world = app.world_mut();
        let order: Vec<Entity> = world
            .resource::<QueueIndex>()
            .in_order()
            .map(|(_, e)| e)
            .collect();
        n = order
            .iter()
            .filter(|e| world.get::<Track>(**e).is_some())
            .count();
    }
    println!(
        "derive the ordered queue of {n} tracks (with each track read): {:.2} ms",
        start.elapsed().as_secs_f64() * 1e3 / rounds as f64
    );

    let mut state = bevy::ecs::system::SystemState::<SessionReader>::new(app.world_mut());
    let start = Instant::now();
    let mut len = 0;
    for _ in 0..rounds {
        let reader = state.get(app.world()).expect("reader");
        len = reader.snapshot().map(|s| s.queue.len()).unwrap_or(0);
    }
    let took = start.elapsed().as_secs_f64() * 1e3 / rounds as f64;
    println!("build the session.state snapshot of {len} tracks: {took:.2} ms");
    println!("figure: core, session.state snapshot of {len} tracks | {took:.2} ms | —");

    let longest = app.world().resource::<QueueIndex>().in_order().count();
    let world = app.world_mut();
    let max_key = world
        .query::<&QueuePosition>()
        .iter(world)
        .map(|p| p.0.as_str().len())
        .max()
        .unwrap_or(0);
    println!(
        "queue keys after 10,000 adds and 1,000 moves: longest {max_key} characters ({longest} tracks)"
    );
}

//! Prints the CPU cost of one frame of the session view with 2,000 queued tracks: egui's
//! layout of the whole screen (`draw`) plus tessellation into meshes, at 1280×720, p50 and
//! p99 over 600 frames, scrolled to the middle of the queue for half of them. (The GPU side is
//! the same few thousand vertices whatever the queue length, since only visible rows are laid
//! out.) `cargo bench -p whatnext-ui --bench frame`

use std::time::{Duration, Instant};

use bevy_egui::egui;
use whatnext_core::prelude::*;
use whatnext_core::view::{ParticipantView, PlaybackView, TrackView};
use whatnext_ui::{Forms, Screen, draw};

const TRACKS: usize = 2_000;
const FRAMES: usize = 600;

fn screen() -> Screen {
    let me = PeerId::new("12D3KooWHana");
    let mut screen = Screen::new(LocalPeer {
        peer: me.clone(),
        display_name: "Hana".into(),
    });
    screen.my_role = Some(Role::Host);
    screen.session = Some(SessionSnapshot {
        session_id: SessionId("S".into()),
        name: "Big party".into(),
        host: me.clone(),
        cohosts: vec![],
        playback_owner: me.clone(),
        participants: vec![ParticipantView {
            peer_id: me.clone(),
            display_name: "Hana".into(),
            role: Role::Host,
            online: true,
            connection: Connection::Myself,
        }],
        queue: (0..TRACKS as u64)
            .map(|i| TrackView {
                track_id: TrackId(i),
                title: format!("Track number {i}"),
                artist: "Some Band".into(),
                duration_ms: 200_000,
                added_by: me.clone(),
                pending: i % 50 == 0,
                media: None,
            })
            .collect(),
        playback: PlaybackView {
            state: PlayState::Playing,
            track_id: Some(TrackId(0)),
            position_ms: 60_000,
        },
        listening: false,
    });
    screen
}

fn main() {
    let ctx = egui::Context::default();
    let screen = screen();
    let mut forms = Forms::default();
    let mut times = Vec::with_capacity(FRAMES);
    let mut vertices = 0;
    for frame in 0..FRAMES {
        let mut input = egui::RawInput {
            screen_rect: Some(egui::Rect::from_min_size(
                egui::Pos2::ZERO,
                egui::vec2(1280.0, 720.0),
            )),
            ..Default::default()
        };
        if frame == FRAMES / 2 {
            // Scroll deep into the queue.
            input
                .events
                .push(egui::Event::PointerMoved(egui::pos2(300.0, 500.0)));
            input.events.push(egui::Event::MouseWheel {
                unit: egui::MouseWheelUnit::Point,
                delta: egui::vec2(0.0, -30_000.0),
                phase: egui::TouchPhase::Move,
                modifiers: Default::default(),
            });
        }
        let started = Instant::now();
        let output = ctx.run_ui(input, |ui| {
            let _ = draw(ui, &screen, &mut forms);
        });
        let meshes = ctx.tessellate(output.shapes, output.pixels_per_point);
        times.push(started.elapsed());
        vertices = meshes
            .iter()
            .map(|m| match &m.primitive {
                egui::epaint::Primitive::Mesh(mesh) => mesh.vertices.len(),
                _ => 0,
            })
            .sum();
    }
    times.sort();
    let at = |p: usize| times[(times.len() * p / 100).min(times.len() - 1)];
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "session view, {TRACKS} tracks, 1280x720: layout + tessellation p50 {:.2} ms, p99 {:.2} ms ({vertices} vertices in the last frame)",
        ms(at(50)),
        ms(at(99))
    );
    println!(
        "figure: ui, session view of {TRACKS} tracks, layout + tessellation p99 | {:.2} ms | —",
        ms(at(99))
    );
}

//! `KioskPlugin`: the party screen. A full-screen visualizer drawn with Bevy meshes (bars
//! that move with the shared playback clock and flash on the beat, at most 3 times a
//! second), with an egui overlay sized from the screen: now playing, up next, and the join
//! code with its QR code. It hosts a party of its own unless it was given one to join, which
//! it joins as the read-only `display` role.

pub mod flat_color;
pub mod reactions;
#[cfg(target_os = "linux")]
pub mod shared_memory_present;
pub mod straight_to_screen;
pub mod view;
pub mod visualizer;

use bevy::prelude::*;
use bevy::render::mesh::allocator::MeshAllocatorSettings;
use bevy::render::slab_allocator::SlabAllocatorSettings;
use bevy::window::PrimaryWindow;
use bevy_egui::{EguiPlugin, EguiPrimaryContextPass};
use whatnext_core::prelude::*;

use crate::flat_color::FlatColor;
use crate::visualizer::{BARS, Drive, FlashLimiter, beat_index, levels};

/// The party screen. Adds `EguiPlugin`, the [`KioskSettings`] and [`VisualizerFrame`]
/// resources, a dark `ClearColor` and the private spectrum `Analyses`; spawns the camera and
/// bars in `Startup`; in `Update`, after `SessionSet::Apply`, chains the systems that host or
/// join a party, analyse the current track's file, animate the bars and log what the screen
/// says; and draws the overlay in `EguiPrimaryContextPass`.
#[derive(Clone, Copy, Debug, Default)]
pub struct KioskPlugin {
    /// Keeps the bars gentle and turns flashes off.
    pub reduce_motion: bool,
}

/// The kiosk's settings, as the plugin was given them.
#[derive(Resource, Clone, Copy, Debug)]
pub struct KioskSettings {
    /// Keeps the bars gentle and turns flashes off.
    pub reduce_motion: bool,
}

/// Where an extension can hang its own visual layer: the levels and beat of this frame.
#[derive(Resource, Clone, Debug, Default)]
pub struct VisualizerFrame {
    /// Bar heights in 0..=1, left to right.
    pub levels: Vec<f32>,
    /// 1 at a (permitted) flash, decaying to 0.
    pub flash: f32,
    /// Whether the current track is playing (not paused or stopped).
    pub playing: bool,
}

impl Plugin for KioskPlugin {
    fn build(&self, app: &mut App) {
        app.add_plugins((
            EguiPlugin::default(),
            straight_to_screen::StraightToScreenPlugin,
            flat_color::FlatColorPlugin,
        ));
        #[cfg(target_os = "linux")]
        app.add_plugins(shared_memory_present::SharedMemoryPresentPlugin);
        // Each of the party screen's few meshes gets a buffer of its own. A shared slab's
        // allocator keeps bookkeeping for 128k meshes, 4 MiB of it resident per slab, for the
        // two meshes (the bars' and the glow's) the screen draws.
        if let Some(render_app) = app.get_sub_app_mut(bevy::render::RenderApp) {
            render_app.insert_resource(MeshAllocatorSettings {
                slab_allocator_settings: SlabAllocatorSettings {
                    large_threshold: 0,
                    ..default()
                },
                ..default()
            });
        }
        app.insert_resource(KioskSettings {
            reduce_motion: self.reduce_motion,
        })
        .insert_resource(ClearColor(Color::srgb(0.02, 0.02, 0.05)))
        .init_resource::<VisualizerFrame>()
        .init_resource::<Analyses>()
        .init_resource::<reactions::Floating>()
        .add_systems(Startup, spawn_visualizer)
        .add_systems(
            Update,
            (host_or_join, analyse_current_track, animate, report_screen)
                .chain()
                .after(SessionSet::Apply),
        )
        .add_systems(
            Update,
            (reactions::follow_reactions, report_phone_link).after(SessionSet::Apply),
        )
        .add_systems(
            EguiPrimaryContextPass,
            (view::draw_overlay, reactions::draw_reactions).chain(),
        );
    }
}

#[derive(Component)]
struct Bar(usize);

#[derive(Component)]
struct Glow;

fn spawn_visualizer(
    mut commands: Commands,
    mut meshes: ResMut<Assets<Mesh>>,
    mut materials: ResMut<Assets<FlatColor>>,
) {
    // No multisampling: on a CPU renderer (lavapipe, a Pi) every sample is paid per pixel,
    // and the bars are axis-aligned rectangles that need none. It draws straight into the
    // window, without Bevy's camera texture and its full-screen copy (`straight_to_screen`).
    commands.spawn((
        Camera2d,
        // Inactive until `choose_presentation` picks its target: a frame drawn into the
        // window's swapchain first would keep an unused 8 MiB swapchain image resident.
        Camera {
            is_active: false,
            ..default()
        },
        Msaa::Off,
        straight_to_screen::StraightToScreen,
        bevy::render::camera::CameraRenderGraph::new(straight_to_screen::PartyScreenPasses),
    ));
    commands.spawn((
        Glow,
        Mesh2d(meshes.add(Circle::new(1.0))),
        MeshMaterial2d(materials.add(FlatColor::new(Color::srgb(0.06, 0.05, 0.16)))),
        Transform::from_xyz(0.0, 0.0, -1.0),
    ));
    let bar = meshes.add(Rectangle::new(1.0, 1.0));
    for i in 0..BARS {
        commands.spawn((
            Bar(i),
            Mesh2d(bar.clone()),
            MeshMaterial2d(materials.add(FlatColor::new(Color::hsl(230.0, 0.7, 0.6)))),
            Transform::default(),
        ));
    }
}

/// The kiosk hosts a party of its own, unless it was opened with an invite to join.
fn host_or_join(
    reader: SessionReader,
    opened: Option<Res<whatnext_ui::OpenedWith>>,
    progress: Option<Res<JoinProgress>>,
    mut commands: Commands,
    mut intents: IntentSender,
    mut asked: Local<bool>,
) {
    if *asked || reader.in_session() {
        return;
    }
    if progress.is_some_and(|p| *p != JoinProgress::Idle) {
        return;
    }
    *asked = true;
    match opened {
        Some(invite) => {
            commands.remove_resource::<whatnext_ui::OpenedWith>();
            intents.send(Action::Local(LocalAction::JoinSession {
                invite: invite.0.clone(),
            }));
        }
        None => {
            intents.send(Action::Local(LocalAction::CreateSession {
                session_id: SessionId::random(&mut rand::thread_rng()),
                name: "Party".into(),
            }));
        }
    }
}

/// Logs what the screen says whenever it changes (the invite to read out, what is up next):
/// for whoever set the screen up, and for tests, which cannot read pixels.
fn report_screen(
    reader: SessionReader,
    invite: Res<SessionInvite>,
    progress: Option<Res<JoinProgress>>,
    mut last: Local<Option<view::PartyScreen>>,
) {
    let now = view::party_screen(
        reader.snapshot(),
        &invite,
        progress.map(|p| *p).unwrap_or_default(),
        reader.local_peer(),
    );
    // Progress through the song is not news.
    let comparable = |screen: &view::PartyScreen| match screen {
        view::PartyScreen::Party {
            now,
            next,
            code,
            url,
        } => view::PartyScreen::Party {
            now: now
                .as_ref()
                .map(|(line, _, duration, playing)| (line.clone(), 0, *duration, *playing)),
            next: next.clone(),
            code: code.clone(),
            url: url.clone(),
        },
        other => other.clone(),
    };
    if last.as_ref().map(comparable) == Some(comparable(&now)) {
        return;
    }
    if let view::PartyScreen::Party { url: Some(url), .. }
    | view::PartyScreen::Empty { url: Some(url), .. } = &now
    {
        // The whole link, secret included, only at debug level (tests read it from there).
        tracing::debug!(%url, "party screen: the invite link");
    }
    match &redacted(&now) {
        view::PartyScreen::Party {
            now: current,
            next,
            code,
            url,
        } => {
            let up_next: Vec<&str> = next.iter().map(|l| l.title.as_str()).collect();
            let playing = current.as_ref().map(|c| c.0.title.as_str());
            tracing::info!(?playing, ?up_next, ?code, ?url, "party screen");
        }
        view::PartyScreen::Empty { code, url } => {
            tracing::info!(?code, ?url, "party screen: the queue is empty");
        }
        other => tracing::info!(state = ?other, "party screen"),
    }
    *last = Some(now);
}

/// Logs the phone page's link (the QR code's target) when it changes.
fn report_phone_link(link: Option<Res<CompanionLink>>) {
    if let Some(link) = link.filter(|l| l.is_changed())
        && let Some(url) = &link.url
    {
        // The link carries its token: logged only at debug, like the invite's secret.
        tracing::debug!(%url, "party screen: phone page");
    }
}

/// The screen with its invite link's secret hidden, for logs above debug level.
fn redacted(screen: &view::PartyScreen) -> view::PartyScreen {
    let hide = |url: &Option<String>| url.as_deref().map(whatnext_core::invite::redact_secrets);
    match screen {
        view::PartyScreen::Party {
            now,
            next,
            code,
            url,
        } => view::PartyScreen::Party {
            now: now.clone(),
            next: next.clone(),
            code: code.clone(),
            url: hide(url),
        },
        view::PartyScreen::Empty { code, url } => view::PartyScreen::Empty {
            code: code.clone(),
            url: hide(url),
        },
        other => other.clone(),
    }
}

/// Analyses of tracks with a file of this device's own ([`whatnext_playback::own_file`]),
/// made on a thread of their own when the track becomes current: `None` while in progress or when the file could not be read.
#[derive(Resource)]
struct Analyses {
    by_track: std::collections::HashMap<TrackId, Option<std::sync::Arc<whatnext_audio::Analysis>>>,
    done_tx: crossbeam_channel::Sender<(
        TrackId,
        Result<whatnext_audio::Analysis, whatnext_audio::DecodeError>,
    )>,
    done_rx: crossbeam_channel::Receiver<(
        TrackId,
        Result<whatnext_audio::Analysis, whatnext_audio::DecodeError>,
    )>,
}

impl Default for Analyses {
    fn default() -> Self {
        let (done_tx, done_rx) = crossbeam_channel::unbounded();
        Self {
            by_track: Default::default(),
            done_tx,
            done_rx,
        }
    }
}

fn analyse_current_track(
    reader: SessionReader,
    tracks: Query<&Track>,
    files: Res<LocalFiles>,
    mut analyses: ResMut<Analyses>,
) {
    while let Ok((id, result)) = analyses.done_rx.try_recv() {
        match result {
            Ok(analysis) => {
                analyses
                    .by_track
                    .insert(id, Some(std::sync::Arc::new(analysis)));
            }
            Err(why) => {
                tracing::warn!(%why, "no spectrum for this track; the clock drives the picture")
            }
        }
    }
    let Some(current) = reader.playback().and_then(|p| p.track_id) else {
        return;
    };
    if analyses.by_track.contains_key(&current) {
        return;
    }
    // Only a verified file this device holds: nothing a peer sends names a path here.
    let Some(path) = tracks
        .iter()
        .find(|t| t.id == current)
        .and_then(|t| files.file_for(t.media.as_ref()))
        .cloned()
    else {
        return;
    };
    analyses.by_track.insert(current, None);
    let tx = analyses.done_tx.clone();
    let spawned = std::thread::Builder::new()
        .name("spectrum".into())
        .spawn(move || {
            let result = whatnext_audio::analyze_file(&path);
            let _ = tx.send((current, result));
        });
    if let Err(error) = spawned {
        tracing::warn!(%error, "cannot start the spectrum analysis");
    }
}

/// Bar levels from the track's spectrum at this position, and whether a beat starts now.
fn from_spectrum(
    analysis: &whatnext_audio::Analysis,
    position_ms: u64,
    since_ms: u64,
) -> Option<([f32; BARS], bool)> {
    let bands = analysis.bands_at(position_ms)?;
    let mut out = [0.0; BARS];
    for (i, level) in out.iter_mut().enumerate() {
        let band = i * whatnext_audio::BANDS / BARS;
        // Energy is a square: its root reads as loudness on screen.
        *level = bands[band].sqrt().clamp(0.0, 1.0);
    }
    Some((out, analysis.onset_between(since_ms, position_ms)))
}

fn animate(
    reader: SessionReader,
    settings: Res<KioskSettings>,
    window: Single<&Window, With<PrimaryWindow>>,
    time: Res<Time>,
    mut frame: ResMut<VisualizerFrame>,
    analyses: Res<Analyses>,
    mut limiter: Local<FlashLimiter>,
    mut last_beat: Local<Option<u64>>,
    mut last_position: Local<u64>,
    mut bars: Query<(&Bar, &mut Transform, &MeshMaterial2d<FlatColor>), Without<Glow>>,
    mut glow: Query<(&mut Transform, &MeshMaterial2d<FlatColor>), With<Glow>>,
    mut materials: ResMut<Assets<FlatColor>>,
) {
    let snapshot = reader.snapshot();
    let drive = snapshot
        .as_ref()
        .and_then(|s| {
            Some(Drive {
                seed: s.playback.track_id?.0,
                position_ms: s.playback.position_ms,
                playing: s.playback.state == PlayState::Playing,
            })
        })
        .unwrap_or_default();
    // The track's own spectrum when this device has its file; otherwise the clock's beat.
    let spectrum = analyses
        .by_track
        .get(&TrackId(drive.seed))
        .and_then(|a| a.as_deref())
        .filter(|_| drive.playing)
        .and_then(|a| from_spectrum(a, drive.position_ms, *last_position));
    let (now, beat_now) = match spectrum {
        Some((levels, onset)) => (levels, onset),
        None => {
            let beat = beat_index(&drive);
            let new_beat = *last_beat != Some(beat);
            *last_beat = Some(beat);
            (levels(&drive, settings.reduce_motion), new_beat)
        }
    };
    *last_position = drive.position_ms;
    let mut flash = (frame.flash - time.delta_secs() * 4.0).max(0.0);
    if drive.playing && beat_now {
        let wall = (time.elapsed_secs_f64() * 1000.0) as u64;
        if !settings.reduce_motion && limiter.allow(wall) {
            flash = 1.0;
        }
    }
    frame.levels = now.to_vec();
    frame.flash = flash;
    frame.playing = drive.playing;

    let (w, h) = (window.width(), window.height());
    let slot = w / BARS as f32;
    let hue_shift = drive.position_ms as f32 / 1000.0 * 6.0;
    for (bar, mut transform, material) in &mut bars {
        let height = (now[bar.0] * h * 0.5).max(2.0);
        transform.translation = Vec3::new(
            -w / 2.0 + slot * (bar.0 as f32 + 0.5),
            -h / 2.0 + height / 2.0,
            0.0,
        );
        transform.scale = Vec3::new(slot * 0.7, height, 1.0);
        if let Some(mut m) = materials.get_mut(&material.0) {
            let hue = (200.0 + bar.0 as f32 / BARS as f32 * 120.0 + hue_shift) % 360.0;
            m.color = Color::hsl(hue, 0.75, 0.45 + 0.25 * now[bar.0]).into();
        }
    }
    if let Ok((mut transform, material)) = glow.single_mut() {
        let radius = h * (0.35 + 0.05 * flash + 0.1 * now[0]);
        transform.scale = Vec3::new(radius, radius, 1.0);
        if let Some(mut m) = materials.get_mut(&material.0) {
            // Opaque on the dark background: a flash lifts its brightness.
            m.color =
                Color::srgb(0.06 + 0.14 * flash, 0.05 + 0.1 * flash, 0.16 + 0.3 * flash).into();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCREEN: &str = "12D3KooWScreen";
    const GUEST: &str = "12D3KooWGus";

    /// The screen hosts; a guest queues a track, which plays; `here` is where the screen
    /// holds its file, if it does. One frame of the analysis system runs. Returns whether an
    /// analysis of it was started.
    fn analysis_started(here: Option<&str>) -> bool {
        let media = whatnext_test_support::test_media(1);
        let mut files = LocalFiles::default();
        if let Some(path) = here {
            files.copies.insert(media.hash, path.into());
        }
        let mut app = whatnext_test_support::session_app(SCREEN);
        app.init_resource::<Analyses>()
            .insert_resource(files)
            .add_systems(Update, analyse_current_track.after(SessionSet::Apply));
        whatnext_test_support::host_plays_a_track_from(&mut app, SCREEN, GUEST, GUEST, media);
        app.world()
            .resource::<Analyses>()
            .by_track
            .contains_key(&TrackId(1))
    }

    #[test]
    fn the_screen_analyses_a_file_it_holds() {
        assert!(analysis_started(Some("/data/media/none.wav")));
    }

    /// Without the file here there is nothing to open (no path ever comes from a peer).
    #[test]
    fn the_screen_analyses_nothing_without_the_file() {
        assert!(!analysis_started(None));
    }

    #[test]
    fn the_logged_screen_hides_the_invite_secret() {
        let url = Some("whtnxt://connect/12D3KooWHana?session=S&key=s3cr3t".to_owned());
        for screen in [
            view::PartyScreen::Empty {
                code: Some("ABC234".into()),
                url: url.clone(),
            },
            view::PartyScreen::Party {
                now: None,
                next: Vec::new(),
                code: Some("ABC234".into()),
                url: url.clone(),
            },
        ] {
            let logged = format!("{:?}", redacted(&screen));
            assert!(!logged.contains("s3cr3t"), "{logged}");
            assert!(logged.contains("session=S&key=<hidden>"), "{logged}");
            assert!(logged.contains("ABC234"), "{logged}");
        }
    }
}

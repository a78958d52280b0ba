//! The desktop window, and `--screenshot`, which saves one real rendered frame as a PNG.

use std::path::PathBuf;
use std::time::Duration;

use bevy::app::AppExit;
use bevy::log::LogPlugin;
use bevy::prelude::*;
use bevy::render::view::screenshot::{Screenshot, ScreenshotCaptured};
use bevy::window::{CursorOptions, MonitorSelection, WindowMode};
use bevy::winit::{EventLoopProxyWrapper, UpdateMode, WinitSettings, WinitUserEvent};
use whatnext_core::prelude::AppWaker;
use whatnext_network::NetConfig;
use whatnext_storage::StoragePlugin;
use whatnext_ui::{OpenedWith, UiPlugin};

/// Frames to render before a screenshot, so fonts and layout have settled.
const SCREENSHOT_AFTER_FRAMES: u32 = 8;
/// Frames a screenshot waits after egui's areas have finished fading in: the frame that reaches
/// the screen next can be a few behind the main world's (the render thread's frame, the one the
/// party screen's presenter is still showing).
const SCREENSHOT_SETTLED_FRAMES: u32 = 3;
/// The most frames a screenshot waits for egui's areas to finish fading in.
const SCREENSHOT_AT_THE_LATEST: u32 = 120;

/// How the window runs.
pub struct Options {
    /// Save one rendered frame to this PNG and exit (`--screenshot`).
    pub screenshot: Option<PathBuf>,
    /// Start with the demo party (`--demo`).
    pub demo: bool,
    /// An invite link to join at start: the window asks first, the party screen does not.
    pub invite: Option<String>,
    /// The party screen, with reduced motion or not.
    pub kiosk: Option<bool>,
    /// Adds an extension's plugins after whatnext's own.
    pub extend: crate::Extend,
}

/// Opens the window (or the full-screen party screen) and runs the app until it is closed.
pub fn run(storage: StoragePlugin, network: Option<NetConfig>, options: Options) -> AppExit {
    let Options {
        screenshot,
        demo,
        invite,
        kiosk,
        extend,
    } = options;
    let mut app = App::new();
    let mode = if kiosk.is_some() {
        WindowMode::BorderlessFullscreen(MonitorSelection::Primary)
    } else {
        WindowMode::Windowed
    };
    app.add_plugins(
        DefaultPlugins
            .build()
            .disable::<LogPlugin>()
            .set(WindowPlugin {
                primary_window: Some(Window {
                    title: "whatnext".into(),
                    resolution: (1280, 720).into(),
                    mode,
                    ..default()
                }),
                // A party screen shows no cursor.
                primary_cursor_options: Some(CursorOptions {
                    visible: kiosk.is_none(),
                    ..default()
                }),
                ..default()
            })
            // A screenshot is of a whole frame: pipelines compiled before the frame that needs
            // them, not drawn a few frames late (which a busy machine can stretch past the
            // screenshot's frame).
            .set(bevy::render::RenderPlugin {
                synchronous_pipeline_compilation: screenshot.is_some(),
                ..default()
            }),
    );
    // The network thread wakes the window's event loop, so a message from a peer is drawn at
    // once instead of at the next timed redraw.
    if let Some(proxy) = app.world().get_resource::<EventLoopProxyWrapper>() {
        let proxy = (**proxy).clone();
        app.insert_resource(AppWaker::new(move || {
            let _ = proxy.send_event(WinitUserEvent::WakeUp);
        }));
    }
    crate::add_core_plugins(&mut app, storage, network, demo, extend);
    match kiosk {
        Some(reduce_motion) => {
            app.add_plugins(whatnext_kiosk::KioskPlugin { reduce_motion })
                .add_systems(Update, fill_the_screen);
            app.insert_resource(whatnext_core::prelude::JoinAsDisplay);
        }
        None => {
            app.add_plugins(UiPlugin);
        }
    }
    if let Some(invite) = invite {
        app.insert_resource(OpenedWith(invite));
    }
    if kiosk.is_some() {
        // The party screen animates: every frame, focused or not, at most one per refresh of
        // its display (`WHATNEXT_FRAME_PACING=off`: as many as it can, which the kiosk
        // benchmark uses to measure what a frame costs). A screenshot does not wait for ticks.
        app.insert_resource(WinitSettings::game());
        let pacing_off = std::env::var_os("WHATNEXT_FRAME_PACING").is_some_and(|v| v == "off");
        if screenshot.is_none() && !pacing_off {
            app.add_systems(Update, pace_to_the_display);
        }
    } else {
        // A desktop app redraws on input, and a few times a second for the progress bar.
        app.insert_resource(WinitSettings {
            focused_mode: UpdateMode::reactive(Duration::from_millis(250)),
            unfocused_mode: UpdateMode::reactive_low_power(Duration::from_secs(1)),
        });
    }
    // WHATNEXT_DIAGNOSTICS=1 logs frame times (the kiosk benchmark reads them);
    // WHATNEXT_DIAGNOSTICS=passes also each render pass's CPU and GPU time (GPU timestamps where
    // the driver has them, lavapipe included), which costs a little time of its own.
    if let Some(diagnostics) = std::env::var_os("WHATNEXT_DIAGNOSTICS") {
        app.add_plugins((
            bevy::diagnostic::FrameTimeDiagnosticsPlugin::default(),
            bevy::diagnostic::LogDiagnosticsPlugin::default(),
        ));
        if diagnostics == "passes" {
            app.add_plugins(bevy::render::diagnostic::RenderDiagnosticsPlugin);
        }
    }
    if let Some(path) = screenshot {
        app.insert_resource(WinitSettings::game())
            .insert_resource(ScreenshotTo(path))
            .add_systems(Update, take_screenshot);
    }
    app.run()
}

/// How many frames the party screen asks its real window for the monitor's size.
const ASK_THE_REAL_WINDOW: u32 = 120;

/// The party screen covers its monitor. Borderless full screen asks the window manager for
/// that, and a kiosk box often runs none (X with no WM keeps the window at its first size), so
/// the window is also sized and placed to the primary monitor itself.
fn fill_the_screen(
    monitors: Query<&bevy::window::Monitor, With<bevy::window::PrimaryMonitor>>,
    mut windows: Query<(Entity, &mut Window), With<bevy::window::PrimaryWindow>>,
    mut asked: Local<u32>,
    _winit_lives_on_this_thread: bevy::ecs::system::NonSendMarker,
) {
    let (Ok(monitor), Ok((entity, mut window))) = (monitors.single(), windows.single_mut()) else {
        return;
    };
    let size = UVec2::new(monitor.physical_width, monitor.physical_height);
    if size.x == 0 || size.y == 0 {
        return;
    }
    if window.resolution.physical_size() != size {
        window
            .resolution
            .set_physical_resolution(monitor.physical_width, monitor.physical_height);
        window.position = WindowPosition::At(monitor.physical_position);
    }
    // Asked a few times at most: a window manager may keep the window smaller (a panel), and
    // each look at the real size is a round trip to the X server.
    if *asked >= ASK_THE_REAL_WINDOW {
        return;
    }
    // Bevy creates a full-screen window with no size, so with no window manager X keeps
    // winit's default 800×600 while Bevy's `Window` already says the monitor's size (and the
    // request above asks for nothing): the real window is asked until it has the size.
    bevy::winit::WINIT_WINDOWS.with_borrow(|winit_windows| {
        let Some(real) = winit_windows.get_window(entity) else {
            return;
        };
        let inner = real.inner_size();
        if (inner.width, inner.height) == (size.x, size.y) {
            *asked = ASK_THE_REAL_WINDOW;
            return;
        }
        *asked += 1;
        if *asked == ASK_THE_REAL_WINDOW {
            warn!(
                width = inner.width,
                height = inner.height,
                "the party screen's window stays smaller than its screen"
            );
        }
        let _ = real.request_inner_size(winit::dpi::PhysicalSize::new(size.x, size.y));
        real.set_outer_position(winit::dpi::PhysicalPosition::new(
            monitor.physical_position.x,
            monitor.physical_position.y,
        ));
    });
}

/// The display's refresh rate when it does not say (Xvfb, some drivers).
const DEFAULT_REFRESH_MILLIHERTZ: u32 = 60_000;

/// The party screen draws one frame per refresh of its display, not more. Through X shared
/// memory nothing else paces it (there is no vsync), and frames the display never shows cost a
/// kiosk box CPU and heat. So the app updates on a tick of one refresh interval and on nothing
/// else: a message from a peer or a resize waits for the next tick, a refresh at most.
fn pace_to_the_display(
    // Only when the monitor is new or changed: nothing to do in the frames between.
    monitors: Query<
        &bevy::window::Monitor,
        (
            With<bevy::window::PrimaryMonitor>,
            Changed<bevy::window::Monitor>,
        ),
    >,
    mut settings: ResMut<WinitSettings>,
) {
    let Ok(monitor) = monitors.single() else {
        return;
    };
    let mode = paced_mode(monitor.refresh_rate_millihertz);
    if settings.focused_mode != mode || settings.unfocused_mode != mode {
        settings.focused_mode = mode;
        settings.unfocused_mode = mode;
        info!(
            refresh_millihertz = ?monitor.refresh_rate_millihertz,
            "the party screen draws one frame per refresh"
        );
    }
}

/// An update every refresh interval of a display of `refresh_millihertz`, and at no other time.
fn paced_mode(refresh_millihertz: Option<u32>) -> UpdateMode {
    // Below 1 Hz a display's figure is not to be believed.
    let millihertz = refresh_millihertz
        .filter(|mhz| *mhz >= 1_000)
        .unwrap_or(DEFAULT_REFRESH_MILLIHERTZ);
    UpdateMode::Reactive {
        wait: Duration::from_secs_f64(1_000.0 / f64::from(millihertz)),
        react_to_device_events: false,
        react_to_user_events: false,
        react_to_window_events: false,
    }
}

#[derive(Resource)]
struct ScreenshotTo(PathBuf);

fn take_screenshot(
    mut commands: Commands,
    target: Res<ScreenshotTo>,
    mut egui: Query<&mut bevy_egui::EguiContext, With<bevy_egui::PrimaryEguiContext>>,
    mut frames: Local<u32>,
    // Frames in a row with no egui area fading in.
    mut settled: Local<u32>,
    mut asked: Local<bool>,
    #[cfg(target_os = "linux")] shared_memory: Option<
        Res<whatnext_kiosk::shared_memory_present::SharedMemoryPresent>,
    >,
    #[cfg(target_os = "linux")] mut from_x: Local<
        Option<crossbeam_channel::Receiver<Result<Image, String>>>,
    >,
    mut exit: MessageWriter<AppExit>,
) {
    // The party screen on a CPU renderer shows its frames through X shared memory, not the
    // swapchain: its screenshot is read back from the X server, which is what the screen shows.
    #[cfg(target_os = "linux")]
    if let Some(captured) = from_x.as_ref().and_then(|r| r.try_recv().ok()) {
        let saved = captured.and_then(|image| save_screenshot(&image, &target.0));
        exit.write(screenshot_saved(&target.0, saved));
        return;
    }
    if *asked {
        return;
    }
    *frames += 1;
    let fading_in = egui
        .iter_mut()
        .any(|mut context| egui_is_fading_in(context.get_mut()));
    *settled = if fading_in { 0 } else { *settled + 1 };
    let ready = *frames >= SCREENSHOT_AFTER_FRAMES && *settled > SCREENSHOT_SETTLED_FRAMES;
    if !ready && *frames < SCREENSHOT_AT_THE_LATEST {
        return;
    }
    debug!(frames = *frames, "taking the screenshot");
    *asked = true;
    #[cfg(target_os = "linux")]
    if let Some(shared_memory) = shared_memory {
        *from_x = Some(shared_memory.capture_next_frame());
        return;
    }
    let path = target.0.clone();
    commands.spawn(Screenshot::primary_window()).observe(
        move |captured: On<ScreenshotCaptured>, mut exit: MessageWriter<AppExit>| {
            exit.write(screenshot_saved(
                &path,
                save_screenshot(&captured.image, &path),
            ));
        },
    );
}

/// Whether an egui area (a window, a card) shown in the last pass was still fading in: egui
/// raises its opacity over the animation time (1/12 s) from when it first shows, and a shot
/// taken then has the whole area a little dim.
fn egui_is_fading_in(ctx: &bevy_egui::egui::Context) -> bool {
    let now = ctx.input(|input| input.time);
    let fade = f64::from(ctx.global_style().animation_time);
    let shown = ctx.memory(|memory| memory.areas().visible_layer_ids());
    shown.into_iter().any(|layer| {
        bevy_egui::egui::AreaState::load(ctx, layer.id)
            .and_then(|area| area.last_became_visible_at)
            .is_some_and(|at| now - at < fade)
    })
}

/// Saves a frame as a plain RGB PNG.
fn save_screenshot(image: &Image, path: &std::path::Path) -> Result<(), String> {
    // Alpha holds HDR brightness in captures; a plain RGB PNG is what people expect.
    image
        .clone()
        .try_into_dynamic()
        .map_err(|e| e.to_string())
        .and_then(|img| img.to_rgb8().save(path).map_err(|e| e.to_string()))
}

/// Logs how saving went, and the exit that follows.
fn screenshot_saved(path: &std::path::Path, saved: Result<(), String>) -> AppExit {
    match saved {
        Ok(()) => {
            info!(path = %path.display(), "screenshot saved");
            AppExit::Success
        }
        Err(error) => {
            error!(path = %path.display(), %error, "the screenshot could not be saved");
            AppExit::error()
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bevy::prelude::*;
    use bevy::window::{Monitor, PrimaryMonitor};
    use bevy::winit::{UpdateMode, WinitSettings};
    use bevy_egui::egui;

    fn wait_of(mode: UpdateMode) -> Option<Duration> {
        match mode {
            UpdateMode::Reactive {
                wait,
                react_to_device_events: false,
                react_to_user_events: false,
                react_to_window_events: false,
            } => Some(wait),
            _ => None,
        }
    }

    #[test]
    fn the_party_screen_ticks_once_per_refresh_of_its_display() {
        let mut app = App::new();
        app.insert_resource(WinitSettings::game())
            .add_systems(Update, super::pace_to_the_display);
        app.world_mut().spawn((
            Monitor {
                name: None,
                physical_height: 1080,
                physical_width: 1920,
                physical_position: IVec2::ZERO,
                refresh_rate_millihertz: Some(144_000),
                scale_factor: 1.0,
                video_modes: Vec::new(),
            },
            PrimaryMonitor,
        ));
        app.update();
        let settings = app.world().resource::<WinitSettings>();
        let wait = wait_of(settings.focused_mode).expect("a tick and nothing else");
        assert_eq!(wait.as_micros(), 6_944, "1/144 s");
        assert_eq!(settings.unfocused_mode, settings.focused_mode);
    }

    #[test]
    fn a_display_that_gives_no_refresh_rate_is_taken_for_60_hz() {
        for unknown in [None, Some(0), Some(500)] {
            let wait = wait_of(super::paced_mode(unknown)).expect("a tick");
            assert_eq!(wait.as_micros(), 16_666, "{unknown:?}");
        }
        let wait = wait_of(super::paced_mode(Some(50_000))).expect("a tick");
        assert_eq!(wait, Duration::from_millis(20));
    }

    /// One egui pass at `time` seconds that shows a card, as the party screen's overlay does.
    fn pass_at(ctx: &egui::Context, time: f64) {
        let input = egui::RawInput {
            time: Some(time),
            ..Default::default()
        };
        let mut output = ctx.run_ui(input, |ui| {
            egui::Area::new("card".into()).show(ui.ctx(), |ui| {
                ui.label("JOIN WITH CODE");
            });
        });
        // No renderer here to take the font texture.
        output.textures_delta.clear();
    }

    #[test]
    fn a_screenshot_waits_while_a_new_area_fades_in_and_not_after() {
        let ctx = egui::Context::default();
        let fade = f64::from(ctx.global_style().animation_time);
        // Its first pass only sizes the area; it shows from the second.
        pass_at(&ctx, 0.0);
        pass_at(&ctx, 0.01);
        assert!(super::egui_is_fading_in(&ctx), "shown {fade} s ago at most");
        pass_at(&ctx, 0.01 + fade / 2.0);
        assert!(super::egui_is_fading_in(&ctx), "half way through its fade");
        pass_at(&ctx, 0.01 + fade * 2.0);
        assert!(!super::egui_is_fading_in(&ctx), "faded in long ago");
    }
}

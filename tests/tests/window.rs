//! The desktop window renders through the real renderer under Xvfb.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::harness::{AppWindow, binary};

/// Runs `whatnext ARGS --screenshot` under Xvfb and returns the frame's RGB pixels.
///
/// Needs `xvfb-run` and a Vulkan driver (Mesa's lavapipe); the README's test command
/// installs both. Without them this fails rather than pretending to pass.
fn screenshot(dir: &Path, args: &[&str]) -> Vec<u8> {
    screenshot_with(dir, args, &[], Screen::default()).0
}

/// The Xvfb screen a test runs on.
struct Screen {
    width: u32,
    height: u32,
    /// Extra X server options, such as `-extension MIT-SHM` to take an extension away.
    options: &'static str,
}

impl Default for Screen {
    fn default() -> Self {
        Screen {
            width: 1280,
            height: 720,
            options: "",
        }
    }
}

/// [`screenshot`] with environment variables, on a given screen; also returns the app's log
/// (the kiosk's at info level).
fn screenshot_with(
    dir: &Path,
    args: &[&str],
    env: &[(&str, &str)],
    screen: Screen,
) -> (Vec<u8>, String) {
    let shot = dir.join("window.png");
    let server = format!(
        "-screen 0 {}x{}x24 {}",
        screen.width, screen.height, screen.options
    );
    let output = Command::new("xvfb-run")
        .args(["-a", "-s", server.as_str()])
        .arg(binary())
        .args(args)
        .arg("--screenshot")
        .arg(&shot)
        .env("RUST_LOG", "warn,whatnext_kiosk=info")
        .env("NO_COLOR", "1")
        .envs(env.iter().copied())
        .output()
        .expect("xvfb-run is needed for this test: apt-get install xvfb xauth mesa-vulkan-drivers");
    let log = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        output.status.success(),
        "whatnext --screenshot exited with {}: {log}",
        output.status
    );
    let file = std::fs::File::open(&shot).expect("screenshot written");
    let decoder = png::Decoder::new(std::io::BufReader::new(file));
    let mut reader = decoder.read_info().expect("a PNG");
    let mut pixels = vec![0; reader.output_buffer_size().expect("size")];
    let info = reader.next_frame(&mut pixels).expect("pixels");
    assert_eq!(
        (info.width, info.height),
        (screen.width, screen.height),
        "the window does not fill the screen"
    );
    pixels.truncate(info.buffer_size());
    (pixels, log)
}

/// Keeps a failing test's frame and the app's log in `$TMPDIR/whatnext-window-failures/`, so a
/// failure that shows up once in CI can be looked at: the test's own temporary dir goes with it.
struct KeepOnFailure<'a> {
    dir: &'a Path,
    test: &'static str,
    log: String,
}

impl Drop for KeepOnFailure<'_> {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        let kept = std::env::temp_dir().join("whatnext-window-failures");
        let _ = std::fs::create_dir_all(&kept);
        let _ = std::fs::copy(
            self.dir.join("window.png"),
            kept.join(format!("{}.png", self.test)),
        );
        let _ = std::fs::write(kept.join(format!("{}.log", self.test)), &self.log);
        eprintln!("the frame and the log are kept in {}", kept.display());
    }
}

fn distinct_colours(pixels: &[u8]) -> usize {
    pixels
        .chunks(3)
        .collect::<std::collections::HashSet<&[u8]>>()
        .len()
}

#[test]
fn the_desktop_window_renders_a_non_blank_screenshot() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let data = data.to_str().expect("utf-8 path");
    let pixels = screenshot(dir.path(), &["--offline", "--data-dir", data]);
    let colours = distinct_colours(&pixels);
    assert!(
        colours > 16,
        "the frame is blank: {colours} distinct colours"
    );
}

/// `--demo --screenshot`: the fixture party through the real renderer, with its invite's QR
/// code (white quiet zone and black modules) on the dark theme.
#[test]
fn the_demo_party_renders_with_its_qr_code() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pixels = screenshot(dir.path(), &["--demo"]);
    let colours = distinct_colours(&pixels);
    assert!(
        colours > 16,
        "the frame is blank: {colours} distinct colours"
    );
    let white = pixels.chunks(3).filter(|p| *p == [255, 255, 255]).count();
    // The QR code is 180 points square; about half of it is white.
    assert!(
        white > 180 * 180 / 4,
        "no QR code on screen: {white} white pixels"
    );
}

/// What the party screen must show: the visualizer's coloured bars along the bottom edge, the
/// text, and the join QR code; and the way its frames went to the X server, as its log says.
fn assert_party_screen(test: &'static str, env: &[(&str, &str)], screen: Screen, path: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (width, height) = (screen.width as usize, screen.height as usize);
    let (pixels, log) = screenshot_with(dir.path(), &["--kiosk", "--demo"], env, screen);
    let _keep = KeepOnFailure {
        dir: dir.path(),
        test,
        log: log.clone(),
    };
    assert!(
        log.contains(path),
        "the party screen's log does not say \"{path}\": {log}"
    );
    let colours = distinct_colours(&pixels);
    // Bars in dozens of hues, and anti-aliased text: far more than a blank or flat frame.
    assert!(colours > 200, "too few colours for a visualizer: {colours}");
    let white = pixels.chunks(3).filter(|p| *p == [255, 255, 255]).count();
    assert!(white > 100 * 100 / 4, "no QR code: {white} white pixels");
    // The bars stand on the bottom edge, each 70% of its slot wide, in bright colours.
    let bottom_row = &pixels[(height - 1) * width * 3..];
    let bright = bottom_row
        .chunks(3)
        .filter(|p| p.iter().any(|c| *c > 100))
        .count();
    assert!(
        bright > width / 2,
        "no bars along the bottom: {bright} bright pixels"
    );
}

/// `--kiosk --demo --screenshot` on lavapipe: the party screen reaches the X server through
/// shared memory, and the screenshot is read back from the X server, so this checks what the
/// screen really shows.
#[test]
fn the_party_screen_shows_its_visualizer_and_join_code_through_x_shared_memory() {
    assert_party_screen(
        "through_x_shared_memory",
        &[],
        Screen::default(),
        "presents through X shared memory",
    );
}

/// The same through the Vulkan swapchain, the path of every other renderer (and of
/// `WHATNEXT_PRESENT=swapchain`).
#[test]
fn the_party_screen_renders_its_visualizer_and_join_code_through_the_swapchain() {
    assert_party_screen(
        "through_the_swapchain",
        &[("WHATNEXT_PRESENT", "swapchain")],
        Screen::default(),
        "presents through the swapchain reason=WHATNEXT_PRESENT=swapchain",
    );
}

/// An X server without MIT-SHM (a remote display, some VNC servers): the party screen says
/// why and draws through the swapchain.
#[test]
fn the_party_screen_falls_back_to_the_swapchain_on_an_x_server_without_shared_memory() {
    assert_party_screen(
        "without_shared_memory",
        &[],
        Screen {
            options: "-extension MIT-SHM",
            ..Screen::default()
        },
        "presents through the swapchain reason=the X server has no MIT-SHM",
    );
}

/// A screen of another size than the window Bevy starts with (1280×720): the window grows or
/// shrinks to it, and the frames the X server shows follow (read back from the X server).
#[test]
fn the_party_screen_fills_a_screen_of_another_size() {
    assert_party_screen(
        "another_size",
        &[],
        Screen {
            width: 1024,
            height: 768,
            options: "",
        },
        "presents through X shared memory",
    );
}

/// The desktop window with nothing happening draws a few frames a second (its timed redraw, a
/// blinking text cursor), not every frame the renderer can make: on a laptop, an idle party in
/// the background should not keep a core busy. Frames are counted by Bevy's frame-count
/// diagnostic (`WHATNEXT_DIAGNOSTICS=1`) over 5 seconds, after the first 2.
#[test]
fn an_idle_desktop_window_draws_a_few_frames_a_second_not_all_it_can() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = AppWindow::start(
        &dir.path().join("data"),
        &["--offline"],
        "warn,bevy_diagnostic=info",
        &[("WHATNEXT_DIAGNOSTICS", "1")],
    );
    let frame_count = || {
        let line = app.wait_for("a frame count", |line| line.contains("frame_count"));
        let count = line
            .rsplit(':')
            .next()
            .and_then(|n| n.trim().parse::<f64>().ok());
        (
            Instant::now(),
            count.expect("a number after \"frame_count:\""),
        )
    };
    let started = Instant::now();
    let (mut first, mut first_count) = frame_count();
    while first.duration_since(started) < Duration::from_secs(2) {
        (first, first_count) = frame_count();
    }
    let (mut last, mut last_count) = frame_count();
    while last.duration_since(first) < Duration::from_secs(5) {
        (last, last_count) = frame_count();
    }
    let per_second = (last_count - first_count) / last.duration_since(first).as_secs_f64();
    // Redraws every 250 ms when focused and every second when not, plus input and egui's own
    // timed requests: well under 8. Drawing continuously, a debug build here makes about 20.
    assert!(
        per_second < 8.0,
        "the idle window drew {per_second:.1} frames a second"
    );
}

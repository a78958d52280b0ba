//! The desktop window renders through the real renderer under Xvfb.

use std::path::Path;
use std::process::Command;

use crate::harness::binary;

/// Runs `whatnext ARGS --screenshot` under Xvfb and returns the frame's RGB pixels.
///
/// Needs `xvfb-run` and a Vulkan driver (Mesa's lavapipe); the README's test command
/// installs both. Without them this fails rather than pretending to pass.
fn screenshot(dir: &Path, args: &[&str]) -> Vec<u8> {
    let shot = dir.join("window.png");
    let status = Command::new("xvfb-run")
        .args(["-a", "-s", "-screen 0 1280x720x24"])
        .arg(binary())
        .args(args)
        .arg("--screenshot")
        .arg(&shot)
        .env("RUST_LOG", "warn")
        .status()
        .expect("xvfb-run is needed for this test: apt-get install xvfb xauth mesa-vulkan-drivers");
    assert!(
        status.success(),
        "whatnext --screenshot exited with {status}"
    );
    let file = std::fs::File::open(&shot).expect("screenshot written");
    let decoder = png::Decoder::new(std::io::BufReader::new(file));
    let mut reader = decoder.read_info().expect("a PNG");
    let mut pixels = vec![0; reader.output_buffer_size().expect("size")];
    let info = reader.next_frame(&mut pixels).expect("pixels");
    assert_eq!((info.width, info.height), (1280, 720));
    pixels.truncate(info.buffer_size());
    pixels
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

/// `--kiosk --demo --screenshot`: the party screen through the real renderer: the
/// visualizer's coloured bars, the text, and the join QR code.
#[test]
fn the_party_screen_renders_its_visualizer_and_join_code() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pixels = screenshot(dir.path(), &["--kiosk", "--demo"]);
    let colours = distinct_colours(&pixels);
    // Bars in dozens of hues, and anti-aliased text: far more than a blank or flat frame.
    assert!(colours > 200, "too few colours for a visualizer: {colours}");
    let white = pixels.chunks(3).filter(|p| *p == [255, 255, 255]).count();
    assert!(white > 100 * 100 / 4, "no QR code: {white} white pixels");
    // The bars stand on the bottom edge, each 70% of its slot wide, in bright colours.
    let bottom_row = &pixels[(720 - 1) * 1280 * 3..];
    let bright = bottom_row
        .chunks(3)
        .filter(|p| p.iter().any(|c| *c > 100))
        .count();
    assert!(
        bright > 1280 / 2,
        "no bars along the bottom: {bright} bright pixels"
    );
}

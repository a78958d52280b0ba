//! The desktop window renders through the real renderer under Xvfb.

use std::process::Command;

use crate::harness::binary;

/// Needs `xvfb-run` and a Vulkan driver (Mesa's lavapipe); the README's test command
/// installs both. Without them this fails rather than pretending to pass.
#[test]
fn the_desktop_window_renders_a_non_blank_screenshot() {
    let dir = tempfile::tempdir().expect("tempdir");
    let shot = dir.path().join("window.png");
    let status = Command::new("xvfb-run")
        .args(["-a", "-s", "-screen 0 1280x720x24"])
        .arg(binary())
        .arg("--offline")
        .arg("--data-dir")
        .arg(dir.path().join("data"))
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
    let bytes = &pixels[..info.buffer_size()];
    let distinct: std::collections::HashSet<&[u8]> = bytes.chunks(3).collect();
    assert!(
        distinct.len() > 16,
        "the frame is blank: {} distinct colours",
        distinct.len()
    );
}

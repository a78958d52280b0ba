//! Sound on the playback owner's device. Without an audio device (this test takes ALSA's
//! configuration away, as on a server) playback goes on silently with exactly one warning.

use std::time::Duration;

use serde_json::json;

use crate::harness::*;
use crate::library::write_wav;

#[test]
fn without_an_audio_device_playback_goes_on_silently_with_one_warning() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wav = dir.path().join("tone.wav");
    write_wav(&wav, 20_000, Some(("Quiet", "Nobody")));
    let no_sound = dir.path().join("empty-alsa.conf");
    std::fs::write(&no_sound, "").expect("write");
    let (mut app, log) = Headless::start_reading_log(
        &dir.path().join("data"),
        &["--offline"],
        &[("ALSA_CONFIG_PATH", no_sound.to_str().expect("utf-8"))],
    );
    app.ok("session.create", json!({"name": "Silent"}));
    let path = wav.to_str().expect("utf-8");
    app.ok(
        "track.add",
        json!({"title": "Quiet", "artist": "Nobody", "duration_ms": 20000, "path": path}),
    );
    app.ok("playback.play", json!(null));
    std::thread::sleep(Duration::from_millis(1_200));
    app.ok("playback.pause", json!(null));
    app.ok("playback.seek", json!({"position_ms": 5000}));
    app.ok("playback.play", json!(null));
    std::thread::sleep(Duration::from_millis(500));
    let state = app.ok("session.state", json!(null));
    assert_eq!(state["playback"]["state"], json!("playing"), "{state}");
    assert!(
        state["playback"]["position_ms"]
            .as_u64()
            .is_some_and(|p| p >= 5_400),
        "the clock goes on: {state}"
    );
    app.ok("quit", json!(null));
    assert!(app.wait_exit().success());
    let lines: Vec<String> = log.try_iter().collect();
    let warnings = lines
        .iter()
        .filter(|l| l.contains("no audio output"))
        .count();
    assert_eq!(warnings, 1, "one warning, got: {lines:#?}");
}

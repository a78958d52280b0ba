//! The library: importing a folder of real audio files (WAV files this test writes, with and
//! without tags), listing and searching it, and keeping it across a restart.

use std::path::Path;

use serde_json::json;

use crate::harness::*;

/// Writes a mono 16-bit WAV of `ms` milliseconds of silence, with a RIFF INFO title and
/// artist when given.
pub fn write_wav(path: &Path, ms: u32, tags: Option<(&str, &str)>) {
    let rate = 8_000u32;
    let samples = rate * ms / 1000;
    let data_len = samples * 2;
    let mut info = Vec::new();
    if let Some((title, artist)) = tags {
        info.extend_from_slice(b"INFO");
        for (id, text) in [(b"INAM", title), (b"IART", artist)] {
            let mut bytes = text.as_bytes().to_vec();
            bytes.push(0);
            if bytes.len() % 2 == 1 {
                bytes.push(0);
            }
            info.extend_from_slice(id);
            info.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
            info.extend_from_slice(&bytes);
        }
    }
    let list_len = if info.is_empty() {
        0
    } else {
        8 + info.len() as u32
    };
    let mut wav = wav_header(rate, data_len, list_len);
    wav.resize(wav.len() + data_len as usize, 0);
    if !info.is_empty() {
        wav.extend_from_slice(b"LIST");
        wav.extend_from_slice(&(info.len() as u32).to_le_bytes());
        wav.extend_from_slice(&info);
    }
    std::fs::write(path, wav).expect("write wav");
}

#[test]
fn a_folder_of_audio_files_is_imported_with_tags_and_durations_and_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    let music = dir.path().join("music");
    std::fs::create_dir_all(music.join("album")).expect("dirs");
    write_wav(
        &music.join("a.wav"),
        1_500,
        Some(("Harbour Lights", "The Quiet Tides")),
    );
    write_wav(&music.join("album/untagged song.wav"), 2_250, None);
    std::fs::write(music.join("broken.mp3"), b"not really an mp3").expect("write");
    std::fs::write(music.join("notes.txt"), b"not audio at all").expect("write");
    let data = dir.path().join("data");
    let mut app = Headless::start(&data);
    let folder = music.to_str().expect("utf-8");
    let imported = app.ok("library.import", json!({"path": folder}));
    assert_eq!(imported, json!({"added": 2, "skipped": 1}));
    let list = app.ok("library.list", json!(null));
    let tracks = list.as_array().expect("a list");
    let summary: Vec<(String, String, u64)> = tracks
        .iter()
        .map(|t| {
            (
                t["title"].as_str().unwrap_or("").to_owned(),
                t["artist"].as_str().unwrap_or("").to_owned(),
                t["duration_ms"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("Harbour Lights".into(), "The Quiet Tides".into(), 1_500),
            ("untagged song".into(), String::new(), 2_250),
        ]
    );
    // Importing again adds nothing new; a missing folder is a clear error.
    assert_eq!(
        app.ok("library.import", json!({"path": folder})),
        json!({"added": 0, "skipped": 1})
    );
    assert_eq!(
        app.error_code("library.import", json!({"path": "/no/such/folder"})),
        "not_found"
    );
    // By hand, and search.
    app.ok(
        "library.add",
        json!({"title": "Night Bus Home", "artist": "The Late Shift", "duration_ms": 198000}),
    );
    let found = app.ok("library.list", json!({"query": "late night"}));
    assert_eq!(found.as_array().map(Vec::len), Some(1), "{found}");
    app.ok("quit", json!(null));
    assert!(app.wait_exit().success());

    let mut again = Headless::start(&data);
    let kept = again.ok("library.list", json!(null));
    assert_eq!(kept.as_array().map(Vec::len), Some(3), "{kept}");
}

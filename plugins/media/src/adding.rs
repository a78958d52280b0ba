//! `LocalAction::AddFile`: read the file on a thread (a regular file, under the size cap,
//! audio whatnext decodes), name it by its BLAKE3 hash, keep the path here as one of this
//! device's own files, and send the addition with its media under the same intent id.

use std::path::{Path, PathBuf};

use bevy::prelude::*;
use crossbeam_channel::{Receiver, Sender};
use whatnext_core::prelude::*;

use crate::MediaSettings;

/// A file read and named, or why it cannot be queued.
struct Read {
    intent: IntentId,
    result: Result<(SessionAction, PathBuf, Vec<u8>), IntentError>,
}

/// Files being read, and their results.
#[derive(Resource)]
pub(crate) struct Reads {
    tx: Sender<Read>,
    rx: Receiver<Read>,
}

impl Default for Reads {
    fn default() -> Self {
        let (tx, rx) = crossbeam_channel::unbounded();
        Self { tx, rx }
    }
}

/// In `Update`: starts reading each `AddFile` on a thread of its own (hashing 1 GiB takes
/// seconds, and a frame must not).
pub(crate) fn start_reads(
    reads: Res<Reads>,
    settings: Res<MediaSettings>,
    waker: Option<Res<AppWaker>>,
    mut intents: MessageReader<Intent>,
) {
    for intent in intents.read() {
        let Action::Local(LocalAction::AddFile {
            track_id,
            title,
            artist,
            duration_ms,
            path,
        }) = &intent.action
        else {
            continue;
        };
        let (tx, id, cap) = (reads.tx.clone(), intent.id.clone(), settings.max_file_bytes);
        let waker = waker.as_deref().cloned();
        let (track_id, title, artist, duration_ms, path) = (
            *track_id,
            title.clone(),
            artist.clone(),
            *duration_ms,
            PathBuf::from(path),
        );
        let spawned = std::thread::Builder::new()
            .name("media-read".into())
            .spawn(move || {
                let result = name_file(&path, cap).map(|(media, outboard)| {
                    let action = SessionAction::AddTrack {
                        track_id,
                        title,
                        artist,
                        duration_ms,
                        media: Some(media),
                    };
                    (action, path, outboard)
                });
                let _ = tx.send(Read { intent: id, result });
                if let Some(waker) = waker {
                    waker.wake();
                }
            });
        if let Err(error) = spawned {
            let _ = reads.tx.send(Read {
                intent: intent.id.clone(),
                result: Err(IntentError::new(
                    ErrorCode::Internal,
                    format!("cannot start reading the file: {error}"),
                )),
            });
        }
    }
}

/// In `PreUpdate`: a named file becomes one of this device's own and its addition is sent,
/// under the `AddFile`'s id, so its answer is the addition's; a refused one is answered.
pub(crate) fn finish_reads(
    reads: Res<Reads>,
    mut files: ResMut<LocalFiles>,
    mut serving: ResMut<crate::serving::Serving>,
    wall: Res<WallClock>,
    mut intents: MessageWriter<Intent>,
    mut outcomes: MessageWriter<IntentOutcome>,
) {
    while let Ok(read) = reads.rx.try_recv() {
        match read.result {
            Ok((action, path, outboard)) => {
                if let SessionAction::AddTrack {
                    media: Some(media), ..
                } = &action
                {
                    files.own.insert(media.hash, path);
                    serving.just_added(*media, outboard, wall.now_ms);
                }
                intents.write(Intent {
                    id: read.intent,
                    action: Action::Session(action),
                });
            }
            Err(error) => {
                outcomes.write(IntentOutcome {
                    id: read.intent,
                    result: Err(error),
                });
            }
        }
    }
}

/// A file's media and outboard, if it is a regular file of audio whatnext decodes, at most
/// `cap` bytes.
pub fn name_file(path: &Path, cap: u64) -> Result<(Media, Vec<u8>), IntentError> {
    whatnext_core::limits::check_path(path.to_str())?;
    let shown = path.display();
    let bad = |message: String| IntentError::new(ErrorCode::BadRequest, message);
    let meta = std::fs::metadata(path).map_err(|e| bad(format!("cannot read {shown}: {e}")))?;
    if !meta.is_file() {
        return Err(bad(format!("{shown} is not a file")));
    }
    if meta.len() > cap {
        return Err(IntentError::new(
            ErrorCode::TooLarge,
            format!(
                "{shown} is {} MiB; files over {} MiB cannot be shared",
                meta.len() >> 20,
                cap >> 20
            ),
        ));
    }
    let format = path
        .extension()
        .and_then(|e| e.to_str())
        .and_then(AudioFormat::from_extension)
        .ok_or_else(|| {
            bad(format!(
                "{shown} is not an audio file whatnext plays (mp3, flac, wav or ogg)"
            ))
        })?;
    whatnext_audio::check_playable(path).map_err(|e| bad(e.to_string()))?;
    let (hash, size, outboard) =
        crate::tree::read_file_tree(path).map_err(|e| bad(format!("cannot read {shown}: {e}")))?;
    Ok((Media { hash, size, format }, outboard))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A mono 16-bit 8 kHz WAV of `samples` samples of a ramp.
    fn wav(samples: u32) -> Vec<u8> {
        let mut w = Vec::new();
        w.extend_from_slice(b"RIFF");
        w.extend_from_slice(&(36 + samples * 2).to_le_bytes());
        w.extend_from_slice(b"WAVEfmt ");
        w.extend_from_slice(&16u32.to_le_bytes());
        for v in [1u16, 1] {
            w.extend_from_slice(&v.to_le_bytes());
        }
        for v in [8_000u32, 16_000] {
            w.extend_from_slice(&v.to_le_bytes());
        }
        for v in [2u16, 16] {
            w.extend_from_slice(&v.to_le_bytes());
        }
        w.extend_from_slice(b"data");
        w.extend_from_slice(&(samples * 2).to_le_bytes());
        w.extend((0..samples).flat_map(|i| (i as i16).to_le_bytes()));
        w
    }

    #[test]
    fn an_audio_file_is_named_by_its_blake3_hash() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("song.wav");
        let bytes = wav(8_000);
        std::fs::write(&path, &bytes).expect("write");
        let (media, outboard) = name_file(&path, 1 << 30).expect("named");
        assert!(outboard.is_empty(), "a one-leaf file has no outboard");
        assert_eq!(media.hash, ContentHash::of_bytes(&bytes));
        assert_eq!(media.size, bytes.len() as u64);
        assert_eq!(media.format, AudioFormat::Wav);
    }

    #[test]
    fn what_is_not_playable_audio_under_the_cap_gets_a_clear_error() {
        let dir = tempfile::tempdir().expect("dir");
        let song = dir.path().join("song.wav");
        std::fs::write(&song, wav(8_000)).expect("write");
        let text = dir.path().join("notes.txt");
        std::fs::write(&text, "not audio").expect("write");
        let fake = dir.path().join("fake.mp3");
        std::fs::write(&fake, "not an mp3 at all").expect("write");
        let code = |path: &Path, cap: u64| name_file(path, cap).map_err(|e| e.code).err();
        assert_eq!(code(&song, 100), Some(ErrorCode::TooLarge));
        assert_eq!(code(&text, 1 << 30), Some(ErrorCode::BadRequest));
        assert_eq!(code(&fake, 1 << 30), Some(ErrorCode::BadRequest));
        assert_eq!(code(dir.path(), 1 << 30), Some(ErrorCode::BadRequest));
        assert_eq!(
            code(&dir.path().join("gone.wav"), 1 << 30),
            Some(ErrorCode::BadRequest)
        );
        let long = dir.path().join("x".repeat(5_000) + ".wav");
        assert_eq!(code(&long, 1 << 30), Some(ErrorCode::TooLarge));
    }
}

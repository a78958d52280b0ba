//! `LibraryPlugin`: answers `ImportFolder` intents. A scan reads every audio file under the
//! folder on its own thread (tags and duration, with lofty), then the tracks join the
//! `Library` resource, which storage keeps. Files that cannot be read are counted, not fatal.

use std::path::{Path, PathBuf};

use bevy::prelude::*;
use crossbeam_channel::{Receiver, Sender};
use lofty::file::{AudioFile, TaggedFileExt};
use lofty::tag::Accessor;
use whatnext_core::prelude::*;

/// File extensions treated as audio.
pub const AUDIO_EXTENSIONS: &[&str] = &[
    "mp3", "flac", "ogg", "oga", "opus", "m4a", "mp4", "aac", "wav", "aif", "aiff", "wv", "ape",
];

/// A scan stops after this many audio files, so a mistaken `/` cannot run for hours.
pub const MAX_FILES: usize = 100_000;

pub struct LibraryPlugin;

impl Plugin for LibraryPlugin {
    fn build(&self, app: &mut App) {
        let (done_tx, done_rx) = crossbeam_channel::unbounded();
        app.insert_resource(FolderImporter)
            .insert_resource(Scans { done_tx, done_rx })
            .add_systems(Update, (start_scans, finish_scans).after(SessionSet::Apply));
    }
}

/// One file read from disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScannedFile {
    pub path: PathBuf,
    pub title: String,
    pub artist: String,
    pub duration_ms: u64,
}

/// What a folder scan found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Scan {
    pub files: Vec<ScannedFile>,
    /// Audio files that could not be read, with why.
    pub skipped: Vec<(PathBuf, String)>,
}

/// Reads the audio files under `folder`, recursively, in name order.
pub fn scan_folder(folder: &Path) -> Result<Scan, String> {
    let meta = std::fs::metadata(folder)
        .map_err(|e| format!("cannot open the folder {}: {e}", folder.display()))?;
    if !meta.is_dir() {
        return Err(format!("{} is not a folder", folder.display()));
    }
    let mut scan = Scan::default();
    let mut pending = vec![folder.to_owned()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue; // unreadable subfolders are skipped, like unreadable files
        };
        let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        for path in paths {
            if path.is_dir() {
                pending.push(path);
            } else if is_audio(&path) {
                if scan.files.len() + scan.skipped.len() >= MAX_FILES {
                    return Ok(scan);
                }
                match read_file(&path) {
                    Ok(file) => scan.files.push(file),
                    Err(why) => scan.skipped.push((path, why)),
                }
            }
        }
    }
    Ok(scan)
}

fn is_audio(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| AUDIO_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// Tags and duration of one file; a file without tags is named after itself.
pub fn read_file(path: &Path) -> Result<ScannedFile, String> {
    let tagged = lofty::read_from_path(path).map_err(|e| e.to_string())?;
    let duration_ms = tagged.properties().duration().as_millis() as u64;
    let tag = tagged.primary_tag().or_else(|| tagged.first_tag());
    let text = |value: Option<std::borrow::Cow<'_, str>>| {
        value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
    };
    let title = text(tag.and_then(|t| t.title())).unwrap_or_else(|| {
        path.file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
    });
    let artist = text(tag.and_then(|t| t.artist())).unwrap_or_default();
    Ok(ScannedFile {
        path: path.to_owned(),
        title,
        artist,
        duration_ms,
    })
}

struct ScanDone {
    intent: IntentId,
    result: Result<Scan, String>,
}

#[derive(Resource)]
struct Scans {
    done_tx: Sender<ScanDone>,
    done_rx: Receiver<ScanDone>,
}

fn start_scans(
    scans: Res<Scans>,
    waker: Option<Res<AppWaker>>,
    mut intents: MessageReader<Intent>,
) {
    for intent in intents.read() {
        let Action::Local(LocalAction::ImportFolder { path }) = &intent.action else {
            continue;
        };
        let (tx, id, folder) = (
            scans.done_tx.clone(),
            intent.id.clone(),
            PathBuf::from(path),
        );
        let waker = waker.as_deref().cloned();
        let spawned = std::thread::Builder::new()
            .name("library-scan".into())
            .spawn(move || {
                let result = scan_folder(&folder);
                let _ = tx.send(ScanDone { intent: id, result });
                if let Some(waker) = waker {
                    waker.wake();
                }
            });
        if let Err(error) = spawned {
            let _ = scans.done_tx.send(ScanDone {
                intent: intent.id.clone(),
                result: Err(format!("cannot start the scan: {error}")),
            });
        }
    }
}

fn finish_scans(
    scans: Res<Scans>,
    mut library: ResMut<Library>,
    mut outcomes: MessageWriter<IntentOutcome>,
) {
    while let Ok(done) = scans.done_rx.try_recv() {
        let result = match done.result {
            Err(why) => Err(IntentError::new(ErrorCode::NotFound, why)),
            Ok(scan) => {
                for (path, why) in &scan.skipped {
                    tracing::warn!(path = %path.display(), %why, "an audio file could not be read");
                }
                let mut added = 0;
                for file in scan.files {
                    let path = file.path.to_string_lossy().into_owned();
                    // Importing a folder again adds only what is new in it.
                    if library
                        .0
                        .iter()
                        .any(|t| t.path.as_deref() == Some(path.as_str()))
                    {
                        continue;
                    }
                    library.0.push(LibraryTrack {
                        id: TrackId::random(&mut rand::thread_rng()),
                        title: file.title.chars().take(200).collect(),
                        artist: file.artist.chars().take(200).collect(),
                        duration_ms: file.duration_ms,
                        path: Some(path),
                    });
                    added += 1;
                }
                Ok(Applied::Imported {
                    added,
                    skipped: scan.skipped.len() as u32,
                })
            }
        };
        outcomes.write(IntentOutcome {
            id: done.intent,
            result,
        });
    }
}

//! `LibraryPlugin`: answers `ImportFolder` intents. A scan reads every audio file under the
//! folder on its own thread (tags and duration, with lofty), then the tracks join the
//! `Library` resource, which storage keeps. Files that cannot be read are counted, not fatal.

use std::path::{Path, PathBuf};

use bevy::prelude::*;
use crossbeam_channel::{Receiver, Sender};
use lofty::file::{AudioFile, TaggedFileExt};
use lofty::tag::Accessor;
use whatnext_core::prelude::*;

/// File extensions treated as audio (compared without regard to case).
pub const AUDIO_EXTENSIONS: &[&str] = &[
    "mp3", "flac", "ogg", "oga", "opus", "m4a", "mp4", "aac", "wav", "aif", "aiff", "wv", "ape",
];

/// A scan stops after this many audio files, so a mistaken `/` cannot run for hours.
pub const MAX_FILES: usize = 100_000;

/// Imports folders into the [`Library`] resource: answers each
/// `LocalAction::ImportFolder` intent with an `IntentOutcome` once its scan (on a thread of
/// its own) is done. Adds the `FolderImporter` marker resource, so the session's apply step
/// leaves those intents to this plugin, and two `Update` systems after `SessionSet::Apply`: one starts
/// scans, the other adds their tracks to the library.
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
    /// Where the file is.
    pub path: PathBuf,
    /// The title tag, or the file name without its extension when there is none.
    pub title: String,
    /// The artist tag, or empty.
    pub artist: String,
    /// The length of the audio.
    pub duration_ms: u64,
}

/// What a folder scan found.
#[derive(Debug, Default)]
pub struct Scan {
    /// The audio files that were read, in the order found.
    pub files: Vec<ScannedFile>,
    /// Audio files that could not be read, with why.
    pub skipped: Vec<(PathBuf, ReadFileError)>,
}

/// Why a folder could not be scanned at all. Every cause is answered with the protocol's
/// `not_found` code (see [`ScanError::code`]).
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// The folder does not exist or cannot be opened.
    #[error("cannot open the folder {folder}: {source}")]
    FolderUnreadable {
        /// The folder asked for.
        folder: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The path exists but is a file, not a folder.
    #[error("{path} is not a folder")]
    NotAFolder {
        /// The path asked for.
        path: PathBuf,
    },
    /// The thread that scans could not be started.
    #[error("cannot start the scan: {source}")]
    ThreadNotStarted {
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
}

impl ScanError {
    /// The error code of the import intent's outcome.
    pub fn code(&self) -> ErrorCode {
        ErrorCode::NotFound
    }
}

/// Why one audio file was skipped: lofty could not read its tags or properties.
#[derive(Debug, thiserror::Error)]
#[error("cannot read its tags and length: {source}")]
pub struct ReadFileError {
    /// Lofty's error: an unknown format, a damaged file, or the operating system's error.
    #[from]
    source: lofty::error::LoftyError,
}

/// Reads the audio files under `folder`, recursively, in name order.
pub fn scan_folder(folder: &Path) -> Result<Scan, ScanError> {
    let meta = std::fs::metadata(folder).map_err(|source| ScanError::FolderUnreadable {
        folder: folder.to_owned(),
        source,
    })?;
    if !meta.is_dir() {
        return Err(ScanError::NotAFolder {
            path: folder.to_owned(),
        });
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
pub fn read_file(path: &Path) -> Result<ScannedFile, ReadFileError> {
    let tagged = lofty::read_from_path(path)?;
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
    result: Result<Scan, ScanError>,
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
                result: Err(ScanError::ThreadNotStarted { source: error }),
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
            Err(why) => Err(IntentError::new(why.code(), why.to_string())),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_folder_or_a_file_is_a_scan_error_answered_not_found() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("gone");
        let error = scan_folder(&missing).expect_err("missing");
        assert!(
            matches!(error, ScanError::FolderUnreadable { .. }),
            "{error:?}"
        );
        assert!(
            error.to_string().starts_with("cannot open the folder"),
            "{error}"
        );
        assert_eq!(error.code(), ErrorCode::NotFound);

        let file = dir.path().join("song.mp3");
        std::fs::write(&file, b"x").expect("write");
        let error = scan_folder(&file).expect_err("a file");
        assert!(matches!(error, ScanError::NotAFolder { .. }), "{error:?}");
        assert_eq!(
            error.to_string(),
            format!("{} is not a folder", file.display())
        );
    }

    #[test]
    fn an_unreadable_audio_file_is_skipped_with_its_reason() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("broken.mp3");
        std::fs::write(&file, b"not audio at all").expect("write");
        let scan = scan_folder(dir.path()).expect("scan");
        assert!(scan.files.is_empty());
        assert_eq!(scan.skipped.len(), 1);
        assert_eq!(scan.skipped[0].0, file);
        assert!(
            scan.skipped[0]
                .1
                .to_string()
                .starts_with("cannot read its tags"),
            "{}",
            scan.skipped[0].1
        );
    }
}

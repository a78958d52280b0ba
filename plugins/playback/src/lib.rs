//! `PlaybackPlugin`: on the playback owner's device, the current track's local file plays
//! through the default audio output, and follows the shared playback clock: play, pause,
//! seek and track changes. The sound lives on a thread of its own (rodio's stream is not
//! `Send`), started at the first track to play; without an audio device (a server, CI) it
//! warns once and playback goes on silently, since the clock, not the sound, is the truth.

mod own_file;

use std::time::Duration;

use bevy::prelude::*;
use crossbeam_channel::Sender;
use whatnext_core::prelude::*;

pub use own_file::own_file;

/// How far the sound may drift from the shared clock before it is moved back.
pub const MAX_DRIFT_MS: u64 = 500;

/// Plays the current track's local file on the playback owner's device. Adds the private
/// `Output` resource (the sound thread's handle) and one `Update` system after
/// `SessionSet::Apply` that compares the shared playback clock with what the sound thread
/// was last told and sends it play, pause, seek or stop.
pub struct PlaybackPlugin;

impl Plugin for PlaybackPlugin {
    fn build(&self, app: &mut App) {
        app.init_resource::<Output>()
            .add_systems(Update, follow_the_clock.after(SessionSet::Apply));
    }
}

/// What the sound thread is asked to do.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Command {
    /// Play `path` from `from_ms` (loading it if it is not the file already loaded).
    Play {
        path: String,
        from_ms: u64,
    },
    Pause,
    Stop,
}

/// The sound thread (once started) and what it was last told.
#[derive(Resource, Default)]
struct Output {
    commands: Option<Sender<Command>>,
    /// The last `Play`, and the wall-clock time it was sent, to notice seeks and drift.
    playing: Option<(String, u64, u64)>,
    paused: bool,
}

impl Output {
    fn send(&mut self, command: Command) {
        let sender = self.commands.get_or_insert_with(start_sound_thread);
        let _ = sender.send(command);
    }
}

fn start_sound_thread() -> Sender<Command> {
    let (tx, rx) = crossbeam_channel::unbounded::<Command>();
    let spawned = std::thread::Builder::new()
        .name("sound".into())
        .spawn(move || {
            let (_stream, handle) = match rodio::OutputStream::try_default() {
                Ok(pair) => pair,
                Err(error) => {
                    tracing::warn!("no audio output ({error}); playback goes on silently");
                    // Keep draining so senders never block or fail.
                    while rx.recv().is_ok() {}
                    return;
                }
            };
            let mut sink: Option<rodio::Sink> = None;
            let mut loaded: Option<String> = None;
            let mut unreadable: Option<String> = None;
            while let Ok(command) = rx.recv() {
                match command {
                    Command::Play { path, from_ms } => {
                        if loaded.as_deref() != Some(path.as_str()) {
                            sink = None;
                            loaded = None;
                            match open(&handle, &path) {
                                Ok(new) => {
                                    sink = Some(new);
                                    loaded = Some(path.clone());
                                }
                                Err(error) => {
                                    // Once per file: the clock goes on without sound.
                                    if unreadable.as_deref() != Some(path.as_str()) {
                                        tracing::warn!(%path, %error, "cannot play this track's file");
                                        unreadable = Some(path);
                                    }
                                    continue;
                                }
                            }
                        }
                        if let Some(sink) = &sink {
                            if let Err(error) = sink.try_seek(Duration::from_millis(from_ms)) {
                                tracing::debug!(%error, "cannot seek; playing from where it is");
                            }
                            sink.play();
                        }
                    }
                    Command::Pause => {
                        if let Some(sink) = &sink {
                            sink.pause();
                        }
                    }
                    Command::Stop => {
                        sink = None;
                        loaded = None;
                    }
                }
            }
        });
    if let Err(error) = spawned {
        tracing::warn!(%error, "cannot start the sound thread; playback goes on silently");
    }
    tx
}

/// Why a track's file cannot be played. Logged once per file; the clock goes on regardless.
#[derive(Debug, thiserror::Error)]
enum OpenError {
    /// The file could not be opened.
    #[error("cannot open the file: {source}")]
    Unreadable {
        #[source]
        source: std::io::Error,
    },
    /// rodio does not recognise or cannot decode the audio in the file.
    #[error("cannot decode the audio in the file: {source}")]
    Undecodable {
        #[source]
        source: rodio::decoder::DecoderError,
    },
    /// The file claims a sample rate or channel count beyond the limits.
    #[error("the file has {what}")]
    OutOfLimits { what: String },
    /// The audio output would not take a new stream.
    #[error("the audio output refused the track: {source}")]
    OutputRefused {
        #[source]
        source: rodio::PlayError,
    },
}

/// Opens a paused sink playing `path`.
fn open(handle: &rodio::OutputStreamHandle, path: &str) -> Result<rodio::Sink, OpenError> {
    // Never a FIFO or device: an open of one would block this thread for good.
    let file = whatnext_audio::open_regular_file(std::path::Path::new(path))
        .map_err(|source| OpenError::Unreadable { source })?;
    let source = rodio::Decoder::new(std::io::BufReader::new(file))
        .map_err(|source| OpenError::Undecodable { source })?;
    let (rate, channels) = (
        rodio::Source::sample_rate(&source),
        rodio::Source::channels(&source),
    );
    whatnext_audio::check_format(rate, usize::from(channels))
        .map_err(|what| OpenError::OutOfLimits { what })?;
    let sink =
        rodio::Sink::try_new(handle).map_err(|source| OpenError::OutputRefused { source })?;
    sink.pause();
    sink.append(source);
    Ok(sink)
}

/// Whether sound started at `from_ms` when the wall clock read `sent_at_ms` is still within
/// [`MAX_DRIFT_MS`] of the shared clock's `position_ms` at `now_ms`.
fn in_step(from_ms: u64, sent_at_ms: u64, now_ms: u64, position_ms: u64) -> bool {
    let expected = from_ms.saturating_add(now_ms.saturating_sub(sent_at_ms));
    expected.abs_diff(position_ms) <= MAX_DRIFT_MS
}

/// What this device should be doing, from the session: only the owner plays, and only a
/// current track with a file of its own ([`own_file`]).
fn follow_the_clock(
    reader: SessionReader,
    tracks: Query<&Track>,
    library: Res<Library>,
    wall: Res<WallClock>,
    mut output: ResMut<Output>,
) {
    let snapshot = reader.snapshot();
    let me = reader.local_peer().peer.clone();
    let wanted = snapshot.as_ref().and_then(|s| {
        let id = s.playback.track_id.filter(|_| s.playback_owner == me)?;
        let track = tracks.iter().find(|t| t.id == id)?;
        let path = own_file(track, &me, &library)?.to_owned();
        Some((path, s.playback.position_ms, s.playback.state))
    });
    match wanted {
        Some((path, position, PlayState::Playing)) => {
            // Where the sound should be now, if it has been playing since the last command.
            let in_step = output.playing.as_ref().is_some_and(|(p, from, at)| {
                *p == path && !output.paused && in_step(*from, *at, wall.now_ms, position)
            });
            if !in_step {
                output.send(Command::Play {
                    path: path.clone(),
                    from_ms: position,
                });
                output.playing = Some((path, position, wall.now_ms));
                output.paused = false;
            }
        }
        Some(_) => {
            if !output.paused && output.playing.is_some() {
                output.send(Command::Pause);
                output.paused = true;
            }
        }
        None => {
            if output.playing.take().is_some() {
                output.send(Command::Stop);
                output.paused = false;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: &str = "12D3KooWMe";
    const GUEST: &str = "12D3KooWGus";

    /// This device hosts and plays; `adder` puts a track with a file at `path` in the queue
    /// and it plays. Returns the app after one frame of playback.
    fn playing_a_track_from(adder: &str, path: &str, library: Library) -> App {
        let mut app = whatnext_test_support::session_app(ME);
        app.add_plugins(PlaybackPlugin).insert_resource(library);
        whatnext_test_support::host_plays_a_track_from(&mut app, ME, GUEST, adder, path);
        app
    }

    fn asked_to_play(app: &App) -> Option<String> {
        let output = app.world().resource::<Output>();
        output.playing.as_ref().map(|(path, _, _)| path.clone())
    }

    #[test]
    fn the_owner_plays_its_own_tracks_file() {
        let app = playing_a_track_from(ME, "/music/mine.wav", Library::default());
        assert_eq!(asked_to_play(&app).as_deref(), Some("/music/mine.wav"));
    }

    /// A guest's track names a path on the guest's device: the owner must not open whatever
    /// is at that path here (a FIFO would block the sound thread).
    #[test]
    fn a_path_from_a_guests_track_is_not_opened() {
        let app = playing_a_track_from(GUEST, "/tmp/guest-named-fifo", Library::default());
        assert_eq!(asked_to_play(&app), None);
    }

    #[test]
    fn a_guests_track_plays_when_its_path_is_in_this_devices_library() {
        let library = Library(vec![LibraryTrack {
            id: TrackId(7),
            title: "Song".into(),
            artist: String::new(),
            duration_ms: 60_000,
            path: Some("/music/shared.wav".into()),
        }]);
        let app = playing_a_track_from(GUEST, "/music/shared.wav", library);
        assert_eq!(asked_to_play(&app).as_deref(), Some("/music/shared.wav"));
    }

    #[test]
    fn sound_within_the_drift_is_in_step_and_beyond_it_is_not() {
        assert!(in_step(10_000, 1_000, 3_000, 12_000 + MAX_DRIFT_MS));
        assert!(!in_step(10_000, 1_000, 3_000, 12_001 + MAX_DRIFT_MS));
    }

    /// A position is a peer's number (a host's clock, a guest's track length): at the top of
    /// the range the expected position saturates instead of overflowing.
    #[test]
    fn a_position_at_the_top_of_the_range_does_not_overflow() {
        assert!(in_step(u64::MAX, 0, 5_000, u64::MAX));
        assert!(!in_step(u64::MAX - 10, 0, 5_000, 0));
    }
}

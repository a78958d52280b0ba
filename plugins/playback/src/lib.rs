//! `PlaybackPlugin`: on the playback owner's device (and on any device listening along), the
//! current track's verified local file plays through the default audio output, and follows
//! the shared playback clock: play, pause, seek and track changes. The sound lives on a thread of its own (rodio's stream is not
//! `Send`), started at the first track to play; without an audio device (a server, CI) it
//! warns once and playback goes on silently, since the clock, not the sound, is the truth.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use bevy::prelude::*;
use crossbeam_channel::Sender;
use whatnext_core::prelude::*;

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
    /// What the sound thread found: 0 not started, [`DEVICE`] or [`SILENT`].
    device: Arc<AtomicU8>,
    /// The last `Play`, and the wall-clock time it was sent, to notice seeks and drift.
    playing: Option<(String, u64, u64)>,
    paused: bool,
}

impl Output {
    fn send(&mut self, command: Command) {
        let device = self.device.clone();
        let sender = self
            .commands
            .get_or_insert_with(|| start_sound_thread(device));
        let _ = sender.send(command);
    }
}

/// The sound thread opened an audio device.
const DEVICE: u8 = 1;
/// The sound thread found no audio device.
const SILENT: u8 = 2;

fn start_sound_thread(device: Arc<AtomicU8>) -> Sender<Command> {
    let (tx, rx) = crossbeam_channel::unbounded::<Command>();
    let spawned = std::thread::Builder::new()
        .name("sound".into())
        .spawn(move || {
            let (_stream, handle) = match rodio::OutputStream::try_default() {
                Ok(pair) => {
                    device.store(DEVICE, Ordering::Relaxed);
                    pair
                }
                Err(error) => {
                    device.store(SILENT, Ordering::Relaxed);
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

/// What this device should be doing, from the session: only the owner (or a device listening
/// along) plays, and only a current track whose verified file is here ([`LocalFiles`]: never a path a peer named).
fn follow_the_clock(
    reader: SessionReader,
    owners: Query<&PlaybackOwner>,
    index: Res<QueueIndex>,
    tracks: Query<&Track>,
    files: Res<LocalFiles>,
    listening: Res<Listening>,
    wall: Res<WallClock>,
    mut output: ResMut<Output>,
    mut status: ResMut<AudioStatus>,
) {
    let me = &reader.local_peer().peer;
    let mine = listening.0 || owners.iter().next().is_some_and(|o| o.0 == *me);
    let sounding = reader.playback().filter(|_| mine).and_then(|p| {
        let id = p.track_id?;
        let track = tracks.get(index.entity(id)?).ok()?;
        let path = files
            .file_for(track.media.as_ref())?
            .to_string_lossy()
            .into_owned();
        Some((id, path, p.position_ms, p.state))
    });
    let now = AudioStatus {
        track_id: sounding.as_ref().map(|s| s.0),
        position_ms: sounding.as_ref().map_or(0, |s| s.2),
        output: match output.device.load(Ordering::Relaxed) {
            DEVICE => AudioOutput::Device,
            _ => AudioOutput::Silent,
        },
        playing: sounding.as_ref().is_some_and(|s| s.3 == PlayState::Playing),
    };
    if *status != now {
        *status = now;
    }
    let wanted = sounding.map(|(_, path, position, state)| (path, position, state));
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

    /// This device hosts and plays; `adder` puts a track in the queue and it plays; `here`
    /// is where this device holds its file, if it does. Returns the app after one frame.
    fn playing_a_track_from(adder: &str, here: Option<&str>) -> App {
        let media = whatnext_test_support::test_media(1);
        let mut files = LocalFiles::default();
        if let Some(path) = here {
            files.copies.insert(media.hash, path.into());
        }
        let mut app = whatnext_test_support::session_app(ME);
        app.add_plugins(PlaybackPlugin).insert_resource(files);
        whatnext_test_support::host_plays_a_track_from(&mut app, ME, GUEST, adder, media);
        app
    }

    fn asked_to_play(app: &App) -> Option<String> {
        let output = app.world().resource::<Output>();
        output.playing.as_ref().map(|(path, _, _)| path.clone())
    }

    #[test]
    fn the_owner_plays_the_verified_file_it_holds() {
        let app = playing_a_track_from(GUEST, Some("/data/media/a.wav"));
        assert_eq!(asked_to_play(&app).as_deref(), Some("/data/media/a.wav"));
    }

    /// Nothing from a peer names a file here: a track whose content this device does not
    /// hold plays nothing (the clock goes on), even the owner's own addition.
    #[test]
    fn a_track_whose_file_is_not_here_plays_nothing() {
        assert_eq!(asked_to_play(&playing_a_track_from(GUEST, None)), None);
        assert_eq!(asked_to_play(&playing_a_track_from(ME, None)), None);
    }

    /// Playback moves to the guest (made a co-host): this device falls silent, and plays again (the same
    /// file, at the shared clock) once its user switches on "Listen along".
    #[test]
    fn a_device_that_does_not_own_playback_plays_only_when_listening_along() {
        let mut app = playing_a_track_from(GUEST, Some("/data/media/a.wav"));
        let mut me = whatnext_test_support::Author {
            peer: PeerId::new(ME),
            counter: 100,
        };
        for action in [
            SessionAction::AddCohost {
                peer: PeerId::new(GUEST),
            },
            SessionAction::HandOff {
                to: PeerId::new(GUEST),
            },
        ] {
            me.act(&mut app, Action::Session(action))
                .expect("promote and hand off");
        }
        app.update();
        assert_eq!(asked_to_play(&app), None, "not the owner: silent");
        assert_eq!(app.world().resource::<AudioStatus>().track_id, None);
        me.act(
            &mut app,
            Action::Local(LocalAction::SetListening { on: true }),
        )
        .expect("listen");
        app.update();
        assert_eq!(asked_to_play(&app).as_deref(), Some("/data/media/a.wav"));
        let status = *app.world().resource::<AudioStatus>();
        assert_eq!(status.track_id, Some(TrackId(1)));
        assert!(status.playing);
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

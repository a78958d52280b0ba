//! `PlaybackPlugin`: on the playback owner's device (and on any device listening along), the
//! current track's verified local file plays on the shared playback clock: play, pause, seek
//! and track changes, and sample by sample in between (`sync`: frames are dropped or
//! repeated, at most 1 in 100, to stay on the clock; a large error is a seek). The sound lives
//! on a thread of its own (rodio's stream is not `Send`), started at the first track to play;
//! without an audio device (a server, CI) it warns once and a silent output takes the frames
//! at the pace of the wall clock, since the clock, not the sound, is the truth.

pub mod output;
pub mod sync;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use bevy::prelude::*;
use crossbeam_channel::Sender;
use whatnext_core::prelude::*;

use output::{DecodedFile, Feed, LastOffset, NowPlaying};
use sync::{Aligner, Target};

/// Set to a file path, the silent output records when each 10 ms block would leave the
/// device and which track frame it starts with (`<local µs> <frame> <rate>` a line), and is
/// used even where there is an audio device: the instrumented sink the sync benchmark reads.
pub const RECORD_ENV: &str = "WHATNEXT_AUDIO_RECORD";

/// Plays the current track's local file on the playback owner's device (or a listener's).
/// Adds the private `Output` resource (the sound thread's handle) and one `Update` system
/// after `SessionSet::Apply` that sends the sound thread the clock whenever it changes.
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
    /// Play `path` (loading it if it is not the file already loaded) on the clock `target`.
    Follow {
        path: String,
        target: Target,
    },
    Stop,
}

/// The sound thread (once started) and what it was last told.
#[derive(Resource, Default)]
struct Output {
    commands: Option<Sender<Command>>,
    /// What the sound thread found: 0 not started, [`DEVICE`] or [`SILENT`].
    device: Arc<AtomicU8>,
    /// The sound's last error against the clock, in µs.
    offset: LastOffset,
    /// The last `Follow`: the file and the clock.
    playing: Option<(String, Target)>,
}

impl Output {
    fn send(&mut self, command: Command) {
        let (device, offset) = (self.device.clone(), self.offset.clone());
        let sender = self
            .commands
            .get_or_insert_with(|| start_sound_thread(device, offset));
        let _ = sender.send(command);
    }
}

/// The sound thread opened an audio device.
const DEVICE: u8 = 1;
/// The sound thread found no audio device (or records).
const SILENT: u8 = 2;

fn start_sound_thread(device: Arc<AtomicU8>, offset: LastOffset) -> Sender<Command> {
    let (tx, rx) = crossbeam_channel::unbounded::<Command>();
    let spawned = std::thread::Builder::new()
        .name("sound".into())
        .spawn(move || {
            let now: NowPlaying = Arc::new(Mutex::new(None));
            let record = std::env::var_os(RECORD_ENV).map(PathBuf::from);
            let stream = match &record {
                Some(_) => None,
                None => match rodio::OutputStream::try_default() {
                    Ok(pair) => Some(pair),
                    Err(error) => {
                        tracing::warn!("no audio output ({error}); playback goes on silently");
                        None
                    }
                },
            };
            if stream.is_some() {
                device.store(DEVICE, Ordering::Relaxed);
            } else {
                device.store(SILENT, Ordering::Relaxed);
                let (now, offset, record) = (now.clone(), offset.clone(), record.clone());
                let _ = std::thread::Builder::new()
                    .name("silent-output".into())
                    .spawn(move || output::silent_output(now, offset, record.as_deref()));
            }
            let mut sink: Option<rodio::Sink> = None;
            let mut loaded: Option<String> = None;
            let mut unreadable: Option<String> = None;
            while let Ok(command) = rx.recv() {
                match command {
                    Command::Follow { path, target } => {
                        if loaded.as_deref() == Some(path.as_str()) {
                            if let Ok(mut now) = now.lock()
                                && let Some(aligner) = now.as_mut()
                            {
                                aligner.set_target(target);
                            }
                            continue;
                        }
                        sink = None;
                        loaded = None;
                        let opened = DecodedFile::open(std::path::Path::new(&path));
                        let file = match opened {
                            Ok(file) => file,
                            Err(error) => {
                                // Once per file: the clock goes on without sound.
                                if unreadable.as_deref() != Some(path.as_str()) {
                                    tracing::warn!(%path, %error, "cannot play this track's file");
                                    unreadable = Some(path);
                                }
                                continue;
                            }
                        };
                        let aligner = Aligner::new(file, target);
                        let (rate, channels) = aligner.format();
                        if let Ok(mut now) = now.lock() {
                            *now = Some(aligner);
                        }
                        if let Some((_, handle)) = &stream {
                            match rodio::Sink::try_new(handle) {
                                Ok(new) => {
                                    new.append(Feed::new(
                                        now.clone(),
                                        offset.clone(),
                                        rate,
                                        channels,
                                    ));
                                    sink = Some(new);
                                }
                                Err(error) => {
                                    tracing::warn!(%error, "the audio output refused the track");
                                }
                            }
                        }
                        loaded = Some(path);
                    }
                    Command::Stop => {
                        sink = None;
                        loaded = None;
                        if let Ok(mut now) = now.lock() {
                            *now = None;
                        }
                    }
                }
            }
            drop(sink);
        });
    if let Err(error) = spawned {
        tracing::warn!(%error, "cannot start the sound thread; playback goes on silently");
    }
    tx
}

/// Why a track's file cannot be played. Logged once per file; the clock goes on regardless.
#[derive(Debug, thiserror::Error)]
pub(crate) enum OpenError {
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
}

/// What this device should be doing, from the session: only the owner (or a device listening
/// along) plays, and only a current track whose verified file is here ([`LocalFiles`]: never
/// a path a peer named). The sound thread is told the clock when it changes; it keeps in step
/// by itself in between.
fn follow_the_clock(
    reader: SessionReader,
    sessions: Query<(&PlaybackOwner, &PlaybackClock)>,
    index: Res<QueueIndex>,
    tracks: Query<&Track>,
    files: Res<LocalFiles>,
    listening: Res<Listening>,
    wall: Res<WallClock>,
    mut output: ResMut<Output>,
    mut status: ResMut<AudioStatus>,
) {
    let me = &reader.local_peer().peer;
    let sounding = sessions
        .iter()
        .next()
        .filter(|(owner, _)| listening.0 || owner.0 == *me)
        .and_then(|(_, clock)| {
            let id = clock.track?;
            let track = tracks.get(index.entity(id)?).ok()?;
            let path = files
                .file_for(track.media.as_ref())?
                .to_string_lossy()
                .into_owned();
            let target = Target {
                anchor_position_ms: clock.anchor_position_ms,
                anchor_at_ms: clock.anchor_at_ms,
                offset_ms: wall.offset_ms,
                playing: clock.state == PlayState::Playing,
            };
            Some((id, path, clock.position_at(wall.now_ms), target))
        });
    let now = AudioStatus {
        track_id: sounding.as_ref().map(|s| s.0),
        position_ms: sounding.as_ref().map_or(0, |s| s.2),
        output: match output.device.load(Ordering::Relaxed) {
            DEVICE => AudioOutput::Device,
            _ => AudioOutput::Silent,
        },
        playing: sounding.as_ref().is_some_and(|s| s.3.playing),
        offset_us: sounding
            .as_ref()
            .filter(|s| s.3.playing && output.playing.is_some())
            .map(|_| output.offset.load(Ordering::Relaxed)),
    };
    if *status != now {
        *status = now;
    }
    match sounding {
        Some((_, path, _, target)) => {
            let told = output
                .playing
                .as_ref()
                .is_some_and(|(p, t)| *p == path && *t == target);
            if !told {
                output.send(Command::Follow {
                    path: path.clone(),
                    target,
                });
                output.playing = Some((path, target));
            }
        }
        None => {
            if output.playing.take().is_some() {
                output.send(Command::Stop);
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
        output.playing.as_ref().map(|(path, _)| path.clone())
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
}

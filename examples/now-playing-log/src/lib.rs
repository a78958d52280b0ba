//! An example extension: a "now playing" log. Every time a track starts, on any peer of the
//! session, one line `<unix ms>\t<title>\t<artist>\t<added by>` is appended to a file.
//!
//! It uses only `whatnext::prelude`: the `SessionEvent::TrackStarted` message and the
//! `SessionReader` read model.

use std::io::Write;
use std::path::PathBuf;

use whatnext::prelude::*;

/// Appends a "now playing" line to `path` whenever a track starts.
///
/// Adds a `LogFile` resource and one system in `Update`, after `SessionSet::Events`, that
/// reads `SessionEvent::TrackStarted` messages.
pub struct NowPlayingLog {
    /// The log file; created on the first line, then appended to.
    pub path: PathBuf,
}

#[derive(Resource)]
struct LogFile(PathBuf);

impl Plugin for NowPlayingLog {
    fn build(&self, app: &mut App) {
        app.insert_resource(LogFile(self.path.clone()))
            .add_systems(Update, write_now_playing.after(SessionSet::Events));
    }
}

fn write_now_playing(
    file: Res<LogFile>,
    reader: SessionReader,
    wall: Res<WallClock>,
    mut events: MessageReader<SessionEvent>,
) {
    for event in events.read() {
        let SessionEvent::TrackStarted { track_id } = event else {
            continue;
        };
        let Some(track) = reader.track(*track_id) else {
            continue;
        };
        let added_by = reader
            .snapshot()
            .and_then(|s| {
                s.participants
                    .into_iter()
                    .find(|p| p.peer_id == track.added_by)
                    .map(|p| p.display_name)
            })
            .unwrap_or_else(|| track.added_by.to_string());
        let line = format!(
            "{}\t{}\t{}\t{added_by}\n",
            wall.now_ms, track.title, track.artist
        );
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&file.0)
            .and_then(|mut f| f.write_all(line.as_bytes()));
        if let Err(error) = written {
            warn!(
                "the now-playing log {} could not be written: {error}",
                file.0.display()
            );
        }
    }
}

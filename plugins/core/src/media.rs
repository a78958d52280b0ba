//! Tracks named by content: a queued track carries [`Media`] (the file's BLAKE3 hash, size and
//! format), never a path. Which files this device holds, and where each track's file stands
//! here (here, fetching, missing, unavailable), are local resources the media plugin keeps and
//! front ends read. See `docs/decisions/shared-music.md`.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;

use bevy::prelude::*;
use serde::{Deserialize, Serialize};

use crate::ids::PeerId;

/// A file's BLAKE3 hash: the name every peer uses for the same bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ContentHash(pub [u8; 32]);

impl ContentHash {
    /// Lowercase hex, 64 characters.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Parses 64 hex characters.
    pub fn from_hex(text: &str) -> Option<Self> {
        if text.len() != 64 || !text.is_ascii() {
            return None;
        }
        let mut bytes = [0u8; 32];
        for (i, byte) in bytes.iter_mut().enumerate() {
            *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(Self(bytes))
    }
}

impl ContentHash {
    /// The BLAKE3 hash of bytes in memory.
    pub fn of_bytes(bytes: &[u8]) -> Self {
        Self(*blake3::hash(bytes).as_bytes())
    }

    /// Hashes a file as it is on disk: its BLAKE3 hash and length.
    pub fn of_file(path: &std::path::Path) -> std::io::Result<(Self, u64)> {
        use std::io::Read;
        let mut file = std::fs::File::open(path)?;
        let mut hasher = blake3::Hasher::new();
        let mut buffer = vec![0u8; 256 * 1024];
        let mut size = 0u64;
        loop {
            let read = match file.read(&mut buffer) {
                Ok(0) => break,
                Ok(read) => read,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            hasher.update(&buffer[..read]);
            size += read as u64;
        }
        Ok((Self(*hasher.finalize().as_bytes()), size))
    }
}

impl fmt::Display for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The first 12 characters are enough to tell files apart in logs.
        write!(f, "ContentHash({})", &self.to_hex()[..12])
    }
}

/// The audio formats whatnext decodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AudioFormat {
    /// MPEG layer III.
    Mp3,
    /// FLAC.
    Flac,
    /// RIFF WAVE.
    Wav,
    /// Ogg Vorbis.
    Ogg,
}

impl AudioFormat {
    /// The format a file name's extension names, if it is one of ours.
    pub fn from_extension(extension: &str) -> Option<Self> {
        match extension.to_ascii_lowercase().as_str() {
            "mp3" => Some(Self::Mp3),
            "flac" => Some(Self::Flac),
            "wav" | "wave" => Some(Self::Wav),
            "ogg" | "oga" => Some(Self::Ogg),
            _ => None,
        }
    }

    /// The usual extension, for a verified copy's file name (decoders look at it).
    pub fn extension(self) -> &'static str {
        match self {
            Self::Mp3 => "mp3",
            Self::Flac => "flac",
            Self::Wav => "wav",
            Self::Ogg => "ogg",
        }
    }
}

/// What a queued track's audio is, by content. Replicated with the track.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Media {
    /// The whole file's BLAKE3 hash.
    pub hash: ContentHash,
    /// The file's length in bytes.
    pub size: u64,
    /// Its audio format.
    pub format: AudioFormat,
}

/// The verified files this device holds, by hash: the user's own files in place (added from
/// the library or by path) and copies fetched from peers. Local: never replicated. The only
/// way from a track to a file on disk, so no peer can name a path here.
#[derive(Resource, Clone, Debug, Default, PartialEq, Eq)]
pub struct LocalFiles {
    /// The user's own files, used in place. Persisted by storage.
    pub own: HashMap<ContentHash, PathBuf>,
    /// Verified copies in the content store (found there at start, or fetched since).
    pub copies: HashMap<ContentHash, PathBuf>,
}

impl LocalFiles {
    /// The verified file with this content, if this device has one.
    pub fn path_of(&self, hash: &ContentHash) -> Option<&PathBuf> {
        self.own.get(hash).or_else(|| self.copies.get(hash))
    }

    /// The file of a track's media, if here.
    pub fn file_for(&self, media: Option<&Media>) -> Option<&PathBuf> {
        media.and_then(|m| self.path_of(&m.hash))
    }
}

/// Where a track's file stands on this device.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum MediaState {
    /// A verified copy is here.
    Here,
    /// Coming from a peer: `progress` is 0.0 to 1.0.
    Fetching {
        /// How much has arrived and been verified.
        progress: f32,
        /// Who it is coming from.
        from: PeerId,
    },
    /// Not here, and not being fetched (this device does not need it yet).
    Missing,
    /// Not here, and nobody online holds it: `holders` are those known to have it.
    Unavailable {
        /// Peers known to hold the file, all offline (or refusing).
        holders: Vec<PeerId>,
    },
}

impl MediaState {
    /// The state's name in the control protocol.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Here => "here",
            Self::Fetching { .. } => "fetching",
            Self::Missing => "missing",
            Self::Unavailable { .. } => "unavailable",
        }
    }

    /// How much of the file is here, 0.0 to 1.0.
    pub fn progress(&self) -> f32 {
        match self {
            Self::Here => 1.0,
            Self::Fetching { progress, .. } => *progress,
            Self::Missing | Self::Unavailable { .. } => 0.0,
        }
    }
}

/// Each hash's state on this device, written by the media plugin; a hash not listed is
/// [`MediaState::Here`] when [`LocalFiles`] has it and [`MediaState::Missing`] otherwise.
#[derive(Resource, Clone, Debug, Default)]
pub struct MediaStates(pub HashMap<ContentHash, MediaState>);

impl MediaStates {
    /// A track's media state here.
    pub fn of(&self, media: &Media, files: &LocalFiles) -> MediaState {
        if files.path_of(&media.hash).is_some() {
            return MediaState::Here;
        }
        self.0
            .get(&media.hash)
            .cloned()
            .unwrap_or(MediaState::Missing)
    }
}

/// Whether this device plays along with the shared clock though it does not own playback
/// ("Listen along"). Local: nobody hears what they did not switch on.
#[derive(Resource, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Listening(pub bool);

/// Where sound goes on this device.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AudioOutput {
    /// An audio device plays it.
    Device,
    /// No audio device (a server, CI) or nothing started yet: the clock goes on in silence.
    #[default]
    Silent,
}

/// What this device's sound is doing, written by the playback plugin.
#[derive(Resource, Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct AudioStatus {
    /// The track the sound is of, if any.
    #[serde(serialize_with = "crate::view::optional_as_text")]
    pub track_id: Option<crate::ids::TrackId>,
    /// Where in it the sound is now.
    pub position_ms: u64,
    /// Device or silent.
    pub output: AudioOutput,
    /// Sound is playing (not paused or stopped).
    pub playing: bool,
    /// While playing: how far the last block was from this device's view of the shared clock
    /// before it was corrected, in µs (positive: ahead). It does not include how far this
    /// device's clock is from the host's, nor the sound card's own buffer.
    pub offset_us: Option<i64>,
}

/// Present when a plugin reads audio files for `LocalAction::AddFile` (the media plugin):
/// the session's apply step leaves those intents to it.
#[derive(Resource, Clone, Copy, Debug, Default)]
pub struct FileReader;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_goes_to_hex_and_back() {
        let hash = ContentHash(*blake3_like());
        assert_eq!(ContentHash::from_hex(&hash.to_hex()), Some(hash));
        assert_eq!(ContentHash::from_hex("abc"), None);
        assert_eq!(ContentHash::from_hex(&"zz".repeat(32)), None);
        assert_eq!(ContentHash::from_hex(&"é".repeat(32)), None);
    }

    fn blake3_like() -> &'static [u8; 32] {
        &[7u8; 32]
    }

    #[test]
    fn an_own_file_is_here_and_an_unknown_one_is_missing() {
        let media = Media {
            hash: ContentHash([1; 32]),
            size: 10,
            format: AudioFormat::Wav,
        };
        let mut files = LocalFiles::default();
        let states = MediaStates::default();
        assert_eq!(states.of(&media, &files), MediaState::Missing);
        files.own.insert(media.hash, PathBuf::from("/music/a.wav"));
        assert_eq!(states.of(&media, &files), MediaState::Here);
    }
}

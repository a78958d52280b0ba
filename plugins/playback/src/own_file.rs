//! Which files this device opens: a track's `path` is replicated from the device that added
//! it, so a guest (or a host) could name any path here (a FIFO, a device, a file of ours).
//! Until music is shared between devices, a track's file is opened only when it is this
//! device's own: the track was added by this device, or the path is in its library.

use whatnext_core::prelude::*;

/// The track's file, if this device may open it: its own addition, or a file of its library.
pub fn own_file<'a>(track: &'a Track, me: &PeerId, library: &Library) -> Option<&'a str> {
    let path = track.path.as_deref()?;
    let own = track.added_by == *me || library.0.iter().any(|t| t.path.as_deref() == Some(path));
    own.then_some(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn track(added_by: &str, path: &str) -> Track {
        Track {
            id: TrackId(1),
            title: "Song".into(),
            artist: String::new(),
            duration_ms: 1_000,
            path: Some(path.into()),
            added_by: PeerId::new(added_by),
        }
    }

    fn library_with(path: &str) -> Library {
        Library(vec![LibraryTrack {
            id: TrackId(9),
            title: "Mine".into(),
            artist: String::new(),
            duration_ms: 1_000,
            path: Some(path.into()),
        }])
    }

    #[test]
    fn a_track_this_device_added_opens_its_file() {
        let me = PeerId::new("12D3KooWMe");
        let mine = track("12D3KooWMe", "/music/a.flac");
        assert_eq!(
            own_file(&mine, &me, &Library::default()),
            Some("/music/a.flac")
        );
    }

    #[test]
    fn a_path_a_peer_named_is_never_opened_unless_it_is_in_the_library() {
        let me = PeerId::new("12D3KooWMe");
        let theirs = track("12D3KooWGuest", "/tmp/fifo");
        assert_eq!(own_file(&theirs, &me, &Library::default()), None);
        assert_eq!(own_file(&theirs, &me, &library_with("/music/a.flac")), None);
        let same_song = track("12D3KooWGuest", "/music/a.flac");
        assert_eq!(
            own_file(&same_song, &me, &library_with("/music/a.flac")),
            Some("/music/a.flac")
        );
    }
}

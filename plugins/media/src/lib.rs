//! `MediaPlugin`: shared music. A track added from a file is named by its content (BLAKE3);
//! the path stays on the device that has the file. The devices that may play the party's
//! music (the playback owner, the host, the co-hosts) fetch the current track and the next
//! two from whoever holds them, verifying every leaf against the hash as it arrives, into a
//! content store with a size cap. See `docs/decisions/shared-music.md`.
//!
//! - [`adding`]: `LocalAction::AddFile` → a file read, checked and named → `AddTrack`;
//! - [`serving`]: serving members' asks for files of the session, on threads;
//! - [`fetching`]: which files to fetch, and from whom;
//! - [`transfer`]: one transfer from one source, on a thread;
//! - [`store`] and [`tree`]: the store on disk and BLAKE3 verified streaming (no Bevy).

pub mod adding;
pub mod fetching;
mod serving;
pub mod store;
mod transfer;
pub mod tree;
pub mod wire;

use std::path::PathBuf;

use bevy::prelude::*;
use whatnext_core::prelude::*;
use whatnext_network::{NetCommand, NetSet, StreamControl};

pub use fetching::ContentStore;

/// Files larger than this are not added (a setting: `MediaSettings::max_file_bytes`).
pub const DEFAULT_MAX_FILE_BYTES: u64 = 1 << 30;
/// The content store's default cap.
pub const DEFAULT_STORE_CAP_BYTES: u64 = 2 << 30;

/// The media settings.
#[derive(Resource, Clone, Debug)]
pub struct MediaSettings {
    /// Files over this many bytes cannot be added (`too_large`).
    pub max_file_bytes: u64,
    /// The content store keeps at most about this many bytes of other peers' files.
    pub store_cap_bytes: u64,
}

impl Default for MediaSettings {
    fn default() -> Self {
        Self {
            max_file_bytes: DEFAULT_MAX_FILE_BYTES,
            store_cap_bytes: DEFAULT_STORE_CAP_BYTES,
        }
    }
}

/// Shared music. `store_dir` is where fetched copies live (the data dir's `media` folder);
/// without one this device adds and serves its own files but fetches nothing.
#[derive(Default)]
pub struct MediaPlugin {
    /// The content store's folder.
    pub store_dir: Option<PathBuf>,
    /// Caps.
    pub settings: MediaSettings,
}

impl Plugin for MediaPlugin {
    fn build(&self, app: &mut App) {
        // Registered by the network plugin too; without a network it stays empty.
        app.add_message::<NetCommand>()
            .insert_resource(self.settings.clone())
            .insert_resource(FileReader)
            .init_resource::<LocalFiles>()
            .init_resource::<MediaStates>()
            .init_resource::<StreamControl>()
            .init_resource::<adding::Reads>()
            .init_resource::<serving::Serving>()
            .init_resource::<fetching::Fetches>();
        if let Some(dir) = &self.store_dir {
            match store::Store::open(dir, self.settings.store_cap_bytes) {
                Ok((store, copies)) => {
                    tracing::info!(dir = %dir.display(), files = copies.len(), "content store open");
                    app.world_mut().resource_mut::<LocalFiles>().copies = copies;
                    app.insert_resource(ContentStore(store));
                }
                Err(error) => {
                    tracing::warn!(dir = %dir.display(), %error, "no content store: this device fetches no music");
                }
            }
        }
        app.add_systems(PreUpdate, adding::finish_reads.after(NetSet::Receive))
            .add_systems(
                Update,
                (
                    adding::start_reads,
                    // Offline (`--offline`, the demo) there is nobody to fetch from or serve.
                    (serving::share, fetching::fetch)
                        .after(SessionSet::Apply)
                        .run_if(resource_exists::<NetworkPresent>),
                ),
            );
    }
}

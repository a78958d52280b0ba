//! whatnext's session model: ids, components, intents, role rules, queue order and the
//! playback clock, plus `SessionPlugin`, which applies intents. No I/O lives here.

pub mod clock;
pub mod components;
pub mod error;
pub mod ids;
pub mod intent;
pub mod invite;
pub mod limits;
pub mod media;
pub mod order;
pub mod reaction;
pub mod relay;
pub mod rules;
pub mod session;
pub mod time;
pub mod view;
pub mod wake;

/// Everything a front end or an extension needs.
pub mod prelude {
    pub use crate::clock::{PlayState, PlaybackClock, WallClock};
    pub use crate::components::*;
    pub use crate::ids::{IntentId, NetId, PeerId, SessionId, TrackId};
    pub use crate::intent::*;
    pub use crate::media::{
        AudioFormat, AudioOutput, AudioStatus, ContentHash, FileReader, Listening, LocalFiles,
        Media, MediaState, MediaStates,
    };
    pub use crate::order::QueueKey;
    pub use crate::reaction::{Emoji, Reaction, Reactions};
    pub use crate::rules::{Facts, Role, Rule, SessionRoles, authorize, facts_for};
    pub use crate::session::{
        AppliedIntents, IntentCounter, IntentSender, PersistSet, Persistence, Restored,
        SessionEvent, SessionPlugin, SessionSet,
    };
    pub use crate::view::{SessionReader, SessionSnapshot};
    pub use crate::wake::AppWaker;
}

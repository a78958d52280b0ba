//! `CompanionPlugin`: the phone page. While this device hosts a session it serves a small
//! web page on the local network, at `http://<LAN address>:<port>/c/<token>/`, with a fresh
//! 128-bit token (a new one when the invite is rotated or the session ends). Phones see now
//! playing, up next and who is here, live over Server-Sent Events; they set a name, search
//! the host's library, add tracks and send reactions. A phone is a guest: it gets a pseudo
//! peer id and a `Participant`, and the host applies its intents with that author, through
//! the same role rules as any guest. See docs/decisions/companion-page.md.
//!
//! `server` is the HTTP side (axum on its own tokio thread), `bridge` the Bevy side,
//! `state` the page's JSON, `phones` the secrets, `rate` the per-address limits, `lan`
//! where it listens.

mod bridge;
pub mod lan;
pub mod phones;
pub mod rate;
pub mod server;
pub mod state;

use std::net::IpAddr;

use bevy::prelude::*;
use serde_json::Value;
use whatnext_core::prelude::*;

/// Serves the phone page while this device hosts a session. Adds [`CompanionConfig`] and
/// fills in `CompanionLink`; in `Update`, before `SessionSet::Apply`, phones' requests
/// become intents (authored by each phone's pseudo peer id) and after it their outcomes are
/// answered; in `PostUpdate`, after `SessionSet::Events`, the server starts, stops or
/// changes its token with the session, and open pages get the session's new state.
pub struct CompanionPlugin {
    config: CompanionConfig,
}

impl Default for CompanionPlugin {
    fn default() -> Self {
        Self::new(CompanionConfig::default())
    }
}

impl CompanionPlugin {
    /// A page server with these listen settings.
    pub fn new(config: CompanionConfig) -> Self {
        Self { config }
    }
}

/// Where the phone page listens.
#[derive(Resource, Clone, Debug, PartialEq, Eq)]
pub struct CompanionConfig {
    /// The addresses to listen on; `None`: this machine's private IPv4 addresses (the local
    /// network), which is the only safe default. Tests pass `127.0.0.1`.
    pub listen: Option<Vec<IpAddr>>,
    /// The port, [`DEFAULT_PORT`] unless told; a free one when it is taken (or 0). A steady
    /// port keeps the page's origin, so phones remember their name from party to party.
    pub port: u16,
    /// Serve no page at all.
    pub disabled: bool,
}

/// The port the page usually listens on.
pub const DEFAULT_PORT: u16 = 47800;

impl Default for CompanionConfig {
    fn default() -> Self {
        Self {
            listen: None,
            port: DEFAULT_PORT,
            disabled: false,
        }
    }
}

/// What a phone asks the app.
#[derive(Debug)]
pub(crate) enum PhoneAsk {
    /// Join (or rename) as a participant.
    Hello { peer: PeerId, name: String },
    /// Search the host's library.
    Search { query: String },
    /// Add the library track `track_id` to the queue.
    Add { peer: PeerId, track_id: TrackId },
    /// Send a reaction about the track playing.
    React { peer: PeerId, emoji: Emoji },
}

/// The app's answer: JSON, or an HTTP status with a message.
pub(crate) type Answer = Result<Value, (u16, String)>;

/// A phone's request and where its answer goes.
#[derive(Debug)]
pub(crate) struct PhoneRequest {
    pub ask: PhoneAsk,
    pub reply: tokio::sync::oneshot::Sender<Answer>,
}

impl Plugin for CompanionPlugin {
    fn build(&self, app: &mut App) {
        let (tx, rx) = crossbeam_channel::unbounded();
        app.insert_resource(self.config.clone())
            .init_resource::<CompanionLink>()
            .insert_resource(bridge::Requests { tx, rx })
            .init_resource::<bridge::Running>()
            .add_systems(Update, bridge::take_requests.before(SessionSet::Apply))
            .add_systems(Update, bridge::answer_outcomes.after(SessionSet::Apply))
            .add_systems(
                PostUpdate,
                (bridge::follow_session, bridge::publish_state)
                    .chain()
                    .after(SessionSet::Events),
            );
    }
}

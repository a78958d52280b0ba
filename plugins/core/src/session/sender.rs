//! Sending intents as this device: [`IntentSender`] stamps each action with a fresh id from
//! [`IntentCounter`].

use bevy::ecs::system::SystemParam;
use bevy::prelude::*;

use crate::components::LocalPeer;
use crate::ids::IntentId;
use crate::intent::{Action, Intent};
use crate::time::now_ms;

/// The next counter for this device's intent ids. Storage persists it, and it starts no lower
/// than the clock in microseconds, so ids stay unique across restarts.
#[derive(Resource, Debug)]
pub struct IntentCounter(pub u64);

impl Default for IntentCounter {
    fn default() -> Self {
        // Read once when the resource is made, not by a system: only the starting point.
        Self(now_ms().saturating_mul(1_000))
    }
}

/// Builds intents authored by this device. Every front end sends its actions through this,
/// and matches the returned id against the [`IntentOutcome`](crate::intent::IntentOutcome)
/// that answers it.
///
/// ```rust
/// use bevy::prelude::*;
/// use whatnext_core::prelude::*;
///
/// /// A front end's system: the user pressed "Play".
/// fn press_play(mut intents: IntentSender, mut sent: Local<Option<IntentId>>) {
///     if sent.is_none() {
///         *sent = Some(intents.send(Action::Session(SessionAction::Play)));
///     }
/// }
///
/// let mut app = App::new();
/// app.add_plugins(SessionPlugin)
///     .insert_resource(LocalPeer {
///         peer: PeerId::new("me"),
///         display_name: "Me".into(),
///     })
///     .init_resource::<Relays>()
///     .add_systems(Update, press_play.before(SessionSet::Apply));
/// app.update();
///
/// // Not in a session yet, so the intent is answered with a refusal.
/// let outcomes = app.world().resource::<Messages<IntentOutcome>>();
/// let outcome = outcomes.iter_current_update_messages().next().expect("an answer");
/// assert_eq!(outcome.id.author, PeerId::new("me"));
/// assert_eq!(
///     outcome.result.as_ref().map_err(|e| e.code),
///     Err(ErrorCode::NotInSession)
/// );
/// ```
#[derive(SystemParam)]
pub struct IntentSender<'w> {
    local: Res<'w, LocalPeer>,
    counter: ResMut<'w, IntentCounter>,
    writer: MessageWriter<'w, Intent>,
}

impl IntentSender<'_> {
    /// Sends `action` and returns the id its outcome will carry.
    pub fn send(&mut self, action: Action) -> IntentId {
        self.counter.0 += 1;
        let id = IntentId {
            author: self.local.peer.clone(),
            counter: self.counter.0,
        };
        self.writer.write(Intent {
            id: id.clone(),
            action,
        });
        id
    }
}

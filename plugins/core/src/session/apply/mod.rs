//! Applying intents: the system that reads them, idempotence by intent id, and the checks
//! shared by local and session actions. `local` applies actions on this device, `shared`
//! those on the shared session.

mod local;
mod shared;

use std::collections::HashMap;

use bevy::ecs::system::SystemState;
use bevy::prelude::*;

use crate::components::*;
use crate::ids::IntentId;
use crate::intent::*;
use crate::media::FileReader;

pub use local::{despawn_session, spawn_session};

/// Kept at its old path; every cap lives in [`crate::limits`].
pub use crate::limits::MAX_TEXT_CHARS;

/// Successful intents already applied, by id, so that a re-delivered intent changes nothing
/// and gets the same answer. Storage persists them (`unsaved` is what it has not written yet),
/// so this holds across a host restart too.
#[derive(Resource, Default, Debug)]
pub struct AppliedIntents {
    /// Every applied intent's result.
    pub by_id: HashMap<IntentId, Applied>,
    /// Applied since storage last wrote them.
    pub unsaved: Vec<(IntentId, Applied)>,
    /// The stored ones are to go at storage's next write (see [`AppliedIntents::forget`]).
    pub forget_stored: bool,
}

impl AppliedIntents {
    /// Forgets every applied intent, here and on disk: when this device stops hosting, what
    /// it applied belongs to a term that ended, and the new host's state is the truth. An
    /// intent delivered to it again once it hosts again must be applied, not answered
    /// "done" from a history its state no longer holds.
    pub fn forget(&mut self) {
        self.by_id.clear();
        self.unsaved.clear();
        self.forget_stored = true;
    }
}

/// In `Update` ([`SessionSet::Apply`](super::SessionSet::Apply)): applies this frame's intents
/// and answers each with an [`IntentOutcome`], except those another plugin answers: joins
/// and a guest's session intents when a network is present, folder imports when a folder
/// importer is, files to queue when a file reader is.
pub(super) fn apply_intents(
    world: &mut World,
    reader: &mut SystemState<MessageReader<Intent>>,
) -> Result {
    let intents: Vec<Intent> = reader.get_mut(world)?.read().cloned().collect();
    let network = world.contains_resource::<NetworkPresent>();
    for intent in intents {
        // With a network, joining is its job: it answers once the host has. Likewise a
        // guest's session intents go to the host, which answers.
        let joining = matches!(
            intent.action,
            Action::Local(LocalAction::JoinSession { .. })
        );
        let guest_session_intent =
            matches!(intent.action, Action::Session(_)) && !is_authority(world);
        if network && (joining || guest_session_intent) {
            continue;
        }
        // Scanning a folder is I/O: the library plugin answers it.
        let importing = matches!(
            intent.action,
            Action::Local(LocalAction::ImportFolder { .. })
        );
        if importing && world.contains_resource::<FolderImporter>() {
            continue;
        }
        // Reading and hashing a file is I/O too: the media plugin answers it.
        let adding_file = matches!(intent.action, Action::Local(LocalAction::AddFile { .. }));
        if adding_file && world.contains_resource::<FileReader>() {
            continue;
        }
        let result = apply_intent(world, &intent);
        if let Err(error) = &result {
            tracing::debug!(intent = ?intent.action, %error, "intent changed nothing");
        }
        world.write_message(IntentOutcome {
            id: intent.id,
            result,
        });
    }
    Ok(())
}

/// Applies one intent to the world, or explains why it changed nothing.
pub fn apply_intent(world: &mut World, intent: &Intent) -> Result<Applied, IntentError> {
    if let Some(done) = world.resource::<AppliedIntents>().by_id.get(&intent.id) {
        return Ok(done.clone());
    }
    let applied = match &intent.action {
        Action::Local(action) => local::apply_local(world, action)?,
        Action::Session(action) => shared::apply_session(world, &intent.id.author, action)?,
    };
    let mut done = world.resource_mut::<AppliedIntents>();
    done.by_id.insert(intent.id.clone(), applied.clone());
    done.unsaved.push((intent.id.clone(), applied.clone()));
    Ok(applied)
}

/// This device hosts the current session (or there is none, so nothing to forward).
pub fn is_authority(world: &mut World) -> bool {
    let me = world.resource::<LocalPeer>().peer.clone();
    world
        .query::<&Host>()
        .iter(world)
        .next()
        .is_none_or(|host| host.0 == me)
}

/// The session entity, if in a session.
/// A host that handed its party over on leaving leaves it now, a frame later.
pub(super) fn leave_after_handover(world: &mut World) {
    if !std::mem::take(&mut world.resource_mut::<LeaveAfterHandover>().0) {
        return;
    }
    if session_entity(world).is_some() {
        world.resource_mut::<PendingLeaveReason>().0 = Some(LeaveReason::Left);
        despawn_session(world);
    }
}

fn session_entity(world: &mut World) -> Option<Entity> {
    world
        .query_filtered::<Entity, With<Session>>()
        .iter(world)
        .next()
}

/// A `BadRequest` refusal.
fn bad(message: impl Into<String>) -> IntentError {
    IntentError::new(ErrorCode::BadRequest, message)
}

/// A `NotFound` refusal.
fn not_found(message: impl Into<String>) -> IntentError {
    IntentError::new(ErrorCode::NotFound, message)
}

/// Trims `text` and checks it is a usable name.
fn clean_text(what: &str, text: &str) -> Result<String, IntentError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(bad(format!("{what} cannot be empty")));
    }
    crate::limits::check_text(what, text)?;
    Ok(text.to_owned())
}

//! `SessionPlugin`: applies intents to the session entities on the authority, keeps the
//! playback clock moving through the queue, and reports what changed as `SessionEvent`s.
//!
//! One job per module: `sender` builds this device's intents, `apply` applies them,
//! `advance` moves playback on at a track's end, `events` derives [`SessionEvent`]s. Wall
//! time comes from [`crate::time`].

mod advance;
mod apply;
mod events;
mod sender;

use bevy::prelude::*;

use crate::components::*;
use crate::intent::{Intent, IntentOutcome, IntentRefused};
use crate::media::{AudioStatus, Listening, LocalFiles, MediaStates};
use crate::time::{WallClock, tick_wall_clock};

/// Kept at its old path: other crates read the wall clock through `session::now_ms`.
pub use crate::time::now_ms;
pub use apply::{
    AppliedIntents, MAX_TEXT_CHARS, apply_intent, despawn_session, is_authority, spawn_session,
};
pub use events::SessionEvent;
pub use sender::{IntentCounter, IntentSender};

/// Adds the session model: its resources (`QueueIndex`, `WallClock`, `Library`,
/// `AppliedIntents`, `IntentCounter`, `SessionInvite`, `CompanionLink`, `Knocks`, `Outbox`, `RejoinInvite`, [`Persistence`])
/// and messages (`Intent`, `IntentOutcome`, `IntentRefused`, `TrackRemoved`, [`SessionEvent`]); the wall-clock
/// tick in `First`; intent application and moving past finished tracks in
/// [`SessionSet::Apply`] (`Update`); session events in [`SessionSet::Events`]
/// (`PostUpdate`); and forgetting the `Restored` mark in `Last`. Every app has it; network,
/// storage and front ends build on its sets.
pub struct SessionPlugin;

/// Ordering for other plugins: front ends write intents before `Apply`, and read events after.
#[derive(SystemSet, Debug, Clone, PartialEq, Eq, Hash)]
pub enum SessionSet {
    /// In `Update`: intents are applied, then playback moves on past finished tracks. Front
    /// ends and the network write [`Intent`]s before it and read [`IntentOutcome`]s after it.
    Apply,
    /// In `PostUpdate`: [`SessionEvent`]s are written from the frame's changes. Readers of
    /// events (front ends, extensions, the network) run after it.
    Events,
}

impl Plugin for SessionPlugin {
    fn build(&self, app: &mut App) {
        app.init_resource::<QueueIndex>()
            .init_resource::<WallClock>()
            .init_resource::<Library>()
            .init_resource::<LocalFiles>()
            .init_resource::<MediaStates>()
            .init_resource::<Listening>()
            .init_resource::<AudioStatus>()
            .init_resource::<AppliedIntents>()
            .init_resource::<IntentCounter>()
            .init_resource::<SessionInvite>()
            .init_resource::<CompanionLink>()
            .init_resource::<Knocks>()
            .init_resource::<Outbox>()
            .init_resource::<RejoinInvite>()
            .init_resource::<PendingLeaveReason>()
            .init_resource::<LeaveAfterHandover>()
            .add_message::<MemberRemoved>()
            .init_resource::<Persistence>()
            .add_message::<Intent>()
            .add_message::<IntentOutcome>()
            .add_message::<IntentRefused>()
            .add_message::<TrackRemoved>()
            .add_message::<SessionEvent>()
            .add_systems(First, tick_wall_clock)
            .add_systems(
                Update,
                (
                    apply::leave_after_handover,
                    apply::apply_intents,
                    advance::advance_finished_track,
                )
                    .chain()
                    .in_set(SessionSet::Apply),
            )
            .add_systems(
                PostUpdate,
                events::emit_session_events.in_set(SessionSet::Events),
            )
            .add_systems(Last, forget_restored);
    }
}

/// In `Last`: storage writes the frame's changes here. Anything that confirms a change to a
/// user runs after it, so a confirmed change is on disk.
#[derive(SystemSet, Debug, Clone, PartialEq, Eq, Hash)]
pub struct PersistSet;

/// What the last write to disk did. Storage sets it in [`PersistSet`]; whatever confirms a
/// change (control replies, network answers) reads it after, and confirms nothing from a
/// frame whose write failed. Without storage it stays "all well".
#[derive(Resource, Default, Debug, Clone, PartialEq, Eq)]
pub struct Persistence {
    /// This frame's write failed: its changes were undone, and nothing may confirm them.
    pub failed_this_frame: bool,
    /// Why writes fail, from the first failure until a write lands again (shown to the user).
    pub problem: Option<String>,
}

/// Loaded from storage at start: its arrival is not news, so no `added` events for it.
#[derive(Component, Copy, Clone, Debug, Default)]
pub struct Restored;

/// Restored entities are news only in their first frame; after it they change like any other.
fn forget_restored(mut commands: Commands, restored: Query<Entity, With<Restored>>) {
    for entity in &restored {
        commands.entity(entity).remove::<Restored>();
    }
}

//! `ReplicationPlugin`: one session, the same on every member's machine.
//!
//! On the authority (the host), change detection on entities marked `Replicated` becomes one
//! `Update` per tick, numbered, kept in a bounded history, and sent to admitted members only.
//! A joiner's welcome carries a snapshot taken after its own participant was added. Members
//! apply updates in order to mirrored entities found by `NetId`; a gap asks for the missing
//! updates (or a snapshot). Guests' session intents go to the host, and its answer comes back
//! as the intent's outcome.
//!
//! Registering a component is one line: `app.replicate::<MyComponent>()`.
//!
//! The session protocol rides on `whatnext-network`'s transport as opaque payloads; this
//! crate owns it. One module per job:
//! - `protocol`: the session's messages, encoded for the transport and decoded once a frame;
//! - `membership`: the host admits guests (hello, knock, welcome) and keeps its invite current;
//! - `joining`: this device joins someone's session, and says hello again after a drop;
//! - `notices`: a member told by its host it was removed, the party ended, or the host
//!   stepped down;
//! - `registry`: which components replicate, and their ids on the wire;
//! - `authority`: the host collects changes, sends updates, keeps the history, answers
//!   resyncs and members' intents;
//! - `mirror`: a member applies updates and snapshots and asks for a resync on a gap;
//! - `outbox`: a guest's intents on their way to the host (pending display, pacing, the
//!   persisted outbox);
//! - `own_changes`: the host's own changes kept in its outbox until a co-host has them;
//! - `clock_sync`: a member reads the host's clock;
//! - `presence`: per-device presence, and ownership returning to the host;
//! - `succession`: the session's access (key, bans) shared with co-hosts, so the host role
//!   can move to one of them (`begin_hosting` in `authority` starts the new host's run).

mod authority;
mod clock_sync;
mod joining;
mod membership;
mod mirror;
mod notices;
mod outbox;
mod own_changes;
mod presence;
pub mod protocol;
mod registry;
mod succession;

use bevy::prelude::*;
use whatnext_core::prelude::*;
use whatnext_network::{NetCommand, NetEvent, NetKeys, PeerLinks, RequestTokens};

pub use authority::{HISTORY, RESEND_EVERY_FRAMES};
pub use authority::{SNAPSHOT_BURST, SNAPSHOTS_PER_SECOND};
pub use joining::{JOIN_TIMEOUT, KNOCK_TIMEOUT};
pub use membership::{
    HELLO_BURST, HELLOS_PER_SECOND, KNOCK_STALE, MAX_WAITING_KNOCKS, Members, PendingWelcomes,
    invite_secret, member_secret, versions_differ,
};
pub use mirror::RESYNC_BACKOFF;
pub use outbox::{INTENT_BURST, INTENTS_PER_SECOND, MAX_INTENTS_IN_FLIGHT};
pub use registry::{AppReplicationExt, BadComponent, Registry, UnknownComponent};
pub use succession::{TAKEOVER_AFTER, TakeoverAfter};

/// Adds replication to an app: the host's side and the member's side both, since which one
/// runs depends on who hosts the current session.
///
/// It adds, by set (see [`ReplicationSet`] for where each runs):
/// - [`ReplicationSet::Intake`]: decoding the network's requests and answers into
///   [`protocol::PeerRequest`] and [`protocol::PeerAnswer`]; members' intents and resyncs
///   (host);
/// - [`ReplicationSet::Receive`]: the invite and guests' hellos
///   (host; only with the network's `NetKeys`); this device's joins; presence following the
///   links; applying what the host sent (member), counting update acknowledgements (host),
///   forwarding a guest's intents, presence,
///   ownership returning to the host, clock sync (member);
/// - [`ReplicationSet::Collect`]: one change collector per registered component, and the
///   entity ↔ `NetId` bookkeeping (host);
/// - [`ReplicationSet::Flush`]: despawns, then one numbered update to the members and the
///   welcomes' snapshots (host);
/// - [`ReplicationSet::Answer`]: the welcomes of guests admitted this frame, with a snapshot
///   that includes them, then the outcomes of members' intents, back to their authors (host).
///
/// It registers the core components, in this fixed order (their wire ids): `Session`,
/// `Host`, `CoHosts`, `PlaybackOwner`, `PlaybackClock`, `Participant`, `Track`,
/// `QueuePosition`, `Reactions`, `HostTerm`.
///
/// Systems read time from resources only (`Time<Real>` for pacing, `WallClock` for the
/// host's clock), so an app with a manual `TimeUpdateStrategy` drives them.
pub struct ReplicationPlugin;

/// Where replication runs in the frame. Other plugins order against these sets.
#[derive(SystemSet, Debug, Clone, PartialEq, Eq, Hash)]
pub enum ReplicationSet {
    /// In `Update`, before `SessionSet::Apply`: the network's events are decoded once
    /// (`protocol`), and the host takes members' intents and answers their resyncs
    /// (`authority`), so a member's intent is applied in the frame it arrives.
    Intake,
    /// In `Update`, after `SessionSet::Apply`: the host answers hellos (`membership`); this device's joins
    /// get their answers, and a checked welcome goes to the mirror (`joining`); a member
    /// applies welcomes' snapshots, updates and resync answers (`mirror`); the host counts
    /// acknowledged and lost updates (`authority`); a guest sends its intents or keeps them
    /// in the outbox (`outbox`);
    /// presence and ownership follow the links (`presence`); a member asks the host's
    /// time (`clock_sync`). Runs in that order.
    Receive,
    /// In `PostUpdate`: the host turns this frame's component changes on `Replicated`
    /// entities into changes for the next update (one system per registered component, added
    /// by `replicate`), and notes which entity carries which `NetId`. Extensions that change
    /// replicated components in `PostUpdate` run before this set.
    Collect,
    /// In `PostUpdate`, after `Collect`: the host adds despawns, numbers the frame's changes
    /// as one update, sends it to the members, resends the latest to members that lost
    /// one, and answers waiting welcomes with a snapshot.
    Flush,
    /// In `PostUpdate`, after `Flush`: the host welcomes the guests it admitted this frame
    /// (the snapshot now includes them), then answers members' intents with their outcome,
    /// so a member's change is on its way before its confirmation.
    Answer,
}

impl Plugin for ReplicationPlugin {
    fn build(&self, app: &mut App) {
        // Declared by the network plugin; initialised here too so replication runs on any
        // transport that speaks NetCommand / NetEvent (the simulated network in tests).
        app.init_resource::<Members>()
            .init_resource::<PeerLinks>()
            .init_resource::<RequestTokens>()
            .add_message::<NetCommand>()
            .add_message::<NetEvent>();
        app.init_resource::<membership::PendingWelcomes>()
            .init_resource::<membership::HelloLimits>()
            .init_resource::<joining::Joins>()
            .init_resource::<joining::Admitted>()
            .init_resource::<JoinProgress>()
            .add_message::<protocol::PeerRequest>()
            .add_message::<protocol::PeerAnswer>()
            .add_message::<joining::Welcomed>();
        app.init_resource::<registry::Registry>()
            .init_resource::<authority::Outgoing>()
            .init_resource::<authority::Authority>()
            .init_resource::<authority::ForeignIntents>()
            .init_resource::<mirror::Mirror>()
            .init_resource::<outbox::GuestIntents>()
            .init_resource::<clock_sync::ClockSync>()
            .init_resource::<succession::SharedAccess>()
            .init_resource::<succession::TakeoverAfter>()
            .init_resource::<succession::HostLoss>()
            .init_resource::<own_changes::OwnChanges>()
            .init_resource::<authority::FormerMembers>()
            // Pacing and clock sampling read it; `TimePlugin` (in `MinimalPlugins`) advances it.
            .init_resource::<Time<Real>>()
            .configure_sets(Update, ReplicationSet::Intake.before(SessionSet::Apply))
            .configure_sets(Update, ReplicationSet::Receive.after(SessionSet::Apply))
            .add_systems(
                Update,
                (
                    protocol::decode_net_events,
                    authority::answer_member_requests,
                )
                    .chain()
                    .in_set(ReplicationSet::Intake),
            )
            .configure_sets(
                PostUpdate,
                (
                    ReplicationSet::Collect,
                    ReplicationSet::Flush,
                    ReplicationSet::Answer,
                )
                    .chain(),
            )
            .add_systems(
                Update,
                (
                    succession::ensure_hosted_access,
                    membership::keep_invite_current
                        .run_if(resource_exists::<NetKeys>.and_then(resource_exists::<Relays>)),
                    membership::answer_hellos.run_if(resource_exists::<NetKeys>),
                    membership::expire_knocks,
                    membership::forget_removed_members,
                    joining::start_joins,
                    joining::finish_joins,
                    joining::rejoin_when_cut_off,
                    (
                        notices::leave_when_removed,
                        notices::follow_a_host_that_stepped_down,
                    ),
                    presence::follow_links,
                    mirror::receive,
                    (
                        authority::track_update_acks,
                        own_changes::keep_own_changes,
                        own_changes::forget_mirrored_own_changes,
                    )
                        .chain(),
                    outbox::forward_guest_intents,
                    succession::keep_access_copy,
                    succession::drop_access_when_demoted,
                    succession::watch_the_host,
                    succession::take_over,
                    presence::give_presence,
                    presence::return_ownership,
                    clock_sync::sync_clock_with_host,
                )
                    .chain()
                    .in_set(ReplicationSet::Receive),
            )
            .add_systems(
                PostUpdate,
                authority::begin_hosting
                    .run_if(authority::starts_hosting)
                    .before(ReplicationSet::Collect),
            )
            .add_systems(
                PostUpdate,
                authority::track_net_ids
                    .in_set(ReplicationSet::Collect)
                    .run_if(hosting_this_frame),
            )
            .add_systems(
                PostUpdate,
                (
                    authority::collect_despawns.run_if(hosting_this_frame),
                    authority::flush,
                )
                    .chain()
                    .in_set(ReplicationSet::Flush),
            )
            .add_systems(
                PostUpdate,
                (
                    membership::send_welcomes,
                    authority::answer_foreign_outcomes,
                    membership::revoke_members_when_the_session_ends,
                    succession::share_access_with_cohosts,
                    authority::tell_former_members,
                )
                    .chain()
                    .in_set(ReplicationSet::Answer),
            );
        app.replicate::<Session>()
            .replicate::<Host>()
            .replicate::<CoHosts>()
            .replicate::<PlaybackOwner>()
            .replicate::<PlaybackClock>()
            .replicate::<Participant>()
            .replicate::<Track>()
            .replicate::<QueuePosition>()
            .replicate::<Reactions>()
            .replicate::<HostTerm>();
    }
}

/// The current session's host, when it is another device (so this one is a member).
pub(crate) fn remote_host(local: &LocalPeer, hosts: &Query<&Host>) -> Option<PeerId> {
    hosts
        .iter()
        .next()
        .map(|h| h.0.clone())
        .filter(|h| *h != local.peer)
}

/// Run condition: this device hosts the current session, or hosted it until this frame (the
/// update that hands the role over is still collected and sent).
pub(crate) fn hosting_this_frame(
    local: Res<LocalPeer>,
    hosts: Query<&Host>,
    auth: Res<authority::Authority>,
) -> bool {
    auth.hosted || hosts.iter().next().is_some_and(|h| h.0 == local.peer)
}

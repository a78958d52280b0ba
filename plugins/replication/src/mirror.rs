//! The member's side: apply the host's welcome snapshot and updates, strictly in order, to
//! mirrored entities found by `NetId`; buffer updates behind a gap and ask for a resync.

use std::collections::{BTreeMap, HashSet};

use bevy::platform::collections::HashMap;

use bevy::ecs::system::SystemState;
use bevy::prelude::*;
use whatnext_core::prelude::*;
use whatnext_network::RequestTokens;

use crate::joining::Welcomed;
use crate::outbox::GuestIntents;
use crate::protocol::{
    self, Answer, Change, ComponentBytes, PeerAnswer, PeerRequest, SessionRequest, SessionResponse,
    Snapshot, Update,
};
use crate::registry::{Registry, UnknownComponent};

/// The member's side: what it has applied, and what waits for a gap to fill.
#[derive(Resource, Default)]
pub(crate) struct Mirror {
    epoch: u64,
    last_seq: u64,
    /// Updates after a gap, waiting for the missing ones.
    buffer: BTreeMap<u64, Update>,
    entities: HashMap<u64, Entity>,
    resyncing: bool,
    /// The token of the resync request in flight.
    resync: Option<u64>,
    /// The host refused a resync (too many snapshots): no new one before this time.
    quiet_until: Option<std::time::Duration>,
}

/// After the host refuses a resync, the member waits this long before asking again.
pub const RESYNC_BACKOFF: std::time::Duration = std::time::Duration::from_secs(1);

/// The messages the mirror reads: checked welcomes, the host's updates, resync answers.
type Inbox<'w, 's> = (
    MessageReader<'w, 's, Welcomed>,
    MessageReader<'w, 's, PeerRequest>,
    MessageReader<'w, 's, PeerAnswer>,
);

/// Applies what the authority sent: a welcome's snapshot, updates in order, resync answers.
pub(crate) fn receive(world: &mut World, state: &mut SystemState<Inbox>) -> Result {
    let (mut welcomes, mut requests, mut answers) = state.get_mut(world)?;
    let welcomes: Vec<Welcomed> = welcomes.read().cloned().collect();
    let requests: Vec<PeerRequest> = requests.read().cloned().collect();
    let answers: Vec<PeerAnswer> = answers.read().cloned().collect();
    for Welcomed(snapshot) in welcomes {
        // A host stepping down to a newer host: its members are pointed at that host; the
        // snapshot is not a change of its own to send them (they would see their session
        // despawned).
        let me = world.resource::<LocalPeer>().peer.clone();
        let hosting = world
            .query::<&Host>()
            .iter(world)
            .next()
            .is_some_and(|h| h.0 == me);
        if hosting {
            crate::authority::step_down(world, &snapshot);
        }
        apply_snapshot(world, snapshot);
    }
    for request in requests {
        let PeerRequest {
            peer,
            reply,
            request: SessionRequest::Update(update),
        } = request
        else {
            continue;
        };
        let from_host = world
            .query::<&Host>()
            .iter(world)
            .next()
            .is_some_and(|h| h.0 == peer);
        let response = if from_host {
            match accept_update(world, update) {
                Ok(()) => SessionResponse::Ack,
                Err(error) => SessionResponse::Refused {
                    reason: error.to_string(),
                },
            }
        } else {
            tracing::warn!(%peer, "an update from a peer that is not our host was ignored");
            SessionResponse::Refused {
                reason: "you are not this peer's host".into(),
            }
        };
        world.write_message(protocol::respond_command(reply, &response));
    }
    for PeerAnswer { token, answer, .. } in answers {
        if world.resource::<Mirror>().resync != Some(token) {
            continue;
        }
        let mut mirror = world.resource_mut::<Mirror>();
        mirror.resync = None;
        mirror.resyncing = false;
        match answer {
            // A resync answer can arrive after later updates did; never go back.
            Answer::Session(SessionResponse::Snapshot(snapshot))
                if snapshot.epoch != world.resource::<Mirror>().epoch
                    || snapshot.seq >= world.resource::<Mirror>().last_seq =>
            {
                apply_snapshot(world, snapshot);
                drain_buffer(world);
            }
            Answer::Session(SessionResponse::Updates(updates)) => {
                for update in updates {
                    // Logged in `accept_update`; the gap stays and is asked again.
                    let _ = accept_update(world, update);
                }
            }
            // Refused (the host limits snapshots): ask again later, not at once.
            Answer::Session(SessionResponse::Refused { reason }) => {
                tracing::info!(%reason, "the host refused a resync; asking again later");
                let now = world.resource::<Time<Real>>().elapsed();
                world.resource_mut::<Mirror>().quiet_until = Some(now + RESYNC_BACKOFF);
            }
            // Lost: the gap is still there, and is asked for again below.
            _ => {}
        }
    }
    // Whatever path brought us here (an update already applied, a resync answer that
    // stopped short), a gap nobody is filling must be asked for.
    ask_for_gap(world);
    Ok(())
}

/// Asks for a resync when updates wait behind a gap and no resync is in flight.
fn ask_for_gap(world: &mut World) {
    let now = world.resource::<Time<Real>>().elapsed();
    let (gap, resyncing, last, quiet) = {
        let mirror = world.resource::<Mirror>();
        let quiet = mirror.quiet_until.is_some_and(|until| now < until);
        (
            !mirror.buffer.is_empty(),
            mirror.resyncing,
            mirror.last_seq,
            quiet,
        )
    };
    if gap && !resyncing && !quiet {
        request_resync(world, last);
    }
}

/// Takes one update from the host: applies it, or buffers it behind a gap. An update naming
/// a component this build does not replicate is refused whole.
fn accept_update(world: &mut World, update: Update) -> Result<(), UnknownComponent> {
    let checked = {
        let registry = world.resource::<Registry>();
        update.changes.iter().try_for_each(|c| registry.check(c))
    };
    if let Err(error) = checked {
        tracing::error!(%error, seq = update.seq, "an update from the host was refused");
        return Err(error);
    }
    let (epoch, last, resyncing) = {
        let mirror = world.resource::<Mirror>();
        (mirror.epoch, mirror.last_seq, mirror.resyncing)
    };
    if update.epoch != epoch {
        // The host restarted: its numbers mean nothing next to ours. Start over from a snapshot.
        if !resyncing {
            request_resync(world, last);
        }
        return Ok(());
    }
    if update.seq <= last {
        return Ok(()); // already applied
    }
    world
        .resource_mut::<Mirror>()
        .buffer
        .insert(update.seq, update);
    drain_buffer(world);
    ask_for_gap(world);
    Ok(())
}

/// Applies buffered updates that follow on from the last one applied.
fn drain_buffer(world: &mut World) {
    // The host's numbers: at u64::MAX there is no next update (never an overflow).
    while let Some(next) = world.resource::<Mirror>().last_seq.checked_add(1) {
        let Some(update) = world.resource_mut::<Mirror>().buffer.remove(&next) else {
            break;
        };
        for change in update.changes {
            apply_change(world, change);
        }
        world.resource_mut::<Mirror>().last_seq = next;
    }
}

/// Asks the host for what came after `after`: the missing updates, or a snapshot.
fn request_resync(world: &mut World, after: u64) {
    let Some(host) = world
        .query::<&Host>()
        .iter(world)
        .next()
        .map(|h| h.0.clone())
    else {
        return;
    };
    let token = world.resource_mut::<RequestTokens>().fresh();
    let mut mirror = world.resource_mut::<Mirror>();
    mirror.resync = Some(token);
    mirror.resyncing = true;
    let epoch = mirror.epoch;
    tracing::info!(after, "missed updates; asking the host to resync");
    if let Some(command) =
        protocol::send_command(token, &host, &SessionRequest::Resync { epoch, after })
    {
        world.write_message(command);
    }
}

/// The mirrored entity for `net_id`, spawned if it is new (or was despawned locally).
fn entity_for(world: &mut World, net_id: u64) -> Entity {
    if let Some(entity) = world.resource::<Mirror>().entities.get(&net_id).copied()
        && world.get_entity(entity).is_ok()
    {
        return entity;
    }
    let entity = world.spawn((NetId(net_id), Replicated)).id();
    world
        .resource_mut::<Mirror>()
        .entities
        .insert(net_id, entity);
    entity
}

fn apply_change(world: &mut World, change: Change) {
    tracing::trace!(?change, "apply");
    match change {
        Change::Insert {
            net_id,
            component: ComponentBytes { id, bytes },
        } => {
            let Some(insert) = world.resource::<Registry>().insert_fn(id) else {
                tracing::error!(error = %UnknownComponent(id), "a replicated component was skipped");
                return;
            };
            let entity = entity_for(world, net_id);
            if let Err(error) = insert(world, entity, &bytes) {
                tracing::warn!(%error, "a replicated component could not be decoded; skipped");
            }
        }
        Change::Remove { net_id, component } => {
            let remove = world.resource::<Registry>().remove_fn(component);
            let entity = world.resource::<Mirror>().entities.get(&net_id).copied();
            if let (Some(remove), Some(entity)) = (remove, entity)
                && world.get_entity(entity).is_ok()
            {
                remove(world, entity);
            }
        }
        Change::Despawn { net_id } => {
            if let Some(entity) = world.resource_mut::<Mirror>().entities.remove(&net_id) {
                let _ = world.try_despawn(entity);
            }
        }
    }
}

/// Replaces every mirrored entity with the snapshot's, and continues numbering from it.
/// Replicated entities this run did not receive (restored from disk at start) are the same
/// host's entities from before: they go too, or a restarted member would list them twice.
fn apply_snapshot(world: &mut World, snapshot: Snapshot) {
    // The session's access is this device's own (a co-host's copy of the key, never
    // replicated): it outlives the session entity being rebuilt from the snapshot. Without
    // it a co-host that resynced could no longer take over.
    let access: Option<(SessionId, SessionAccess)> = world
        .query::<(&Session, &SessionAccess)>()
        .iter(world)
        .next()
        .map(|(s, a)| (s.id.clone(), a.clone()));
    let mut old: HashSet<Entity> = world
        .resource_mut::<Mirror>()
        .entities
        .drain()
        .map(|(_, e)| e)
        .collect();
    old.extend(
        world
            .query_filtered::<Entity, (With<NetId>, With<Replicated>)>()
            .iter(world),
    );
    for entity in old {
        let _ = world.try_despawn(entity);
    }
    for (net_id, components) in snapshot.entities {
        for component in components {
            apply_change(world, Change::Insert { net_id, component });
        }
    }
    if let Some((id, access)) = access {
        let session = world
            .query::<(Entity, &Session)>()
            .iter(world)
            .find(|(_, s)| s.id == id)
            .map(|(e, _)| e);
        if let Some(session) = session {
            world.entity_mut(session).insert(access);
        }
    }
    drop_settled_pending(world);
    let mut mirror = world.resource_mut::<Mirror>();
    if mirror.epoch != snapshot.epoch {
        mirror.buffer.clear();
    }
    mirror.epoch = snapshot.epoch;
    mirror.last_seq = snapshot.seq;
    mirror.buffer.retain(|seq, _| *seq > snapshot.seq);
}

/// After a snapshot, a pending addition whose intent is no longer waiting anywhere was
/// settled by the host: if the track still exists, the snapshot or a later update brings
/// the host's copy; if not, it was refused or removed, and must go.
fn drop_settled_pending(world: &mut World) {
    let added = |intent: &Intent| match &intent.action {
        Action::Session(SessionAction::AddTrack { track_id, .. }) => Some(*track_id),
        _ => None,
    };
    let mut waiting: HashSet<TrackId> = world
        .resource::<GuestIntents>()
        .waiting()
        .filter_map(added)
        .collect();
    if let Some(outbox) = world.get_resource::<Outbox>() {
        waiting.extend(outbox.0.iter().filter_map(added));
    }
    let settled: Vec<Entity> = world
        .query_filtered::<(Entity, &Track), With<Pending>>()
        .iter(world)
        .filter(|(_, track)| !waiting.contains(&track.id))
        .map(|(entity, _)| entity)
        .collect();
    for entity in settled {
        world.despawn(entity);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A host's snapshot can claim any sequence number; at the top of the range the next
    /// one does not exist, and draining stops instead of overflowing.
    #[test]
    fn a_snapshot_at_the_last_sequence_number_drains_nothing_and_does_not_overflow() {
        let mut world = World::new();
        world.insert_resource(Mirror {
            last_seq: u64::MAX,
            ..Default::default()
        });
        drain_buffer(&mut world);
        assert_eq!(world.resource::<Mirror>().last_seq, u64::MAX);
    }
}

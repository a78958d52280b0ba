//! The queue's index: tracks by id and in play order, kept by the `Track` and
//! `QueuePosition` component hooks.

use std::collections::{BTreeMap, HashMap};

use bevy::ecs::lifecycle::HookContext;
use bevy::ecs::world::DeferredWorld;
use bevy::prelude::*;

use super::*;

/// Finds tracks by id and in play order without scanning. Kept up to date by component
/// hooks, so it holds for every track entity however it was spawned (intent, storage, mirror).
#[derive(Resource, Default, Debug)]
pub struct QueueIndex {
    by_id: HashMap<TrackId, Entity>,
    order: BTreeMap<(QueueKey, TrackId), Entity>,
    keys: HashMap<Entity, (QueueKey, TrackId)>,
    /// Each track entity's adder and wire size, for the caps in `limits`.
    footprints: HashMap<Entity, (PeerId, usize)>,
    /// The sum of the footprints' sizes.
    bytes: usize,
    /// How many track entities each peer added.
    per_adder: HashMap<PeerId, usize>,
}

impl QueueIndex {
    /// The entity of the track `id`, if it is in the queue.
    pub fn entity(&self, id: TrackId) -> Option<Entity> {
        self.by_id.get(&id).copied()
    }

    /// How many tracks the queue holds.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// The queue holds no tracks.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// Track entities in play order.
    pub fn in_order(&self) -> impl DoubleEndedIterator<Item = (TrackId, Entity)> + '_ {
        self.order.iter().map(|((_, id), e)| (*id, *e))
    }

    /// Track entities in play order from track `id` on (itself first), or from the start
    /// when `id` is `None` or not queued. Without walking the tracks before it.
    pub fn in_order_from(
        &self,
        id: Option<TrackId>,
    ) -> impl Iterator<Item = (TrackId, Entity)> + '_ {
        use std::ops::Bound;
        let start = id
            .and_then(|id| self.by_id.get(&id))
            .and_then(|e| self.keys.get(e))
            .cloned();
        let lower = start.map_or(Bound::Unbounded, Bound::Included);
        self.order
            .range((lower, Bound::Unbounded))
            .map(|((_, id), e)| (*id, *e))
    }

    /// The key of a track's position.
    pub fn key_of(&self, id: TrackId) -> Option<&QueueKey> {
        let entity = self.by_id.get(&id)?;
        self.keys.get(entity).map(|(k, _)| k)
    }

    /// The track right after `id` in play order.
    pub fn next_after(&self, id: TrackId) -> Option<TrackId> {
        let key = self.key_of(id)?.clone();
        self.order
            .range((
                std::ops::Bound::Excluded((key, id)),
                std::ops::Bound::Unbounded,
            ))
            .next()
            .map(|((_, next), _)| *next)
    }

    /// The first track in play order.
    pub fn first(&self) -> Option<TrackId> {
        self.order.keys().next().map(|(_, id)| *id)
    }

    /// About how many bytes the queue's tracks take on the wire (see `limits`).
    pub fn wire_bytes(&self) -> usize {
        self.bytes
    }

    /// How many tracks in the queue `peer` added.
    pub fn added_by(&self, peer: &PeerId) -> usize {
        self.per_adder.get(peer).copied().unwrap_or(0)
    }

    fn count(&mut self, entity: Entity, footprint: Option<(PeerId, usize)>) {
        if let Some((peer, size)) = self.footprints.remove(&entity) {
            self.bytes = self.bytes.saturating_sub(size);
            if let Some(n) = self.per_adder.get_mut(&peer) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    self.per_adder.remove(&peer);
                }
            }
        }
        if let Some((peer, size)) = footprint {
            self.bytes += size;
            *self.per_adder.entry(peer.clone()).or_default() += 1;
            self.footprints.insert(entity, (peer, size));
        }
    }

    /// The last key in the queue, for appends.
    pub fn last_key(&self) -> Option<&QueueKey> {
        self.order.keys().next_back().map(|(k, _)| k)
    }
}

pub(super) fn index_track(mut world: DeferredWorld, ctx: HookContext) {
    let Some((id, footprint)) = world.get::<Track>(ctx.entity).map(|t| {
        let size = crate::limits::track_wire_bytes(t, None);
        (t.id, (t.added_by.clone(), size))
    }) else {
        return;
    };
    world
        .resource_mut::<QueueIndex>()
        .count(ctx.entity, Some(footprint));
    let key = world.get::<QueuePosition>(ctx.entity).map(|p| p.0.clone());
    let confirmed = world.get::<Pending>(ctx.entity).is_none();
    let mut index = world.resource_mut::<QueueIndex>();
    let before = index.by_id.insert(id, ctx.entity);
    // The authority's copy of a guest's pending addition takes its place.
    if let Some(before) = before.filter(|e| *e != ctx.entity)
        && confirmed
        && world.get::<Pending>(before).is_some()
    {
        world.commands().entity(before).try_despawn();
    }
    let mut index = world.resource_mut::<QueueIndex>();
    // Components may arrive in any order (a snapshot applies them one by one): whichever
    // of Track and QueuePosition comes second puts the track in the play order.
    if let Some(key) = key
        && !index.keys.contains_key(&ctx.entity)
    {
        index.order.insert((key.clone(), id), ctx.entity);
        index.keys.insert(ctx.entity, (key, id));
    }
}

pub(super) fn unindex_track(mut world: DeferredWorld, ctx: HookContext) {
    let Some(id) = world.get::<Track>(ctx.entity).map(|t| t.id) else {
        return;
    };
    let mut index = world.resource_mut::<QueueIndex>();
    index.count(ctx.entity, None);
    // Only when this entity stood for the track: a replaced pending copy is not a removal.
    if index.by_id.get(&id) == Some(&ctx.entity) {
        index.by_id.remove(&id);
        world.write_message(TrackRemoved { track_id: id });
    }
}

pub(super) fn index_position(mut world: DeferredWorld, ctx: HookContext) {
    let Some(key) = world.get::<QueuePosition>(ctx.entity).map(|p| p.0.clone()) else {
        return;
    };
    let Some(id) = world.get::<Track>(ctx.entity).map(|t| t.id) else {
        return; // the Track hook indexes it when the Track arrives
    };
    let mut index = world.resource_mut::<QueueIndex>();
    index.order.insert((key.clone(), id), ctx.entity);
    index.keys.insert(ctx.entity, (key, id));
}

pub(super) fn unindex_position(mut world: DeferredWorld, ctx: HookContext) {
    let mut index = world.resource_mut::<QueueIndex>();
    // A pending copy can share its slot with the confirmed track that replaced it.
    if let Some(slot) = index.keys.remove(&ctx.entity)
        && index.order.get(&slot) == Some(&ctx.entity)
    {
        index.order.remove(&slot);
    }
}

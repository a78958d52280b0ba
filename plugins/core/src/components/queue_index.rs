//! The queue's index: tracks by id and in play order, kept by the `Track` and
//! `QueuePosition` component hooks.

use std::collections::BTreeMap;
use std::sync::Arc;

use bevy::ecs::entity::EntityHashMap;
use bevy::ecs::lifecycle::HookContext;
use bevy::ecs::world::DeferredWorld;
use bevy::platform::collections::HashMap;
use bevy::prelude::*;

use super::*;

/// A track's place in play order: its key, then its id for equal keys.
///
/// `head` holds the key's first 16 bytes as a number, so nearly every comparison in the
/// ordered map is one integer comparison, and a key of up to 16 bytes (`QueueKey::between`
/// makes 8 digits; more only after many insertions between the same two neighbours) needs no
/// allocation: a member moves tracks in this map on every update it applies.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Slot {
    head: u128,
    len: usize,
    /// The whole key, when it is longer than the head.
    long: Option<Arc<str>>,
    id: TrackId,
}

impl Slot {
    fn new(key: &QueueKey, id: TrackId) -> Self {
        // Big-endian and zero-padded, so the number orders as the text does (a shorter text
        // sorts first either way).
        let text = key.as_str();
        let mut head = [0u8; 16];
        let n = text.len().min(16);
        head[..n].copy_from_slice(&text.as_bytes()[..n]);
        Self {
            head: u128::from_be_bytes(head),
            len: text.len(),
            long: (text.len() > 16).then(|| Arc::from(text)),
            id,
        }
    }

    /// The key this slot was made from.
    fn key(&self) -> QueueKey {
        match &self.long {
            Some(text) => QueueKey::unchecked(text),
            None => {
                let head = self.head.to_be_bytes();
                // Whole characters: the key ended within the head.
                QueueKey::unchecked(&String::from_utf8_lossy(&head[..self.len.min(16)]))
            }
        }
    }
}

impl Ord for Slot {
    /// The order of `(key, id)`, with the key's text compared only when its head cannot tell.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.head
            .cmp(&other.head)
            .then_with(|| match (&self.long, &other.long) {
                (Some(a), Some(b)) => a.cmp(b),
                // Equal heads and a key within them: the shorter is a prefix of the longer
                // (the rest of the head is zeros on both sides), or they are the same.
                _ => self.len.cmp(&other.len),
            })
            .then(self.id.cmp(&other.id))
    }
}

impl PartialOrd for Slot {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// Finds tracks by id and in play order without scanning. Kept up to date by component
/// hooks, so it holds for every track entity however it was spawned (intent, storage, mirror).
#[derive(Resource, Default, Debug)]
pub struct QueueIndex {
    by_id: HashMap<TrackId, Entity>,
    order: BTreeMap<Slot, Entity>,
    slots: EntityHashMap<Slot>,
    /// Each track entity's adder and wire size, for the caps in `limits`.
    footprints: EntityHashMap<(PeerId, usize)>,
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
        self.order.iter().map(|(slot, e)| (slot.id, *e))
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
            .and_then(|e| self.slots.get(e))
            .cloned();
        let lower = start.map_or(Bound::Unbounded, Bound::Included);
        self.order
            .range((lower, Bound::Unbounded))
            .map(|(slot, e)| (slot.id, *e))
    }

    /// The key of a track's position.
    pub fn key_of(&self, id: TrackId) -> Option<QueueKey> {
        let entity = self.by_id.get(&id)?;
        self.slots.get(entity).map(Slot::key)
    }

    /// The track right after `id` in play order.
    pub fn next_after(&self, id: TrackId) -> Option<TrackId> {
        let slot = self.slots.get(self.by_id.get(&id)?)?;
        self.order
            .range((std::ops::Bound::Excluded(slot), std::ops::Bound::Unbounded))
            .next()
            .map(|(next, _)| next.id)
    }

    /// The first track in play order.
    pub fn first(&self) -> Option<TrackId> {
        self.order.keys().next().map(|slot| slot.id)
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

    /// Puts `entity` at `slot` in play order, moving it from where it was.
    fn place(&mut self, entity: Entity, slot: Slot) {
        if let Some(old) = self.slots.insert(entity, slot.clone()) {
            self.unplace(entity, old);
        }
        self.order.insert(slot, entity);
    }

    fn unplace(&mut self, entity: Entity, slot: Slot) {
        // A pending copy can share its slot with the confirmed track that replaced it: one
        // search removes the slot, and the rare other owner is put back.
        if let Some(owner) = self.order.remove(&slot)
            && owner != entity
        {
            self.order.insert(slot, owner);
        }
    }

    /// The last key in the queue, for appends.
    pub fn last_key(&self) -> Option<QueueKey> {
        self.order.keys().next_back().map(Slot::key)
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
    let slot = world
        .get::<QueuePosition>(ctx.entity)
        .map(|p| Slot::new(&p.0, id));
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
    match index.slots.get(&ctx.entity).map(|placed| placed.id) {
        // Components may arrive in any order (a snapshot applies them one by one): whichever
        // of Track and QueuePosition comes second puts the track in the play order.
        None => {
            if let Some(slot) = slot {
                index.place(ctx.entity, slot);
            }
        }
        // The same place under another id (`index_position` takes a placed track's id from
        // its slot): the old id leaves the queue.
        Some(old) if old != id => {
            if index.by_id.get(&old) == Some(&ctx.entity) {
                index.by_id.remove(&old);
                world.write_message(TrackRemoved { track_id: old });
            }
            if let Some(slot) = slot {
                world.resource_mut::<QueueIndex>().place(ctx.entity, slot);
            }
        }
        Some(_) => {}
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

/// A position inserted or replaced (`on_insert` runs for both): the track moves in play
/// order, in one hook rather than a removal hook and an insertion hook.
pub(super) fn index_position(mut world: DeferredWorld, ctx: HookContext) {
    // A placed track's id is in its slot: reading its `Track` would cost a member a cache
    // miss per moved track (`index_track` keeps the slot's id right).
    let placed = world
        .resource::<QueueIndex>()
        .slots
        .get(&ctx.entity)
        .map(|s| s.id);
    let Some(id) = placed.or_else(|| world.get::<Track>(ctx.entity).map(|t| t.id)) else {
        return; // the Track hook indexes it when the Track arrives
    };
    let Some(slot) = world
        .get::<QueuePosition>(ctx.entity)
        .map(|p| Slot::new(&p.0, id))
    else {
        return;
    };
    world.resource_mut::<QueueIndex>().place(ctx.entity, slot);
}

/// A position removed, or its entity despawned (`on_remove`; a replaced position is moved by
/// `index_position`).
pub(super) fn unindex_position(mut world: DeferredWorld, ctx: HookContext) {
    let mut index = world.resource_mut::<QueueIndex>();
    if let Some(slot) = index.slots.remove(&ctx.entity) {
        index.unplace(ctx.entity, slot);
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Keys near the 16-byte head's edge, sharing prefixes, with zero bytes and non-ASCII
    /// text: what a peer can send, not only what `QueueKey::between` makes.
    fn key_text() -> impl Strategy<Value = String> {
        (
            prop::sample::select(vec![0, 1, 14, 15, 16, 17]),
            "[ab\\x00é]{0,4}",
        )
            .prop_map(|(shared, tail)| format!("{}{tail}", "V".repeat(shared)))
    }

    proptest! {
        #[test]
        fn slots_order_as_their_key_text_then_id(
            a in key_text(), b in key_text(), ia in 0..3u64, ib in 0..3u64,
        ) {
            let sa = Slot::new(&QueueKey::unchecked(&a), TrackId(ia));
            let sb = Slot::new(&QueueKey::unchecked(&b), TrackId(ib));
            prop_assert_eq!(sa.cmp(&sb), (a.as_str(), ia).cmp(&(b.as_str(), ib)));
            prop_assert_eq!(sa == sb, (&a, ia) == (&b, ib));
            prop_assert_eq!(sa.key(), QueueKey::unchecked(&a));
        }
    }

    fn track(id: u64) -> Track {
        Track {
            id: TrackId(id),
            title: "Title".into(),
            artist: "Artist".into(),
            duration_ms: 1_000,
            media: None,
            added_by: PeerId::new("someone"),
        }
    }

    #[test]
    fn a_queued_track_given_a_new_id_keeps_its_place_under_that_id_only() {
        let mut world = World::new();
        world.init_resource::<QueueIndex>();
        world.init_resource::<Messages<TrackRemoved>>();
        let before = world
            .spawn((track(1), QueuePosition(QueueKey::unchecked("a"))))
            .id();
        let moved = world
            .spawn((track(2), QueuePosition(QueueKey::unchecked("m"))))
            .id();
        // What a host's update can do: the same entity's Track, replaced with another id, and
        // then the track moved.
        world.entity_mut(moved).insert(track(3));
        let index = world.resource::<QueueIndex>();
        assert_eq!(
            index.in_order().collect::<Vec<_>>(),
            vec![(TrackId(1), before), (TrackId(3), moved)]
        );
        assert_eq!(index.key_of(TrackId(2)), None);
        assert_eq!(index.key_of(TrackId(3)), Some(QueueKey::unchecked("m")));
        world
            .entity_mut(moved)
            .insert(QueuePosition(QueueKey::unchecked("0")));
        let index = world.resource::<QueueIndex>();
        assert_eq!(
            index.in_order().collect::<Vec<_>>(),
            vec![(TrackId(3), moved), (TrackId(1), before)]
        );
        let removed: Vec<_> = world
            .resource_mut::<Messages<TrackRemoved>>()
            .drain()
            .map(|m| m.track_id)
            .collect();
        assert_eq!(removed, vec![TrackId(2)], "the old id left the queue");
    }
}

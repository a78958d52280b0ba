//! The queue's index: tracks by id and in play order, kept by the `Track` and
//! `QueuePosition` component hooks.
//!
//! It keeps no map from a track to its place: a member moves tracks on nearly every update it
//! applies, and a lookup in such a map was a cache miss per move. A moved track's old place
//! comes from its old `QueuePosition` instead, which the discard hook sees in its column, and
//! readers that need a track's place read it from the world through [`Positions`]
//! (`docs/decisions/diff-versus-replicon.md`).

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

    /// Made from the same key as `other`.
    fn same_key(&self, other: &Slot) -> bool {
        self.head == other.head && self.len == other.len && self.long == other.long
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
    /// Each track entity's adder and wire size, for the caps in `limits`.
    footprints: EntityHashMap<(PeerId, usize)>,
    /// The sum of the footprints' sizes.
    bytes: usize,
    /// How many track entities each peer added.
    per_adder: HashMap<PeerId, usize>,
}

/// Where the index's readers find a track's key: the tracks' `QueuePosition`s, in the world
/// or through a query (the index keeps no copy of them).
pub trait Positions {
    /// The key of `entity`'s position, if it has one.
    fn key(&self, entity: Entity) -> Option<&QueueKey>;
}

impl Positions for World {
    fn key(&self, entity: Entity) -> Option<&QueueKey> {
        self.get::<QueuePosition>(entity).map(|p| &p.0)
    }
}

impl Positions for Query<'_, '_, &QueuePosition> {
    fn key(&self, entity: Entity) -> Option<&QueueKey> {
        self.get(entity).ok().map(|p| &p.0)
    }
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
        positions: &impl Positions,
    ) -> impl Iterator<Item = (TrackId, Entity)> + '_ {
        use std::ops::Bound;
        let lower = id
            .and_then(|id| self.slot_of(id, positions))
            .map_or(Bound::Unbounded, Bound::Included);
        self.order
            .range((lower, Bound::Unbounded))
            .map(|(slot, e)| (slot.id, *e))
    }

    /// The key of a queued track's position.
    pub fn key_of(&self, id: TrackId, positions: &impl Positions) -> Option<QueueKey> {
        self.slot_of(id, positions).map(|slot| slot.key())
    }

    /// The track right after `id` in play order.
    pub fn next_after(&self, id: TrackId, positions: &impl Positions) -> Option<TrackId> {
        let slot = self.slot_of(id, positions)?;
        self.order
            .range((std::ops::Bound::Excluded(slot), std::ops::Bound::Unbounded))
            .next()
            .map(|(next, _)| next.id)
    }

    /// The first track in play order.
    pub fn first(&self) -> Option<TrackId> {
        self.order.keys().next().map(|slot| slot.id)
    }

    /// The last key in the queue, for appends.
    pub fn last_key(&self) -> Option<QueueKey> {
        self.order.keys().next_back().map(Slot::key)
    }

    /// About how many bytes the queue's tracks take on the wire (see `limits`).
    pub fn wire_bytes(&self) -> usize {
        self.bytes
    }

    /// How many tracks in the queue `peer` added.
    pub fn added_by(&self, peer: &PeerId) -> usize {
        self.per_adder.get(peer).copied().unwrap_or(0)
    }

    /// Track `id`'s slot in play order, if it is placed.
    fn slot_of(&self, id: TrackId, positions: &impl Positions) -> Option<Slot> {
        let entity = self.by_id.get(&id)?;
        let slot = Slot::new(positions.key(*entity)?, id);
        self.order.contains_key(&slot).then_some(slot)
    }

    /// Where `entity` stands in play order, found from the key of its position: among the
    /// (nearly always one) slots with that key, the one this entity holds.
    fn placed(&self, key: &QueueKey, entity: Entity) -> Option<Slot> {
        let first = Slot::new(key, TrackId(u64::MIN));
        self.order
            .range(&first..)
            .take_while(|(slot, _)| slot.same_key(&first))
            .find(|(_, owner)| **owner == entity)
            .map(|(slot, _)| slot.clone())
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
    // Where the track stands now, if placed: under this id (its other fields replaced), or
    // under another.
    let position = world.get::<QueuePosition>(ctx.entity).map(|p| {
        let placed = world.resource::<QueueIndex>().placed(&p.0, ctx.entity);
        (Slot::new(&p.0, id), placed)
    });
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
    let Some((slot, placed)) = position else {
        return; // the position hook places it when the position arrives
    };
    let mut index = world.resource_mut::<QueueIndex>();
    match placed {
        // Components may arrive in any order (a snapshot applies them one by one): whichever
        // of Track and QueuePosition comes second puts the track in the play order.
        None => {
            index.order.insert(slot, ctx.entity);
        }
        // The same place under another id (a host's update can change a track's id): the
        // old id leaves the queue.
        Some(old) if old.id != id => {
            index.order.remove(&old);
            index.order.insert(slot, ctx.entity);
            if index.by_id.get(&old.id) == Some(&ctx.entity) {
                index.by_id.remove(&old.id);
                world.write_message(TrackRemoved { track_id: old.id });
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

/// A position replaced or removed (`on_discard`, which sees the old position still in its
/// column): the track leaves its place in play order. [`index_position`] puts a replaced one
/// at its new place right after.
pub(super) fn unindex_position(mut world: DeferredWorld, ctx: HookContext) {
    let Some(key) = world.get::<QueuePosition>(ctx.entity).map(|p| &p.0) else {
        return;
    };
    let index = world.resource::<QueueIndex>();
    // The slot from the track's id (measured a little faster than finding it by entity among
    // the key's slots). Without a `Track` (removed on its own), by entity.
    let slot = match world.get::<Track>(ctx.entity) {
        Some(track) => Slot::new(key, track.id),
        None => match index.placed(key, ctx.entity) {
            Some(slot) => slot,
            None => return,
        },
    };
    let mut index = world.resource_mut::<QueueIndex>();
    // A pending copy can share its slot with the confirmed track that replaced it: then the
    // slot is the confirmed track's, and stays.
    if let Some(owner) = index.order.remove(&slot)
        && owner != ctx.entity
    {
        index.order.insert(slot, owner);
    }
}

/// A position inserted or replaced (`on_insert` runs for both): the track takes its place in
/// play order.
pub(super) fn index_position(mut world: DeferredWorld, ctx: HookContext) {
    let Some(id) = world.get::<Track>(ctx.entity).map(|t| t.id) else {
        return; // the Track hook places it when the Track arrives
    };
    let Some(slot) = world
        .get::<QueuePosition>(ctx.entity)
        .map(|p| Slot::new(&p.0, id))
    else {
        return;
    };
    world
        .resource_mut::<QueueIndex>()
        .order
        .insert(slot, ctx.entity);
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

    /// What a peer's updates and a device's own systems do to track entities.
    #[derive(Clone, Debug)]
    enum Op {
        /// A track and its position, spawned together or one after the other.
        Spawn {
            id: u64,
            key: String,
            position_first: bool,
        },
        /// A new position for the `n`th live entity.
        Move {
            n: usize,
            key: String,
        },
        /// Its `Track` replaced, with a new id or the same.
        NewTrack {
            n: usize,
            id: u64,
        },
        /// Its position removed, or put back.
        TogglePosition {
            n: usize,
            key: String,
        },
        Despawn {
            n: usize,
        },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0..40u64, key_text(), any::<bool>()).prop_map(|(id, key, position_first)| Op::Spawn {
                id,
                key,
                position_first
            }),
            (any::<usize>(), key_text()).prop_map(|(n, key)| Op::Move { n, key }),
            (any::<usize>(), 0..40u64).prop_map(|(n, id)| Op::NewTrack { n, id }),
            (any::<usize>(), key_text()).prop_map(|(n, key)| Op::TogglePosition { n, key }),
            any::<usize>().prop_map(|n| Op::Despawn { n }),
        ]
    }

    proptest! {
        /// Whatever the order of inserts, moves, id changes, removals and despawns, the play
        /// order is every entity with both a `Track` and a `QueuePosition`, sorted by key then
        /// id, and each track's readers (`key_of`, `next_after`, `in_order_from`) agree with it.
        #[test]
        fn the_play_order_follows_the_components_through_any_changes(
            ops in prop::collection::vec(op(), 1..40),
        ) {
            let mut world = World::new();
            world.init_resource::<QueueIndex>();
            world.init_resource::<Messages<TrackRemoved>>();
            let mut live: Vec<Entity> = Vec::new();
            for op in ops {
                let pick = |n: usize| (!live.is_empty()).then(|| live[n % live.len()]);
                match op {
                    Op::Spawn { id, key, position_first } => {
                        // One entity per id, as the index's users keep it.
                        if world.query::<&Track>().iter(&world).any(|t| t.id == TrackId(id)) {
                            continue;
                        }
                        let position = QueuePosition(QueueKey::unchecked(&key));
                        let e = if position_first {
                            let e = world.spawn(position).id();
                            world.entity_mut(e).insert(track(id));
                            e
                        } else {
                            let e = world.spawn(track(id)).id();
                            world.entity_mut(e).insert(position);
                            e
                        };
                        live.push(e);
                    }
                    Op::Move { n, key } => if let Some(e) = pick(n) {
                        world.entity_mut(e).insert(QueuePosition(QueueKey::unchecked(&key)));
                    },
                    Op::NewTrack { n, id } => if let Some(e) = pick(n) {
                        let taken = world
                            .query::<(Entity, &Track)>()
                            .iter(&world)
                            .any(|(other, t)| t.id == TrackId(id) && other != e);
                        if !taken {
                            world.entity_mut(e).insert(track(id));
                        }
                    },
                    Op::TogglePosition { n, key } => if let Some(e) = pick(n) {
                        if world.get::<QueuePosition>(e).is_some() {
                            world.entity_mut(e).remove::<QueuePosition>();
                        } else {
                            world.entity_mut(e).insert(QueuePosition(QueueKey::unchecked(&key)));
                        }
                    },
                    Op::Despawn { n } => if let Some(e) = pick(n) {
                        world.despawn(e);
                        live.retain(|l| *l != e);
                    },
                }
            }
            let mut expected: Vec<(String, u64, Entity)> = world
                .query::<(Entity, &Track, &QueuePosition)>()
                .iter(&world)
                .map(|(e, t, p)| (p.0.as_str().to_owned(), t.id.0, e))
                .collect();
            expected.sort();
            let index = world.resource::<QueueIndex>();
            let order: Vec<(u64, Entity)> = index.in_order().map(|(id, e)| (id.0, e)).collect();
            let want: Vec<(u64, Entity)> = expected.iter().map(|(_, id, e)| (*id, *e)).collect();
            prop_assert_eq!(&order, &want);
            for (i, (key, id, e)) in expected.iter().enumerate() {
                prop_assert_eq!(index.entity(TrackId(*id)), Some(*e));
                prop_assert_eq!(index.key_of(TrackId(*id), &world), Some(QueueKey::unchecked(key)));
                prop_assert_eq!(
                    index.next_after(TrackId(*id), &world),
                    expected.get(i + 1).map(|(_, next, _)| TrackId(*next))
                );
                let from: Vec<u64> =
                    index.in_order_from(Some(TrackId(*id)), &world).map(|(id, _)| id.0).collect();
                prop_assert_eq!(from, want[i..].iter().map(|(id, _)| *id).collect::<Vec<_>>());
            }
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
        assert_eq!(index.key_of(TrackId(2), &world), None);
        assert_eq!(
            index.key_of(TrackId(3), &world),
            Some(QueueKey::unchecked("m"))
        );
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

//! The component registry: which components replicate, the id each has on the wire, and how
//! a member applies each. `app.replicate::<C>()` registers one.

use std::any::TypeId;
use std::collections::HashMap;

use crate::protocol::Change;
use bevy::ecs::component::Mutable;
use bevy::prelude::*;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::authority::{Outgoing, collect_changes};
use crate::{ReplicationSet, hosting_this_frame};

/// What the protocol hash starts with; a new number whenever messages keep their shape but
/// change their meaning, so such peers refuse each other with "the versions differ".
/// 2: a hello carries a proof of its secret (`hello_proof`), not the secret.
const WIRE_VERSION: &[u8] = b"whatnext-replication/2";

/// Adds `replicate::<C>()` and `replicate_as::<C>(name)` to `App`.
pub trait AppReplicationExt {
    /// Sends `C`'s changes on `Replicated` entities from the authority to every member,
    /// named on the wire by its registration id; its stable name (for
    /// [`Registry::protocol_hash`]) is the type's short name, e.g. `Mood`.
    ///
    /// Every peer must register the same components in the same order; the core's come
    /// first, from `ReplicationPlugin`. Registering a type twice keeps its first id.
    ///
    /// ```
    /// use bevy::prelude::*;
    /// use serde::{Deserialize, Serialize};
    /// use whatnext_core::prelude::*;
    /// use whatnext_replication::{AppReplicationExt, Registry, ReplicationPlugin};
    ///
    /// #[derive(Component, Clone, Serialize, Deserialize)]
    /// struct Mood(String);
    ///
    /// #[derive(Component, Clone, Serialize, Deserialize)]
    /// struct Lights(u8);
    ///
    /// let mut app = App::new();
    /// app.add_plugins((SessionPlugin, ReplicationPlugin))
    ///     .insert_resource(LocalPeer {
    ///         peer: PeerId::new("me"),
    ///         display_name: "Me".into(),
    ///     })
    ///     .init_resource::<Relays>()
    ///     .replicate::<Mood>()
    ///     .replicate_as::<Lights>("party-lights");
    /// app.update();
    ///
    /// let registry = app.world().resource::<Registry>();
    /// // After the ten core components, in registration order.
    /// assert_eq!(registry.id_of::<Mood>(), Some(10));
    /// assert_eq!(registry.name(10), Some("Mood"));
    /// assert_eq!(registry.name(11), Some("party-lights"));
    /// ```
    fn replicate<C: Component<Mutability = Mutable> + Clone + Serialize + DeserializeOwned>(
        &mut self,
    ) -> &mut Self;

    /// Like [`replicate`](AppReplicationExt::replicate), with the stable name given: for an
    /// extension whose type's short name could clash with another's, or may be renamed.
    fn replicate_as<C: Component<Mutability = Mutable> + Clone + Serialize + DeserializeOwned>(
        &mut self,
        name: &str,
    ) -> &mut Self;
}

impl AppReplicationExt for App {
    fn replicate<C: Component<Mutability = Mutable> + Clone + Serialize + DeserializeOwned>(
        &mut self,
    ) -> &mut Self {
        self.replicate_as::<C>(&short_name(std::any::type_name::<C>()))
    }

    fn replicate_as<C: Component<Mutability = Mutable> + Clone + Serialize + DeserializeOwned>(
        &mut self,
        name: &str,
    ) -> &mut Self {
        self.init_resource::<Registry>().init_resource::<Outgoing>();
        let new = self
            .world_mut()
            .resource_mut::<Registry>()
            .register::<C>(name)
            .is_some();
        if new {
            self.add_systems(
                PostUpdate,
                collect_changes::<C>
                    .in_set(ReplicationSet::Collect)
                    .run_if(hosting_this_frame),
            );
        }
        self
    }
}

/// Inserts a component decoded from the wire on a member's entity.
type InsertFn = fn(&mut World, Entity, &[u8]) -> Result<(), BadComponent>;
/// Removes a component from a member's entity.
type RemoveFn = fn(&mut World, Entity);
/// Marks the component changed on every replicated entity.
type TouchFn = fn(&mut World);

/// One registered component.
struct Registered {
    /// Stable across builds: the short type name or the name the caller gave.
    name: String,
    insert: InsertFn,
    remove: RemoveFn,
    touch: TouchFn,
}

/// Registered components, in registration order: a component's index is its id on the wire.
#[derive(Resource, Default)]
pub struct Registry {
    components: Vec<Registered>,
    ids: HashMap<TypeId, u16>,
}

/// An update named a component id this build does not replicate (a peer with other
/// registrations): the update is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("component id {0} is not replicated by this build (the peers' registrations differ)")]
pub struct UnknownComponent(pub u16);

/// A replicated component's bytes did not decode as that component: it is skipped.
#[derive(Debug, thiserror::Error)]
#[error("a replicated {component} did not decode: {source}")]
pub struct BadComponent {
    /// The component's type.
    pub component: &'static str,
    /// What postcard said.
    #[source]
    pub source: postcard::Error,
}

impl Registry {
    /// Registers `C` under `name` and returns its new id; `None` if `C` was registered
    /// already (it keeps its first id and name).
    ///
    /// Panics when another type has this name, or past 65,536 components: both are
    /// mistakes in the program, found at startup.
    pub(crate) fn register<C: Component<Mutability = Mutable> + DeserializeOwned>(
        &mut self,
        name: &str,
    ) -> Option<u16> {
        if self.ids.contains_key(&TypeId::of::<C>()) {
            return None;
        }
        assert!(
            self.components.iter().all(|c| c.name != name),
            "two replicated components are named {name:?}; give one another name with replicate_as"
        );
        let id = u16::try_from(self.components.len())
            .unwrap_or_else(|_| panic!("more than {} replicated components", u16::MAX));
        self.components.push(Registered {
            name: name.to_owned(),
            insert: insert_component::<C>,
            remove: remove_component::<C>,
            touch: touch_component::<C>,
        });
        self.ids.insert(TypeId::of::<C>(), id);
        Some(id)
    }

    /// The wire id of `C`, if it is registered.
    pub fn id_of<C: 'static>(&self) -> Option<u16> {
        self.ids.get(&TypeId::of::<C>()).copied()
    }

    /// The stable name registered with `id`.
    pub fn name(&self, id: u16) -> Option<&str> {
        self.components
            .get(usize::from(id))
            .map(|c| c.name.as_str())
    }

    /// How many components are registered.
    pub fn len(&self) -> usize {
        self.components.len()
    }

    /// No component is registered.
    pub fn is_empty(&self) -> bool {
        self.components.is_empty()
    }

    /// A stable hash of the ordered (id, name) registrations: two peers with equal hashes
    /// name the same components by the same ids. FNV-1a 64, written out here so it never
    /// changes with the compiler.
    pub fn protocol_hash(&self) -> u64 {
        let mut hash = Fnv1a::new();
        hash.write(WIRE_VERSION);
        for (id, component) in self.components.iter().enumerate() {
            // `id` is below 65,536 by construction.
            hash.write(&(id as u16).to_le_bytes());
            hash.write(&(component.name.len() as u32).to_le_bytes());
            hash.write(component.name.as_bytes());
        }
        hash.0
    }

    /// Checks every component `change` names is registered.
    pub fn check(&self, change: &Change) -> Result<(), UnknownComponent> {
        let id = match change {
            Change::Insert { component, .. } => component.id,
            Change::Remove { component, .. } => *component,
            Change::Despawn { .. } => return Ok(()),
        };
        match self.components.get(usize::from(id)) {
            Some(_) => Ok(()),
            None => Err(UnknownComponent(id)),
        }
    }

    /// How to insert component `id` on a member.
    pub(crate) fn insert_fn(&self, id: u16) -> Option<InsertFn> {
        self.components.get(usize::from(id)).map(|c| c.insert)
    }

    /// How to remove component `id` on a member.
    pub(crate) fn remove_fn(&self, id: u16) -> Option<RemoveFn> {
        self.components.get(usize::from(id)).map(|c| c.remove)
    }

    /// Marks every registered component on every replicated entity changed, so the next
    /// update carries the whole state (a device that starts hosting a session it mirrored).
    pub(crate) fn touch_all(world: &mut World) {
        let touches: Vec<TouchFn> = world
            .resource::<Registry>()
            .components
            .iter()
            .map(|c| c.touch)
            .collect();
        for touch in touches {
            touch(world);
        }
    }
}

fn touch_component<C: Component<Mutability = Mutable>>(world: &mut World) {
    let mut all = world.query_filtered::<&mut C, With<whatnext_core::prelude::Replicated>>();
    for mut component in all.iter_mut(world) {
        component.set_changed();
    }
}

fn insert_component<C: Component + DeserializeOwned>(
    world: &mut World,
    entity: Entity,
    bytes: &[u8],
) -> Result<(), BadComponent> {
    let value: C = postcard::from_bytes(bytes).map_err(|source| BadComponent {
        component: std::any::type_name::<C>(),
        source,
    })?;
    world.entity_mut(entity).insert(value);
    Ok(())
}

fn remove_component<C: Component>(world: &mut World, entity: Entity) {
    world.entity_mut(entity).remove::<C>();
}

/// `type_name` without module paths, generics included: `a::b::Foo<c::Bar>` → `Foo<Bar>`.
/// Survives moving a type between modules.
pub(crate) fn short_name(full: &str) -> String {
    let last_segment = |path: &str| path.rsplit("::").next().unwrap_or(path).to_owned();
    let mut out = String::new();
    let mut start = 0;
    for (i, c) in full.char_indices() {
        if matches!(c, '<' | '>' | ',' | ' ' | '(' | ')' | '[' | ']' | ';' | '&') {
            out.push_str(&last_segment(&full[start..i]));
            out.push(c);
            start = i + c.len_utf8();
        }
    }
    out.push_str(&last_segment(&full[start..]));
    out
}

/// FNV-1a, 64 bits.
struct Fnv1a(u64);

impl Fnv1a {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;

    fn new() -> Self {
        Self(Self::OFFSET)
    }

    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 ^= u64::from(*byte);
            self.0 = self.0.wrapping_mul(Self::PRIME);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Component, serde::Deserialize)]
    struct A;
    #[derive(Component, serde::Deserialize)]
    struct B;
    #[derive(Component, serde::Deserialize)]
    struct C;

    fn registry(order: &[&str]) -> Registry {
        let mut registry = Registry::default();
        for name in order {
            match *name {
                "A" => registry.register::<A>("A"),
                "B" => registry.register::<B>("B"),
                _ => registry.register::<C>("C"),
            };
        }
        registry
    }

    #[test]
    fn the_same_registrations_hash_the_same() {
        assert_eq!(
            registry(&["A", "B"]).protocol_hash(),
            registry(&["A", "B"]).protocol_hash()
        );
    }

    #[test]
    fn another_order_or_an_extra_component_hashes_differently() {
        let base = registry(&["A", "B"]).protocol_hash();
        assert_ne!(base, registry(&["B", "A"]).protocol_hash());
        assert_ne!(base, registry(&["A", "B", "C"]).protocol_hash());
        assert_ne!(base, registry(&["A"]).protocol_hash());
    }

    #[test]
    fn the_hash_is_fnv1a_and_does_not_change_between_builds() {
        // Pinned: a change here means every deployed peer would refuse this build.
        let mut empty = Fnv1a::new();
        empty.write(b"");
        assert_eq!(empty.0, 0xcbf2_9ce4_8422_2325);
        let mut a = Fnv1a::new();
        a.write(b"a");
        assert_eq!(a.0, 0xaf63_dc4c_8601_ec8c);
        assert_eq!(registry(&[]).protocol_hash(), {
            let mut h = Fnv1a::new();
            h.write(b"whatnext-replication/2");
            h.0
        });
    }

    #[test]
    fn ids_follow_registration_order_and_a_second_registration_keeps_the_first() {
        let mut registry = registry(&["A", "B"]);
        assert_eq!(registry.id_of::<A>(), Some(0));
        assert_eq!(registry.id_of::<B>(), Some(1));
        assert_eq!(registry.register::<A>("A"), None);
        assert_eq!(registry.len(), 2);
        assert_eq!(registry.name(1), Some("B"));
    }

    #[test]
    fn an_unknown_id_is_an_error() {
        let registry = registry(&["A"]);
        let unknown = Change::Insert {
            net_id: 1,
            component: crate::protocol::ComponentBytes {
                id: 7,
                bytes: vec![],
            },
        };
        assert_eq!(registry.check(&unknown), Err(UnknownComponent(7)));
        let remove = Change::Remove {
            net_id: 1,
            component: 0,
        };
        assert_eq!(registry.check(&remove), Ok(()));
    }

    #[test]
    fn short_names_drop_module_paths_generics_included() {
        assert_eq!(short_name("whatnext_core::components::Track"), "Track");
        assert_eq!(short_name("a::b::Foo<c::Bar, d::Baz>"), "Foo<Bar, Baz>");
        assert_eq!(short_name("Plain"), "Plain");
    }
}

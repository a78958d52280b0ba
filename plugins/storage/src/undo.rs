//! Undoing a frame whose write failed: the world goes back to what the disk holds, so an
//! answer of `storage` ("nothing changed") is true and the world and the disk agree.
//!
//! The database is reopened (redb refuses everything after an I/O error) and read; each
//! stored part that differs from the world is put back. Only what differs is touched, so
//! replication sends members just the reversal. A session hosted elsewhere is left alone: it
//! is a copy of the host's, which holds the original; it is written whole once writes work.

use std::collections::{HashMap, HashSet};

use bevy::prelude::*;
use whatnext_core::prelude::*;
use whatnext_core::session::despawn_session;

use crate::schema::{ParticipantRecord, SessionRecord, TrackRecord};
use crate::{
    Loaded, Store, default_name, restore_access, restore_session, spawn_participant, spawn_track,
};

/// In `PersistSet`, right after a failed write: puts the world back as the disk has it.
pub(crate) fn undo_failed_frame(world: &mut World) {
    let loaded = world.resource_scope(|_, mut store: Mut<Store>| {
        if store.db.is_none() {
            store.reopen()?;
        }
        store.load()
    });
    match loaded {
        Ok(loaded) => restore(world, loaded),
        // Nothing to compare with: the next write that lands saves the world whole.
        Err(error) => {
            tracing::error!(%error, "cannot read the database back to undo a failed write")
        }
    }
}

/// Makes the world's persisted parts equal to `loaded`.
pub(crate) fn restore(world: &mut World, loaded: Loaded) {
    let Some(me) = world.get_resource::<LocalPeer>().map(|l| l.peer.clone()) else {
        return; // storage inserts it at build: nothing of ours to undo without it
    };
    // The session first: leaving one clears the rejoin link, which is put back below.
    restore_session_state(world, &me, loaded.session);
    let hosting = world.query::<&Host>().iter(world).any(|h| h.0 == me);
    if hosting {
        restore_access(world, loaded.access);
    }
    let chosen = loaded.display_name.is_some();
    let name = loaded.display_name.unwrap_or_else(|| default_name(&me));
    set_resource(world, DisplayNameChosen(chosen));
    if world.resource::<LocalPeer>().display_name != name {
        world.resource_mut::<LocalPeer>().display_name = name;
    }
    world.insert_resource(AppliedIntents {
        by_id: loaded.applied.into_iter().collect(),
        ..Default::default()
    });
    set_resource(world, Library(loaded.library));
    if let Some(mut files) = world.get_resource_mut::<LocalFiles>()
        && files.own != loaded.own_files
    {
        files.own = loaded.own_files;
    }
    let relays = {
        let now = world.get_resource::<Relays>();
        let status = |addr: &String| {
            now.and_then(|now| now.0.iter().find(|r| r.addr == *addr))
                .map_or(RelayStatus::Disconnected, |r| r.status.clone())
        };
        Relays(
            loaded
                .relays
                .into_iter()
                .map(|addr| RelayEntry {
                    status: status(&addr),
                    addr,
                })
                .collect(),
        )
    };
    set_resource(world, relays);
    set_resource(world, RejoinInvite(loaded.rejoin_invite));
    // Outbox intents the failed frame added are gone: so are their pending tracks.
    let kept: HashSet<TrackId> = loaded.outbox.iter().filter_map(added_track).collect();
    let dropped: Vec<TrackId> = world
        .get_resource::<Outbox>()
        .map(|o| o.0.iter().filter_map(added_track).collect())
        .unwrap_or_default();
    let dropped: Vec<TrackId> = dropped
        .into_iter()
        .filter(|id| !kept.contains(id))
        .collect();
    set_resource(world, Outbox(loaded.outbox));
    for id in dropped {
        let entity = world
            .get_resource::<QueueIndex>()
            .and_then(|index| index.entity(id));
        if let Some(entity) = entity.filter(|e| world.get::<Pending>(*e).is_some()) {
            world.despawn(entity);
        }
    }
}

fn added_track(intent: &Intent) -> Option<TrackId> {
    match &intent.action {
        Action::Session(SessionAction::AddTrack { track_id, .. }) => Some(*track_id),
        _ => None,
    }
}

/// Sets a resource only when it differs, so an undo that changes nothing is not news.
fn set_resource<R: Resource + PartialEq>(world: &mut World, value: R) {
    if world.get_resource::<R>() != Some(&value) {
        world.insert_resource(value);
    }
}

/// Sets a component only when it differs.
fn set<C: Component<Mutability = bevy::ecs::component::Mutable> + PartialEq>(
    world: &mut World,
    entity: Entity,
    value: C,
) {
    if let Some(mut current) = world.get_mut::<C>(entity)
        && *current != value
    {
        *current = value;
    }
}

fn restore_session_state(
    world: &mut World,
    me: &PeerId,
    stored: Option<(SessionId, SessionRecord, Vec<(TrackId, TrackRecord)>)>,
) {
    let current = world
        .query::<(Entity, &Session, &Host)>()
        .iter(world)
        .next()
        .map(|(e, s, h)| (e, s.id.clone(), h.0.clone()));
    match (current, stored) {
        (None, None) => {}
        // A copy of another host's session: not undone (see the module's note).
        (Some((_, _, host)), _) if host != *me => {}
        (None, Some((id, record, tracks))) => restore_session(world, me, id, record, tracks),
        (Some(_), None) => despawn_session(world),
        (Some((entity, id, _)), Some((stored_id, record, tracks))) => {
            if id != stored_id {
                despawn_session(world);
                restore_session(world, me, stored_id, record, tracks);
                return;
            }
            set(
                world,
                entity,
                Session {
                    id,
                    name: record.name.clone(),
                },
            );
            set(world, entity, Host(record.host.clone()));
            let why = world
                .get::<HostTerm>(entity)
                .map(|t| t.why)
                .unwrap_or_default();
            set(
                world,
                entity,
                HostTerm {
                    term: record.term,
                    why,
                },
            );
            set(world, entity, CoHosts(record.cohosts.clone()));
            set(world, entity, PlaybackOwner(record.playback_owner.clone()));
            set(world, entity, record.clock.clone());
            restore_participants(world, me, record.participants);
            restore_tracks(world, tracks);
        }
    }
}

fn restore_participants(world: &mut World, me: &PeerId, stored: Vec<ParticipantRecord>) {
    let now: Vec<(Entity, PeerId)> = world
        .query::<(Entity, &Participant)>()
        .iter(world)
        .map(|(e, p)| (e, p.peer.clone()))
        .collect();
    let mut by_peer: HashMap<PeerId, ParticipantRecord> =
        stored.into_iter().map(|p| (p.peer.clone(), p)).collect();
    for (entity, peer) in now {
        match by_peer.remove(&peer) {
            Some(p) => set(
                world,
                entity,
                Participant {
                    peer: p.peer,
                    display_name: p.display_name,
                    display: p.display,
                },
            ),
            None => {
                world.despawn(entity);
            }
        }
    }
    for p in by_peer.into_values() {
        spawn_participant(world, me, p);
    }
}

fn restore_tracks(world: &mut World, stored: Vec<(TrackId, TrackRecord)>) {
    let now: Vec<(Entity, TrackId)> = world
        .query_filtered::<(Entity, &Track), Without<Pending>>()
        .iter(world)
        .map(|(e, t)| (e, t.id))
        .collect();
    let mut by_id: HashMap<TrackId, TrackRecord> = stored.into_iter().collect();
    for (entity, id) in now {
        let Some(t) = by_id.remove(&id) else {
            world.despawn(entity);
            continue;
        };
        set(world, entity, t.track(id));
        let key = QueueKey::parse(&t.queue_key).ok();
        let same = key.as_ref().is_some_and(|k| {
            world
                .get::<QueuePosition>(entity)
                .is_some_and(|p| p.0 == *k)
        });
        if let (Some(key), false) = (key, same) {
            // Inserted, not set: the queue index follows insertions.
            world.entity_mut(entity).insert(QueuePosition(key));
        }
    }
    for (id, t) in by_id {
        spawn_track(world, id, t);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn me() -> PeerId {
        PeerId::new("12D3KooWMe")
    }

    fn record(title: &str, key: &str) -> TrackRecord {
        TrackRecord {
            title: title.into(),
            artist: "A".into(),
            duration_ms: 1000,
            media: None,
            added_by: me(),
            queue_key: key.into(),
        }
    }

    fn world() -> World {
        let mut world = World::new();
        world.insert_resource(LocalPeer {
            peer: me(),
            display_name: "Changed".into(),
        });
        world.insert_resource(DisplayNameChosen(true));
        world.init_resource::<AppliedIntents>();
        world.init_resource::<Library>();
        world.init_resource::<Relays>();
        world.init_resource::<RejoinInvite>();
        world.init_resource::<Outbox>();
        world.init_resource::<QueueIndex>();
        world.init_resource::<Knocks>();
        world.init_resource::<SessionInvite>();
        world
    }

    fn session_record() -> SessionRecord {
        SessionRecord {
            name: "Stored".into(),
            net_id: 1,
            host: me(),
            playback_owner: me(),
            clock: PlaybackClock::stopped(),
            participants: vec![ParticipantRecord {
                peer: me(),
                display_name: "Me".into(),
                display: false,
                net_id: 2,
            }],
            cohosts: Vec::new(),
            term: 0,
        }
    }

    fn titles(world: &mut World) -> Vec<String> {
        let mut titles: Vec<String> = world
            .query::<&Track>()
            .iter(world)
            .map(|t| t.title.clone())
            .collect();
        titles.sort();
        titles
    }

    /// The failed frame renamed the session and the device, added track 3 and removed track
    /// 2: all of it goes back, and track 1, untouched, stays the same entity.
    #[test]
    fn a_hosted_session_goes_back_to_what_the_disk_holds() {
        let mut world = world();
        let id = SessionId("S".into());
        restore_session(
            &mut world,
            &me(),
            id.clone(),
            session_record(),
            vec![(TrackId(1), record("One", "a0"))],
        );
        let one = world.resource::<QueueIndex>().entity(TrackId(1));
        spawn_track(&mut world, TrackId(3), record("Three", "a2"));
        let session = world
            .query_filtered::<Entity, With<Session>>()
            .single(&world)
            .expect("session");
        world.get_mut::<Session>(session).expect("session").name = "Renamed".into();
        world.resource_mut::<AppliedIntents>().unsaved.push((
            IntentId {
                author: me(),
                counter: 9,
            },
            Applied::Done,
        ));
        let loaded = Loaded {
            session: Some((
                id,
                session_record(),
                vec![
                    (TrackId(1), record("One", "a0")),
                    (TrackId(2), record("Two", "a1")),
                ],
            )),
            ..Default::default()
        };
        restore(&mut world, loaded);
        assert_eq!(titles(&mut world), ["One", "Two"]);
        assert_eq!(world.resource::<QueueIndex>().entity(TrackId(1)), one);
        let name = world.get::<Session>(session).expect("session").name.clone();
        assert_eq!(name, "Stored");
        assert_eq!(world.resource::<LocalPeer>().display_name, "Listener oWMe");
        assert!(!world.resource::<DisplayNameChosen>().0);
        assert!(world.resource::<AppliedIntents>().unsaved.is_empty());
        let participants = world.query::<&Participant>().iter(&world).count();
        assert_eq!(participants, 1);
    }

    /// A session created in the failed frame goes; one left in it comes back.
    #[test]
    fn a_session_created_or_left_in_the_failed_frame_is_undone() {
        let mut world = world();
        let host = LocalPeer {
            peer: me(),
            display_name: "Me".into(),
        };
        whatnext_core::session::spawn_session(
            &mut world,
            SessionId("New".into()),
            "New".into(),
            &host,
        );
        restore(&mut world, Loaded::default());
        assert_eq!(world.query::<&Session>().iter(&world).count(), 0);
        let loaded = Loaded {
            session: Some((
                SessionId("Old".into()),
                session_record(),
                vec![(TrackId(1), record("One", "a0"))],
            )),
            ..Default::default()
        };
        restore(&mut world, loaded);
        let names: Vec<String> = world
            .query::<&Session>()
            .iter(&world)
            .map(|s| s.name.clone())
            .collect();
        assert_eq!(names, ["Stored"]);
        assert_eq!(titles(&mut world), ["One"]);
    }

    /// A guest's outbox intent the failed frame added is dropped, and so is its pending track.
    #[test]
    fn an_outbox_intent_that_was_not_saved_goes_with_its_pending_track() {
        let mut world = world();
        let intent = Intent {
            id: IntentId {
                author: me(),
                counter: 1,
            },
            action: Action::Session(SessionAction::AddTrack {
                track_id: TrackId(5),
                title: "Five".into(),
                artist: "A".into(),
                duration_ms: 1000,
                media: None,
            }),
        };
        world.resource_mut::<Outbox>().0.push(intent);
        world.spawn((
            Track {
                id: TrackId(5),
                title: "Five".into(),
                artist: "A".into(),
                duration_ms: 1000,
                media: None,
                added_by: me(),
            },
            QueuePosition(QueueKey::between(None, None)),
            Pending,
        ));
        restore(&mut world, Loaded::default());
        assert!(world.resource::<Outbox>().0.is_empty());
        assert!(titles(&mut world).is_empty());
    }
}

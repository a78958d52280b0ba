//! Session actions, on the authority: the role rules decide, then the queue, playback and
//! roles change.

use bevy::prelude::*;

use super::{bad, clean_text, not_found};
use crate::clock::{PlayState, PlaybackClock};
use crate::components::*;
use crate::ids::{NetId, PeerId, TrackId};
use crate::intent::*;
use crate::limits;
use crate::order::QueueKey;
use crate::reaction::Reactions;
use crate::rules::{Role, SessionRoles, authorize, facts_for};
use crate::time::WallClock;

/// The session entity's shared state and its members, read for one intent.
struct HostedSession {
    entity: Entity,
    host: Host,
    cohosts: CoHosts,
    owner: PlaybackOwner,
    clock: PlaybackClock,
    members: Vec<Participant>,
}

impl HostedSession {
    fn member(&self, peer: &PeerId) -> Option<&Participant> {
        self.members.iter().find(|p| p.peer == *peer)
    }
}

fn read_session(world: &mut World) -> Result<HostedSession, IntentError> {
    let mut q = world.query::<(Entity, &Host, &CoHosts, &PlaybackOwner, &PlaybackClock)>();
    let (entity, host, cohosts, owner, clock) = q
        .iter(world)
        .next()
        .ok_or_else(|| IntentError::new(ErrorCode::NotInSession, "not in a session"))?;
    let (entity, host, cohosts, owner, clock) = (
        entity,
        host.clone(),
        cohosts.clone(),
        owner.clone(),
        clock.clone(),
    );
    let members = world.query::<&Participant>().iter(world).cloned().collect();
    Ok(HostedSession {
        entity,
        host,
        cohosts,
        owner,
        clock,
        members,
    })
}

/// The hosted session as the role rules see it: a member is a participant, or the host.
struct AsHosted<'a> {
    session: &'a HostedSession,
    world: &'a World,
}

impl SessionRoles for AsHosted<'_> {
    fn role_of(&self, peer: &PeerId) -> Option<Role> {
        let participant = self.session.member(peer);
        (participant.is_some() || *peer == self.session.host.0)
            .then(|| role_of(peer, &self.session.host, &self.session.cohosts, participant))
    }

    fn playback_owner(&self) -> &PeerId {
        &self.session.owner.0
    }

    fn added_by(&self, track: TrackId) -> Option<&PeerId> {
        let entity = self.world.resource::<QueueIndex>().entity(track)?;
        self.world.get::<Track>(entity).map(|t| &t.added_by)
    }
}

/// Refuses a track the queue has no room for: too many tracks in the session or from this
/// member (`per_member`: the host is not counted), or too many bytes for one frame.
fn check_room(index: &QueueIndex, track: &Track, per_member: bool) -> Result<(), IntentError> {
    if index.len() >= limits::MAX_TRACKS_PER_SESSION {
        return Err(limits::too_large(format!(
            "the queue is full ({} tracks)",
            limits::MAX_TRACKS_PER_SESSION
        )));
    }
    if per_member && index.added_by(&track.added_by) >= limits::MAX_TRACKS_PER_MEMBER {
        return Err(limits::too_large(format!(
            "you have {} tracks in the queue, the most one guest may have",
            limits::MAX_TRACKS_PER_MEMBER
        )));
    }
    let size = limits::track_wire_bytes(track, None);
    if index.wire_bytes() + size > limits::MAX_QUEUE_BYTES {
        return Err(limits::too_large(format!(
            "the queue holds its most text ({} MiB); remove a track first",
            limits::MAX_QUEUE_BYTES / (1024 * 1024)
        )));
    }
    Ok(())
}

fn track(world: &World, id: TrackId) -> Result<(Entity, Track), IntentError> {
    world
        .resource::<QueueIndex>()
        .entity(id)
        .and_then(|e| world.get::<Track>(e).map(|t| (e, t.clone())))
        .ok_or_else(|| not_found(format!("no track {id} in the queue")))
}

/// Applies a session action authored by `author`, if this device hosts the session and the
/// role rules allow it.
pub(super) fn apply_session(
    world: &mut World,
    author: &PeerId,
    action: &SessionAction,
) -> Result<Applied, IntentError> {
    use SessionAction as A;
    let session = read_session(world)?;
    let me = world.resource::<LocalPeer>().peer.clone();
    if session.host.0 != me {
        // Guests send session intents to the host; that path arrives with replication.
        return Err(IntentError::new(
            ErrorCode::Unreachable,
            "only the host applies session changes, and this build cannot reach the host yet",
        ));
    }
    let roles = AsHosted {
        session: &session,
        world,
    };
    let facts = facts_for(&roles, author, action).ok_or_else(|| {
        IntentError::new(
            ErrorCode::NotPermitted,
            "only members of the session can change it",
        )
    })?;
    // A removal of a track not in the queue is "not found", whoever asks.
    if let A::RemoveTrack { track_id } = action {
        track(world, *track_id)?;
    }
    authorize(action, &facts).map_err(IntentError::refused)?;

    let now = world.resource::<WallClock>().now_ms;
    match action {
        A::AddTrack {
            track_id,
            title,
            artist,
            duration_ms,
            media,
        } => {
            let title = clean_text("a track title", title)?;
            let artist = artist.trim().to_owned();
            limits::check_text("an artist", &artist)?;
            limits::check_duration(*duration_ms)?;
            let index = world.resource::<QueueIndex>();
            if let Some(entity) = index.entity(*track_id) {
                // The same addition again from its author (its outbox delivering to a new
                // host an intent whose answer died with the old one): already done.
                let same = world.get::<Track>(entity).is_some_and(|t| {
                    t.added_by == *author
                        && t.title == title
                        && t.artist == artist
                        && t.duration_ms == *duration_ms
                        && t.media == *media
                });
                if same {
                    return Ok(Applied::TrackAdded(*track_id));
                }
                return Err(bad(format!("track {track_id} is already in the queue")));
            }
            let track = Track {
                id: *track_id,
                title,
                artist,
                duration_ms: *duration_ms,
                media: *media,
                added_by: author.clone(),
            };
            check_room(index, &track, *author != session.host.0)?;
            let key = QueueKey::between(index.last_key().as_ref(), None);
            // The authority picks the replication id: never the author's track id.
            world.spawn((track, QueuePosition(key), NetId::fresh(), Replicated));
            Ok(Applied::TrackAdded(*track_id))
        }
        A::RemoveTrack { track_id } => {
            let (entity, _) = track(world, *track_id)?;
            if session.clock.track == Some(*track_id) {
                let next = world.resource::<QueueIndex>().next_after(*track_id, world);
                let mut clock = session.clock.clone();
                move_clock_to(&mut clock, next, now);
                set_clock(world, session.entity, clock);
            }
            world.despawn(entity);
            Ok(Applied::Done)
        }
        A::MoveTrack { track_id, after } => {
            let (entity, _) = track(world, *track_id)?;
            if *after == Some(*track_id) {
                return Err(bad("a track cannot be moved after itself"));
            }
            if let Some(after) = after {
                track(world, *after)?;
            }
            let index = world.resource::<QueueIndex>();
            let before_key = after.and_then(|a| index.key_of(a, world));
            // The neighbour that will follow the moved track, skipping the track itself.
            let mut following = match after {
                Some(a) => index.next_after(*a, world),
                None => index.first(),
            };
            if following == Some(*track_id) {
                following = index.next_after(*track_id, world);
            }
            let after_key = following.and_then(|f| index.key_of(f, world));
            let key = QueueKey::between(before_key.as_ref(), after_key.as_ref());
            if key.as_str().len() > limits::MAX_QUEUE_KEY_CHARS {
                return Err(limits::too_large(format!(
                    "moving it there needs a queue key longer than {} characters; move it \
                     somewhere else first",
                    limits::MAX_QUEUE_KEY_CHARS
                )));
            }
            world.entity_mut(entity).insert(QueuePosition(key));
            Ok(Applied::Done)
        }
        A::Play => {
            let mut clock = session.clock.clone();
            match clock.track {
                Some(_) => clock.play(now),
                None => {
                    let first = world
                        .resource::<QueueIndex>()
                        .first()
                        .ok_or_else(|| not_found("the queue is empty: add a track first"))?;
                    clock.start(first, PlayState::Playing, now);
                }
            }
            set_clock(world, session.entity, clock);
            Ok(Applied::Done)
        }
        A::Pause => {
            let mut clock = session.clock.clone();
            if clock.state == PlayState::Playing {
                clock.pause(now);
                set_clock(world, session.entity, clock);
            }
            Ok(Applied::Done)
        }
        A::Next => {
            let index = world.resource::<QueueIndex>();
            let next = match session.clock.track {
                Some(current) => index.next_after(current, world),
                None => index.first(),
            };
            let mut clock = session.clock.clone();
            move_clock_to(&mut clock, next, now);
            set_clock(world, session.entity, clock);
            Ok(Applied::Done)
        }
        A::Seek { position_ms } => {
            let current = session
                .clock
                .track
                .ok_or_else(|| bad("nothing is playing, so there is nothing to seek in"))?;
            let (_, t) = track(world, current)?;
            let mut clock = session.clock.clone();
            clock.seek((*position_ms).min(t.duration_ms), now);
            set_clock(world, session.entity, clock);
            Ok(Applied::Done)
        }
        A::TakePlayback => {
            set_owner(world, session.entity, author.clone());
            Ok(Applied::Done)
        }
        A::HandOff { to } => {
            set_owner(world, session.entity, to.clone());
            Ok(Applied::Done)
        }
        A::AddCohost { peer } => {
            if *peer == session.host.0 {
                return Err(bad("the host cannot also be a co-host"));
            }
            if session.member(peer).is_none() {
                return Err(not_found(format!("no participant {peer} in this session")));
            }
            if !session.cohosts.0.contains(peer) {
                let mut cohosts = session.cohosts.clone();
                cohosts.0.push(peer.clone());
                world.entity_mut(session.entity).insert(cohosts);
            }
            Ok(Applied::Done)
        }
        A::TransferHost { to } => {
            if !session.cohosts.0.contains(to) {
                return Err(not_found(format!("{to} is not a co-host")));
            }
            // The old host stays as the last co-host; the term goes up, so everyone (the old
            // host included) follows the new one.
            let mut cohosts = session.cohosts.clone();
            cohosts.0.retain(|p| p != to);
            cohosts.0.push(session.host.0.clone());
            let term = world
                .get::<HostTerm>(session.entity)
                .copied()
                .unwrap_or_default();
            world.entity_mut(session.entity).insert((
                Host(to.clone()),
                cohosts,
                term.next(HostChange::Handoff),
            ));
            Ok(Applied::Done)
        }
        A::RemoveCohost { peer } => {
            if !session.cohosts.0.contains(peer) {
                return Err(not_found(format!("{peer} is not a co-host")));
            }
            let mut cohosts = session.cohosts.clone();
            cohosts.0.retain(|p| p != peer);
            world.entity_mut(session.entity).insert(cohosts);
            // Playback belongs to the host or a co-host; a demoted owner gives it back.
            if session.owner.0 == *peer {
                set_owner(world, session.entity, session.host.0.clone());
            }
            Ok(Applied::Done)
        }
        A::ApproveKnock { peer } | A::DenyKnock { peer } => {
            let approve = matches!(action, A::ApproveKnock { .. });
            let mut knocks = world.resource_mut::<Knocks>();
            let knock = knocks
                .0
                .iter_mut()
                .find(|k| k.peer == *peer && k.decision.is_none())
                .ok_or_else(|| not_found(format!("no knock from {peer} is waiting")))?;
            knock.decision = Some(approve);
            Ok(Applied::Done)
        }
        A::RemoveMember { peer, ban } => {
            if *peer == *author {
                return Err(bad("to remove yourself, leave the party"));
            }
            let entity = world
                .query::<(Entity, &Participant)>()
                .iter(world)
                .find(|(_, p)| p.peer == *peer)
                .map(|(e, _)| e)
                .ok_or_else(|| not_found(format!("no participant {peer} in this session")))?;
            world.despawn(entity);
            if session.cohosts.0.contains(peer) {
                let mut cohosts = session.cohosts.clone();
                cohosts.0.retain(|p| p != peer);
                world.entity_mut(session.entity).insert(cohosts);
            }
            if session.owner.0 == *peer {
                set_owner(world, session.entity, session.host.0.clone());
            }
            world.resource_mut::<Knocks>().0.retain(|k| k.peer != *peer);
            let mut access = world
                .get::<SessionAccess>(session.entity)
                .cloned()
                .unwrap_or_default();
            access.revoked.insert(peer.clone());
            if *ban {
                access.banned.insert(peer.clone());
            }
            world.entity_mut(session.entity).insert(access);
            world.write_message(MemberRemoved {
                peer: peer.clone(),
                banned: *ban,
            });
            Ok(Applied::Done)
        }
        A::React { emoji, track_id } => {
            let about = match track_id {
                Some(id) => Some(track(world, *id)?.1.id),
                None => session.clock.track,
            };
            let mut reactions = world
                .get::<Reactions>(session.entity)
                .cloned()
                .unwrap_or_default();
            reactions.push(*emoji, author.clone(), about, now);
            world.entity_mut(session.entity).insert(reactions);
            Ok(Applied::Done)
        }
    }
}

/// Moves playback to `next` from its start, keeping play/pause, or stops at the queue's end.
fn move_clock_to(clock: &mut PlaybackClock, next: Option<TrackId>, now_ms: u64) {
    match next {
        Some(track) => {
            let state = match clock.state {
                PlayState::Stopped => PlayState::Paused,
                state => state,
            };
            clock.start(track, state, now_ms);
        }
        None => *clock = PlaybackClock::stopped(),
    }
}

fn set_clock(world: &mut World, session: Entity, clock: PlaybackClock) {
    world.entity_mut(session).insert(clock);
}

fn set_owner(world: &mut World, session: Entity, owner: PeerId) {
    if world.get::<PlaybackOwner>(session).map(|o| &o.0) != Some(&owner) {
        world.entity_mut(session).insert(PlaybackOwner(owner));
    }
}

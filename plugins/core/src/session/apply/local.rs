//! Local actions: they change this device only (its name, relays, library) or start and
//! end its session. No role rules apply.

use bevy::prelude::*;

use super::{MAX_TEXT_CHARS, bad, clean_text, not_found, session_entity};
use crate::clock::PlaybackClock;
use crate::components::*;
use crate::ids::{NetId, PeerId, SessionId};
use crate::intent::*;
use crate::limits;
use crate::media::Listening;
use crate::relay::validate_relay_addr;
use crate::wake::AppWaker;

/// Applies a local action.
pub(super) fn apply_local(world: &mut World, action: &LocalAction) -> Result<Applied, IntentError> {
    match action {
        LocalAction::SetDisplayName { name } => {
            let name = clean_text("a display name", name)?;
            let me = world.resource::<LocalPeer>().peer.clone();
            world.resource_mut::<LocalPeer>().display_name = name.clone();
            if let Some(mut chosen) = world.get_resource_mut::<DisplayNameChosen>() {
                chosen.0 = true;
            }
            let mut participants = world.query::<&mut Participant>();
            for mut p in participants.iter_mut(world) {
                if p.peer == me {
                    p.display_name = name.clone();
                }
            }
            Ok(Applied::Done)
        }
        LocalAction::AddRelay { addr } => {
            limits::check_bytes("a relay address", addr, limits::MAX_RELAY_ADDR_BYTES)?;
            let addr = validate_relay_addr(addr).map_err(|e| bad(e.to_string()))?;
            let mut relays = world.resource_mut::<Relays>();
            if !relays.0.iter().any(|r| r.addr == addr) {
                relays.0.push(RelayEntry {
                    addr,
                    status: RelayStatus::Disconnected,
                });
            }
            Ok(Applied::Done)
        }
        LocalAction::RemoveRelay { addr } => {
            let mut relays = world.resource_mut::<Relays>();
            let before = relays.0.len();
            relays.0.retain(|r| r.addr != *addr);
            if relays.0.len() == before {
                return Err(not_found(format!("no relay `{addr}` in the relay list")));
            }
            Ok(Applied::Done)
        }
        LocalAction::CreateSession { session_id, name } => {
            let name = clean_text("a session name", name)?;
            if let Some(entity) = session_entity(world) {
                let current = world.get::<Session>(entity).map(|s| s.name.clone());
                return Err(bad(format!(
                    "already in session \"{}\"; leave it first",
                    current.unwrap_or_default()
                )));
            }
            let me = world.resource::<LocalPeer>().clone();
            spawn_session(world, session_id.clone(), name, &me);
            Ok(Applied::SessionCreated(session_id.clone()))
        }
        LocalAction::JoinSession { .. } => Err(IntentError::new(
            ErrorCode::Unreachable,
            "whatnext is offline (started with --offline, or the network failed to start), so it cannot join",
        )),
        LocalAction::AddToLibrary {
            track_id,
            title,
            artist,
            duration_ms,
            path,
        } => {
            limits::check_path(path.as_deref())?;
            limits::check_duration(*duration_ms)?;
            let track = LibraryTrack {
                id: *track_id,
                title: clean_text("a track title", title)?,
                artist: artist.trim().chars().take(MAX_TEXT_CHARS).collect(),
                duration_ms: *duration_ms,
                path: path.clone(),
            };
            let mut library = world.get_resource_or_insert_with(Library::default);
            if library.0.iter().any(|t| t.id == track.id) {
                return Err(bad("that track is in the library already"));
            }
            library.0.push(track);
            Ok(Applied::Done)
        }
        LocalAction::SetListening { on } => {
            let mut listening = world.resource_mut::<Listening>();
            if listening.0 != *on {
                listening.0 = *on;
            }
            Ok(Applied::Done)
        }
        LocalAction::AddFile { .. } => Err(IntentError::new(
            ErrorCode::Internal,
            "this build of whatnext cannot read audio files (no media plugin)",
        )),
        LocalAction::ImportFolder { .. } => Err(IntentError::new(
            ErrorCode::Internal,
            "this build of whatnext cannot import folders (no library plugin)",
        )),
        LocalAction::LeaveSession => {
            let Some(session) = session_entity(world) else {
                return Err(IntentError::new(
                    ErrorCode::NotInSession,
                    "not in a session",
                ));
            };
            // A host with a co-host online hands the party over instead of ending it.
            if let Some(successor) = online_cohost_of_hosted(world, session) {
                hand_over_and_leave(world, session, successor);
                return Ok(Applied::Done);
            }
            world.resource_mut::<PendingLeaveReason>().0 = Some(LeaveReason::Left);
            despawn_session(world);
            Ok(Applied::Done)
        }
        LocalAction::EndSession => {
            let me = world.resource::<LocalPeer>().peer.clone();
            let host = world
                .query::<&Host>()
                .iter(world)
                .next()
                .map(|h| h.0.clone());
            match host {
                None => Err(IntentError::new(
                    ErrorCode::NotInSession,
                    "not in a session",
                )),
                Some(host) if host != me => Err(IntentError::new(
                    ErrorCode::NotPermitted,
                    "only the host can end the party for everyone; leave it instead",
                )),
                Some(_) => {
                    world.resource_mut::<PendingLeaveReason>().0 = Some(LeaveReason::Ended);
                    despawn_session(world);
                    Ok(Applied::Done)
                }
            }
        }
        LocalAction::RotateInvite => {
            let me = world.resource::<LocalPeer>().peer.clone();
            let mut hosted = world.query::<(&Host, &mut SessionAccess)>();
            let Some((_, mut access)) = hosted.iter_mut(world).find(|(h, _)| h.0 == me) else {
                return Err(IntentError::new(
                    ErrorCode::NotPermitted,
                    "only the host can make a new invite",
                ));
            };
            access.generation = access.generation.wrapping_add(1);
            Ok(Applied::Done)
        }
    }
}

/// The first co-host (in promotion order) this device sees online, when it hosts `session`.
fn online_cohost_of_hosted(world: &mut World, session: Entity) -> Option<PeerId> {
    let me = world.resource::<LocalPeer>().peer.clone();
    if world.get::<Host>(session).is_none_or(|h| h.0 != me) {
        return None;
    }
    let cohosts = world.get::<CoHosts>(session)?.0.clone();
    let online: Vec<PeerId> = world
        .query::<(&Participant, &Presence)>()
        .iter(world)
        .filter(|(_, presence)| presence.online)
        .map(|(p, _)| p.peer.clone())
        .collect();
    cohosts.into_iter().find(|c| online.contains(c))
}

/// The host leaves: `successor` hosts the next term (the leaving host is no co-host of it),
/// and this device leaves in the next frame, after the update that says so has gone out.
fn hand_over_and_leave(world: &mut World, session: Entity, successor: PeerId) {
    let mut cohosts = world.get::<CoHosts>(session).cloned().unwrap_or_default();
    cohosts.0.retain(|c| *c != successor);
    let term = world.get::<HostTerm>(session).copied().unwrap_or_default();
    world
        .entity_mut(session)
        .insert((Host(successor), cohosts, term.next(HostChange::HostLeft)));
    world.resource_mut::<LeaveAfterHandover>().0 = true;
    if let Some(waker) = world.get_resource::<AppWaker>() {
        waker.wake();
    }
}

/// Spawns a new session hosted by `host`, who is its first participant and playback owner.
pub fn spawn_session(world: &mut World, id: SessionId, name: String, host: &LocalPeer) -> Entity {
    let net_id = NetId::fresh();
    let session = world
        .spawn((
            Session { id, name },
            Host(host.peer.clone()),
            HostTerm::default(),
            CoHosts::default(),
            PlaybackOwner(host.peer.clone()),
            PlaybackClock::stopped(),
            SessionAccess::default(),
            net_id,
            Replicated,
        ))
        .id();
    world.spawn((
        Participant {
            peer: host.peer.clone(),
            display_name: host.display_name.clone(),
            display: false,
        },
        Presence {
            online: true,
            connection: Connection::Myself,
        },
        NetId::fresh(),
        Replicated,
    ));
    session
}

/// Removes the session, its participants and its tracks from the world.
pub fn despawn_session(world: &mut World) {
    world.resource_mut::<Knocks>().0.clear();
    world.resource_mut::<RejoinInvite>().0 = None;
    *world.resource_mut::<SessionInvite>() = SessionInvite::default();
    let doomed: Vec<Entity> = world
        .query_filtered::<Entity, Or<(With<Session>, With<Participant>, With<Track>)>>()
        .iter(world)
        .collect();
    for entity in doomed {
        world.despawn(entity);
    }
}

//! A read model of the session for front ends: the control protocol's `session.state` and
//! the UI both draw from [`SessionReader`], so they cannot disagree.

use bevy::ecs::system::SystemParam;
use bevy::prelude::*;
use serde::Serialize;

use crate::clock::{PlayState, PlaybackClock, WallClock};
use crate::components::*;
use crate::ids::{PeerId, SessionId, TrackId};
use crate::rules::{Role, SessionRoles};

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SessionSnapshot {
    pub session_id: SessionId,
    pub name: String,
    pub host: PeerId,
    pub cohosts: Vec<PeerId>,
    pub playback_owner: PeerId,
    pub participants: Vec<ParticipantView>,
    pub queue: Vec<TrackView>,
    pub playback: PlaybackView,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ParticipantView {
    pub peer_id: PeerId,
    pub display_name: String,
    pub role: Role,
    pub online: bool,
    pub connection: Connection,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TrackView {
    #[serde(serialize_with = "as_text")]
    pub track_id: TrackId,
    pub title: String,
    pub artist: String,
    pub duration_ms: u64,
    pub added_by: PeerId,
    pub pending: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PlaybackView {
    pub state: PlayState,
    #[serde(serialize_with = "optional_as_text")]
    pub track_id: Option<TrackId>,
    pub position_ms: u64,
}

#[derive(SystemParam)]
pub struct SessionReader<'w, 's> {
    wall: Res<'w, WallClock>,
    index: Res<'w, QueueIndex>,
    local: Res<'w, LocalPeer>,
    sessions: Query<
        'w,
        's,
        (
            &'static Session,
            &'static Host,
            &'static CoHosts,
            &'static PlaybackOwner,
            &'static PlaybackClock,
        ),
    >,
    participants: Query<'w, 's, (&'static Participant, Option<&'static Presence>)>,
    tracks: Query<'w, 's, (&'static Track, Has<Pending>)>,
}

impl SessionReader<'_, '_> {
    pub fn in_session(&self) -> bool {
        !self.sessions.is_empty()
    }

    pub fn local_peer(&self) -> &LocalPeer {
        &self.local
    }

    /// The local peer's role, if in a session.
    pub fn my_role(&self) -> Option<Role> {
        let (_, host, cohosts, _, _) = self.sessions.iter().next()?;
        let me = self
            .participants
            .iter()
            .find(|(p, _)| p.peer == self.local.peer)
            .map(|(p, _)| p);
        Some(role_of(&self.local.peer, host, cohosts, me))
    }

    pub fn track(&self, id: TrackId) -> Option<TrackView> {
        let entity = self.index.entity(id)?;
        self.tracks.get(entity).ok().map(track_view)
    }

    /// The queue in play order.
    pub fn queue(&self) -> impl Iterator<Item = TrackView> + '_ {
        self.index
            .in_order()
            .filter_map(|(_, e)| self.tracks.get(e).ok().map(track_view))
    }

    pub fn queue_len(&self) -> usize {
        self.index.len()
    }

    /// Tracks `range` of the queue in play order, for lists that draw only visible rows.
    pub fn queue_rows(&self, range: std::ops::Range<usize>) -> Vec<TrackView> {
        self.queue().skip(range.start).take(range.len()).collect()
    }

    pub fn playback(&self) -> Option<PlaybackView> {
        let (_, _, _, _, clock) = self.sessions.iter().next()?;
        Some(PlaybackView {
            state: clock.state,
            track_id: clock.track,
            position_ms: clock.position_at(self.wall.now_ms),
        })
    }

    pub fn snapshot(&self) -> Option<SessionSnapshot> {
        let (session, host, cohosts, owner, _) = self.sessions.iter().next()?;
        let mut participants: Vec<ParticipantView> = self
            .participants
            .iter()
            .map(|(p, presence)| ParticipantView {
                peer_id: p.peer.clone(),
                display_name: p.display_name.clone(),
                role: role_of(&p.peer, host, cohosts, Some(p)),
                online: presence.is_some_and(|pr| pr.online),
                connection: presence.map_or(Connection::Relayed, |pr| pr.connection),
            })
            .collect();
        participants.sort_by_key(|p| (role_rank(p.role), p.display_name.to_lowercase()));
        Some(SessionSnapshot {
            session_id: session.id.clone(),
            name: session.name.clone(),
            host: host.0.clone(),
            cohosts: cohosts.0.clone(),
            playback_owner: owner.0.clone(),
            participants,
            queue: self.queue().collect(),
            playback: self.playback()?,
        })
    }
}

/// The read model answers the role rules' questions, so a front end can ask
/// [`facts_for`](crate::rules::facts_for) what its user may do.
impl SessionRoles for SessionSnapshot {
    fn role_of(&self, peer: &PeerId) -> Option<Role> {
        match self.participants.iter().find(|p| p.peer_id == *peer) {
            Some(p) => Some(p.role),
            None => (self.host == *peer).then_some(Role::Host),
        }
    }

    fn playback_owner(&self) -> &PeerId {
        &self.playback_owner
    }

    fn added_by(&self, track: TrackId) -> Option<&PeerId> {
        self.queue
            .iter()
            .find(|t| t.track_id == track)
            .map(|t| &t.added_by)
    }
}

fn role_rank(role: Role) -> u8 {
    match role {
        Role::Host => 0,
        Role::CoHost => 1,
        Role::Guest => 2,
        Role::Display => 3,
    }
}

fn track_view((track, pending): (&Track, bool)) -> TrackView {
    TrackView {
        track_id: track.id,
        title: track.title.clone(),
        artist: track.artist.clone(),
        duration_ms: track.duration_ms,
        added_by: track.added_by.clone(),
        pending,
    }
}

/// Track ids travel as their 16-digit hex text in JSON, the form users pass back.
fn as_text<S: serde::Serializer>(id: &TrackId, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(id)
}

fn optional_as_text<S: serde::Serializer>(id: &Option<TrackId>, s: S) -> Result<S::Ok, S::Error> {
    match id {
        Some(id) => s.collect_str(id),
        None => s.serialize_none(),
    }
}

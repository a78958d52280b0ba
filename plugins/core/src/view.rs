//! A read model of the session for front ends: the control protocol's `session.state` and
//! the UI both draw from [`SessionReader`], so they cannot disagree.

use bevy::ecs::system::SystemParam;
use bevy::prelude::*;
use serde::Serialize;

use crate::clock::{PlayState, PlaybackClock, WallClock};
use crate::components::*;
use crate::ids::{PeerId, SessionId, TrackId};
use crate::media::{
    AudioFormat, ContentHash, Listening, LocalFiles, Media, MediaState, MediaStates,
};
use crate::rules::{Role, SessionRoles};

/// The whole session as front ends and the control protocol show it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SessionSnapshot {
    /// The session's id.
    pub session_id: SessionId,
    /// Its name.
    pub name: String,
    /// The host.
    pub host: PeerId,
    /// The co-hosts, in the order they were added.
    pub cohosts: Vec<PeerId>,
    /// Who owns playback.
    pub playback_owner: PeerId,
    /// Everyone in the session, host first, then co-hosts, guests and screens.
    pub participants: Vec<ParticipantView>,
    /// The queue in play order.
    pub queue: Vec<TrackView>,
    /// Where playback stands.
    pub playback: PlaybackView,
    /// This device plays along with the shared clock ("Listen along").
    pub listening: bool,
}

/// One participant as shown.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ParticipantView {
    /// Who it is.
    pub peer_id: PeerId,
    /// Their chosen name.
    pub display_name: String,
    /// Their role.
    pub role: Role,
    /// Reachable now.
    pub online: bool,
    /// How this device reaches them.
    pub connection: Connection,
}

/// One queued track as shown.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TrackView {
    /// The track's id (hex text in JSON).
    #[serde(serialize_with = "as_text")]
    pub track_id: TrackId,
    /// The track's title.
    pub title: String,
    /// The artist.
    pub artist: String,
    /// Its length.
    pub duration_ms: u64,
    /// Who added it.
    pub added_by: PeerId,
    /// A guest's addition the host has not confirmed yet.
    pub pending: bool,
    /// Its audio by content and where that stands here; `None` for a track without a file.
    pub media: Option<MediaView>,
}

/// A track's audio as shown: never a path (paths are local; `track.media` gives this
/// device's own copy).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MediaView {
    /// The file's BLAKE3 hash, as 64 hex characters.
    #[serde(serialize_with = "hash_as_text")]
    pub hash: ContentHash,
    /// Its length in bytes.
    pub size: u64,
    /// Its audio format.
    pub format: AudioFormat,
    /// `here`, `fetching`, `missing` or `unavailable`.
    pub state: &'static str,
    /// How much of it is here, 0.0 to 1.0.
    pub progress: f32,
    /// While fetching: who from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<PeerId>,
    /// When unavailable: who is known to hold it (all offline).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub holders: Vec<PeerId>,
}

impl MediaView {
    /// The view of `media` in `state`.
    pub fn new(media: &Media, state: &MediaState) -> Self {
        let (from, holders) = match state {
            MediaState::Fetching { from, .. } => (Some(from.clone()), Vec::new()),
            MediaState::Unavailable { holders } => (None, holders.clone()),
            _ => (None, Vec::new()),
        };
        Self {
            hash: media.hash,
            size: media.size,
            format: media.format,
            state: state.name(),
            progress: state.progress(),
            from,
            holders,
        }
    }
}

fn hash_as_text<S: serde::Serializer>(hash: &ContentHash, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(hash)
}

/// Playback as shown.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PlaybackView {
    /// Playing, paused or stopped.
    pub state: PlayState,
    /// The current track, if any.
    #[serde(serialize_with = "optional_as_text")]
    pub track_id: Option<TrackId>,
    /// The position now (from the wall clock).
    pub position_ms: u64,
}

/// Reads the session for display: what front ends and the control protocol show. Systems
/// take it as a parameter; it only reads, so any number of them run side by side.
///
/// ```rust
/// use bevy::ecs::system::SystemState;
/// use bevy::prelude::*;
/// use whatnext_core::prelude::*;
///
/// /// What a front end might keep: the session's name and the queue's titles.
/// #[derive(Resource, Default)]
/// struct Shown(Option<(String, Vec<String>)>);
///
/// fn show(reader: SessionReader, mut shown: ResMut<Shown>) {
///     shown.0 = reader.snapshot().map(|session| {
///         let titles = session.queue.into_iter().map(|t| t.title).collect();
///         (session.name, titles)
///     });
/// }
///
/// let mut app = App::new();
/// app.add_plugins(SessionPlugin)
///     .insert_resource(LocalPeer {
///         peer: PeerId::new("me"),
///         display_name: "Me".into(),
///     })
///     .init_resource::<Relays>()
///     .init_resource::<Shown>()
///     .add_systems(PostUpdate, show.after(SessionSet::Events));
///
/// // Sent from outside a system here; a front end's system takes `IntentSender` instead.
/// let mut sender = SystemState::<IntentSender>::new(app.world_mut());
/// let actions = [
///     Action::Local(LocalAction::CreateSession {
///         session_id: SessionId("S".into()),
///         name: "Friday".into(),
///     }),
///     Action::Session(SessionAction::AddTrack {
///         track_id: TrackId(1),
///         title: "Song".into(),
///         artist: "Band".into(),
///         duration_ms: 180_000,
///         media: None,
///     }),
/// ];
/// for action in actions {
///     let mut intents = sender.get_mut(app.world_mut()).expect("SessionPlugin's resources");
///     intents.send(action);
///     app.update();
/// }
///
/// let shown = app.world().resource::<Shown>();
/// assert_eq!(shown.0, Some(("Friday".into(), vec!["Song".into()])));
/// ```
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
    files: Option<Res<'w, LocalFiles>>,
    media_states: Option<Res<'w, MediaStates>>,
    listening: Option<Res<'w, Listening>>,
}

impl SessionReader<'_, '_> {
    /// This device is in a session.
    pub fn in_session(&self) -> bool {
        !self.sessions.is_empty()
    }

    /// This device's identity.
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

    /// The queued track `id`, if it is in the queue.
    pub fn track(&self, id: TrackId) -> Option<TrackView> {
        let entity = self.index.entity(id)?;
        self.tracks.get(entity).ok().map(|t| self.track_view(t))
    }

    /// The queue in play order.
    pub fn queue(&self) -> impl Iterator<Item = TrackView> + '_ {
        self.index
            .in_order()
            .filter_map(|(_, e)| self.tracks.get(e).ok().map(|t| self.track_view(t)))
    }

    /// How many tracks are queued.
    pub fn queue_len(&self) -> usize {
        self.index.len()
    }

    /// Tracks `range` of the queue in play order, for lists that draw only visible rows.
    pub fn queue_rows(&self, range: std::ops::Range<usize>) -> Vec<TrackView> {
        self.queue().skip(range.start).take(range.len()).collect()
    }

    /// Where a track's file stands on this device.
    pub fn media_state(&self, media: &Media) -> MediaState {
        match (&self.files, &self.media_states) {
            (Some(files), Some(states)) => states.of(media, files),
            (Some(files), None) if files.path_of(&media.hash).is_some() => MediaState::Here,
            _ => MediaState::Missing,
        }
    }

    fn track_view(&self, (track, pending): (&Track, bool)) -> TrackView {
        TrackView {
            track_id: track.id,
            title: track.title.clone(),
            artist: track.artist.clone(),
            duration_ms: track.duration_ms,
            added_by: track.added_by.clone(),
            pending,
            media: track
                .media
                .as_ref()
                .map(|m| MediaView::new(m, &self.media_state(m))),
        }
    }

    /// Where playback stands now, if in a session.
    pub fn playback(&self) -> Option<PlaybackView> {
        let (_, _, _, _, clock) = self.sessions.iter().next()?;
        Some(PlaybackView {
            state: clock.state,
            track_id: clock.track,
            position_ms: clock.position_at(self.wall.now_ms),
        })
    }

    /// The whole session, if in one.
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
            listening: self.listening.as_ref().is_some_and(|l| l.0),
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

/// Track ids travel as their 16-digit hex text in JSON, the form users pass back.
fn as_text<S: serde::Serializer>(id: &TrackId, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(id)
}

pub(crate) fn optional_as_text<S: serde::Serializer>(
    id: &Option<TrackId>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match id {
        Some(id) => s.collect_str(id),
        None => s.serialize_none(),
    }
}

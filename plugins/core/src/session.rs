//! `SessionPlugin`: applies intents to the session entities on the authority, keeps the
//! playback clock moving through the queue, and reports what changed as `SessionEvent`s.

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use bevy::ecs::system::SystemState;
use bevy::prelude::*;

use crate::clock::{PlayState, PlaybackClock, WallClock};
use crate::components::*;
use crate::ids::{IntentId, NetId, PeerId, SessionId, TrackId};
use crate::intent::*;
use crate::order::QueueKey;
use crate::relay::validate_relay_addr;
use crate::rules::{Facts, authorize};

/// Longest display, session and track text accepted, in characters.
pub const MAX_TEXT_CHARS: usize = 200;

pub struct SessionPlugin;

/// Ordering for other plugins: front ends write intents before `Apply`, and read events after.
#[derive(SystemSet, Debug, Clone, PartialEq, Eq, Hash)]
pub enum SessionSet {
    Apply,
    Events,
}

impl Plugin for SessionPlugin {
    fn build(&self, app: &mut App) {
        app.init_resource::<QueueIndex>()
            .init_resource::<WallClock>()
            .init_resource::<Library>()
            .init_resource::<AppliedIntents>()
            .init_resource::<IntentCounter>()
            .init_resource::<SessionInvite>()
            .init_resource::<Knocks>()
            .init_resource::<Outbox>()
            .init_resource::<RejoinInvite>()
            .add_message::<Intent>()
            .add_message::<IntentOutcome>()
            .add_message::<TrackRemoved>()
            .add_message::<SessionEvent>()
            .add_systems(First, tick_wall_clock)
            .add_systems(
                Update,
                (apply_intents, advance_finished_track)
                    .chain()
                    .in_set(SessionSet::Apply),
            )
            .add_systems(PostUpdate, emit_session_events.in_set(SessionSet::Events))
            .add_systems(Last, forget_restored);
    }
}

/// In `Last`: storage writes the frame's changes here. Anything that confirms a change to a
/// user runs after it, so a confirmed change is on disk.
#[derive(SystemSet, Debug, Clone, PartialEq, Eq, Hash)]
pub struct PersistSet;

/// Loaded from storage at start: its arrival is not news, so no `added` events for it.
#[derive(Component, Copy, Clone, Debug, Default)]
pub struct Restored;

/// Successful intents already applied, by id, so that a re-delivered intent changes nothing
/// and gets the same answer. Storage persists them (`unsaved` is what it has not written yet),
/// so this holds across a host restart too.
#[derive(Resource, Default, Debug)]
pub struct AppliedIntents {
    pub by_id: HashMap<IntentId, Applied>,
    pub unsaved: Vec<(IntentId, Applied)>,
}

/// The next counter for this device's intent ids. Storage persists it, and it starts no lower
/// than the clock in microseconds, so ids stay unique across restarts.
#[derive(Resource, Debug)]
pub struct IntentCounter(pub u64);

impl Default for IntentCounter {
    fn default() -> Self {
        Self(now_ms().saturating_mul(1_000))
    }
}

/// Builds intents authored by this device. Every front end sends its actions through this.
#[derive(bevy::ecs::system::SystemParam)]
pub struct IntentSender<'w> {
    local: Res<'w, LocalPeer>,
    counter: ResMut<'w, IntentCounter>,
    writer: MessageWriter<'w, Intent>,
}

impl IntentSender<'_> {
    /// Sends `action` and returns the id its outcome will carry.
    pub fn send(&mut self, action: Action) -> IntentId {
        self.counter.0 += 1;
        let id = IntentId {
            author: self.local.peer.clone(),
            counter: self.counter.0,
        };
        self.writer.write(Intent {
            id: id.clone(),
            action,
        });
        id
    }
}

/// What happened to the session, for front ends and extensions. Derived from component
/// changes, so it reports the same facts whatever caused them.
#[derive(Message, Clone, Debug, PartialEq, Eq)]
pub enum SessionEvent {
    SessionJoined {
        session_id: SessionId,
    },
    SessionLeft {
        session_id: SessionId,
    },
    ParticipantJoined {
        peer: PeerId,
    },
    ParticipantLeft {
        peer: PeerId,
    },
    TrackAdded {
        track_id: TrackId,
    },
    TrackRemoved {
        track_id: TrackId,
    },
    QueueChanged,
    PlaybackChanged,
    OwnerChanged {
        owner: PeerId,
    },
    CohostsChanged,
    /// A track began playing (a new current track, while playing).
    TrackStarted {
        track_id: TrackId,
    },
}

pub fn now_ms() -> u64 {
    let local = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    local.saturating_add_signed(test_clock_skew_ms())
}

/// `WHATNEXT_TEST_CLOCK_SKEW_MS` moves this process's wall clock, so tests can run peers
/// whose system clocks disagree on one machine. Read once.
fn test_clock_skew_ms() -> i64 {
    static SKEW: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    *SKEW.get_or_init(|| {
        std::env::var("WHATNEXT_TEST_CLOCK_SKEW_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    })
}

fn tick_wall_clock(mut clock: ResMut<WallClock>) {
    if !clock.frozen {
        clock.now_ms = now_ms().saturating_add_signed(clock.offset_ms);
    }
}

fn apply_intents(world: &mut World, reader: &mut SystemState<MessageReader<Intent>>) -> Result {
    let intents: Vec<Intent> = reader.get_mut(world)?.read().cloned().collect();
    let network = world.contains_resource::<NetworkPresent>();
    for intent in intents {
        // With a network, joining is its job: it answers once the host has. Likewise a
        // guest's session intents go to the host, which answers.
        let joining = matches!(
            intent.action,
            Action::Local(LocalAction::JoinSession { .. })
        );
        let guest_session_intent =
            matches!(intent.action, Action::Session(_)) && !is_authority(world);
        if network && (joining || guest_session_intent) {
            continue;
        }
        // Scanning a folder is I/O: the library plugin answers it.
        let importing = matches!(
            intent.action,
            Action::Local(LocalAction::ImportFolder { .. })
        );
        if importing && world.contains_resource::<FolderImporter>() {
            continue;
        }
        let result = apply_intent(world, &intent);
        if let Err(error) = &result {
            tracing::debug!(intent = ?intent.action, %error, "intent changed nothing");
        }
        world.write_message(IntentOutcome {
            id: intent.id,
            result,
        });
    }
    Ok(())
}

/// Applies one intent to the world, or explains why it changed nothing.
pub fn apply_intent(world: &mut World, intent: &Intent) -> Result<Applied, IntentError> {
    if let Some(done) = world.resource::<AppliedIntents>().by_id.get(&intent.id) {
        return Ok(done.clone());
    }
    let applied = match &intent.action {
        Action::Local(action) => apply_local(world, action)?,
        Action::Session(action) => apply_session(world, &intent.id.author, action)?,
    };
    let mut done = world.resource_mut::<AppliedIntents>();
    done.by_id.insert(intent.id.clone(), applied.clone());
    done.unsaved.push((intent.id.clone(), applied.clone()));
    Ok(applied)
}

fn bad(message: impl Into<String>) -> IntentError {
    IntentError::new(ErrorCode::BadRequest, message)
}

fn not_found(message: impl Into<String>) -> IntentError {
    IntentError::new(ErrorCode::NotFound, message)
}

/// Trims `text` and checks it is a usable name.
fn clean_text(what: &str, text: &str) -> Result<String, IntentError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(bad(format!("{what} cannot be empty")));
    }
    if text.chars().count() > MAX_TEXT_CHARS {
        return Err(bad(format!(
            "{what} is longer than {MAX_TEXT_CHARS} characters"
        )));
    }
    Ok(text.to_owned())
}

/// This device hosts the current session (or there is none, so nothing to forward).
pub fn is_authority(world: &mut World) -> bool {
    let me = world.resource::<LocalPeer>().peer.clone();
    world
        .query::<&Host>()
        .iter(world)
        .next()
        .is_none_or(|host| host.0 == me)
}

fn session_entity(world: &mut World) -> Option<Entity> {
    world
        .query_filtered::<Entity, With<Session>>()
        .iter(world)
        .next()
}

fn apply_local(world: &mut World, action: &LocalAction) -> Result<Applied, IntentError> {
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
        LocalAction::ImportFolder { .. } => Err(IntentError::new(
            ErrorCode::Internal,
            "this build of whatnext cannot import folders (no library plugin)",
        )),
        LocalAction::LeaveSession => {
            if session_entity(world).is_none() {
                return Err(IntentError::new(
                    ErrorCode::NotInSession,
                    "not in a session",
                ));
            }
            despawn_session(world);
            Ok(Applied::Done)
        }
    }
}

/// Spawns a new session hosted by `host`, who is its first participant and playback owner.
pub fn spawn_session(world: &mut World, id: SessionId, name: String, host: &LocalPeer) -> Entity {
    let net_id = NetId(rand::random());
    let session = world
        .spawn((
            Session { id, name },
            Host(host.peer.clone()),
            CoHosts::default(),
            PlaybackOwner(host.peer.clone()),
            PlaybackClock::stopped(),
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
        NetId(rand::random()),
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

/// The session entity's shared state, read for one intent.
struct SessionFacts {
    entity: Entity,
    host: Host,
    cohosts: CoHosts,
    owner: PlaybackOwner,
    clock: PlaybackClock,
}

fn read_session(world: &mut World) -> Result<SessionFacts, IntentError> {
    let mut q = world.query::<(Entity, &Host, &CoHosts, &PlaybackOwner, &PlaybackClock)>();
    let (entity, host, cohosts, owner, clock) = q
        .iter(world)
        .next()
        .ok_or_else(|| IntentError::new(ErrorCode::NotInSession, "not in a session"))?;
    Ok(SessionFacts {
        entity,
        host: host.clone(),
        cohosts: cohosts.clone(),
        owner: owner.clone(),
        clock: clock.clone(),
    })
}

fn participant(world: &mut World, peer: &PeerId) -> Option<Participant> {
    world
        .query::<&Participant>()
        .iter(world)
        .find(|p| p.peer == *peer)
        .cloned()
}

fn track(world: &World, id: TrackId) -> Result<(Entity, Track), IntentError> {
    world
        .resource::<QueueIndex>()
        .entity(id)
        .and_then(|e| world.get::<Track>(e).map(|t| (e, t.clone())))
        .ok_or_else(|| not_found(format!("no track {id} in the queue")))
}

fn apply_session(
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
    let author_participant = participant(world, author);
    if author_participant.is_none() && *author != session.host.0 {
        return Err(IntentError::new(
            ErrorCode::NotPermitted,
            "only members of the session can change it",
        ));
    }
    let mut facts = Facts::of(role_of(
        author,
        &session.host,
        &session.cohosts,
        author_participant.as_ref(),
    ));
    facts.is_playback_owner = session.owner.0 == *author;
    match action {
        A::RemoveTrack { track_id } => {
            facts.added_the_track = track(world, *track_id)?.1.added_by == *author;
        }
        A::HandOff { to } => {
            let target = participant(world, to);
            if target.is_some() || *to == session.host.0 {
                facts.target_role = Some(role_of(
                    to,
                    &session.host,
                    &session.cohosts,
                    target.as_ref(),
                ));
            }
        }
        _ => {}
    }
    authorize(action, &facts).map_err(IntentError::refused)?;

    let now = world.resource::<WallClock>().now_ms;
    match action {
        A::AddTrack {
            track_id,
            title,
            artist,
            duration_ms,
            path,
        } => {
            let title = clean_text("a track title", title)?;
            let artist = artist.trim().to_owned();
            if world.resource::<QueueIndex>().entity(*track_id).is_some() {
                return Err(bad(format!("track {track_id} is already in the queue")));
            }
            let key = QueueKey::between(world.resource::<QueueIndex>().last_key(), None);
            world.spawn((
                Track {
                    id: *track_id,
                    title,
                    artist,
                    duration_ms: *duration_ms,
                    path: path.clone(),
                    added_by: author.clone(),
                },
                QueuePosition(key),
                NetId(track_id.0),
                Replicated,
            ));
            Ok(Applied::TrackAdded(*track_id))
        }
        A::RemoveTrack { track_id } => {
            let (entity, _) = track(world, *track_id)?;
            if session.clock.track == Some(*track_id) {
                let next = world.resource::<QueueIndex>().next_after(*track_id);
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
            let before_key = after.and_then(|a| index.key_of(a).cloned());
            // The neighbour that will follow the moved track, skipping the track itself.
            let mut following = match after {
                Some(a) => index.next_after(*a),
                None => index.first(),
            };
            if following == Some(*track_id) {
                following = index.next_after(*track_id);
            }
            let after_key = following.and_then(|f| index.key_of(f).cloned());
            let key = QueueKey::between(before_key.as_ref(), after_key.as_ref());
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
                Some(current) => index.next_after(current),
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
            if participant(world, peer).is_none() {
                return Err(not_found(format!("no participant {peer} in this session")));
            }
            if !session.cohosts.0.contains(peer) {
                let mut cohosts = session.cohosts.clone();
                cohosts.0.push(peer.clone());
                world.entity_mut(session.entity).insert(cohosts);
            }
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

/// On the authority, moves to the next track when the current one has played to its end.
fn advance_finished_track(
    local: Res<LocalPeer>,
    wall: Res<WallClock>,
    index: Res<QueueIndex>,
    tracks: Query<&Track>,
    mut sessions: Query<(&Host, &mut PlaybackClock)>,
) {
    let Ok((host, mut clock)) = sessions.single_mut() else {
        return;
    };
    if host.0 != local.peer || clock.state != PlayState::Playing {
        return;
    }
    let Some(current) = clock.track else { return };
    let Some(duration) = index
        .entity(current)
        .and_then(|e| tracks.get(e).ok())
        .map(|t| t.duration_ms)
    else {
        return;
    };
    if clock.position_at(wall.now_ms) < duration {
        return;
    }
    // Anchor the next track where the last one ended, so no time is lost to frame timing.
    let ended_at = clock.anchor_at_ms + duration.saturating_sub(clock.anchor_position_ms);
    match index.next_after(current) {
        Some(next) => clock.start(next, PlayState::Playing, ended_at),
        None => *clock = PlaybackClock::stopped(),
    }
}

/// Restored entities are news only in their first frame; after it they change like any other.
fn forget_restored(mut commands: Commands, restored: Query<Entity, With<Restored>>) {
    for entity in &restored {
        commands.entity(entity).remove::<Restored>();
    }
}

#[allow(clippy::too_many_arguments)]
fn emit_session_events(
    mut out: MessageWriter<SessionEvent>,
    mut known_session: Local<Option<SessionId>>,
    mut known_participants: Local<HashMap<Entity, PeerId>>,
    sessions: Query<(&Session, Has<Restored>)>,
    new_participants: Query<(Entity, &Participant, Has<Restored>), Added<Participant>>,
    mut gone_participants: RemovedComponents<Participant>,
    new_tracks: Query<&Track, (Added<Track>, Without<Restored>)>,
    mut removed_tracks: MessageReader<TrackRemoved>,
    moved: Query<(), (Changed<QueuePosition>, Without<Restored>)>,
    clocks: Query<&PlaybackClock, (Changed<PlaybackClock>, Without<Restored>)>,
    mut started: Local<Option<TrackId>>,
    owners: Query<&PlaybackOwner, (Changed<PlaybackOwner>, Without<Restored>)>,
    cohosts: Query<(), (Changed<CoHosts>, Without<Restored>)>,
) {
    let current = sessions.iter().next();
    let current_id = current.map(|(s, _)| s.id.clone());
    if *known_session != current_id {
        if let Some(left) = known_session.take() {
            out.write(SessionEvent::SessionLeft { session_id: left });
        }
        if let Some((s, false)) = current {
            out.write(SessionEvent::SessionJoined {
                session_id: s.id.clone(),
            });
        }
        *known_session = current_id;
    }
    for entity in gone_participants.read() {
        if let Some(peer) = known_participants.remove(&entity) {
            out.write(SessionEvent::ParticipantLeft { peer });
        }
    }
    for (entity, p, restored) in &new_participants {
        known_participants.insert(entity, p.peer.clone());
        if !restored {
            out.write(SessionEvent::ParticipantJoined {
                peer: p.peer.clone(),
            });
        }
    }
    for t in &new_tracks {
        out.write(SessionEvent::TrackAdded { track_id: t.id });
    }
    let mut queue_changed = !moved.is_empty();
    for removed in removed_tracks.read() {
        out.write(SessionEvent::TrackRemoved {
            track_id: removed.track_id,
        });
        queue_changed = true;
    }
    if queue_changed {
        out.write(SessionEvent::QueueChanged);
    }
    for clock in &clocks {
        out.write(SessionEvent::PlaybackChanged);
        if clock.state == PlayState::Playing
            && *started != clock.track
            && let Some(track_id) = clock.track
        {
            out.write(SessionEvent::TrackStarted { track_id });
        }
        if clock.state != PlayState::Playing || *started != clock.track {
            *started = clock.track.filter(|_| clock.state == PlayState::Playing);
        }
    }
    for owner in &owners {
        out.write(SessionEvent::OwnerChanged {
            owner: owner.0.clone(),
        });
    }
    if !cohosts.is_empty() {
        out.write(SessionEvent::CohostsChanged);
    }
}

//! `ReplicationPlugin`: one session, the same on every member's machine.
//!
//! On the authority (the host), change detection on entities marked `Replicated` becomes one
//! `Update` per tick, numbered, kept in a bounded history, and sent to admitted members only.
//! A joiner's welcome carries a snapshot taken after its own participant was added. Members
//! apply updates in order to mirrored entities found by `NetId`; a gap asks for the missing
//! updates (or a snapshot). Guests' session intents go to the host, and its answer comes back
//! as the intent's outcome.
//!
//! Registering a component is one line: `app.replicate::<MyComponent>()`.

use std::collections::{BTreeMap, HashMap, VecDeque};

use bevy::ecs::system::SystemState;
use bevy::prelude::*;
use serde::Serialize;
use serde::de::DeserializeOwned;
use whatnext_core::prelude::*;
use whatnext_network::protocol::{Change, Snapshot, Update};
use whatnext_network::session_link::PendingWelcomes;
use whatnext_network::{Members, NetCommand, NetEvent, PeerLinks, SessionRequest, SessionResponse};

/// How many past updates the authority keeps to fill a member's gap without a snapshot.
pub const HISTORY: usize = 1024;

/// How often a member that lost an update is sent the latest one again, in frames (the
/// headless loop idles at 100 ms, so about a second).
pub const RESEND_EVERY_FRAMES: u32 = 10;

pub struct ReplicationPlugin;

/// Adds `replicate::<C>()` to `App`.
pub trait AppReplicationExt {
    /// Sends `C`'s changes on `Replicated` entities from the authority to every member.
    fn replicate<
        C: Component<Mutability = bevy::ecs::component::Mutable>
            + Clone
            + Serialize
            + DeserializeOwned,
    >(
        &mut self,
    ) -> &mut Self;
}

type InsertFn = fn(&mut World, Entity, &[u8]) -> Result<(), String>;
type RemoveFn = fn(&mut World, Entity);

/// Registered components by name: how to apply each on a member.
#[derive(Resource, Default)]
pub struct Registry {
    fns: HashMap<String, (InsertFn, RemoveFn)>,
}

fn component_name<C>() -> String {
    std::any::type_name::<C>().to_owned()
}

fn insert_component<C: Component + DeserializeOwned>(
    world: &mut World,
    entity: Entity,
    bytes: &[u8],
) -> Result<(), String> {
    let value: C =
        postcard::from_bytes(bytes).map_err(|e| format!("{}: {e}", component_name::<C>()))?;
    world.entity_mut(entity).insert(value);
    Ok(())
}

fn remove_component<C: Component>(world: &mut World, entity: Entity) {
    world.entity_mut(entity).remove::<C>();
}

impl AppReplicationExt for App {
    fn replicate<
        C: Component<Mutability = bevy::ecs::component::Mutable>
            + Clone
            + Serialize
            + DeserializeOwned,
    >(
        &mut self,
    ) -> &mut Self {
        self.init_resource::<Registry>().init_resource::<Outgoing>();
        self.world_mut().resource_mut::<Registry>().fns.insert(
            component_name::<C>(),
            (insert_component::<C>, remove_component::<C>),
        );
        self.add_systems(
            PostUpdate,
            collect_changes::<C>
                .in_set(ReplicationSet::Collect)
                .run_if(hosting),
        )
    }
}

#[derive(SystemSet, Debug, Clone, PartialEq, Eq, Hash)]
enum ReplicationSet {
    Collect,
    Flush,
}

/// This frame's changes on the authority, in the order found.
#[derive(Resource, Default)]
struct Outgoing(Vec<Change>);

/// The authority's side: sequence, history, and the serialized state for snapshots.
#[derive(Resource)]
struct Authority {
    /// A new one each run, so members notice a restarted host and resync.
    epoch: u64,
    seq: u64,
    /// Update sends in flight: token → (member, seq).
    sends: HashMap<u64, (PeerId, u64)>,
    next_token: u64,
    /// Members whose copy of an update was lost: the highest such seq. They get the latest
    /// update again every `RESEND_EVERY_FRAMES` until one is acknowledged, so a member finds
    /// its gap even when the host has nothing new to say.
    behind: HashMap<PeerId, u64>,
    frames_since_resend: u32,
    history: VecDeque<Update>,
    state: BTreeMap<u64, BTreeMap<String, Vec<u8>>>,
    net_ids: HashMap<Entity, u64>,
}

impl Default for Authority {
    fn default() -> Self {
        Self {
            epoch: rand::random(),
            seq: 0,
            sends: HashMap::new(),
            next_token: 0,
            behind: HashMap::new(),
            frames_since_resend: 0,
            history: VecDeque::new(),
            state: BTreeMap::new(),
            net_ids: HashMap::new(),
        }
    }
}

impl Authority {
    /// Sends `update` to `member`, remembering the send to match its answer.
    fn send(&mut self, net: &mut MessageWriter<NetCommand>, member: &PeerId, update: Update) {
        self.next_token += 1;
        let token = (1 << 60) + self.next_token;
        self.sends.insert(token, (member.clone(), update.seq));
        net.write(NetCommand::Send {
            token,
            peer: member.0.clone(),
            request: SessionRequest::Update(update),
        });
    }

    fn snapshot(&self) -> Snapshot {
        Snapshot {
            epoch: self.epoch,
            seq: self.seq,
            entities: self
                .state
                .iter()
                .map(|(id, comps)| {
                    (
                        *id,
                        comps.iter().map(|(n, b)| (n.clone(), b.clone())).collect(),
                    )
                })
                .collect(),
        }
    }

    fn record(&mut self, change: &Change) {
        match change {
            Change::Insert { net_id, component } => {
                self.state
                    .entry(*net_id)
                    .or_default()
                    .insert(component.0.clone(), component.1.clone());
            }
            Change::Remove { net_id, component } => {
                if let Some(comps) = self.state.get_mut(net_id) {
                    comps.remove(component);
                }
            }
            Change::Despawn { net_id } => {
                self.state.remove(net_id);
            }
        }
    }
}

/// The member's side: what it has applied, and what waits for a gap to fill.
#[derive(Resource, Default)]
struct Mirror {
    epoch: u64,
    last_seq: u64,
    buffer: BTreeMap<u64, Update>,
    entities: HashMap<u64, Entity>,
    resyncing: bool,
}

/// Requests this device sent and waits on: token → what for.
#[derive(Resource, Default)]
struct Outstanding {
    next_token: u64,
    intents: HashMap<u64, Intent>,
    /// Tokens of outbox deliveries in flight.
    delivering: std::collections::HashSet<u64>,
    resync: Option<u64>,
    /// Live intents waiting for a free slot or for the pacer, in order.
    queued: VecDeque<Intent>,
    /// Paces this guest below the host's limit, so a well-behaved guest is never refused.
    pacer: Option<RateBucket>,
}

impl Outstanding {
    fn token(&mut self) -> u64 {
        next_token(&mut self.next_token)
    }
}

/// Tokens start high so they never meet a join token (an intent counter) in logs.
fn next_token(counter: &mut u64) -> u64 {
    *counter += 1;
    (1 << 62) + *counter
}

/// Each member may send this many intents a second, with bursts up to `INTENT_BURST`.
pub const INTENTS_PER_SECOND: f64 = 50.0;
pub const INTENT_BURST: f64 = 200.0;

/// A guest keeps at most this many intents in flight to its host: the transport drops
/// inbound streams beyond about a hundred, and a refused stream would send the intent
/// through the outbox instead.
pub const MAX_INTENTS_IN_FLIGHT: usize = 32;

/// A guest sends at this share of the host's rate and burst: network jitter can bunch
/// requests together on arrival.
const GUEST_PACE: f64 = 0.9;

/// A token bucket for one member's intents.
struct RateBucket {
    tokens: f64,
    at: std::time::Instant,
    /// The share of the full rate and burst this bucket allows.
    share: f64,
}

impl RateBucket {
    fn new(now: std::time::Instant) -> Self {
        Self::scaled(now, 1.0)
    }

    fn scaled(now: std::time::Instant, share: f64) -> Self {
        Self {
            tokens: INTENT_BURST * share,
            at: now,
            share,
        }
    }

    fn take(&mut self, now: std::time::Instant) -> bool {
        let refill = now.duration_since(self.at).as_secs_f64() * INTENTS_PER_SECOND * self.share;
        self.tokens = (self.tokens + refill).min(INTENT_BURST * self.share);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Intents members sent, waiting for the authority's outcome: id → reply.
#[derive(Resource, Default)]
struct ForeignIntents(HashMap<IntentId, u64>);

impl Plugin for ReplicationPlugin {
    fn build(&self, app: &mut App) {
        // Declared by the network plugin; initialised here too so replication runs on any
        // transport that speaks NetCommand / NetEvent (the simulated network in tests).
        app.init_resource::<Members>()
            .init_resource::<PeerLinks>()
            .init_resource::<PendingWelcomes>()
            .add_message::<NetCommand>()
            .add_message::<NetEvent>();
        app.init_resource::<Authority>()
            .init_resource::<Mirror>()
            .init_resource::<Outstanding>()
            .init_resource::<ForeignIntents>()
            .init_resource::<ClockSync>()
            .configure_sets(
                PostUpdate,
                (ReplicationSet::Collect, ReplicationSet::Flush).chain(),
            )
            .add_systems(
                PostUpdate,
                track_net_ids
                    .before(ReplicationSet::Collect)
                    .run_if(hosting),
            )
            .add_systems(
                PostUpdate,
                (collect_despawns.run_if(hosting), flush)
                    .chain()
                    .in_set(ReplicationSet::Flush),
            )
            // After the flush, so a member's change is on its way before its confirmation.
            .add_systems(
                PostUpdate,
                answer_foreign_outcomes.after(ReplicationSet::Flush),
            )
            .add_systems(
                Update,
                (
                    receive,
                    track_update_acks,
                    forward_guest_intents,
                    answer_member_requests,
                    give_presence,
                    return_ownership,
                    sync_clock_with_host,
                )
                    .chain()
                    .after(SessionSet::Apply),
            );
        app.replicate::<Session>()
            .replicate::<Host>()
            .replicate::<CoHosts>()
            .replicate::<PlaybackOwner>()
            .replicate::<PlaybackClock>()
            .replicate::<Participant>()
            .replicate::<Track>()
            .replicate::<QueuePosition>();
    }
}

/// A member's estimate of the host's clock, and its time requests in flight.
#[derive(Resource, Default)]
struct ClockSync {
    host: Option<PeerId>,
    estimator: whatnext_core::clock::OffsetEstimator,
    /// Token → local time the request left, in ms.
    asked: HashMap<u64, u64>,
    next_at: Option<std::time::Instant>,
}

/// Quick samples right after joining, then one now and then (clocks drift, links change).
const CLOCK_SAMPLE_QUICK: std::time::Duration = std::time::Duration::from_millis(200);
const CLOCK_SAMPLE_SLOW: std::time::Duration = std::time::Duration::from_secs(10);

/// A member reads the playback clock against the host's wall clock, not its own: it asks the
/// host for the time and keeps `WallClock::offset_ms` up to date.
#[allow(clippy::too_many_arguments)]
fn sync_clock_with_host(
    local: Res<LocalPeer>,
    hosts: Query<&Host>,
    links: Res<PeerLinks>,
    mut sync: ResMut<ClockSync>,
    mut wall: ResMut<WallClock>,
    mut outstanding: ResMut<Outstanding>,
    mut net: MessageWriter<NetCommand>,
    mut events: MessageReader<NetEvent>,
) {
    let host = remote_host(&local, &hosts);
    if sync.host != host {
        *sync = ClockSync {
            host: host.clone(),
            ..default()
        };
        if wall.offset_ms != 0 {
            wall.offset_ms = 0; // our own clock is the session's again (hosting, or none)
        }
    }
    let Some(host) = host else {
        return;
    };
    for event in events.read() {
        match event {
            NetEvent::Response {
                token,
                response: SessionResponse::Time { now_ms },
                ..
            } => {
                if let Some(sent) = sync.asked.remove(token) {
                    let received = whatnext_core::session::now_ms();
                    wall.offset_ms = sync.estimator.add(sent, *now_ms, received);
                }
            }
            NetEvent::SendFailed { token, .. } => {
                sync.asked.remove(token);
            }
            _ => {}
        }
    }
    let now = std::time::Instant::now();
    if links.0.contains_key(&host) && sync.next_at.is_none_or(|at| at <= now) {
        let token = outstanding.token();
        sync.asked.insert(token, whatnext_core::session::now_ms());
        net.write(NetCommand::Send {
            token,
            peer: host.0.clone(),
            request: SessionRequest::Time,
        });
        let quick = sync.estimator.samples() < whatnext_core::clock::OffsetEstimator::KEEP;
        let wait = if quick {
            CLOCK_SAMPLE_QUICK
        } else {
            CLOCK_SAMPLE_SLOW
        };
        sync.next_at = Some(now + wait);
    }
}

/// The current session's host, when it is another device (so this one is a member).
fn remote_host(local: &LocalPeer, hosts: &Query<&Host>) -> Option<PeerId> {
    hosts
        .iter()
        .next()
        .map(|h| h.0.clone())
        .filter(|h| *h != local.peer)
}

/// This device hosts the current session.
fn hosting(local: Res<LocalPeer>, hosts: Query<&Host>) -> bool {
    hosts.iter().next().is_some_and(|h| h.0 == local.peer)
}

#[allow(clippy::type_complexity)]
fn track_net_ids(
    mut auth: ResMut<Authority>,
    added: Query<(Entity, &NetId), (Added<NetId>, With<Replicated>)>,
) {
    for (entity, id) in &added {
        auth.net_ids.insert(entity, id.0);
    }
}

#[allow(clippy::type_complexity)]
fn collect_changes<C: Component + Serialize>(
    changed: Query<(&NetId, &C), (With<Replicated>, Changed<C>)>,
    mut removed: RemovedComponents<C>,
    alive: Query<&NetId>,
    mut out: ResMut<Outgoing>,
) {
    let name = component_name::<C>();
    for (id, value) in &changed {
        match postcard::to_allocvec(value) {
            Ok(bytes) => out.0.push(Change::Insert {
                net_id: id.0,
                component: (name.clone(), bytes),
            }),
            Err(e) => {
                tracing::error!(component = %name, error = %e, "cannot encode a replicated component")
            }
        }
    }
    for entity in removed.read() {
        // A despawn is reported once, as a despawn; only removals from live entities here.
        if let Ok(id) = alive.get(entity) {
            out.0.push(Change::Remove {
                net_id: id.0,
                component: name.clone(),
            });
        }
    }
}

fn collect_despawns(
    mut auth: ResMut<Authority>,
    mut gone: RemovedComponents<NetId>,
    mut out: ResMut<Outgoing>,
) {
    for entity in gone.read() {
        if let Some(id) = auth.net_ids.remove(&entity) {
            out.0.push(Change::Despawn { net_id: id });
        }
    }
}

/// Numbers this tick's changes as one update, sends it to the members, and answers the
/// welcomes waiting for a snapshot that includes their joiner.
fn flush(
    mut out: ResMut<Outgoing>,
    mut auth: ResMut<Authority>,
    mut net: MessageWriter<NetCommand>,
    mut members: ResMut<Members>,
    mut welcomes: ResMut<PendingWelcomes>,
) {
    if !out.0.is_empty() {
        auth.seq += 1;
        let update = Update {
            epoch: auth.epoch,
            seq: auth.seq,
            changes: std::mem::take(&mut out.0),
        };
        for change in &update.changes {
            auth.record(change);
        }
        for member in &members.0 {
            auth.send(&mut net, member, update.clone());
        }
        auth.history.push_back(update);
        while auth.history.len() > HISTORY {
            auth.history.pop_front();
        }
    }
    auth.frames_since_resend += 1;
    if auth.frames_since_resend >= RESEND_EVERY_FRAMES
        && let Some(latest) = auth.history.back().cloned()
    {
        auth.frames_since_resend = 0;
        let behind: Vec<PeerId> = auth.behind.keys().cloned().collect();
        for member in behind.iter().filter(|m| members.0.contains(*m)) {
            auth.send(&mut net, member, latest.clone());
        }
    }
    for (reply, guest, mut welcome) in welcomes.0.drain(..) {
        welcome.snapshot = auth.snapshot();
        net.write(NetCommand::Respond {
            reply,
            response: SessionResponse::Welcome(welcome),
        });
        members.0.insert(guest);
    }
}

/// Applies what the authority sent: a welcome's snapshot, updates in order, resync answers.
fn receive(world: &mut World, state: &mut SystemState<MessageReader<NetEvent>>) -> Result {
    let events: Vec<NetEvent> = state.get_mut(world)?.read().cloned().collect();
    for event in events {
        match event {
            NetEvent::JoinAnswer {
                response: SessionResponse::Welcome(welcome),
                ..
            } => {
                apply_snapshot(world, welcome.snapshot);
            }
            NetEvent::Request {
                peer,
                reply,
                request: SessionRequest::Update(update),
            } => {
                let from_host = world
                    .query::<&Host>()
                    .iter(world)
                    .next()
                    .is_some_and(|h| h.0.as_str() == peer);
                let response = if from_host {
                    accept_update(world, update);
                    SessionResponse::Ack
                } else {
                    tracing::warn!(%peer, "an update from a peer that is not our host was ignored");
                    SessionResponse::Refused {
                        reason: "you are not this peer's host".into(),
                    }
                };
                world.write_message(NetCommand::Respond { reply, response });
            }
            NetEvent::SendFailed { token, .. }
                if world.resource::<Outstanding>().resync == Some(token) =>
            {
                // The gap is still there: ask again.
                world.resource_mut::<Outstanding>().resync = None;
                world.resource_mut::<Mirror>().resyncing = false;
                let (gap, last) = {
                    let mirror = world.resource::<Mirror>();
                    (!mirror.buffer.is_empty(), mirror.last_seq)
                };
                if gap {
                    request_resync(world, last);
                }
            }
            NetEvent::Response {
                token, response, ..
            } if world.resource::<Outstanding>().resync == Some(token) => {
                world.resource_mut::<Outstanding>().resync = None;
                world.resource_mut::<Mirror>().resyncing = false;
                match response {
                    // A resync answer can arrive after later updates did; never go back.
                    SessionResponse::Snapshot(snapshot)
                        if snapshot.epoch != world.resource::<Mirror>().epoch
                            || snapshot.seq >= world.resource::<Mirror>().last_seq =>
                    {
                        apply_snapshot(world, snapshot);
                        drain_buffer(world);
                    }
                    SessionResponse::Updates(updates) => {
                        for update in updates {
                            accept_update(world, update);
                        }
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }
    // Whatever path brought us here (an update already applied, a resync answer that
    // stopped short), a gap nobody is filling must be asked for.
    let (gap, resyncing, last) = {
        let mirror = world.resource::<Mirror>();
        (!mirror.buffer.is_empty(), mirror.resyncing, mirror.last_seq)
    };
    if gap && !resyncing {
        request_resync(world, last);
    }
    Ok(())
}

fn accept_update(world: &mut World, update: Update) {
    let (epoch, last, resyncing) = {
        let mirror = world.resource::<Mirror>();
        (mirror.epoch, mirror.last_seq, mirror.resyncing)
    };
    if update.epoch != epoch {
        // The host restarted: its numbers mean nothing next to ours. Start over from a snapshot.
        if !resyncing {
            request_resync(world, last);
        }
        return;
    }
    if update.seq <= last {
        return; // already applied
    }
    world
        .resource_mut::<Mirror>()
        .buffer
        .insert(update.seq, update);
    drain_buffer(world);
    let (gap, resyncing, last) = {
        let mirror = world.resource::<Mirror>();
        (!mirror.buffer.is_empty(), mirror.resyncing, mirror.last_seq)
    };
    if gap && !resyncing {
        request_resync(world, last);
    }
}

/// Applies buffered updates that follow on from the last one applied.
fn drain_buffer(world: &mut World) {
    loop {
        let next = world.resource::<Mirror>().last_seq + 1;
        let Some(update) = world.resource_mut::<Mirror>().buffer.remove(&next) else {
            break;
        };
        for change in update.changes {
            apply_change(world, change);
        }
        world.resource_mut::<Mirror>().last_seq = next;
    }
}

fn request_resync(world: &mut World, after: u64) {
    let Some(host) = world
        .query::<&Host>()
        .iter(world)
        .next()
        .map(|h| h.0.clone())
    else {
        return;
    };
    let token = world.resource_mut::<Outstanding>().token();
    world.resource_mut::<Outstanding>().resync = Some(token);
    world.resource_mut::<Mirror>().resyncing = true;
    let epoch = world.resource::<Mirror>().epoch;
    tracing::info!(after, "missed updates; asking the host to resync");
    world.write_message(NetCommand::Send {
        token,
        peer: host.0,
        request: SessionRequest::Resync { epoch, after },
    });
}

fn entity_for(world: &mut World, net_id: u64) -> Entity {
    if let Some(entity) = world.resource::<Mirror>().entities.get(&net_id).copied()
        && world.get_entity(entity).is_ok()
    {
        return entity;
    }
    let entity = world.spawn((NetId(net_id), Replicated)).id();
    world
        .resource_mut::<Mirror>()
        .entities
        .insert(net_id, entity);
    entity
}

fn apply_change(world: &mut World, change: Change) {
    tracing::trace!(?change, "apply");
    match change {
        Change::Insert {
            net_id,
            component: (name, bytes),
        } => {
            let Some((insert, _)) = world.resource::<Registry>().fns.get(&name).copied() else {
                tracing::warn!(component = %name, "an update names a component this build does not replicate");
                return;
            };
            let entity = entity_for(world, net_id);
            if let Err(error) = insert(world, entity, &bytes) {
                tracing::warn!(%error, "a replicated component could not be decoded; skipped");
            }
        }
        Change::Remove { net_id, component } => {
            let remove = world
                .resource::<Registry>()
                .fns
                .get(&component)
                .map(|f| f.1);
            let entity = world.resource::<Mirror>().entities.get(&net_id).copied();
            if let (Some(remove), Some(entity)) = (remove, entity)
                && world.get_entity(entity).is_ok()
            {
                remove(world, entity);
            }
        }
        Change::Despawn { net_id } => {
            if let Some(entity) = world.resource_mut::<Mirror>().entities.remove(&net_id) {
                let _ = world.try_despawn(entity);
            }
        }
    }
}

fn apply_snapshot(world: &mut World, snapshot: Snapshot) {
    let old: Vec<Entity> = world
        .resource_mut::<Mirror>()
        .entities
        .drain()
        .map(|(_, e)| e)
        .collect();
    for entity in old {
        let _ = world.try_despawn(entity);
    }
    for (net_id, components) in snapshot.entities {
        for component in components {
            apply_change(world, Change::Insert { net_id, component });
        }
    }
    drop_settled_pending(world);
    let mut mirror = world.resource_mut::<Mirror>();
    if mirror.epoch != snapshot.epoch {
        mirror.buffer.clear();
    }
    mirror.epoch = snapshot.epoch;
    mirror.last_seq = snapshot.seq;
    mirror.buffer.retain(|seq, _| *seq > snapshot.seq);
}

/// After a snapshot, a pending addition whose intent is no longer waiting anywhere was
/// settled by the host: if the track still exists, the snapshot or a later update brings
/// the host's copy; if not, it was refused or removed, and must go.
fn drop_settled_pending(world: &mut World) {
    let added = |intent: &Intent| match &intent.action {
        Action::Session(SessionAction::AddTrack { track_id, .. }) => Some(*track_id),
        _ => None,
    };
    let outstanding = world.resource::<Outstanding>();
    let mut waiting: std::collections::HashSet<TrackId> = outstanding
        .intents
        .values()
        .chain(outstanding.queued.iter())
        .filter_map(added)
        .collect();
    if let Some(outbox) = world.get_resource::<Outbox>() {
        waiting.extend(outbox.0.iter().filter_map(added));
    }
    let settled: Vec<Entity> = world
        .query_filtered::<(Entity, &Track), With<Pending>>()
        .iter(world)
        .filter(|(_, track)| !waiting.contains(&track.id))
        .map(|(entity, _)| entity)
        .collect();
    for entity in settled {
        world.despawn(entity);
    }
}

/// What an intent will answer once applied, for its pending reply.
fn expected_result(action: &SessionAction) -> Applied {
    match action {
        SessionAction::AddTrack { track_id, .. } => Applied::TrackAdded(*track_id),
        _ => Applied::Done,
    }
}

/// Shows a guest's offline addition in its own queue, marked pending, until the host's
/// confirmed copy replaces it.
fn show_pending(
    commands: &mut Commands,
    index: &QueueIndex,
    tail: &mut Option<QueueKey>,
    author: &PeerId,
    action: &SessionAction,
) {
    if let SessionAction::AddTrack {
        track_id,
        title,
        artist,
        duration_ms,
        path,
    } = action
    {
        if index.entity(*track_id).is_some() {
            return;
        }
        let key = QueueKey::between(tail.as_ref(), None);
        *tail = Some(key.clone());
        commands.spawn((
            Track {
                id: *track_id,
                title: title.clone(),
                artist: artist.clone(),
                duration_ms: *duration_ms,
                path: path.clone(),
                added_by: author.clone(),
            },
            QueuePosition(key),
            Pending,
        ));
    }
}

/// On the authority: which members acknowledged which updates, and which lost one.
fn track_update_acks(mut auth: ResMut<Authority>, mut events: MessageReader<NetEvent>) {
    for event in events.read() {
        match event {
            NetEvent::Response { token, .. } => {
                if let Some((member, seq)) = auth.sends.remove(token)
                    && auth.behind.get(&member).is_some_and(|lost| *lost <= seq)
                {
                    auth.behind.remove(&member);
                }
            }
            NetEvent::SendFailed { token, .. } => {
                if let Some((member, seq)) = auth.sends.remove(token) {
                    let lost = auth.behind.entry(member).or_insert(seq);
                    *lost = (*lost).max(seq);
                }
            }
            _ => {}
        }
    }
}

/// A guest's session intents go to the host; its answer becomes the intent's outcome. Each
/// added track shows in the guest's own queue at once, marked pending, until the host's copy
/// replaces it (or the host refuses it and it goes). When the host cannot be reached, the
/// intent waits in the persisted outbox and the answer says so (`pending`); the outbox is
/// delivered, in order, once the host is back.
#[allow(clippy::too_many_arguments)]
fn forward_guest_intents(
    mut commands: Commands,
    local: Res<LocalPeer>,
    hosts: Query<&Host>,
    links: Res<PeerLinks>,
    index: Res<QueueIndex>,
    pending: Query<(), With<Pending>>,
    mut net: MessageWriter<NetCommand>,
    mut outstanding: ResMut<Outstanding>,
    mut outbox: ResMut<Outbox>,
    mut intents: MessageReader<Intent>,
    mut events: MessageReader<NetEvent>,
    mut outcomes: MessageWriter<IntentOutcome>,
) {
    let host = remote_host(&local, &hosts);
    let reachable = host.as_ref().is_some_and(|h| links.0.contains_key(h));
    // Pending additions of this frame go after each other, not on one key.
    let mut tail = index.last_key().cloned();
    // `shown`: the intent went out live and is in the queue already, or was confirmed and
    // then removed by the host; either way it must not be shown again.
    let to_outbox = |intent: Intent,
                     shown: bool,
                     commands: &mut Commands,
                     tail: &mut Option<QueueKey>,
                     outbox: &mut Outbox,
                     outcomes: &mut MessageWriter<IntentOutcome>| {
        let Action::Session(action) = &intent.action else {
            return;
        };
        if !shown {
            show_pending(commands, &index, tail, &intent.id.author, action);
        }
        outcomes.write(IntentOutcome {
            id: intent.id.clone(),
            result: Ok(Applied::Pending(Box::new(expected_result(action)))),
        });
        outbox.0.push(intent);
    };
    for intent in intents.read() {
        let (Some(_), Action::Session(action)) = (&host, &intent.action) else {
            continue;
        };
        if reachable && outbox.0.is_empty() {
            show_pending(&mut commands, &index, &mut tail, &intent.id.author, action);
            outstanding.queued.push_back(intent.clone());
        } else {
            to_outbox(
                intent.clone(),
                false,
                &mut commands,
                &mut tail,
                &mut outbox,
                &mut outcomes,
            );
        }
    }
    // A refused addition leaves the guest's queue too.
    let drop_refused = |commands: &mut Commands, intent: &Intent| {
        if let Action::Session(SessionAction::AddTrack { track_id, .. }) = &intent.action
            && let Some(entity) = index.entity(*track_id)
            && pending.contains(entity)
        {
            commands.entity(entity).despawn();
        }
    };
    for event in events.read() {
        match event {
            NetEvent::Response {
                token,
                response: SessionResponse::IntentResult(result),
                ..
            } => {
                if let Some(intent) = outstanding.intents.remove(token) {
                    if result.is_err() {
                        drop_refused(&mut commands, &intent);
                    }
                    if outstanding.delivering.remove(token) {
                        // Its pending reply went out long ago; the outbox entry is done.
                        outbox.0.retain(|i| i.id != intent.id);
                        if let Err(error) = result {
                            tracing::warn!(%error, "the host refused an intent from the outbox");
                        }
                    } else {
                        outcomes.write(IntentOutcome {
                            id: intent.id,
                            result: result.clone(),
                        });
                    }
                }
            }
            NetEvent::SendFailed { token, error, .. } => {
                if let Some(intent) = outstanding.intents.remove(token) {
                    if outstanding.delivering.remove(token) {
                        continue; // stays in the outbox for the next attempt
                    }
                    if reachable {
                        // Only that connection went (a relayed one replaced by a direct
                        // one, say): send it again. The host applies an intent id once.
                        tracing::debug!(%error, "an intent was lost on the way; sending it again");
                        outstanding.queued.push_front(intent);
                        continue;
                    }
                    tracing::info!(%error, "the host is unreachable; the intent waits in the outbox");
                    let shown = true;
                    to_outbox(
                        intent,
                        shown,
                        &mut commands,
                        &mut tail,
                        &mut outbox,
                        &mut outcomes,
                    );
                }
            }
            _ => {}
        }
    }
    let Some(host) = host.filter(|_| reachable) else {
        // Cut off: what waited for a slot waits in the outbox instead, in order.
        while let Some(intent) = outstanding.queued.pop_front() {
            let shown = true;
            to_outbox(
                intent,
                shown,
                &mut commands,
                &mut tail,
                &mut outbox,
                &mut outcomes,
            );
        }
        return;
    };
    let now = std::time::Instant::now();
    let Outstanding {
        next_token,
        intents: in_flight,
        delivering,
        queued,
        pacer,
        ..
    } = &mut *outstanding;
    let pacer = pacer.get_or_insert_with(|| RateBucket::scaled(now, GUEST_PACE));
    let mut send = |intent: &Intent, next_token: &mut u64, in_flight: &mut HashMap<u64, Intent>| {
        let token = self::next_token(next_token);
        in_flight.insert(token, intent.clone());
        net.write(NetCommand::Send {
            token,
            peer: host.0.clone(),
            request: SessionRequest::Intent(intent.clone()),
        });
        token
    };
    // The outbox first, when nothing from it is in flight, so intents keep their order.
    if delivering.is_empty() {
        for intent in &outbox.0 {
            if in_flight.len() >= MAX_INTENTS_IN_FLIGHT || !pacer.take(now) {
                break;
            }
            let token = send(intent, next_token, in_flight);
            delivering.insert(token);
        }
    }
    if delivering.is_empty() && outbox.0.is_empty() {
        while in_flight.len() < MAX_INTENTS_IN_FLIGHT
            && !queued.is_empty()
            && pacer.take(now)
            && let Some(intent) = queued.pop_front()
        {
            send(&intent, next_token, in_flight);
        }
    }
}

/// The authority's side of members' requests: their intents (applied as if local, under
/// their own author id) and resyncs. Non-members get nothing.
#[allow(clippy::too_many_arguments)]
fn answer_member_requests(
    mut net: MessageWriter<NetCommand>,
    members: Res<Members>,
    auth: Res<Authority>,
    mut foreign: ResMut<ForeignIntents>,
    mut buckets: Local<HashMap<String, RateBucket>>,
    mut events: MessageReader<NetEvent>,
    mut intents: MessageWriter<Intent>,
    waker: Option<Res<AppWaker>>,
) {
    let now = std::time::Instant::now();
    let mut queued = false;
    for event in events.read() {
        let NetEvent::Request {
            peer,
            reply,
            request,
        } = event
        else {
            continue;
        };
        let member = members.0.contains(&PeerId::new(peer.clone()));
        let response = match request {
            SessionRequest::Intent(intent) if !member => {
                Some(SessionResponse::IntentResult(Err(IntentError::new(
                    ErrorCode::NotPermitted,
                    "only members of the session can change it",
                ))))
            }
            SessionRequest::Intent(intent) if intent.id.author.as_str() != peer => {
                let _ = intent;
                Some(SessionResponse::IntentResult(Err(IntentError::new(
                    ErrorCode::NotPermitted,
                    "an intent must come from its author",
                ))))
            }
            SessionRequest::Intent(_)
                if !buckets
                    .entry(peer.clone())
                    .or_insert_with(|| RateBucket::new(now))
                    .take(now) =>
            {
                Some(SessionResponse::IntentResult(Err(IntentError::new(
                    ErrorCode::NotPermitted,
                    format!(
                        "too many changes at once (more than {INTENTS_PER_SECOND} a second); slow down"
                    ),
                ))))
            }
            SessionRequest::Intent(intent) => {
                foreign.0.insert(intent.id.clone(), *reply);
                intents.write(intent.clone());
                queued = true;
                None
            }
            SessionRequest::Resync { .. } if !member => Some(SessionResponse::Refused {
                reason: "not a member".into(),
            }),
            SessionRequest::Resync { epoch, after } => {
                let first = auth.history.front().map(|u| u.seq);
                Some(match first {
                    Some(first) if *epoch == auth.epoch && first <= after + 1 => {
                        SessionResponse::Updates(
                            auth.history
                                .iter()
                                .filter(|u| u.seq > *after)
                                .cloned()
                                .collect(),
                        )
                    }
                    _ => SessionResponse::Snapshot(auth.snapshot()),
                })
            }
            _ => None,
        };
        if let Some(response) = response {
            net.write(NetCommand::Respond {
                reply: *reply,
                response,
            });
        }
    }
    // The intents are applied in the next frame: run it now rather than at the idle tick.
    if queued && let Some(waker) = waker {
        waker.wake();
    }
}

fn answer_foreign_outcomes(
    mut net: MessageWriter<NetCommand>,
    mut foreign: ResMut<ForeignIntents>,
    mut outcomes: MessageReader<IntentOutcome>,
) {
    for outcome in outcomes.read() {
        if let Some(reply) = foreign.0.remove(&outcome.id) {
            let response = SessionResponse::IntentResult(outcome.result.clone());
            net.write(NetCommand::Respond { reply, response });
        }
    }
}

/// Presence is this device's own knowledge, never replicated: fill it in for mirrored
/// participants from the connections we have.
fn give_presence(
    mut commands: Commands,
    local: Res<LocalPeer>,
    links: Res<PeerLinks>,
    participants: Query<(Entity, &Participant), Without<Presence>>,
) {
    for (entity, p) in &participants {
        let presence = if p.peer == local.peer {
            Presence {
                online: true,
                connection: Connection::Myself,
            }
        } else {
            let kind = links.0.get(&p.peer);
            Presence {
                online: kind.is_some(),
                connection: match kind {
                    Some(whatnext_network::ConnectionKind::Direct) => Connection::Direct,
                    Some(whatnext_network::ConnectionKind::Lan) => Connection::Lan,
                    _ => Connection::Relayed,
                },
            }
        };
        commands.entity(entity).insert(presence);
    }
}

/// On the authority: when the playback owner drops, playback returns to the host.
fn return_ownership(
    local: Res<LocalPeer>,
    mut sessions: Query<(&Host, &mut PlaybackOwner)>,
    mut events: MessageReader<NetEvent>,
) {
    let Ok((host, mut owner)) = sessions.single_mut() else {
        return;
    };
    if host.0 != local.peer {
        return;
    }
    for event in events.read() {
        if let NetEvent::PeerLink { peer, kind: None } = event
            && owner.0.as_str() == peer
        {
            tracing::info!(%peer, "the playback owner dropped; playback returns to the host");
            owner.0 = host.0.clone();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn a_member_gets_a_burst_then_the_steady_rate() {
        let start = Instant::now();
        let mut bucket = RateBucket::new(start);
        let burst = (0..1000).take_while(|_| bucket.take(start)).count();
        assert_eq!(burst, INTENT_BURST as usize);
        assert!(!bucket.take(start), "empty until time passes");
        let later = start + Duration::from_secs(1);
        let refilled = (0..1000).take_while(|_| bucket.take(later)).count();
        assert_eq!(refilled, INTENTS_PER_SECOND as usize);
    }
}

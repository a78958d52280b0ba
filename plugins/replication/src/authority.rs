//! The host's side: collect this frame's changes, flush them as one numbered update to the
//! members, keep the history, resend to members that lost an update, and answer members'
//! resyncs and intents.

use std::collections::{BTreeMap, HashMap, VecDeque};

use bevy::prelude::*;
use serde::Serialize;
use whatnext_core::prelude::*;
use whatnext_network::{NetCommand, RequestTokens};

use crate::membership::Members;
use crate::outbox::{INTENTS_PER_SECOND, RateBucket};
use crate::protocol::{
    self, Answer, Change, ComponentBytes, PeerAnswer, PeerRequest, SessionRequest, SessionResponse,
    Snapshot, Update,
};
use crate::registry::Registry;

/// How many past updates the authority keeps to fill a member's gap without a snapshot.
pub const HISTORY: usize = 1024;

/// How often a member that lost an update is sent the latest one again, in frames (the
/// headless loop idles at 100 ms, so about a second).
pub const RESEND_EVERY_FRAMES: u32 = 10;

/// This frame's changes on the authority, in the order found.
#[derive(Resource, Default)]
pub(crate) struct Outgoing(Vec<Change>);

/// The authority's side: sequence, history, and the serialized state for snapshots.
#[derive(Resource)]
pub(crate) struct Authority {
    /// A new one each run, so members notice a restarted host and resync.
    epoch: u64,
    seq: u64,
    /// Update sends in flight: token → (member, seq).
    sends: HashMap<u64, (PeerId, u64)>,
    /// Members whose copy of an update was lost: the highest such seq. They get the latest
    /// update again every `RESEND_EVERY_FRAMES` until one is acknowledged, so a member finds
    /// its gap even when the host has nothing new to say.
    behind: HashMap<PeerId, u64>,
    /// The highest update each member acknowledged in this run.
    acknowledged: HashMap<PeerId, u64>,
    frames_since_resend: u32,
    history: VecDeque<Update>,
    /// Every replicated entity's components by wire id, as of `seq`: the snapshot.
    state: BTreeMap<u64, BTreeMap<u16, Vec<u8>>>,
    net_ids: HashMap<Entity, u64>,
    /// This device hosted the session as of the last flush: the frame that hands the role
    /// over still collects and sends its changes (the hand-over itself).
    pub(crate) hosted: bool,
}

impl Default for Authority {
    fn default() -> Self {
        Self {
            epoch: rand::random(),
            seq: 0,
            sends: HashMap::new(),
            behind: HashMap::new(),
            acknowledged: HashMap::new(),
            frames_since_resend: 0,
            history: VecDeque::new(),
            state: BTreeMap::new(),
            net_ids: HashMap::new(),
            hosted: false,
        }
    }
}

impl Authority {
    /// The last update's sequence number in this run (0: none yet).
    pub(crate) fn last_seq(&self) -> u64 {
        self.seq
    }

    /// The highest update `member` acknowledged in this run (0: none).
    pub(crate) fn acknowledged(&self, member: &PeerId) -> u64 {
        self.acknowledged.get(member).copied().unwrap_or(0)
    }

    /// `member` holds every update up to `seq`.
    fn acknowledge(&mut self, member: &PeerId, seq: u64) {
        let acknowledged = self.acknowledged.entry(member.clone()).or_default();
        *acknowledged = (*acknowledged).max(seq);
    }

    /// `member` gets the latest update (again) until it acknowledges one at or after `seq`.
    pub(crate) fn resend_latest_to(&mut self, member: &PeerId, seq: u64) {
        let behind = self.behind.entry(member.clone()).or_insert(seq);
        *behind = (*behind).max(seq);
    }

    /// Sends `update` to `member`, remembering the send to match its answer.
    fn send(
        &mut self,
        net: &mut MessageWriter<NetCommand>,
        tokens: &mut RequestTokens,
        member: &PeerId,
        update: Update,
    ) {
        let token = tokens.fresh();
        self.sends.insert(token, (member.clone(), update.seq));
        // An update confirms nothing (the intent's author is answered after the write), so
        // it does not wait for the disk.
        protocol::publish(net, token, member, &SessionRequest::Update(update));
    }

    /// The whole replicated state as of the last update, for a welcome or a resync.
    pub(crate) fn snapshot(&self) -> Snapshot {
        Snapshot {
            epoch: self.epoch,
            seq: self.seq,
            entities: self
                .state
                .iter()
                .map(|(net_id, comps)| {
                    let comps = comps.iter().map(|(id, bytes)| ComponentBytes {
                        id: *id,
                        bytes: bytes.clone(),
                    });
                    (*net_id, comps.collect())
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
                    .insert(component.id, component.bytes.clone());
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

    /// The answer to a member's `Resync { epoch, after }`: the missing updates from the
    /// history, or a snapshot when they are gone (or the member knew another run).
    fn resync(&self, epoch: u64, after: u64) -> SessionResponse {
        if self.needs_snapshot(epoch, after) {
            return SessionResponse::Snapshot(self.snapshot());
        }
        let missing = self.history.iter().filter(|u| u.seq > after);
        SessionResponse::Updates(missing.cloned().collect())
    }

    /// The history no longer holds what came after `after` (or the member knew another run).
    fn needs_snapshot(&self, epoch: u64, after: u64) -> bool {
        let first = self.history.front().map(|u| u.seq);
        !matches!(first, Some(first) if epoch == self.epoch && first <= after.saturating_add(1))
    }
}

/// A device that starts hosting (it created or restored a session, or the host role was
/// handed to it) starts a new authority run: a new epoch, so members resync, and every
/// replicated component marked changed, so this frame's update, and every snapshot after
/// it, holds the whole session as this device has it.
/// Runs only when [`starts_hosting`] holds.
pub(crate) fn begin_hosting(world: &mut World) {
    let net_ids: HashMap<Entity, u64> = world
        .query_filtered::<(Entity, &NetId), With<Replicated>>()
        .iter(world)
        .map(|(e, id)| (e, id.0))
        .collect();
    *world.resource_mut::<Authority>() = Authority {
        net_ids,
        hosted: true,
        ..Authority::default()
    };
    // Hosting again: an earlier step-down's notice is out of date.
    *world.resource_mut::<FormerMembers>() = FormerMembers::default();
    Registry::touch_all(world);
}

/// A host stepping down to a newer one (whose welcome brought `snapshot`): its authority
/// ends here (applying the snapshot is no change of its own to send: its guests would see
/// their session despawned), and its members are told whom to follow (`FormerMembers`).
pub(crate) fn step_down(world: &mut World, snapshot: &Snapshot) {
    let registry = world.resource::<Registry>();
    let (Some(session_id), Some(host_id), Some(term_id)) = (
        registry.id_of::<Session>(),
        registry.id_of::<Host>(),
        registry.id_of::<HostTerm>(),
    ) else {
        return;
    };
    let decoded = snapshot
        .entities
        .iter()
        .filter_map(|(_, components)| {
            let session = components.iter().find(|c| c.id == session_id)?;
            let host = components.iter().find(|c| c.id == host_id)?;
            let session: Session = postcard::from_bytes(&session.bytes).ok()?;
            let host: Host = postcard::from_bytes(&host.bytes).ok()?;
            let term = components
                .iter()
                .find(|c| c.id == term_id)
                .and_then(|c| postcard::from_bytes::<HostTerm>(&c.bytes).ok())
                .map_or(0, |t| t.term);
            Some((session.id, host.0, term))
        })
        .next();
    world.resource_mut::<Authority>().hosted = false;
    world.resource_mut::<Outgoing>().0.clear();
    let mut members: Vec<PeerId> = world.resource_mut::<Members>().0.drain().collect();
    // Guests admitted this frame are not welcomed by a device that no longer hosts: they
    // are pointed at the new host, and told like the members.
    let admitted: Vec<(u64, PeerId)> = world
        .resource_mut::<crate::membership::PendingWelcomes>()
        .0
        .drain(..)
        .map(|(reply, guest, _)| (reply, guest))
        .collect();
    if let Some((_, host, _)) = &decoded {
        for (reply, guest) in admitted {
            let moved = SessionResponse::Moved { host: host.clone() };
            world.write_message(protocol::respond_command(reply, &moved));
            members.push(guest);
        }
    }
    if let Some(notice) = decoded {
        let mut former = world.resource_mut::<FormerMembers>();
        former.notice = Some(notice);
        former.to_tell = members.into_iter().map(|m| (m, None)).collect();
        former.since = None;
        former.last_round = None;
    }
}

/// A host that stepped down, telling its members whom to follow: each is told again every
/// second until it acknowledges, for a minute at most.
#[derive(Resource, Default)]
pub(crate) struct FormerMembers {
    notice: Option<(SessionId, PeerId, u64)>,
    /// Member → the token of the notice in flight.
    to_tell: HashMap<PeerId, Option<u64>>,
    since: Option<std::time::Duration>,
    last_round: Option<std::time::Duration>,
}

/// How long a host that stepped down keeps telling its members whom to follow.
const TELL_FOR: std::time::Duration = std::time::Duration::from_secs(60);
/// How often it tells those that have not acknowledged yet.
const TELL_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// Sends the step-down notice to former members, again until each acknowledges it.
pub(crate) fn tell_former_members(
    time: Res<Time<Real>>,
    mut net: MessageWriter<NetCommand>,
    mut tokens: ResMut<RequestTokens>,
    mut former: ResMut<FormerMembers>,
    mut answers: MessageReader<PeerAnswer>,
) {
    for PeerAnswer { token, answer, .. } in answers.read() {
        let told = former
            .to_tell
            .iter()
            .find(|(_, t)| **t == Some(*token))
            .map(|(m, _)| m.clone());
        if let Some(member) = told {
            match answer {
                Answer::Session(SessionResponse::Ack) => {
                    former.to_tell.remove(&member);
                }
                _ => {
                    // Told again next round.
                    if let Some(token) = former.to_tell.get_mut(&member) {
                        *token = None;
                    }
                }
            }
        }
    }
    let Some((session, host, term)) = former.notice.clone() else {
        return;
    };
    let now = time.elapsed();
    let since = *former.since.get_or_insert(now);
    if former.to_tell.is_empty() || now.saturating_sub(since) > TELL_FOR {
        *former = FormerMembers::default();
        return;
    }
    if former
        .last_round
        .is_some_and(|at| now.saturating_sub(at) < TELL_EVERY)
    {
        return;
    }
    former.last_round = Some(now);
    let notice = SessionRequest::SteppedDown {
        session,
        host,
        term,
    };
    let members: Vec<PeerId> = former.to_tell.keys().cloned().collect();
    for member in members {
        let token = tokens.fresh();
        former.to_tell.insert(member.clone(), Some(token));
        protocol::send(&mut net, token, &member, &notice);
    }
}

/// Run condition: this device hosts the session and did not at the last flush.
pub(crate) fn starts_hosting(
    local: Res<LocalPeer>,
    hosts: Query<&Host>,
    auth: Res<Authority>,
) -> bool {
    !auth.hosted && hosts.iter().next().is_some_and(|h| h.0 == local.peer)
}

/// Intents members sent, waiting for the authority's outcome: id → reply.
#[derive(Resource, Default)]
pub(crate) struct ForeignIntents(HashMap<IntentId, u64>);

/// Remembers which entity carries which `NetId`, to name it once it is despawned.
pub(crate) fn track_net_ids(
    mut auth: ResMut<Authority>,
    added: Query<(Entity, &NetId), (Added<NetId>, With<Replicated>)>,
) {
    for (entity, id) in &added {
        auth.net_ids.insert(entity, id.0);
    }
}

/// One per registered component: its changes and removals on `Replicated` entities this
/// frame, as changes for the next update.
pub(crate) fn collect_changes<C: Component + Serialize>(
    registry: Res<Registry>,
    changed: Query<(&NetId, &C), (With<Replicated>, Changed<C>)>,
    mut removed: RemovedComponents<C>,
    alive: Query<&NetId>,
    mut out: ResMut<Outgoing>,
) {
    let Some(component) = registry.id_of::<C>() else {
        return; // only `replicate` adds this system, after registering `C`
    };
    for (id, value) in &changed {
        match postcard::to_allocvec(value) {
            Ok(bytes) => out.0.push(Change::Insert {
                net_id: id.0,
                component: ComponentBytes {
                    id: component,
                    bytes,
                },
            }),
            Err(e) => {
                let name = registry.name(component).unwrap_or_default();
                tracing::error!(component = %name, error = %e, "cannot encode a replicated component")
            }
        }
    }
    for entity in removed.read() {
        // A despawn is reported once, as a despawn; only removals from live entities here.
        if let Ok(id) = alive.get(entity) {
            out.0.push(Change::Remove {
                net_id: id.0,
                component,
            });
        }
    }
}

/// Despawned replicated entities, after this frame's component changes.
pub(crate) fn collect_despawns(
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

/// Numbers this tick's changes as one update and sends it to the members (the welcomes
/// waiting for a snapshot that includes their joiner go right after, in `membership`).
pub(crate) fn flush(
    mut out: ResMut<Outgoing>,
    mut auth: ResMut<Authority>,
    mut net: MessageWriter<NetCommand>,
    mut tokens: ResMut<RequestTokens>,
    members: Res<Members>,
    local: Res<LocalPeer>,
    hosts: Query<&Host>,
) {
    // After this frame's update (the hand-over's, if the role just moved) this device
    // collects only while it hosts.
    let hosting_now = hosts.iter().next().is_some_and(|h| h.0 == local.peer);
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
            auth.send(&mut net, &mut tokens, member, update.clone());
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
            auth.send(&mut net, &mut tokens, member, latest.clone());
        }
    }
    auth.hosted = hosting_now;
}

/// On the authority: which members acknowledged which updates, and which lost one.
pub(crate) fn track_update_acks(
    mut auth: ResMut<Authority>,
    mut answers: MessageReader<PeerAnswer>,
) {
    for PeerAnswer { token, answer, .. } in answers.read() {
        match answer {
            Answer::Session(_) | Answer::Time { .. } => {
                if let Some((member, seq)) = auth.sends.remove(token) {
                    // Only an `Ack` says the member holds the update: a device that hosts
                    // a newer term refuses it.
                    if matches!(answer, Answer::Session(SessionResponse::Ack)) {
                        auth.acknowledge(&member, seq);
                    }
                    if auth.behind.get(&member).is_some_and(|lost| *lost <= seq) {
                        auth.behind.remove(&member);
                    }
                }
            }
            Answer::Failed(_) => {
                if let Some((member, seq)) = auth.sends.remove(token) {
                    let lost = auth.behind.entry(member).or_insert(seq);
                    *lost = (*lost).max(seq);
                }
            }
        }
    }
}

/// Each member may be sent this many resync snapshots a second, with bursts up to
/// `SNAPSHOT_BURST`: a snapshot is the whole session. Resyncs the history answers are not
/// limited beyond the intent rate.
pub const SNAPSHOTS_PER_SECOND: f64 = 1.0;
/// How many snapshots a member may be sent at once before the steady rate applies.
pub const SNAPSHOT_BURST: f64 = 3.0;

/// The authority's side of members' requests: their intents (applied as if local, under
/// their own author id, at most `INTENTS_PER_SECOND` each) and resyncs (at most
/// `SNAPSHOTS_PER_SECOND` of them answered with a snapshot). Non-members get nothing.
pub(crate) fn answer_member_requests(
    mut net: MessageWriter<NetCommand>,
    members: Res<Members>,
    auth: Res<Authority>,
    time: Res<Time<Real>>,
    mut foreign: ResMut<ForeignIntents>,
    mut buckets: Local<HashMap<PeerId, RateBucket>>,
    mut resync_buckets: Local<HashMap<PeerId, RateBucket>>,
    mut requests: MessageReader<PeerRequest>,
    mut intents: MessageWriter<Intent>,
) {
    let now = time.elapsed();
    for PeerRequest {
        peer,
        reply,
        request,
    } in requests.read()
    {
        let member = members.0.contains(peer);
        let response = match request {
            SessionRequest::Intent(_) if !member => {
                Some(SessionResponse::IntentResult(Err(IntentError::new(
                    ErrorCode::NotPermitted,
                    "only members of the session can change it",
                ))))
            }
            // A member may change the session, never the host's own device (its name,
            // relays, files, or which session it is in).
            SessionRequest::Intent(Intent {
                action: Action::Local(_),
                ..
            }) => Some(SessionResponse::IntentResult(Err(IntentError::new(
                ErrorCode::NotPermitted,
                "only session actions can be sent to the host",
            )))),
            SessionRequest::Intent(intent) if intent.id.author != *peer => {
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
                None
            }
            SessionRequest::Resync { .. } if !member => Some(SessionResponse::Refused {
                reason: "not a member".into(),
            }),
            SessionRequest::Resync { epoch, after }
                if auth.needs_snapshot(*epoch, *after)
                    && !resync_buckets
                        .entry(peer.clone())
                        .or_insert_with(|| {
                            RateBucket::limit(now, SNAPSHOTS_PER_SECOND, SNAPSHOT_BURST)
                        })
                        .take(now) =>
            {
                Some(SessionResponse::Refused {
                    reason: format!(
                        "too many snapshots (more than {SNAPSHOTS_PER_SECOND} a second); ask again later"
                    ),
                })
            }
            SessionRequest::Resync { epoch, after } => Some(auth.resync(*epoch, *after)),
            _ => None,
        };
        if let Some(response) = response {
            protocol::respond(&mut net, *reply, &response);
        }
    }
}

/// Sends members' intents' outcomes back to them, after the flush so a member's change is
/// on its way before its confirmation.
pub(crate) fn answer_foreign_outcomes(
    mut net: MessageWriter<NetCommand>,
    mut foreign: ResMut<ForeignIntents>,
    mut outcomes: MessageReader<IntentOutcome>,
) {
    for outcome in outcomes.read() {
        if let Some(reply) = foreign.0.remove(&outcome.id) {
            let response = SessionResponse::IntentResult(outcome.result.clone());
            protocol::respond(&mut net, reply, &response);
        }
    }
}

//! A guest's intents on their way to the host: sent live (paced, a bounded number in
//! flight) while the host is reachable, shown at once in the guest's queue marked pending,
//! and kept in the persisted outbox, delivered in order, while it is not.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Duration;

use bevy::prelude::*;
use whatnext_core::prelude::*;
use whatnext_network::{NetCommand, PeerLinks, RequestTokens, STORAGE_REFUSED};

use crate::joining::Admitted;
use crate::protocol::{self, Answer, PeerAnswer, SessionRequest, SessionResponse};
use crate::remote_host;

/// Each member may send this many intents a second, with bursts up to `INTENT_BURST`.
pub const INTENTS_PER_SECOND: f64 = 50.0;
/// How many intents a member may send at once before the steady rate applies.
pub const INTENT_BURST: f64 = 200.0;

/// A guest keeps at most this many intents in flight to its host: the transport drops
/// inbound streams beyond about a hundred, and a refused stream would send the intent
/// through the outbox instead.
pub const MAX_INTENTS_IN_FLIGHT: usize = 32;

/// A guest sends at this share of the host's rate and burst: network jitter can bunch
/// requests together on arrival.
const GUEST_PACE: f64 = 0.9;

/// A token bucket for one peer's requests. Times are the app's elapsed time, so tests can
/// drive it.
pub(crate) struct RateBucket {
    tokens: f64,
    at: Duration,
    /// Tokens added per second.
    rate: f64,
    /// The most tokens it holds.
    burst: f64,
}

impl RateBucket {
    /// A full bucket at the host's rate for intents.
    pub(crate) fn new(now: Duration) -> Self {
        Self::scaled(now, 1.0)
    }

    /// A full bucket at `share` of the host's rate and burst for intents.
    pub(crate) fn scaled(now: Duration, share: f64) -> Self {
        Self::limit(now, INTENTS_PER_SECOND * share, INTENT_BURST * share)
    }

    /// A full bucket of `burst` tokens, refilled at `rate` a second.
    pub(crate) fn limit(now: Duration, rate: f64, burst: f64) -> Self {
        Self {
            tokens: burst,
            at: now,
            rate,
            burst,
        }
    }

    /// When a token was last taken (or the bucket made).
    pub(crate) fn last_take(&self) -> Duration {
        self.at
    }

    /// Takes one token if there is one, refilling for the time since the last take.
    pub(crate) fn take(&mut self, now: Duration) -> bool {
        let refill = now.saturating_sub(self.at).as_secs_f64() * self.rate;
        self.tokens = (self.tokens + refill).min(self.burst);
        self.at = self.at.max(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// A guest's intents waiting on the host: token → intent in flight, and those queued.
#[derive(Resource, Default)]
pub(crate) struct GuestIntents {
    in_flight: HashMap<u64, Intent>,
    /// Tokens of outbox deliveries in flight.
    delivering: HashSet<u64>,
    /// Live intents waiting for a free slot or for the pacer, in order.
    queued: VecDeque<Intent>,
    /// Paces this guest below the host's limit, so a well-behaved guest is never refused.
    pacer: Option<RateBucket>,
    /// After a delivery the host could not take (its disk was full, the link went), the
    /// outbox waits until then before it is sent again.
    outbox_retry_at: Option<Duration>,
}

impl GuestIntents {
    /// Intents sent live or queued to be, not yet answered.
    pub(crate) fn waiting(&self) -> impl Iterator<Item = &Intent> {
        self.in_flight.values().chain(self.queued.iter())
    }

    /// Takes every intent still waiting for the host's answer (this device hosts now), in
    /// the order they were made; their answers, if any come, are ignored.
    pub(crate) fn take_unanswered(&mut self) -> Vec<Intent> {
        let mut sent: Vec<Intent> = self.in_flight.drain().map(|(_, intent)| intent).collect();
        sent.sort_by_key(|i| i.id.counter);
        self.delivering.clear();
        sent.extend(self.queued.drain(..));
        sent
    }
}

/// Whether the host's refusal of an outbox intent is final. A refusal that may pass (the
/// host's disk was full, it could not reach something, a fault) leaves the intent in the
/// outbox for the next delivery; a final one (a role rule, a bad value, a track gone) takes
/// it out, and its author is told.
fn refusal_is_final(error: &IntentError) -> bool {
    !matches!(
        error.code,
        ErrorCode::Storage | ErrorCode::Unreachable | ErrorCode::Internal
    )
}

/// How long the outbox waits after a delivery the host could not take.
const OUTBOX_RETRY: Duration = Duration::from_secs(1);

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
        media,
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
                media: *media,
                added_by: author.clone(),
            },
            QueuePosition(key),
            Pending,
        ));
    }
}

/// A guest's session intents go to the host; its answer becomes the intent's outcome. Each
/// added track shows in the guest's own queue at once, marked pending, until the host's copy
/// replaces it (or the host refuses it and it goes). When the host cannot be reached, the
/// intent waits in the persisted outbox and the answer says so (`pending`); the outbox is
/// delivered, in order, once the host is back and has welcomed this device again. The
/// outbox keeps an intent until the host applied it or refused it for good; a refusal is
/// reported as an [`IntentRefused`].
pub(crate) fn forward_guest_intents(
    mut commands: Commands,
    local: Res<LocalPeer>,
    hosts: Query<&Host>,
    (links, admitted): (Res<PeerLinks>, Res<Admitted>),
    index: Res<QueueIndex>,
    time: Res<Time<Real>>,
    pending: Query<(), With<Pending>>,
    mut net: MessageWriter<NetCommand>,
    mut guest: ResMut<GuestIntents>,
    mut tokens: ResMut<RequestTokens>,
    mut outbox: ResMut<Outbox>,
    mut intents: MessageReader<Intent>,
    mut answers: MessageReader<PeerAnswer>,
    mut restored_shown: Local<bool>,
    (mut outcomes, mut refused): (MessageWriter<IntentOutcome>, MessageWriter<IntentRefused>),
) {
    let host = remote_host(&local, &hosts);
    // Linked is not enough: a restarted host refuses intents until it has welcomed us.
    let reachable = host
        .as_ref()
        .is_some_and(|h| admitted.0.as_ref() == Some(h) && links.0.contains_key(h));
    // Pending additions of this frame go after each other, not on one key.
    let mut tail = index.last_key();
    // An outbox restored from disk shows in the queue too, marked pending, as before the
    // restart (once a run: later entries were shown when they were made).
    if host.is_some() && !*restored_shown {
        *restored_shown = true;
        for intent in &outbox.0 {
            if let Action::Session(action) = &intent.action {
                show_pending(&mut commands, &index, &mut tail, &intent.id.author, action);
            }
        }
    }
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
            guest.queued.push_back(intent.clone());
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
    for PeerAnswer { token, answer, .. } in answers.read() {
        match answer {
            Answer::Session(SessionResponse::IntentResult(result)) => {
                if let Some(intent) = guest.in_flight.remove(token) {
                    if guest.delivering.remove(token) {
                        // Its pending reply went out long ago: applied, or refused for good,
                        // the outbox entry is done; a refusal that may pass is tried again.
                        match result {
                            Err(error) if !refusal_is_final(error) => {
                                tracing::info!(%error, "the host could not apply an intent yet; it stays in the outbox");
                                guest.outbox_retry_at = Some(time.elapsed() + OUTBOX_RETRY);
                                continue;
                            }
                            Err(error) => {
                                tracing::warn!(%error, "the host refused an intent from the outbox");
                                drop_refused(&mut commands, &intent);
                                refused.write(IntentRefused {
                                    intent: intent.clone(),
                                    error: error.clone(),
                                });
                            }
                            Ok(_) => {}
                        }
                        outbox.0.retain(|i| i.id != intent.id);
                    } else {
                        if result.is_err() {
                            drop_refused(&mut commands, &intent);
                        }
                        outcomes.write(IntentOutcome {
                            id: intent.id,
                            result: result.clone(),
                        });
                    }
                }
            }
            Answer::Failed(error) => {
                if let Some(intent) = guest.in_flight.remove(token) {
                    if guest.delivering.remove(token) {
                        // Stays in the outbox for the next attempt, a little later.
                        guest.outbox_retry_at = Some(time.elapsed() + OUTBOX_RETRY);
                        continue;
                    }
                    if error.contains(STORAGE_REFUSED) {
                        // The host applied it, could not save it, and undid it: say so.
                        drop_refused(&mut commands, &intent);
                        outcomes.write(IntentOutcome {
                            id: intent.id,
                            result: Err(IntentError::new(
                                ErrorCode::Storage,
                                "the host could not save it (its disk is full or failing); nothing changed",
                            )),
                        });
                        continue;
                    }
                    if reachable {
                        // Only that connection went (a relayed one replaced by a direct
                        // one, say): send it again. The host applies an intent id once.
                        tracing::debug!(%error, "an intent was lost on the way; sending it again");
                        guest.queued.push_front(intent);
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
        while let Some(intent) = guest.queued.pop_front() {
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
    let now = time.elapsed();
    let GuestIntents {
        in_flight,
        delivering,
        queued,
        pacer,
        outbox_retry_at,
    } = &mut *guest;
    let pacer = pacer.get_or_insert_with(|| RateBucket::scaled(now, GUEST_PACE));
    // A live intent leaves before this frame's write to disk (`publish`): sending it tells
    // nobody anything, its answer does, in a later frame. An outbox entry leaves after the
    // write (`send`): it may have been put there this frame, with a `pending` answer that a
    // failed write turns into "nothing changed", which must stay true.
    let mut send = |intent: &Intent, in_flight: &mut HashMap<u64, Intent>, live: bool| {
        let token = tokens.fresh();
        in_flight.insert(token, intent.clone());
        let request = SessionRequest::Intent(intent.clone());
        if live {
            protocol::publish(&mut net, token, &host, &request);
        } else {
            protocol::send(&mut net, token, &host, &request);
        }
        token
    };
    // The outbox first, when nothing from it is in flight, so intents keep their order.
    if delivering.is_empty() && outbox_retry_at.is_none_or(|at| now >= at) {
        *outbox_retry_at = None;
        for intent in &outbox.0 {
            if in_flight.len() >= MAX_INTENTS_IN_FLIGHT || !pacer.take(now) {
                break;
            }
            let token = send(intent, in_flight, false);
            delivering.insert(token);
        }
    }
    if delivering.is_empty() && outbox.0.is_empty() {
        while in_flight.len() < MAX_INTENTS_IN_FLIGHT
            && !queued.is_empty()
            && pacer.take(now)
            && let Some(intent) = queued.pop_front()
        {
            send(&intent, in_flight, true);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_member_gets_a_burst_then_the_steady_rate() {
        let start = Duration::from_secs(3);
        let mut bucket = RateBucket::new(start);
        let burst = (0..1000).take_while(|_| bucket.take(start)).count();
        assert_eq!(burst, INTENT_BURST as usize);
        assert!(!bucket.take(start), "empty until time passes");
        let later = start + Duration::from_secs(1);
        let refilled = (0..1000).take_while(|_| bucket.take(later)).count();
        assert_eq!(refilled, INTENTS_PER_SECOND as usize);
    }

    #[test]
    fn time_going_back_refills_nothing() {
        let start = Duration::from_secs(3);
        let mut bucket = RateBucket::new(start);
        while bucket.take(start) {}
        assert!(!bucket.take(Duration::from_secs(1)));
        assert!(
            !bucket.take(start),
            "the earlier time did not move the bucket back"
        );
    }
}

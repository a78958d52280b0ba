//! [`SessionEvent`]: what happened to the session, derived from component changes.

use std::collections::HashMap;

use bevy::prelude::*;

use super::Restored;
use crate::clock::{PlayState, PlaybackClock};
use crate::components::*;
use crate::ids::{PeerId, SessionId, TrackId};
use crate::reaction::{Emoji, Reactions};

/// What happened to the session, for front ends and extensions. Derived from component
/// changes, so it reports the same facts whatever caused them (a local intent, the host's
/// replication, storage).
#[derive(Message, Clone, Debug, PartialEq, Eq)]
pub enum SessionEvent {
    /// This device entered a session (created, joined; not restored at start).
    SessionJoined {
        /// The session entered.
        session_id: SessionId,
    },
    /// This device's session ended for it (left, or closed).
    SessionLeft {
        /// The session left.
        session_id: SessionId,
        /// Why: left here, ended by the host, or removed by the host or a co-host.
        reason: LeaveReason,
    },
    /// Someone joined the session.
    ParticipantJoined {
        /// Who joined.
        peer: PeerId,
    },
    /// Someone left the session.
    ParticipantLeft {
        /// Who left.
        peer: PeerId,
    },
    /// A track entered the queue.
    TrackAdded {
        /// The track added.
        track_id: TrackId,
    },
    /// A track left the queue.
    TrackRemoved {
        /// The track removed.
        track_id: TrackId,
    },
    /// The queue's order or contents changed.
    QueueChanged,
    /// The playback clock changed (play, pause, seek, a new track).
    PlaybackChanged,
    /// Playback moved to another device.
    OwnerChanged {
        /// The new playback owner.
        owner: PeerId,
    },
    /// Someone became, or stopped being, a co-host.
    CohostsChanged,
    /// The host role moved to another device (handed over, or taken over).
    HostChanged {
        /// The new host.
        host: PeerId,
        /// The host before.
        previous: PeerId,
        /// Why it moved.
        why: HostChange,
    },
    /// A track began playing (a new current track, while playing).
    TrackStarted {
        /// The track now playing.
        track_id: TrackId,
    },
    /// Someone sent a reaction (the host recorded it in [`Reactions`]).
    Reaction {
        /// Which reaction.
        emoji: Emoji,
        /// Who sent it.
        from: PeerId,
        /// The track it is about, if any.
        track_id: Option<TrackId>,
    },
}

/// In `PostUpdate` ([`SessionSet::Events`](super::SessionSet::Events)): turns this frame's
/// component changes into [`SessionEvent`]s. Entities loaded from storage ([`Restored`]) are
/// not news.
pub(super) fn emit_session_events(
    mut out: MessageWriter<SessionEvent>,
    mut known_session: Local<Option<SessionId>>,
    mut leave_reason: ResMut<PendingLeaveReason>,
    mut known_participants: Local<HashMap<Entity, PeerId>>,
    sessions: Query<(&Session, &Host, Option<&HostTerm>, Has<Restored>)>,
    new_participants: Query<(Entity, &Participant, Has<Restored>), Added<Participant>>,
    mut gone_participants: RemovedComponents<Participant>,
    new_tracks: Query<&Track, (Added<Track>, Without<Restored>)>,
    mut removed_tracks: MessageReader<TrackRemoved>,
    moved: Query<(), (Changed<QueuePosition>, Without<Restored>)>,
    clocks: Query<&PlaybackClock, (Changed<PlaybackClock>, Without<Restored>)>,
    (mut started, mut known_host): (Local<Option<TrackId>>, Local<Option<(SessionId, PeerId)>>),
    owners: Query<&PlaybackOwner, (Changed<PlaybackOwner>, Without<Restored>)>,
    cohosts: Query<(), (Changed<CoHosts>, Without<Restored>)>,
    reactions: Query<Ref<Reactions>>,
    mut seen_reaction: Local<Option<u64>>,
) {
    let current = sessions.iter().next().map(|(s, h, t, r)| (s, r, h, t));
    // The host changed within the same session (not on entering one).
    let host_now = current.map(|(s, _, h, _)| (s.id.clone(), h.0.clone()));
    if let (Some((was_in, previous)), Some((now_in, host))) = (known_host.as_ref(), &host_now)
        && was_in == now_in
        && previous != host
    {
        out.write(SessionEvent::HostChanged {
            host: host.clone(),
            previous: previous.clone(),
            why: current
                .and_then(|(_, _, _, t)| t.map(|t| t.why))
                .unwrap_or_default(),
        });
    }
    *known_host = host_now;
    let current = current.map(|(s, r, _, _)| (s, r));
    let current_id = current.map(|(s, _)| s.id.clone());
    if *known_session != current_id {
        if let Some(left) = known_session.take() {
            // Without a reason given, the session went from under this device: the host
            // ended it.
            let reason = leave_reason.0.take().unwrap_or(LeaveReason::Ended);
            out.write(SessionEvent::SessionLeft {
                session_id: left,
                reason,
            });
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
    emit_reactions(&mut out, reactions.iter().next(), &mut seen_reaction);
}

/// New reactions since the last one reported. The first list seen (a joiner's snapshot, the
/// first reaction after a restart) is news only for a host that just recorded it.
fn emit_reactions(
    out: &mut MessageWriter<SessionEvent>,
    reactions: Option<Ref<Reactions>>,
    seen: &mut Option<u64>,
) {
    let Some(reactions) = reactions else {
        *seen = None;
        return;
    };
    if !reactions.is_changed() {
        return;
    }
    // A list that arrived whole (a joiner's snapshot) is history, except its newest entry
    // when the list was only just started (the first reaction of the session).
    let from = match *seen {
        Some(seen) => Some(seen),
        None if reactions.is_added() && reactions.next_id > 1 => {
            reactions.recent.last().map(|r| r.id)
        }
        None => None,
    };
    for r in reactions.after(from) {
        out.write(SessionEvent::Reaction {
            emoji: r.emoji,
            from: r.from.clone(),
            track_id: r.track_id,
        });
    }
    *seen = reactions.recent.last().map(|r| r.id).or(*seen);
}

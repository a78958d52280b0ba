//! Playback moving through the queue on its own.

use bevy::prelude::*;

use crate::clock::{PlayState, PlaybackClock};
use crate::components::*;
use crate::time::WallClock;

/// On the authority, moves to the next track when the current one has played to its end.
/// In `Update`, after the frame's intents ([`SessionSet::Apply`](super::SessionSet::Apply)).
pub(super) fn advance_finished_track(
    local: Res<LocalPeer>,
    wall: Res<WallClock>,
    index: Res<QueueIndex>,
    tracks: Query<&Track>,
    positions: Query<&QueuePosition>,
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
    match index.next_after(current, &positions) {
        Some(next) => clock.start(next, PlayState::Playing, ended_at),
        None => *clock = PlaybackClock::stopped(),
    }
}

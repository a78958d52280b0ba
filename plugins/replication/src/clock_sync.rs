//! A member reads the playback clock against the host's wall clock, not its own: it asks
//! the host for the time and keeps `WallClock::offset_ms` up to date.

use std::collections::HashMap;
use std::time::Duration;

use bevy::prelude::*;
use whatnext_core::clock::OffsetEstimator;
use whatnext_core::prelude::*;
use whatnext_network::{NetCommand, PeerLinks, Request, RequestTokens, net_peer};

use crate::protocol::{Answer, PeerAnswer};
use crate::remote_host;

/// Quick samples right after joining, then one now and then (clocks drift, links change).
const CLOCK_SAMPLE_QUICK: Duration = Duration::from_millis(200);
const CLOCK_SAMPLE_SLOW: Duration = Duration::from_secs(10);

/// A member's estimate of the host's clock, and its time requests in flight.
#[derive(Resource, Default)]
pub(crate) struct ClockSync {
    host: Option<PeerId>,
    estimator: OffsetEstimator,
    /// Token → local wall time the request left, in ms.
    asked: HashMap<u64, u64>,
    /// When to ask next, in the app's elapsed time.
    next_at: Option<Duration>,
}

/// This device's own wall clock this frame, in ms: `WallClock` minus the host offset.
fn local_now_ms(wall: &WallClock) -> u64 {
    // Saturating: `-i64::MIN` would overflow (the estimator clamps, but this is a field).
    wall.now_ms
        .saturating_add_signed(wall.offset_ms.saturating_neg())
}

/// Asks the host's time now and then, and folds each answer into `WallClock::offset_ms`.
/// On the host, or without a session, the offset goes back to zero.
pub(crate) fn sync_clock_with_host(
    local: Res<LocalPeer>,
    hosts: Query<&Host>,
    links: Res<PeerLinks>,
    time: Res<Time<Real>>,
    mut sync: ResMut<ClockSync>,
    mut wall: ResMut<WallClock>,
    mut tokens: ResMut<RequestTokens>,
    mut net: MessageWriter<NetCommand>,
    mut answers: MessageReader<PeerAnswer>,
) {
    // Read before this frame's answers move the offset: both ends of an exchange are
    // measured on the same local clock.
    let local_now = local_now_ms(&wall);
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
    for PeerAnswer { token, answer, .. } in answers.read() {
        let Some(sent) = sync.asked.remove(token) else {
            continue;
        };
        if let Answer::Time { now_ms } = answer {
            wall.offset_ms = sync.estimator.add(sent, *now_ms, local_now);
        }
    }
    let now = time.elapsed();
    if links.0.contains_key(&host)
        && sync.next_at.is_none_or(|at| at <= now)
        && let Some(peer) = net_peer(&host)
    {
        let token = tokens.fresh();
        sync.asked.insert(token, local_now);
        net.write(NetCommand::Send {
            token,
            peer,
            request: Request::Time,
        });
        let quick = sync.estimator.samples() < OffsetEstimator::KEEP;
        let wait = if quick {
            CLOCK_SAMPLE_QUICK
        } else {
            CLOCK_SAMPLE_SLOW
        };
        sync.next_at = Some(now + wait);
    }
}

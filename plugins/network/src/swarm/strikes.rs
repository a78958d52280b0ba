//! Counting malformed messages per peer: one is refused and the connection goes on; a peer
//! that keeps sending them is cut off.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use libp2p::PeerId;
use tracing::warn;

use super::Task;

/// A peer that sends more than `GARBAGE_LIMIT` unreadable messages within `GARBAGE_WINDOW`
/// is disconnected.
pub const GARBAGE_LIMIT: usize = 10;
/// See [`GARBAGE_LIMIT`].
pub const GARBAGE_WINDOW: Duration = Duration::from_secs(60);

/// Recent unreadable messages per peer.
#[derive(Default)]
pub(super) struct Strikes {
    recent: HashMap<PeerId, Vec<Instant>>,
}

impl Strikes {
    /// Counts one against `peer`; `true` when it is past the limit.
    fn count(&mut self, peer: PeerId, now: Instant) -> bool {
        let strikes = self.recent.entry(peer).or_default();
        strikes.retain(|at| now.duration_since(*at) < GARBAGE_WINDOW);
        strikes.push(now);
        if strikes.len() > GARBAGE_LIMIT {
            self.recent.remove(&peer);
            return true;
        }
        false
    }
}

impl Task {
    /// One more malformed message from `peer`: past the limit, it is disconnected.
    pub(super) fn strike(&mut self, peer: PeerId, what: &str) {
        warn!(%peer, what, "refused a bad message");
        if self.strikes.count(peer, Instant::now()) {
            warn!(%peer, "too many bad messages; disconnecting");
            let _ = self.swarm.disconnect_peer_id(peer);
        }
    }
}

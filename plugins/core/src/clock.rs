//! The shared playback clock. It stores an anchor (a position at a moment); the current
//! position is derived from it, never ticked frame by frame, so every peer that knows the
//! anchor computes the same position.

use bevy::prelude::*;
use serde::{Deserialize, Serialize};

use crate::ids::TrackId;

/// Kept here too: the playback clock is read against it.
pub use crate::time::WallClock;

/// Whether the session's playback is running.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PlayState {
    /// The current track plays; its position moves with the wall clock.
    Playing,
    /// The current track holds its position.
    Paused,
    /// No current track.
    Stopped,
}

impl PlayState {
    /// The lowercase name used by the control protocol.
    pub fn as_str(self) -> &'static str {
        match self {
            PlayState::Playing => "playing",
            PlayState::Paused => "paused",
            PlayState::Stopped => "stopped",
        }
    }
}

/// On the session entity.
#[derive(Component, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlaybackClock {
    /// Playing, paused or stopped.
    pub state: PlayState,
    /// The current track, if any.
    pub track: Option<TrackId>,
    /// The position at `anchor_at_ms`.
    pub anchor_position_ms: u64,
    /// Wall-clock time of the anchor, in milliseconds since the Unix epoch.
    pub anchor_at_ms: u64,
}

impl Default for PlaybackClock {
    fn default() -> Self {
        Self::stopped()
    }
}

impl PlaybackClock {
    /// No track, position zero.
    pub fn stopped() -> Self {
        Self {
            state: PlayState::Stopped,
            track: None,
            anchor_position_ms: 0,
            anchor_at_ms: 0,
        }
    }

    /// The position at `now_ms`.
    pub fn position_at(&self, now_ms: u64) -> u64 {
        match self.state {
            PlayState::Playing => self
                .anchor_position_ms
                .saturating_add(now_ms.saturating_sub(self.anchor_at_ms)),
            PlayState::Paused | PlayState::Stopped => self.anchor_position_ms,
        }
    }

    /// Starts `track` from its beginning, playing or paused.
    pub fn start(&mut self, track: TrackId, state: PlayState, now_ms: u64) {
        *self = Self {
            state,
            track: Some(track),
            anchor_position_ms: 0,
            anchor_at_ms: now_ms,
        };
    }

    /// Resumes from the position at `now_ms`.
    pub fn play(&mut self, now_ms: u64) {
        self.anchor_position_ms = self.position_at(now_ms);
        self.anchor_at_ms = now_ms;
        self.state = PlayState::Playing;
    }

    /// Holds the position reached at `now_ms`.
    pub fn pause(&mut self, now_ms: u64) {
        self.anchor_position_ms = self.position_at(now_ms);
        self.anchor_at_ms = now_ms;
        self.state = PlayState::Paused;
    }

    /// Jumps to `position_ms` as of `now_ms`, keeping play/pause.
    pub fn seek(&mut self, position_ms: u64, now_ms: u64) {
        self.anchor_position_ms = position_ms;
        self.anchor_at_ms = now_ms;
    }
}

/// Estimates the offset to the host's clock from time requests, NTP-style: a sample is
/// `host_ms - (sent + received) / 2`, and the sample with the shortest round trip of the
/// last few wins (its error is at most half that round trip).
#[derive(Clone, Debug, Default)]
pub struct OffsetEstimator {
    samples: std::collections::VecDeque<(u64, i64)>,
}

impl OffsetEstimator {
    /// How many recent exchanges are kept.
    pub const KEEP: usize = 8;

    /// The largest offset taken from a host, either way: 100 years covers any clock set
    /// wrong by hand or reset to 1970, and keeps `now ± offset` far from overflowing.
    pub const MAX_OFFSET_MS: i64 = 100 * 365 * 86_400_000;

    /// Adds one exchange (all in ms) and returns the best estimate so far.
    pub fn add(&mut self, sent_ms: u64, host_ms: u64, received_ms: u64) -> i64 {
        let rtt = received_ms.saturating_sub(sent_ms);
        let midpoint = sent_ms.saturating_add(rtt / 2);
        // `host_ms` is a peer's number: computed wide, then clamped, so no answer overflows.
        let offset = (i128::from(host_ms) - i128::from(midpoint)).clamp(
            -i128::from(Self::MAX_OFFSET_MS),
            i128::from(Self::MAX_OFFSET_MS),
        ) as i64;
        if self.samples.len() == Self::KEEP {
            self.samples.pop_front();
        }
        self.samples.push_back((rtt, offset));
        self.best().unwrap_or(offset)
    }

    /// The offset of the exchange with the shortest round trip, if any.
    pub fn best(&self) -> Option<i64> {
        self.samples.iter().min_by_key(|(rtt, _)| *rtt).map(|s| s.1)
    }

    /// How many exchanges are kept now.
    pub fn samples(&self) -> usize {
        self.samples.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_offset_comes_from_the_exchange_with_the_shortest_round_trip() {
        let mut estimator = OffsetEstimator::default();
        // Host 5 s ahead; a slow exchange with an asymmetric delay gives a poor sample...
        assert_eq!(estimator.add(1_000, 6_400, 1_600), 5_100);
        // ...and a quick one a good one, which then wins over the slow one.
        assert_eq!(estimator.add(2_000, 7_005, 2_010), 5_000);
        assert_eq!(estimator.add(3_000, 8_300, 3_400), 5_000);
        // Old samples age out.
        for i in 0..OffsetEstimator::KEEP as u64 {
            estimator.add(10_000 + i, 14_000 + i, 10_050 + i);
        }
        assert_eq!(estimator.best(), Some(3_975));
    }

    /// The host's answer is a peer's number: any u64 must give an offset, not a panic, and
    /// the offset stays within [`OffsetEstimator::MAX_OFFSET_MS`] so `now ± offset` never
    /// overflows either.
    #[test]
    fn a_hostile_host_time_gives_a_clamped_offset_not_a_panic() {
        let max = OffsetEstimator::MAX_OFFSET_MS;
        for host_ms in [u64::MAX, 1 << 63, (1 << 63) - 1, u64::MAX / 2 + 7] {
            let mut estimator = OffsetEstimator::default();
            assert_eq!(estimator.add(1_000, host_ms, 1_100), max, "{host_ms}");
        }
        let mut estimator = OffsetEstimator::default();
        assert_eq!(estimator.add(u64::MAX - 10, 0, u64::MAX), -max);
        // A clock 56 years off (a device that lost its date) is still followed.
        let mut estimator = OffsetEstimator::default();
        let years_56 = 56 * 365 * 86_400_000;
        assert_eq!(
            estimator.add(1_000, 1_050 + years_56, 1_100),
            years_56 as i64
        );
    }

    #[test]
    fn playing_position_is_derived_from_the_anchor() {
        let mut clock = PlaybackClock::stopped();
        clock.start(TrackId(1), PlayState::Playing, 1_000);
        assert_eq!(clock.position_at(1_000), 0);
        assert_eq!(clock.position_at(4_500), 3_500);
    }

    #[test]
    fn pause_freezes_and_play_resumes_from_there() {
        let mut clock = PlaybackClock::stopped();
        clock.start(TrackId(1), PlayState::Playing, 0);
        clock.pause(2_000);
        assert_eq!(clock.position_at(9_000), 2_000);
        clock.play(10_000);
        assert_eq!(clock.position_at(11_000), 3_000);
    }

    #[test]
    fn seek_moves_the_anchor() {
        let mut clock = PlaybackClock::stopped();
        clock.start(TrackId(1), PlayState::Playing, 0);
        clock.seek(60_000, 5_000);
        assert_eq!(clock.position_at(6_000), 61_000);
    }
}

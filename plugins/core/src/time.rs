//! Wall time. Only [`tick_wall_clock`] reads the operating system's clock, once a frame in
//! `First`; every system reads [`WallClock`], so a frame agrees with itself and tests can
//! freeze and move time.

use std::time::{SystemTime, UNIX_EPOCH};

use bevy::prelude::*;

/// Wall-clock now, in milliseconds since the Unix epoch, read once per frame so that every
/// system in a frame agrees. Tests freeze it and move it by hand.
///
/// On a member it is the host's clock: the playback clock's anchors are the host's times, so
/// reading them against a system clock that is off would put every member's position off.
#[derive(Resource, Clone, Copy, Debug, Default)]
pub struct WallClock {
    /// Milliseconds since the Unix epoch, this frame.
    pub now_ms: u64,
    /// Tests set this: the tick leaves `now_ms` alone.
    pub frozen: bool,
    /// The authority's clock minus this device's, as last estimated (0 on the host).
    pub offset_ms: i64,
}

/// This device's wall clock now, in milliseconds since the Unix epoch (moved by
/// `WHATNEXT_TEST_CLOCK_SKEW_MS`). Systems read [`WallClock`] instead; this is for the one
/// tick that fills it, and for code outside the frame (network threads, startup).
pub fn now_ms() -> u64 {
    let local = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    local.saturating_add_signed(test_clock_skew_ms())
}

/// [`now_ms`] in microseconds, for the sound thread, which places samples finer than a
/// millisecond.
pub fn now_us() -> i64 {
    let local = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0);
    local.saturating_add(test_clock_skew_ms().saturating_mul(1000))
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

/// In `First`: reads the OS clock once for the frame, shifted to the host's clock, unless a
/// test froze it.
pub(crate) fn tick_wall_clock(mut clock: ResMut<WallClock>) {
    if !clock.frozen {
        clock.now_ms = now_ms().saturating_add_signed(clock.offset_ms);
    }
}

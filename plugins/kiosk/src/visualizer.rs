//! The visualizer's motion, as pure functions of the shared playback clock and the track, so
//! every screen at the party moves in time without hearing the music. (Spectrum from decoded
//! samples would replace `levels` on the device that plays; see docs/decisions/kiosk.md.)

/// Bars across the screen.
pub const BARS: usize = 48;

/// Flashes are at most 3 a second, whatever the tempo (photosensitivity guidance).
pub const MIN_FLASH_GAP_MS: u64 = 334;

/// What drives the picture this frame.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Drive {
    /// The current track's id, as a seed: each track gets its own tempo and shape.
    pub seed: u64,
    /// The shared playback clock's position in the track.
    pub position_ms: u64,
    /// Whether the track is playing; paused or stopped bars barely move.
    pub playing: bool,
}

/// The track's beat length: 84 to 143 beats a minute, from its id.
pub fn beat_ms(seed: u64) -> u64 {
    60_000 / (84 + seed % 60)
}

/// Which beat of the track the position is in.
pub fn beat_index(drive: &Drive) -> u64 {
    drive.position_ms / beat_ms(drive.seed)
}

/// Bar heights in 0..=1 for this frame.
pub fn levels(drive: &Drive, reduce_motion: bool) -> [f32; BARS] {
    let mut out = [0.0; BARS];
    let t = drive.position_ms as f32 / 1000.0;
    let beat = beat_ms(drive.seed) as f32;
    let phase = (drive.position_ms as f32 % beat) / beat;
    // A kick at each beat that decays; gentler when motion is reduced.
    let kick = if reduce_motion {
        0.3
    } else {
        (-phase * 5.0).exp()
    };
    for (i, level) in out.iter_mut().enumerate() {
        let x = i as f32 / BARS as f32;
        // The track's own "spectrum": more bass, a few bumps placed by its id.
        let bump = ((x * 9.0 + (drive.seed % 97) as f32 * 0.37).sin() * 0.5 + 0.5) * 0.35;
        let base = (1.0 - x).powf(0.7) * 0.55 + bump;
        let speed = if reduce_motion { 0.25 } else { 1.0 };
        let wobble = ((t * speed * (0.9 + i as f32 * 0.11)) + i as f32).sin() * 0.5 + 0.5;
        *level = if drive.playing {
            let bass = 1.0 - x;
            base * (0.35 + 0.45 * kick * bass + 0.2 * wobble)
        } else {
            0.04 + 0.03 * wobble
        }
        .clamp(0.0, 1.0);
    }
    out
}

/// Lets a flash through only if the last one was long enough ago.
#[derive(Clone, Debug, Default)]
pub struct FlashLimiter {
    last_ms: Option<u64>,
}

impl FlashLimiter {
    /// `now_ms` on any clock that only moves forward (a jump back resets the limiter).
    pub fn allow(&mut self, now_ms: u64) -> bool {
        match self.last_ms {
            Some(last) if now_ms >= last && now_ms - last < MIN_FLASH_GAP_MS => false,
            _ => {
                self.last_ms = Some(now_ms);
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flashes_never_come_more_than_three_a_second() {
        let mut limiter = FlashLimiter::default();
        // A beat every 100 ms (600 beats a minute) for 10 seconds.
        let flashes = (0..100u64).filter(|i| limiter.allow(i * 100)).count();
        assert!(flashes <= 30, "{flashes} flashes in 10 s");
        assert!(flashes >= 25, "still flashing on the beat: {flashes}");
    }

    #[test]
    fn every_screen_computes_the_same_picture_from_the_same_clock() {
        let drive = Drive {
            seed: 0xDE30_0001,
            position_ms: 83_000,
            playing: true,
        };
        assert_eq!(levels(&drive, false), levels(&drive, false));
        let later = Drive {
            position_ms: 83_000 + beat_ms(drive.seed) / 2,
            ..drive
        };
        assert_ne!(levels(&drive, false), levels(&later, false), "it moves");
    }

    #[test]
    fn the_kick_lands_on_the_beat_and_paused_is_quiet() {
        let seed = 7;
        let on = Drive {
            seed,
            position_ms: beat_ms(seed) * 10,
            playing: true,
        };
        let off = Drive {
            position_ms: on.position_ms + beat_ms(seed) * 3 / 4,
            ..on
        };
        let bass = |d: &Drive| levels(d, false)[..8].iter().sum::<f32>();
        assert!(bass(&on) > bass(&off), "bass is highest on the beat");
        let paused = Drive {
            playing: false,
            ..on
        };
        assert!(levels(&paused, false).iter().all(|l| *l < 0.1));
    }
}

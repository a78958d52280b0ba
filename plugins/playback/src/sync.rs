//! Keeping the sound on the shared clock, sample by sample (as Snapcast does): every block of
//! frames is placed for the wall time it leaves the device. Small errors are corrected by
//! dropping or repeating single frames, at most 1 in 100 (a 1% speed change, not heard as a
//! jump); a large one (a seek, a late start, switching "Listen along" on mid-track) by
//! seeking. No Bevy and no device here: the outputs in `output.rs` call [`Aligner::fill`].

/// Where the track should be: the shared clock, on this device's clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Target {
    /// The position at the anchor, in ms.
    pub anchor_position_ms: u64,
    /// The anchor's time on the host's clock, in ms since the Unix epoch.
    pub anchor_at_ms: u64,
    /// The host's clock minus this device's, in ms (0 on the host).
    pub offset_ms: i64,
    /// Playing (else paused: silence, the position held).
    pub playing: bool,
}

impl Target {
    /// The frame (at `rate`) that should leave the device at local time `local_us`.
    pub fn frame_at(&self, local_us: i64, rate: u32) -> i64 {
        let position_us = if self.playing {
            let host_us = local_us + self.offset_ms * 1000;
            self.anchor_position_ms as i64 * 1000 + (host_us - self.anchor_at_ms as i64 * 1000)
        } else {
            self.anchor_position_ms as i64 * 1000
        };
        (position_us.max(0) as i128 * rate as i128 / 1_000_000) as i64
    }
}

/// Interleaved samples from a decoded track, with a way to jump.
pub trait Frames {
    /// Samples per frame.
    fn channels(&self) -> usize;
    /// Frames per second.
    fn rate(&self) -> u32;
    /// The next sample, `None` at the end.
    fn next_sample(&mut self) -> Option<f32>;
    /// Moves so the next frame is `frame`; `false` if this source cannot seek.
    fn seek(&mut self, frame: u64) -> bool;
}

/// An error beyond this many milliseconds is fixed by seeking, not by dropping frames.
pub const SEEK_BEYOND_MS: i64 = 100;
/// Errors within this many frames are left alone (a frame is ~20 µs at 48 kHz).
pub const DEAD_BAND_FRAMES: i64 = 2;

/// Feeds frames so that the frame leaving at a given time is the one the clock names.
pub struct Aligner<F: Frames> {
    source: F,
    /// The index of the next frame `source` gives.
    frame: u64,
    target: Target,
    /// The source has ended.
    ended: bool,
    /// The last frame given, repeated to slow down.
    last: Vec<f32>,
}

/// What one block did, for measuring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Placed {
    /// The track frame at the block's first sample (`None`: silence).
    pub first_frame: Option<u64>,
    /// The error of the block that leaves, in frames (positive: ahead of the clock): after a
    /// jump to the clock's frame, before the slow correction of dropped or repeated frames.
    pub error: i64,
}

impl<F: Frames> Aligner<F> {
    /// Starts at the source's first frame.
    pub fn new(source: F, target: Target) -> Self {
        let channels = source.channels().max(1);
        Self {
            source,
            frame: 0,
            target,
            ended: false,
            last: vec![0.0; channels],
        }
    }

    /// The source's format: (frames per second, samples per frame).
    pub fn format(&self) -> (u32, usize) {
        (self.source.rate(), self.source.channels().max(1))
    }

    /// Follows a new clock (play, pause, seek).
    pub fn set_target(&mut self, target: Target) {
        self.target = target;
    }

    /// Fills `out` (interleaved) with the frames that should leave the device from local time
    /// `leave_us` on.
    pub fn fill(&mut self, out: &mut [f32], leave_us: i64) -> Placed {
        let (rate, channels) = self.format();
        let frames = out.len() / channels;
        if !self.target.playing || self.ended {
            out.fill(0.0);
            return Placed {
                first_frame: None,
                error: 0,
            };
        }
        let desired = self.target.frame_at(leave_us, rate);
        let mut error = self.frame as i64 - desired;
        if error.abs() > SEEK_BEYOND_MS * rate as i64 / 1000 {
            self.jump(desired.max(0) as u64);
            error = self.frame as i64 - desired;
        }
        // Ahead by more than a block even after jumping (no seek backwards): wait in silence.
        if error > frames as i64 {
            out.fill(0.0);
            return Placed {
                first_frame: None,
                error,
            };
        }
        let first_frame = self.frame;
        // A 1% budget: at most one frame in 100 dropped (behind) or repeated (ahead).
        let budget = (frames as i64 / 100).max(1);
        let correction = if error.abs() <= DEAD_BAND_FRAMES {
            0
        } else {
            error.clamp(-budget, budget)
        };
        let every = if correction == 0 {
            usize::MAX
        } else {
            (frames / correction.unsigned_abs() as usize).max(1)
        };
        let mut corrections_left = correction.unsigned_abs();
        for i in 0..frames {
            let slot = &mut out[i * channels..(i + 1) * channels];
            let correct_here = corrections_left > 0 && i % every == every / 2;
            if correct_here && correction > 0 {
                // Ahead: repeat the last frame; the source does not move.
                slot.copy_from_slice(&self.last);
                corrections_left -= 1;
                continue;
            }
            if correct_here && correction < 0 {
                // Behind: drop one frame from the source.
                self.read_frame_into(None);
                corrections_left -= 1;
            }
            self.read_frame_into(Some(slot));
        }
        Placed {
            first_frame: Some(first_frame),
            error,
        }
    }

    /// Reads one frame into `slot` (or drops it), keeping it as the last frame.
    fn read_frame_into(&mut self, slot: Option<&mut [f32]>) {
        let channels = self.last.len();
        for c in 0..channels {
            match self.source.next_sample() {
                Some(sample) => self.last[c] = sample,
                None => {
                    self.ended = true;
                    self.last.fill(0.0);
                    break;
                }
            }
        }
        if !self.ended {
            self.frame += 1;
        }
        if let Some(slot) = slot {
            slot.copy_from_slice(&self.last);
        }
    }

    /// Moves to `frame`: a seek when the source can, else reading forward (behind) or
    /// staying (ahead: the caller waits in silence).
    fn jump(&mut self, frame: u64) {
        if self.source.seek(frame) {
            self.frame = frame;
            return;
        }
        while self.frame < frame && !self.ended {
            self.read_frame_into(None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A mono source whose sample is its own frame index, optionally unable to seek.
    struct Counter {
        next: u64,
        rate: u32,
        can_seek: bool,
    }

    impl Frames for Counter {
        fn channels(&self) -> usize {
            1
        }
        fn rate(&self) -> u32 {
            self.rate
        }
        fn next_sample(&mut self) -> Option<f32> {
            let s = self.next as f32;
            self.next += 1;
            Some(s)
        }
        fn seek(&mut self, frame: u64) -> bool {
            if self.can_seek {
                self.next = frame;
            }
            self.can_seek
        }
    }

    const RATE: u32 = 48_000;

    /// An aligner over a [`Counter`] from frame 0.
    fn counting(can_seek: bool, target: Target) -> Aligner<Counter> {
        let source = Counter {
            next: 0,
            rate: RATE,
            can_seek,
        };
        Aligner::new(source, target)
    }

    fn playing_from(anchor_at_ms: u64) -> Target {
        Target {
            anchor_position_ms: 0,
            anchor_at_ms,
            offset_ms: 0,
            playing: true,
        }
    }

    /// Plays `blocks` blocks of 10 ms from local time `start_us`, the device's clock running
    /// `speed` times as fast as the wall clock; returns each block's error in frames.
    fn run(aligner: &mut Aligner<Counter>, start_us: i64, blocks: usize, speed: f64) -> Vec<i64> {
        let frames = RATE as usize / 100;
        let mut out = vec![0.0; frames];
        (0..blocks)
            .map(|b| {
                let leave = start_us + (b as f64 * 10_000.0 / speed) as i64;
                let placed = aligner.fill(&mut out, leave);
                let want = aligner.target.frame_at(leave, RATE);
                placed.first_frame.map_or(i64::MAX, |f| f as i64 - want)
            })
            .collect()
    }

    /// `audio.status` shows a block's error: after a jump, the jump is done, and what leaves is
    /// on the clock. (It used to show the error before the jump, -42.5 s here, for one block.)
    #[test]
    fn a_late_starts_first_block_reports_the_error_of_what_leaves() {
        let mut aligner = counting(true, playing_from(1_000_000));
        let mut out = vec![0.0; RATE as usize / 100];
        let placed = aligner.fill(&mut out, 1_042_500_000);
        assert!(placed.first_frame.is_some());
        assert!(placed.error.abs() <= 1, "error {} frames", placed.error);
    }

    #[test]
    fn a_late_start_jumps_to_the_clocks_frame_at_once() {
        // Switched on 42.5 s into the track.
        let mut aligner = counting(true, playing_from(1_000_000));
        let errors = run(&mut aligner, 1_042_500_000, 3, 1.0);
        assert!(errors.iter().all(|e| e.abs() <= 1), "{errors:?}");
    }

    /// A device clock 0.5% fast (a cheap sound card) drifts ahead; repeated frames hold it
    /// within a few frames of the clock instead of letting it run away.
    #[test]
    fn a_device_clock_that_runs_fast_stays_in_step_by_repeating_frames() {
        let mut aligner = counting(true, playing_from(0));
        let errors = run(&mut aligner, 0, 2_000, 1.005); // 20 s of blocks
        let worst = errors[100..].iter().map(|e| e.abs()).max().unwrap_or(0);
        // 1 ms at 48 kHz is 48 frames.
        assert!(worst <= 48, "worst error {worst} frames");
    }

    #[test]
    fn a_slow_device_clock_catches_up_by_dropping_frames() {
        let mut aligner = counting(true, playing_from(0));
        let errors = run(&mut aligner, 0, 2_000, 0.995);
        let worst = errors[100..].iter().map(|e| e.abs()).max().unwrap_or(0);
        assert!(worst <= 48, "worst error {worst} frames");
    }

    #[test]
    fn a_source_that_cannot_seek_reads_forward_and_waits_when_ahead() {
        let mut aligner = counting(false, playing_from(0));
        let errors = run(&mut aligner, 2_000_000, 2, 1.0);
        assert!(
            errors.iter().all(|e| e.abs() <= 1),
            "read forward: {errors:?}"
        );
        // Seeked back 1 s on the clock: it waits in silence rather than play ahead.
        aligner.set_target(playing_from(1_000));
        let mut out = vec![0.0; 480];
        let placed = aligner.fill(&mut out, 2_050_000);
        assert_eq!(placed.first_frame, None);
        assert!(out.iter().all(|s| *s == 0.0));
    }

    #[test]
    fn paused_is_silence_and_the_position_holds() {
        let mut aligner = counting(
            true,
            Target {
                playing: false,
                ..playing_from(0)
            },
        );
        let mut out = vec![1.0; 480];
        assert_eq!(aligner.fill(&mut out, 5_000_000).first_frame, None);
        assert!(out.iter().all(|s| *s == 0.0));
        assert_eq!(aligner.frame, 0);
    }

    #[test]
    fn a_guests_clock_offset_moves_the_frame_it_plays() {
        let target = Target {
            offset_ms: 250,
            ..playing_from(0)
        };
        assert_eq!(target.frame_at(1_000_000, RATE), (RATE as i64 * 125) / 100);
    }
}

//! Where the aligned frames go: the audio device (a rodio source that asks the [`Aligner`]
//! for 10 ms at a time), or, without one, a silent output that takes frames at the pace of
//! the wall clock. The silent output can record when each block would leave the device
//! (`WHATNEXT_AUDIO_RECORD=path`): the instrumented sink the sync benchmark compares.

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use whatnext_core::time::now_us;

use crate::sync::{Aligner, Frames};

/// A decoded file, as frames.
pub struct DecodedFile {
    decoder: rodio::Decoder<BufReader<File>>,
    channels: usize,
    rate: u32,
}

impl DecodedFile {
    /// Opens a regular file and its decoder, within the format limits.
    pub(crate) fn open(path: &Path) -> Result<Self, crate::OpenError> {
        // Never a FIFO or device: an open of one would block this thread for good.
        let file = whatnext_audio::open_regular_file(path)
            .map_err(|source| crate::OpenError::Unreadable { source })?;
        let decoder = rodio::Decoder::new(BufReader::new(file))
            .map_err(|source| crate::OpenError::Undecodable { source })?;
        let (rate, channels) = (
            rodio::Source::sample_rate(&decoder),
            usize::from(rodio::Source::channels(&decoder)),
        );
        whatnext_audio::check_format(rate, channels)
            .map_err(|what| crate::OpenError::OutOfLimits { what })?;
        Ok(Self {
            decoder,
            channels,
            rate,
        })
    }
}

impl Frames for DecodedFile {
    fn channels(&self) -> usize {
        self.channels
    }
    fn rate(&self) -> u32 {
        self.rate
    }
    fn next_sample(&mut self) -> Option<f32> {
        self.decoder.next().map(|s| f32::from(s) / 32_768.0)
    }
    fn seek(&mut self, frame: u64) -> bool {
        let at = Duration::from_secs_f64(frame as f64 / f64::from(self.rate.max(1)));
        rodio::Source::try_seek(&mut self.decoder, at).is_ok()
    }
}

/// What is playing, shared between the sound thread (which loads and retargets it) and the
/// output (which pulls frames from it).
pub type NowPlaying = Arc<Mutex<Option<Aligner<DecodedFile>>>>;

/// The last block's error against the clock (after a jump, before slewing), in µs, for
/// `audio.status`.
pub type LastOffset = Arc<AtomicI64>;

/// Keeps a block's error, in µs.
fn keep_offset(offset: &LastOffset, placed: &crate::sync::Placed, rate: u32) {
    if placed.first_frame.is_some() {
        let us = placed.error.saturating_mul(1_000_000) / i64::from(rate.max(1));
        offset.store(us, Ordering::Relaxed);
    }
}

/// Frames per block: 10 ms.
fn block_frames(rate: u32) -> usize {
    (rate as usize / 100).max(1)
}

/// The device output for one track's format: a rodio source pulling aligned blocks. It ends
/// when the track's format changes (the sound thread starts a new one for the new track).
pub struct Feed {
    now: NowPlaying,
    offset: LastOffset,
    rate: u32,
    channels: usize,
    block: Vec<f32>,
    at: usize,
}

impl Feed {
    /// A source of the frames `now` plays, in its current format.
    pub fn new(now: NowPlaying, offset: LastOffset, rate: u32, channels: usize) -> Self {
        Self {
            now,
            offset,
            rate,
            channels,
            block: Vec::new(),
            at: 0,
        }
    }
}

impl Iterator for Feed {
    type Item = f32;

    fn next(&mut self) -> Option<f32> {
        if self.at >= self.block.len() {
            let mut now = self.now.lock().ok()?;
            let aligner = now.as_mut()?;
            if aligner.format() != (self.rate, self.channels) {
                return None;
            }
            self.block
                .resize(block_frames(self.rate) * self.channels, 0.0);
            // rodio 0.20 does not say how long the device's buffer is: the block is placed
            // for now, and the device's latency is not compensated.
            let placed = aligner.fill(&mut self.block, now_us());
            keep_offset(&self.offset, &placed, self.rate);
            self.at = 0;
        }
        let sample = self.block.get(self.at).copied();
        self.at += 1;
        sample
    }
}

impl rodio::Source for Feed {
    fn current_frame_len(&self) -> Option<usize> {
        None
    }
    fn channels(&self) -> u16 {
        self.channels as u16
    }
    fn sample_rate(&self) -> u32 {
        self.rate
    }
    fn total_duration(&self) -> Option<Duration> {
        None
    }
}

/// Without a device: takes a block every 10 ms of wall time from whatever plays, so the
/// clock-following logic runs exactly as with sound, and records each block's leave time and
/// track frame when `record` is set. Runs until the sound thread is gone.
pub fn silent_output(now: NowPlaying, offset: LastOffset, record: Option<&Path>) {
    let mut recorder = record.and_then(|path| match File::create(path) {
        Ok(file) => Some(BufWriter::new(file)),
        Err(error) => {
            tracing::warn!(path = %path.display(), %error, "cannot record the audio output");
            None
        }
    });
    let mut next_us = now_us();
    let mut block = Vec::new();
    loop {
        let wait = next_us - now_us();
        if wait > 0 {
            std::thread::sleep(Duration::from_micros(wait as u64));
        }
        if Arc::strong_count(&now) == 1 {
            break; // the sound thread ended
        }
        let placed = {
            let Ok(mut playing) = now.lock() else { break };
            playing.as_mut().map(|aligner| {
                let (rate, channels) = aligner.format();
                block.resize(block_frames(rate) * channels, 0.0);
                (aligner.fill(&mut block, next_us), rate)
            })
        };
        if let Some((placed, rate)) = &placed {
            keep_offset(&offset, placed, *rate);
        }
        if let (Some(out), Some((placed, rate))) = (recorder.as_mut(), placed)
            && let Some(frame) = placed.first_frame
        {
            let _ = writeln!(out, "{next_us} {frame} {rate}");
            let _ = out.flush();
        }
        next_us += 10_000;
    }
}

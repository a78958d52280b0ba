//! Audio for the party screen: decode a file to mono samples (symphonia), then analyse it
//! off the render thread into what the visualizer draws: band energies per frame (FFT with
//! rustfft, on a log frequency scale) and onset times (spectral flux peaks), i.e. the beats.
//! No Bevy here: the kiosk runs `analyze_file` on a thread of its own.

mod open;

use std::path::{Path, PathBuf};

use rustfft::FftPlanner;
use rustfft::num_complex::Complex;
use symphonia::core::audio::SampleBuffer;
use symphonia::core::codecs::DecoderOptions;
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::FormatOptions;
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::Hint;

/// Samples per analysis frame.
pub const FRAME: usize = 1024;
/// Samples between the starts of two analysis frames (half a frame: they overlap).
pub const HOP: usize = 512;
/// Frequency bands, log-spaced from `LOW_HZ` to `HIGH_HZ`.
pub const BANDS: usize = 16;
/// The lower edge of the lowest band, in Hz.
pub const LOW_HZ: f32 = 40.0;
/// The upper edge of the highest band, in Hz.
pub const HIGH_HZ: f32 = 8_000.0;
/// Onsets closer together than this are one onset.
pub const MIN_ONSET_GAP_MS: u64 = 100;
/// A file longer than this is analysed up to here only. (The analysis streams: it holds a
/// frame of samples, not the file; `decode` for a whole file holds up to 110 MiB.)
pub const MAX_SECONDS: u64 = 600;
/// The most mono samples decoded from one file, whatever its header says: [`MAX_SECONDS`]
/// at 48 kHz (a higher rate is analysed for fewer seconds).
pub const MAX_SAMPLES: usize = 48_000 * MAX_SECONDS as usize;

pub use open::{MAX_CHANNELS, MAX_SAMPLE_RATE, check_format, open_regular_file};

/// Mono samples and their rate.
#[derive(Clone, Debug)]
pub struct Decoded {
    /// Samples per second.
    pub sample_rate: u32,
    /// The channels mixed down to one, in the range -1..=1.
    pub samples: Vec<f32>,
}

/// Why a file could not be decoded. Each message names the file.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The file could not be opened.
    #[error("cannot open {path}: {source}")]
    Open {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// No format symphonia knows was recognised.
    #[error("{path} is not an audio file whatnext can read: {source}")]
    NotAudio {
        /// The file.
        path: PathBuf,
        /// What the format probe said.
        #[source]
        source: SymphoniaError,
    },
    /// The container holds no audio track.
    #[error("{path} has no audio track")]
    NoAudioTrack {
        /// The file.
        path: PathBuf,
    },
    /// The audio track does not give its sample rate.
    #[error("{path} does not say its sample rate")]
    NoSampleRate {
        /// The file.
        path: PathBuf,
    },
    /// The file claims a sample rate or channel count beyond whatnext's limits.
    #[error("{path} has {what}")]
    OutOfLimits {
        /// The file.
        path: PathBuf,
        /// Which limit, in words.
        what: String,
    },
    /// The track's codec is not supported, or decoding failed for good.
    #[error("cannot decode {path}: {source}")]
    Undecodable {
        /// The file.
        path: PathBuf,
        /// The codec's error.
        #[source]
        source: SymphoniaError,
    },
    /// Reading the container failed part way.
    #[error("{path} is damaged: {source}")]
    Damaged {
        /// The file.
        path: PathBuf,
        /// The demuxer's error.
        #[source]
        source: SymphoniaError,
    },
}

/// Decodes the first audio track of a file into mono f32 samples.
pub fn decode(path: &Path) -> Result<Decoded, DecodeError> {
    decode_up_to(path, MAX_SAMPLES)
}

/// Whether a file is audio whatnext can play: its first samples decode. Quick (a fraction
/// of a second of audio), for checking a file before it is queued.
pub fn check_playable(path: &Path) -> Result<(), DecodeError> {
    let decoded = decode_up_to(path, 4_096)?;
    if decoded.samples.is_empty() {
        return Err(DecodeError::NoAudioTrack {
            path: path.to_owned(),
        });
    }
    Ok(())
}

/// [`decode`], stopping after `max_samples` mono samples.
fn decode_up_to(path: &Path, max_samples: usize) -> Result<Decoded, DecodeError> {
    let mut samples = Vec::new();
    let sample_rate =
        decode_in_packets(path, max_samples, |_, mono| samples.extend_from_slice(mono))?;
    Ok(Decoded {
        sample_rate,
        samples,
    })
}

/// Decodes the first audio track of a file packet by packet, handing the track's sample rate
/// and each packet's mono samples to `take` (at most `max_samples` in all); returns the rate.
fn decode_in_packets(
    path: &Path,
    max_samples: usize,
    mut take: impl FnMut(u32, &[f32]),
) -> Result<u32, DecodeError> {
    let file = open_regular_file(path).map_err(|source| DecodeError::Open {
        path: path.to_owned(),
        source,
    })?;
    let stream = MediaSourceStream::new(Box::new(file), Default::default());
    let mut hint = Hint::new();
    if let Some(ext) = path.extension().and_then(|e| e.to_str()) {
        hint.with_extension(ext);
    }
    let probed = symphonia::default::get_probe()
        .format(
            &hint,
            stream,
            &FormatOptions::default(),
            &MetadataOptions::default(),
        )
        .map_err(|source| DecodeError::NotAudio {
            path: path.to_owned(),
            source,
        })?;
    let mut format = probed.format;
    let track = format
        .default_track()
        .ok_or_else(|| DecodeError::NoAudioTrack {
            path: path.to_owned(),
        })?;
    let track_id = track.id;
    let sample_rate = track
        .codec_params
        .sample_rate
        .ok_or_else(|| DecodeError::NoSampleRate {
            path: path.to_owned(),
        })?;
    let mut decoder = symphonia::default::get_codecs()
        .make(&track.codec_params, &DecoderOptions::default())
        .map_err(|source| DecodeError::Undecodable {
            path: path.to_owned(),
            source,
        })?;
    let channels = track.codec_params.channels.map_or(1, |c| c.count());
    check_format(sample_rate, channels).map_err(|what| DecodeError::OutOfLimits {
        path: path.to_owned(),
        what,
    })?;
    // Counted in samples actually decoded: a header's length is only a claim.
    let limit = (sample_rate as usize * MAX_SECONDS as usize)
        .min(MAX_SAMPLES)
        .min(max_samples);
    let mut taken = 0;
    let mut mono = Vec::new();
    while taken < limit {
        let packet = match format.next_packet() {
            Ok(packet) => packet,
            Err(SymphoniaError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                break;
            }
            Err(SymphoniaError::ResetRequired) => break,
            Err(source) => {
                return Err(DecodeError::Damaged {
                    path: path.to_owned(),
                    source,
                });
            }
        };
        if packet.track_id() != track_id {
            continue;
        }
        let decoded = match decoder.decode(&packet) {
            Ok(decoded) => decoded,
            // A bad packet is skipped, as players do.
            Err(SymphoniaError::DecodeError(_)) => continue,
            Err(source) => {
                return Err(DecodeError::Undecodable {
                    path: path.to_owned(),
                    source,
                });
            }
        };
        let spec = *decoded.spec();
        let channels = spec.channels.count().max(1);
        // A packet may disagree with the track's header; it is held to the same limits.
        if let Err(what) = check_format(spec.rate, channels) {
            return Err(DecodeError::OutOfLimits {
                path: path.to_owned(),
                what,
            });
        }
        let mut buffer = SampleBuffer::<f32>::new(decoded.capacity() as u64, spec);
        buffer.copy_interleaved_ref(decoded);
        mono.clear();
        mono.extend(
            buffer
                .samples()
                .chunks(channels)
                .map(|frame| frame.iter().sum::<f32>() / channels as f32)
                .take(limit - taken),
        );
        taken += mono.len();
        take(sample_rate, &mono);
    }
    Ok(sample_rate)
}

/// What the visualizer draws from a track.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Analysis {
    /// Milliseconds between frames.
    pub frame_ms: f32,
    /// Per frame, the energy of each band, normalised so the loudest band of the track is 1.
    pub bands: Vec<[f32; BANDS]>,
    /// When something starts (a beat, a note), in ms from the start.
    pub onsets_ms: Vec<u64>,
}

impl Analysis {
    /// The bands at a playback position.
    pub fn bands_at(&self, position_ms: u64) -> Option<&[f32; BANDS]> {
        let frame = (position_ms as f32 / self.frame_ms) as usize;
        self.bands.get(frame)
    }

    /// Whether an onset falls in `[from_ms, to_ms)`.
    pub fn onset_between(&self, from_ms: u64, to_ms: u64) -> bool {
        let i = self.onsets_ms.partition_point(|t| *t < from_ms);
        self.onsets_ms.get(i).is_some_and(|t| *t < to_ms)
    }
}

/// The lower edge of band `b` (the top edge is the next band's lower edge).
pub fn band_edge_hz(b: usize) -> f32 {
    LOW_HZ * (HIGH_HZ / LOW_HZ).powf(b as f32 / BANDS as f32)
}

/// The band a frequency falls in, if any.
pub fn band_of(hz: f32) -> Option<usize> {
    (0..BANDS).find(|b| hz >= band_edge_hz(*b) && hz < band_edge_hz(b + 1))
}

/// Band energies per frame (Hann window, FFT) and onsets by spectral flux.
pub fn analyze(decoded: &Decoded) -> Analysis {
    let mut analyzer = Analyzer::new(decoded.sample_rate);
    analyzer.push(&decoded.samples);
    analyzer.finish()
}

/// [`analyze`] as the samples arrive: it keeps one frame of samples, not the track.
struct Analyzer {
    rate: f32,
    fft: std::sync::Arc<dyn rustfft::Fft<f32>>,
    window: Vec<f32>,
    bin_band: Vec<Option<usize>>,
    /// Samples not yet past: the next frame starts at `pending[0]`.
    pending: Vec<f32>,
    bands: Vec<[f32; BANDS]>,
    flux: Vec<f32>,
    previous: Vec<f32>,
    buffer: Vec<Complex<f32>>,
}

impl Analyzer {
    fn new(sample_rate: u32) -> Self {
        let rate = sample_rate as f32;
        Self {
            rate,
            fft: FftPlanner::<f32>::new().plan_fft_forward(FRAME),
            window: (0..FRAME)
                .map(|i| 0.5 - 0.5 * (std::f32::consts::TAU * i as f32 / FRAME as f32).cos())
                .collect(),
            bin_band: (0..FRAME / 2)
                .map(|bin| band_of(bin as f32 * rate / FRAME as f32))
                .collect(),
            pending: Vec::with_capacity(FRAME * 2),
            bands: Vec::new(),
            flux: Vec::new(),
            previous: vec![0.0; FRAME / 2],
            buffer: vec![Complex::new(0.0, 0.0); FRAME],
        }
    }

    /// Takes more samples, analysing every whole frame they complete.
    fn push(&mut self, samples: &[f32]) {
        let mut samples = samples;
        loop {
            // Only what the next frame lacks is copied in, so a whole track pushed at once
            // is not copied whole.
            let wanted = FRAME.saturating_sub(self.pending.len()).min(samples.len());
            self.pending.extend_from_slice(&samples[..wanted]);
            samples = &samples[wanted..];
            if self.pending.len() < FRAME {
                return;
            }
            self.frame();
            self.pending.drain(..HOP);
        }
    }

    /// One frame: the first [`FRAME`] pending samples.
    fn frame(&mut self) {
        for ((slot, sample), w) in self.buffer.iter_mut().zip(&self.pending).zip(&self.window) {
            *slot = Complex::new(sample * w, 0.0);
        }
        self.fft.process(&mut self.buffer);
        let mut energy = [0.0f32; BANDS];
        let mut rise = 0.0;
        for (bin, value) in self.buffer[..FRAME / 2].iter().enumerate() {
            let magnitude = value.norm();
            if let Some(b) = self.bin_band[bin] {
                energy[b] += magnitude * magnitude;
            }
            rise += (magnitude - self.previous[bin]).max(0.0);
            self.previous[bin] = magnitude;
        }
        self.bands.push(energy);
        self.flux.push(rise);
    }

    fn finish(self) -> Analysis {
        let mut bands = self.bands;
        let loudest = bands
            .iter()
            .flat_map(|b| b.iter())
            .fold(0.0f32, |a, b| a.max(*b));
        if loudest > 0.0 {
            for frame in &mut bands {
                for e in frame.iter_mut() {
                    *e /= loudest;
                }
            }
        }
        let frame_ms = HOP as f32 * 1000.0 / self.rate;
        // A frame's flux belongs to the middle of its window.
        let centre_ms = FRAME as f32 / 2.0 * 1000.0 / self.rate;
        Analysis {
            frame_ms,
            onsets_ms: onsets(&self.flux, frame_ms, centre_ms),
            bands,
        }
    }
}

/// Peaks of the spectral flux that stand out from their neighbourhood.
fn onsets(flux: &[f32], frame_ms: f32, centre_ms: f32) -> Vec<u64> {
    let peak = flux.iter().fold(0.0f32, |a, b| a.max(*b));
    if peak <= 0.0 {
        return Vec::new();
    }
    let reach = ((300.0 / frame_ms) as usize).max(1);
    let mut out: Vec<u64> = Vec::new();
    for i in 0..flux.len() {
        let (lo, hi) = (i.saturating_sub(reach), (i + reach + 1).min(flux.len()));
        let local = &flux[lo..hi];
        let mean = local.iter().sum::<f32>() / local.len() as f32;
        let is_max = flux[i] >= local.iter().fold(0.0f32, |a, b| a.max(*b));
        if is_max && flux[i] > 1.5 * mean && flux[i] > 0.1 * peak {
            let at = (i as f32 * frame_ms + centre_ms) as u64;
            if out.last().is_none_or(|last| at - last >= MIN_ONSET_GAP_MS) {
                out.push(at);
            }
        }
    }
    out
}

/// Decodes and analyses a file as it decodes, holding a frame of samples rather than the
/// file (a 3-minute track decoded whole is 31 MB of samples that glibc then keeps resident on
/// the party screen): what the kiosk runs on its own thread.
pub fn analyze_file(path: &Path) -> Result<Analysis, DecodeError> {
    let mut analyzer: Option<Analyzer> = None;
    let rate = decode_in_packets(path, MAX_SAMPLES, |rate, mono| {
        analyzer
            .get_or_insert_with(|| Analyzer::new(rate))
            .push(mono);
    })?;
    Ok(analyzer.unwrap_or_else(|| Analyzer::new(rate)).finish())
}

//! Analysis of a real file: the test writes a WAV of tone bursts (a beat every 500 ms,
//! alternating 129 Hz and 2.5 kHz), decodes it with symphonia and analyses it: each burst's
//! energy is in the band of its frequency, and an onset is found at each beat, and nowhere
//! else.

use std::path::Path;

use whatnext_audio::{DecodeError, analyze, analyze_file, band_of, decode};

const RATE: u32 = 22_050;
const BEAT_MS: u64 = 500;
const FIRST_MS: u64 = 250;
const BEATS: u64 = 8;
const BURST_MS: u64 = 120;

fn frequency(beat: u64) -> f32 {
    // Mid-band frequencies (FFT bin centres at 22.05 kHz), so leakage stays in the band.
    if beat.is_multiple_of(2) {
        129.2
    } else {
        2_497.0
    }
}

fn write_bursts(path: &Path) {
    let total = (RATE as u64 * (FIRST_MS + BEATS * BEAT_MS) / 1000) as usize;
    let mut samples = vec![0i16; total];
    for beat in 0..BEATS {
        let start = (RATE as u64 * (FIRST_MS + beat * BEAT_MS) / 1000) as usize;
        let len = (RATE as u64 * BURST_MS / 1000) as usize;
        for i in 0..len {
            let t = i as f32 / RATE as f32;
            let fade = (i.min(len - i) as f32 / 40.0).min(1.0); // no clicks at the edges
            let value = (std::f32::consts::TAU * frequency(beat) * t).sin() * 0.6 * fade;
            samples[start + i] = (value * i16::MAX as f32) as i16;
        }
    }
    let data: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
    let mut wav = Vec::new();
    wav.extend_from_slice(b"RIFF");
    wav.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
    wav.extend_from_slice(b"WAVEfmt ");
    wav.extend_from_slice(&16u32.to_le_bytes());
    wav.extend_from_slice(&1u16.to_le_bytes());
    wav.extend_from_slice(&1u16.to_le_bytes());
    wav.extend_from_slice(&RATE.to_le_bytes());
    wav.extend_from_slice(&(RATE * 2).to_le_bytes());
    wav.extend_from_slice(&2u16.to_le_bytes());
    wav.extend_from_slice(&16u16.to_le_bytes());
    wav.extend_from_slice(b"data");
    wav.extend_from_slice(&(data.len() as u32).to_le_bytes());
    wav.extend_from_slice(&data);
    std::fs::write(path, wav).expect("write the wav");
}

#[test]
fn tone_bursts_show_in_their_bands_and_as_onsets_on_the_beat() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bursts.wav");
    write_bursts(&path);
    let decoded = decode(&path).expect("decoded");
    assert_eq!(decoded.sample_rate, RATE);
    let analysis = analyze_file(&path).expect("analysed");

    for beat in 0..BEATS {
        let middle = FIRST_MS + beat * BEAT_MS + BURST_MS / 2;
        let bands = analysis.bands_at(middle).expect("a frame there");
        let loudest = (0..bands.len())
            .max_by(|a, b| bands[*a].total_cmp(&bands[*b]))
            .expect("bands");
        let expected = band_of(frequency(beat)).expect("in range");
        assert_eq!(loudest, expected, "beat {beat} at {middle} ms: {bands:?}");
        // Between bursts, nothing.
        let quiet = analysis
            .bands_at(middle + BEAT_MS / 2)
            .expect("a frame there");
        assert!(quiet.iter().all(|e| *e < 0.01), "{quiet:?}");
    }

    let expected: Vec<u64> = (0..BEATS).map(|b| FIRST_MS + b * BEAT_MS).collect();
    eprintln!("onsets found {:?}, beats {expected:?}", analysis.onsets_ms);
    assert_eq!(
        analysis.onsets_ms.len(),
        expected.len(),
        "onsets {:?}, beats {expected:?}",
        analysis.onsets_ms
    );
    for (found, beat) in analysis.onsets_ms.iter().zip(&expected) {
        assert!(
            found.abs_diff(*beat) <= 40,
            "onset at {found} ms for the beat at {beat} ms"
        );
    }
}

/// The file's analysis streams (a frame of samples at a time, packets of whatever size the
/// decoder gives); it must be the analysis of all the samples at once, frame for frame.
#[test]
fn the_streamed_analysis_of_a_file_is_the_analysis_of_all_its_samples() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bursts.wav");
    write_bursts(&path);
    let whole = analyze(&decode(&path).expect("decoded"));
    let streamed = analyze_file(&path).expect("analysed");
    assert!(whole.bands.len() > 100, "{} frames", whole.bands.len());
    assert_eq!(streamed, whole);
}

#[test]
fn a_file_that_is_not_audio_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("fake.mp3");
    std::fs::write(&path, b"definitely not an mp3").expect("write");
    let error = analyze_file(&path).expect_err("not audio");
    assert!(matches!(error, DecodeError::NotAudio { .. }), "{error:?}");
    assert!(error.to_string().contains("fake.mp3"), "{error}");
    let missing = analyze_file(&dir.path().join("gone.wav")).expect_err("missing");
    assert!(matches!(missing, DecodeError::Open { .. }), "{missing:?}");
    assert!(missing.to_string().contains("cannot open"), "{missing}");
}

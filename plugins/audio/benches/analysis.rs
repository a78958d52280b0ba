//! Prints how long the analysis of a 3-minute track takes (44.1 kHz; the kiosk runs it on
//! its own thread when a track with a file starts): `cargo bench -p whatnext-audio`.

use std::time::Instant;

use whatnext_audio::{Decoded, analyze};

fn main() {
    let rate = 44_100u32;
    let seconds = 180;
    let samples: Vec<f32> = (0..rate as usize * seconds)
        .map(|i| {
            let t = i as f32 / rate as f32;
            let beat = ((t * 2.0).fract() < 0.1) as u8 as f32;
            (t * 440.0 * std::f32::consts::TAU).sin() * 0.3 * beat
                + (t * 97.0 * std::f32::consts::TAU).sin() * 0.2
        })
        .collect();
    let decoded = Decoded {
        sample_rate: rate,
        samples,
    };
    let started = Instant::now();
    let analysis = analyze(&decoded);
    let took = started.elapsed();
    println!(
        "analysis of {seconds} s at {rate} Hz: {:.0} ms ({} frames, {} onsets), {:.0}x real time",
        took.as_secs_f64() * 1000.0,
        analysis.bands.len(),
        analysis.onsets_ms.len(),
        seconds as f64 / took.as_secs_f64()
    );
    println!(
        "figure: audio analysis of a {seconds} s track | {:.0}x real time | —",
        seconds as f64 / took.as_secs_f64()
    );
}

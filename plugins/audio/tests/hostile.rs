//! Files crafted to hurt the decoder: a FIFO (an open would block for ever), WAV headers
//! claiming absurd sample rates, channel counts or lengths. Each ends in a clear error or a
//! bounded result, quickly.

use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use whatnext_audio::{DecodeError, Decoded, MAX_SECONDS, decode};

/// A PCM WAV header for `channels` × 8-bit samples at `rate`, whose data chunk claims
/// `claimed_len` bytes, followed by `data`.
fn wav(rate: u32, channels: u16, claimed_len: u32, data: &[u8]) -> Vec<u8> {
    let mut wav = Vec::new();
    wav.extend_from_slice(b"RIFF");
    wav.extend_from_slice(&claimed_len.saturating_add(36).to_le_bytes());
    wav.extend_from_slice(b"WAVEfmt ");
    wav.extend_from_slice(&16u32.to_le_bytes());
    wav.extend_from_slice(&1u16.to_le_bytes()); // PCM
    wav.extend_from_slice(&channels.to_le_bytes());
    wav.extend_from_slice(&rate.to_le_bytes());
    wav.extend_from_slice(&rate.wrapping_mul(u32::from(channels)).to_le_bytes());
    wav.extend_from_slice(&channels.to_le_bytes()); // block align: one byte per channel
    wav.extend_from_slice(&8u16.to_le_bytes());
    wav.extend_from_slice(b"data");
    wav.extend_from_slice(&claimed_len.to_le_bytes());
    wav.extend_from_slice(data);
    wav
}

/// A quiet 8-bit square wave (8-bit PCM is unsigned: 128 is silence).
fn tone(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| if i % 20 < 10 { 100 } else { 156 })
        .collect()
}

/// Decodes on a thread of its own, so a decoder that blocks fails the test instead of
/// hanging it.
fn decode_within(path: &Path, limit: Duration) -> Result<Decoded, DecodeError> {
    let (tx, rx) = mpsc::channel();
    let path = path.to_owned();
    std::thread::spawn(move || {
        let _ = tx.send(decode(&path));
    });
    rx.recv_timeout(limit)
        .unwrap_or_else(|_| panic!("decoding did not finish within {limit:?}"))
}

#[cfg(unix)]
#[test]
fn a_fifo_is_refused_at_once_not_waited_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("song.wav");
    let made = std::process::Command::new("mkfifo")
        .arg(&path)
        .status()
        .expect("mkfifo (coreutils) runs");
    assert!(made.success(), "mkfifo");
    let error = decode_within(&path, Duration::from_secs(5)).expect_err("a fifo");
    assert!(matches!(error, DecodeError::Open { .. }), "{error:?}");
    assert!(error.to_string().contains("not a regular file"), "{error}");
}

#[test]
fn a_folder_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let error = decode_within(dir.path(), Duration::from_secs(5)).expect_err("a folder");
    assert!(matches!(error, DecodeError::Open { .. }), "{error:?}");
}

#[test]
fn an_absurd_sample_rate_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("fast.wav");
    for rate in [u32::MAX, 1_000_000_000, 384_001] {
        std::fs::write(&path, wav(rate, 1, 4_000, &tone(4_000))).expect("write");
        let error = decode_within(&path, Duration::from_secs(10)).expect_err("too fast");
        assert!(error.to_string().contains("sample rate"), "{rate}: {error}");
    }
}

#[test]
fn too_many_channels_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("wide.wav");
    std::fs::write(&path, wav(8_000, 16, 16_000, &tone(16_000))).expect("write");
    let error = decode_within(&path, Duration::from_secs(10)).expect_err("too wide");
    assert!(error.to_string().contains("channels"), "{error}");
}

/// The data chunk claims 4 GiB; the file holds one second. What is decoded is what is there.
#[test]
fn a_header_claiming_a_huge_length_decodes_what_is_there() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("liar.wav");
    std::fs::write(&path, wav(8_000, 1, u32::MAX - 64, &tone(8_000))).expect("write");
    let decoded = decode_within(&path, Duration::from_secs(10)).expect("decodes");
    assert_eq!(decoded.samples.len(), 8_000);
}

/// The cap counts decoded samples, exactly: a file a second over the cap gives the cap.
#[test]
fn decoding_stops_at_exactly_the_cap() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("long.wav");
    let rate = 1_000; // a low rate keeps the file small: 601 s is 601 kB
    let len = rate as usize * (MAX_SECONDS as usize + 1);
    std::fs::write(&path, wav(rate, 1, len as u32, &tone(len))).expect("write");
    let decoded = decode_within(&path, Duration::from_secs(60)).expect("decodes");
    assert_eq!(decoded.samples.len(), rate as usize * MAX_SECONDS as usize);
}

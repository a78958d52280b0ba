//! Opening a track's file without trusting it: only a regular file is read (a FIFO or a
//! device would block the thread that reads it, or never end), and a file's own claims
//! about its audio are checked against limits before anything is decoded.

use std::fs::File;
use std::io;
use std::path::Path;

/// The highest sample rate accepted, in Hz (above any real recording's 384 kHz would be a
/// header's lie; the 10-minute cap is counted in samples at this rate or below).
pub const MAX_SAMPLE_RATE: u32 = 384_000;
/// The most channels accepted (7.1 is 8).
pub const MAX_CHANNELS: usize = 8;

/// Opens `path` for reading if it is a regular file, and fails otherwise. The open itself
/// is non-blocking (a FIFO with no writer would block an ordinary open for ever); the type
/// is checked on the opened file, so a file swapped in between cannot slip through.
pub fn open_regular_file(path: &Path) -> io::Result<File> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(&mut options, libc::O_NONBLOCK);
    let file = options.open(path)?;
    if !file.metadata()?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file (a pipe, device or folder is never opened as a track)",
        ));
    }
    Ok(file)
}

/// Whether a stream of `sample_rate` Hz and `channels` channels is within the limits, and
/// which limit it breaks if not.
pub fn check_format(sample_rate: u32, channels: usize) -> Result<(), String> {
    if sample_rate == 0 || sample_rate > MAX_SAMPLE_RATE {
        return Err(format!(
            "a sample rate of {sample_rate} Hz (whatnext takes 1 to {MAX_SAMPLE_RATE})"
        ));
    }
    if channels > MAX_CHANNELS {
        return Err(format!(
            "{channels} channels (whatnext takes up to {MAX_CHANNELS})"
        ));
    }
    Ok(())
}

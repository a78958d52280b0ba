//! Every cap on what a user or a peer can put into a session, in one place, with the checks
//! that turn an over-cap value into a `too_large` error naming the cap. The caps keep the
//! largest session the host allows small enough that its welcome and any resync fit in one
//! network frame. See docs/security.md.

use crate::components::Track;
use crate::error::{ErrorCode, IntentError};
use crate::order::QueueKey;

/// Longest display, session and track text accepted, in characters.
pub const MAX_TEXT_CHARS: usize = 200;
/// Longest file path a track or library entry may carry, in bytes (Linux's `PATH_MAX`).
pub const MAX_PATH_BYTES: usize = 4096;
/// Longest track accepted: a day.
pub const MAX_DURATION_MS: u64 = 24 * 60 * 60 * 1000;
/// Most tracks in one session's queue.
pub const MAX_TRACKS_PER_SESSION: usize = 10_000;
/// Most tracks one member (other than the host) may have in the queue at once.
pub const MAX_TRACKS_PER_MEMBER: usize = 1_000;
/// Most bytes the queue's tracks may take on the wire, all together: with the participants
/// and the session itself, a snapshot stays well under the 8 MiB frame.
pub const MAX_QUEUE_BYTES: usize = 6 * 1024 * 1024;
// The largest snapshot the caps allow fits in the 8 MiB frame (participants and the session
// take a few tens of KiB); checked when the caps are built.
const _: () = assert!(MAX_QUEUE_BYTES + MAX_PARTICIPANTS * 1024 < 8 * 1024 * 1024);

/// Longest queue key a move may produce: repeated moves between the same neighbours make
/// keys longer, and a key is sent with every track.
pub const MAX_QUEUE_KEY_CHARS: usize = 64;
/// Most participants in one session (the host included).
pub const MAX_PARTICIPANTS: usize = 100;
/// Longest invite link or short code accepted, in bytes.
pub const MAX_INVITE_BYTES: usize = 1024;
/// Longest relay address accepted, in bytes.
pub const MAX_RELAY_ADDR_BYTES: usize = 512;

/// A `TooLarge` refusal.
pub fn too_large(message: impl Into<String>) -> IntentError {
    IntentError::new(ErrorCode::TooLarge, message)
}

/// Refuses `text` longer than `MAX_TEXT_CHARS`.
pub fn check_text(what: &str, text: &str) -> Result<(), IntentError> {
    // Bytes bound chars from above: most text is short, and this skips the count.
    if text.len() > MAX_TEXT_CHARS && text.chars().count() > MAX_TEXT_CHARS {
        return Err(too_large(format!(
            "{what} is longer than {MAX_TEXT_CHARS} characters"
        )));
    }
    Ok(())
}

/// Refuses a path longer than `MAX_PATH_BYTES`.
pub fn check_path(path: Option<&str>) -> Result<(), IntentError> {
    match path {
        Some(path) if path.len() > MAX_PATH_BYTES => Err(too_large(format!(
            "a file path is longer than {MAX_PATH_BYTES} bytes"
        ))),
        _ => Ok(()),
    }
}

/// Refuses a duration longer than `MAX_DURATION_MS`.
pub fn check_duration(duration_ms: u64) -> Result<(), IntentError> {
    if duration_ms > MAX_DURATION_MS {
        return Err(too_large(format!(
            "a track cannot be longer than {} hours",
            MAX_DURATION_MS / 3_600_000
        )));
    }
    Ok(())
}

/// Refuses `bytes` longer than `max` for `what`.
pub fn check_bytes(what: &str, bytes: &str, max: usize) -> Result<(), IntentError> {
    if bytes.len() > max {
        return Err(too_large(format!("{what} is longer than {max} bytes")));
    }
    Ok(())
}

/// About how many bytes a queued track takes on the wire: its text, key and a fixed
/// allowance for ids, numbers and framing. Counted against `MAX_QUEUE_BYTES`.
pub fn track_wire_bytes(track: &Track, key: Option<&QueueKey>) -> usize {
    const FIXED: usize = 96;
    FIXED
        + track.title.len()
        + track.artist.len()
        + track.added_by.as_str().len()
        + key.map_or(0, |k| k.as_str().len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_at_the_cap_passes_and_one_more_character_is_too_large() {
        let at_cap = "é".repeat(MAX_TEXT_CHARS);
        assert!(check_text("a title", &at_cap).is_ok());
        let over = "é".repeat(MAX_TEXT_CHARS + 1);
        let error = check_text("a title", &over).expect_err("over the cap");
        assert_eq!(error.code, ErrorCode::TooLarge);
        assert!(error.message.contains("200"), "{}", error.message);
    }
}

//! What the user reads when something goes wrong: a sentence a person understands, with the
//! technical detail kept for a click away.

use whatnext_core::prelude::*;

/// An error as the UI shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// What happened, for anyone.
    pub sentence: String,
    /// The technical detail, shown on request.
    pub detail: String,
}

impl Problem {
    /// The problem an intent's refusal describes.
    pub fn from_error(error: &IntentError) -> Self {
        Self {
            sentence: sentence_for(error.code).to_owned(),
            detail: match error.rule {
                Some(rule) => format!("{} (rule {rule:?})", error.message),
                None => error.message.clone(),
            },
        }
    }

    /// An intent that waited in the outbox, refused by the host once it got there.
    pub fn refused_later(refused: &IntentRefused) -> Self {
        let what = match &refused.intent.action {
            Action::Session(SessionAction::AddTrack { title, .. }) => format!("adding “{title}”"),
            Action::Session(action) => format!("{action:?}"),
            Action::Local(action) => format!("{action:?}"),
        };
        Self {
            sentence: format!(
                "The host refused a change you made while it was away ({what}): {}",
                sentence_for(refused.error.code)
            ),
            detail: refused.error.message.clone(),
        }
    }

    /// An invite that does not even parse, caught before anything is sent.
    pub fn bad_invite(detail: String) -> Self {
        Self {
            sentence: sentence_for(ErrorCode::InvalidInvite).to_owned(),
            detail,
        }
    }
}

/// The sentence said when the host role moved: `host` and `previous` are names, "you" for
/// this device.
pub fn host_changed(host: &str, previous: &str, why: HostChange) -> String {
    let who = if host == "you" {
        "You are".to_owned()
    } else {
        format!("{host} is")
    };
    let because = match why {
        HostChange::Handoff => format!("{previous} handed the party over"),
        HostChange::HostLeft => format!("{previous} left the party"),
        HostChange::Takeover => {
            format!("{previous} could not be reached, so the first co-host in line took over")
        }
        HostChange::Started => format!("{previous} is no longer the host"),
    };
    format!("{who} now the host: {because}.")
}

/// The sentence shown for an error code.
pub fn sentence_for(code: ErrorCode) -> &'static str {
    match code {
        ErrorCode::InvalidInvite => {
            "That invite doesn't work. Check the link, or the 6-character code the host shows, and try again."
        }
        ErrorCode::Unreachable => {
            "We couldn't reach the host. They may be offline, or the relay may be down: check the relay dots."
        }
        ErrorCode::Denied => "The host said no to your request to join.",
        ErrorCode::NotPermitted => "Your role in this party doesn't allow that.",
        ErrorCode::NotFound => "That is no longer there; someone may have just changed it.",
        ErrorCode::BadRequest => "That doesn't look right; check what you typed.",
        ErrorCode::NotInSession => "You're not in a party right now.",
        ErrorCode::Internal => "Something went wrong inside whatnext.",
        ErrorCode::Storage => {
            "The disk is full or refused the write, so nothing changed. Free some space and try again."
        }
        ErrorCode::TooLarge => "That is over the size limit; the message says which one.",
    }
}

/// A role as people say it.
pub fn role_name(role: Role) -> &'static str {
    match role {
        Role::Host => "host",
        Role::CoHost => "co-host",
        Role::Guest => "guest",
        Role::Display => "party screen",
    }
}

/// A connection as people say it.
pub fn connection_name(connection: Connection) -> &'static str {
    match connection {
        Connection::Myself => "this device",
        Connection::Direct => "direct",
        Connection::Relayed => "via relay",
        Connection::Lan => "LAN",
    }
}

/// A duration as `m:ss`.
pub fn format_ms(ms: u64) -> String {
    let s = ms / 1000;
    format!("{}:{:02}", s / 60, s % 60)
}

/// The last characters of a peer id, enough to tell people apart at a glance.
pub fn short_peer(peer: &PeerId) -> String {
    let text = peer.as_str();
    let tail = &text[text.len().saturating_sub(6)..];
    format!("…{tail}")
}

/// The display name of `peer` in `session`, or its short id if it is not a participant.
pub fn name_of(session: &SessionSnapshot, peer: &PeerId) -> String {
    session
        .participants
        .iter()
        .find(|p| p.peer_id == *peer)
        .map_or_else(|| short_peer(peer), |p| p.display_name.clone())
}

/// Where a track's file stands here, in words: "here", "getting it from Gus… 40%",
/// "not here", "unavailable: Gus has it and is offline".
pub fn media_words(session: &SessionSnapshot, media: &whatnext_core::view::MediaView) -> String {
    match media.state {
        "here" => "here".into(),
        "fetching" => {
            let from = media
                .from
                .as_ref()
                .map_or_else(|| "a peer".into(), |p| name_of(session, p));
            format!("getting it from {from}… {:.0}%", media.progress * 100.0)
        }
        "unavailable" => {
            let holders: Vec<String> = media.holders.iter().map(|p| name_of(session, p)).collect();
            if holders.is_empty() {
                "unavailable: nobody online has it".into()
            } else {
                format!("unavailable: {} has it and is offline", holders.join(", "))
            }
        }
        _ => "not here".into(),
    }
}

/// How "Listen along" is doing: waiting for the file, or how far the sound was from the
/// clock before its last correction.
pub fn listening_words(audio: &AudioStatus) -> String {
    match (audio.playing, audio.offset_us) {
        (true, Some(us)) => format!("in step · {:.1} ms off the clock", us as f64 / 1000.0),
        (true, None) => "starting…".into(),
        (false, _) => "waiting for the song".into(),
    }
}

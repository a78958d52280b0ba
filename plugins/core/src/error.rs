//! Why an intent changed nothing: the control protocol's error codes, and the role rule that
//! refused it. Both `intent` (outcomes carry these) and `rules` (refusals name a [`Rule`])
//! depend on this module, and it depends on neither.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why an intent changed nothing. The codes are those of CONTROL.md.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntentError {
    pub code: ErrorCode,
    pub message: String,
    /// Set when a role rule refused the intent.
    pub rule: Option<Rule>,
}

impl IntentError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            rule: None,
        }
    }

    pub fn refused(rule: Rule) -> Self {
        Self {
            code: ErrorCode::NotPermitted,
            message: rule.message().to_owned(),
            rule: Some(rule),
        }
    }
}

impl fmt::Display for IntentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

/// The error codes of the control protocol.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ErrorCode {
    BadRequest,
    InvalidInvite,
    NotInSession,
    NotPermitted,
    NotFound,
    Unreachable,
    Denied,
    Internal,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::InvalidInvite => "invalid_invite",
            ErrorCode::NotInSession => "not_in_session",
            ErrorCode::NotPermitted => "not_permitted",
            ErrorCode::NotFound => "not_found",
            ErrorCode::Unreachable => "unreachable",
            ErrorCode::Denied => "denied",
            ErrorCode::Internal => "internal",
        }
    }
}

/// The rule that refused an intent. Its message is what the author is shown.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Rule {
    DisplayIsReadOnly,
    GuestsRemoveOnlyTheirOwnTracks,
    OnlyHostOrCohostMovesTracks,
    OnlyPlaybackOwnerControlsPlayback,
    OnlyHostOrCohostTakesPlayback,
    OnlyPlaybackOwnerHandsOff,
    HandOffOnlyToHostOrCohost,
    OnlyHostManagesCohosts,
    OnlyHostOrCohostAnswersKnocks,
}

impl Rule {
    pub fn message(self) -> &'static str {
        match self {
            Rule::DisplayIsReadOnly => "a display screen cannot change the session",
            Rule::GuestsRemoveOnlyTheirOwnTracks => "guests can only remove tracks they added",
            Rule::OnlyHostOrCohostMovesTracks => "only the host or a co-host can move tracks",
            Rule::OnlyPlaybackOwnerControlsPlayback => {
                "only the playback owner can play, pause, seek or skip"
            }
            Rule::OnlyHostOrCohostTakesPlayback => "only the host or a co-host can take playback",
            Rule::OnlyPlaybackOwnerHandsOff => "only the playback owner can hand off playback",
            Rule::HandOffOnlyToHostOrCohost => {
                "playback can only be handed to the host or a co-host"
            }
            Rule::OnlyHostManagesCohosts => "only the host can add or remove co-hosts",
            Rule::OnlyHostOrCohostAnswersKnocks => "only the host or a co-host can answer a knock",
        }
    }
}

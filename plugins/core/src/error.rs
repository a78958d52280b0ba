//! Why an intent changed nothing: the control protocol's error codes, and the role rule that
//! refused it. Both `intent` (outcomes carry these) and `rules` (refusals name a [`Rule`])
//! depend on this module, and it depends on neither.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why an intent changed nothing. The codes are those of CONTROL.md.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntentError {
    /// The control protocol's code for the failure.
    pub code: ErrorCode,
    /// What went wrong, for the author.
    pub message: String,
    /// Set when a role rule refused the intent.
    pub rule: Option<Rule>,
}

impl IntentError {
    /// An error with `code` and `message`, not from a role rule.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            rule: None,
        }
    }

    /// A refusal by `rule`, with the rule's message.
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
    /// The request is malformed or its values are unusable.
    BadRequest,
    /// The invite does not parse or is not valid.
    InvalidInvite,
    /// The action needs a session and there is none.
    NotInSession,
    /// A role rule refused it.
    NotPermitted,
    /// What it names does not exist (any more).
    NotFound,
    /// The host or network could not be reached.
    Unreachable,
    /// The host said no to a join.
    Denied,
    /// A fault inside whatnext.
    Internal,
    /// The disk refused the write; nothing changed, and the app goes on.
    Storage,
    /// A field, a file or a count is over its cap; the message names the cap.
    TooLarge,
}

impl ErrorCode {
    /// The code's text in the control protocol.
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
            ErrorCode::Storage => "storage",
            ErrorCode::TooLarge => "too_large",
        }
    }
}

/// The rule that refused an intent. Its message is what the author is shown.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Rule {
    /// A display screen changes nothing.
    DisplayIsReadOnly,
    /// A guest removes only tracks they added.
    GuestsRemoveOnlyTheirOwnTracks,
    /// Only the host or a co-host moves tracks.
    OnlyHostOrCohostMovesTracks,
    /// Only the playback owner plays, pauses, seeks or skips.
    OnlyPlaybackOwnerControlsPlayback,
    /// Only the host or a co-host takes playback.
    OnlyHostOrCohostTakesPlayback,
    /// Only the playback owner hands playback off.
    OnlyPlaybackOwnerHandsOff,
    /// Playback goes only to the host or a co-host.
    HandOffOnlyToHostOrCohost,
    /// Only the host adds or removes co-hosts.
    OnlyHostManagesCohosts,
    /// Only the host or a co-host answers knocks.
    OnlyHostOrCohostAnswersKnocks,
    /// Only the host or a co-host removes people.
    OnlyHostOrCohostRemovesMembers,
    /// A co-host removes only guests and party screens.
    CohostsRemoveOnlyGuests,
    /// Nobody removes the host.
    TheHostCannotBeRemoved,
    /// Only the host hands the host role over.
    OnlyTheHostTransfersHosting,
    /// The host role goes only to a co-host.
    HostingGoesOnlyToACohost,
}

impl Rule {
    /// The sentence the author is shown.
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
            Rule::OnlyHostOrCohostRemovesMembers => {
                "only the host or a co-host can remove someone from the party"
            }
            Rule::CohostsRemoveOnlyGuests => {
                "a co-host can only remove guests and party screens, not other co-hosts"
            }
            Rule::TheHostCannotBeRemoved => "the host cannot be removed from their own party",
            Rule::OnlyTheHostTransfersHosting => "only the host can hand the party over",
            Rule::HostingGoesOnlyToACohost => "the party can only be handed to a co-host",
        }
    }
}

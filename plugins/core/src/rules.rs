//! The role rules of REFERENCE.md as pure functions. The authority asks [`authorize`] about
//! every session intent, whatever front end or peer sent it; a refusal names its [`Rule`].

use serde::{Deserialize, Serialize};

use crate::ids::{PeerId, TrackId};
use crate::intent::SessionAction;

pub use crate::error::Rule;

/// A participant's role in a session.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Started the session; its authority.
    Host,
    /// Promoted by the host: runs the room with them.
    CoHost,
    /// Anyone else who joined.
    Guest,
    /// A party screen: it shows the session and changes nothing.
    Display,
}

impl Role {
    /// The lowercase name used by the control protocol.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Host => "host",
            Role::CoHost => "cohost",
            Role::Guest => "guest",
            Role::Display => "display",
        }
    }

    /// Host and co-hosts run the room: they may move tracks, take playback and answer knocks.
    pub fn is_host_or_cohost(self) -> bool {
        matches!(self, Role::Host | Role::CoHost)
    }
}

/// What the authority knows about the author of an intent and its target, for the rules.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Facts {
    /// The author's role.
    pub role: Role,
    /// The author currently owns playback.
    pub is_playback_owner: bool,
    /// For a track removal: the author added that track.
    pub added_the_track: bool,
    /// For a hand-off or a removal: the role of the peer it is about.
    pub target_role: Option<Role>,
}

impl Facts {
    /// Facts for an author with `role` and nothing else known.
    pub fn of(role: Role) -> Self {
        Self {
            role,
            is_playback_owner: false,
            added_the_track: false,
            target_role: None,
        }
    }
}

/// What the rules need to know about a session to judge one peer's action. The authority
/// answers from its entities and front ends from their read model, and both hand it to
/// [`facts_for`], so the window offers exactly what the host would allow.
pub trait SessionRoles {
    /// The role of `peer`, or `None` when `peer` is not a member of the session.
    fn role_of(&self, peer: &PeerId) -> Option<Role>;
    /// The peer who owns playback now.
    fn playback_owner(&self) -> &PeerId;
    /// Who added `track`, if it is in the queue.
    fn added_by(&self, track: TrackId) -> Option<&PeerId>;
}

/// The [`Facts`] about `peer` doing `action` in `session`, for [`authorize`]; `None` when
/// `peer` is not a member (members only may change a session).
pub fn facts_for(
    session: &impl SessionRoles,
    peer: &PeerId,
    action: &SessionAction,
) -> Option<Facts> {
    let mut facts = Facts::of(session.role_of(peer)?);
    facts.is_playback_owner = session.playback_owner() == peer;
    match action {
        SessionAction::RemoveTrack { track_id } => {
            facts.added_the_track = session.added_by(*track_id) == Some(peer);
        }
        SessionAction::HandOff { to } | SessionAction::TransferHost { to } => {
            facts.target_role = session.role_of(to)
        }
        SessionAction::RemoveMember { peer: target, .. } => {
            facts.target_role = session.role_of(target)
        }
        _ => {}
    }
    Some(facts)
}

/// Decides whether the author described by `facts` may perform `action`.
pub fn authorize(action: &SessionAction, facts: &Facts) -> Result<(), Rule> {
    use SessionAction as A;
    if facts.role == Role::Display {
        return Err(Rule::DisplayIsReadOnly);
    }
    let host_or_cohost = facts.role.is_host_or_cohost();
    match action {
        A::AddTrack { .. } | A::React { .. } => Ok(()),
        A::RemoveTrack { .. } => {
            if host_or_cohost || facts.added_the_track {
                Ok(())
            } else {
                Err(Rule::GuestsRemoveOnlyTheirOwnTracks)
            }
        }
        A::MoveTrack { .. } => require(host_or_cohost, Rule::OnlyHostOrCohostMovesTracks),
        A::Play | A::Pause | A::Next | A::Seek { .. } => require(
            facts.is_playback_owner,
            Rule::OnlyPlaybackOwnerControlsPlayback,
        ),
        A::TakePlayback => require(host_or_cohost, Rule::OnlyHostOrCohostTakesPlayback),
        A::HandOff { .. } => {
            require(facts.is_playback_owner, Rule::OnlyPlaybackOwnerHandsOff)?;
            require(
                facts.target_role.is_some_and(Role::is_host_or_cohost),
                Rule::HandOffOnlyToHostOrCohost,
            )
        }
        A::AddCohost { .. } | A::RemoveCohost { .. } => {
            require(facts.role == Role::Host, Rule::OnlyHostManagesCohosts)
        }
        A::ApproveKnock { .. } | A::DenyKnock { .. } => {
            require(host_or_cohost, Rule::OnlyHostOrCohostAnswersKnocks)
        }
        A::TransferHost { .. } => {
            require(facts.role == Role::Host, Rule::OnlyTheHostTransfersHosting)?;
            require(
                facts.target_role == Some(Role::CoHost),
                Rule::HostingGoesOnlyToACohost,
            )
        }
        A::RemoveMember { .. } => {
            require(host_or_cohost, Rule::OnlyHostOrCohostRemovesMembers)?;
            match facts.target_role {
                Some(Role::Host) => Err(Rule::TheHostCannotBeRemoved),
                Some(Role::CoHost) => {
                    require(facts.role == Role::Host, Rule::CohostsRemoveOnlyGuests)
                }
                // Not a member: the authority answers "not found" before asking.
                _ => Ok(()),
            }
        }
    }
}

fn require(condition: bool, rule: Rule) -> Result<(), Rule> {
    if condition { Ok(()) } else { Err(rule) }
}

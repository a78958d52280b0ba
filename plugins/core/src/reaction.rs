//! Reactions: the six emoji anyone in a party (phones too) can send. The host keeps the most
//! recent ones in [`Reactions`] on the session entity, a replicated component, so party
//! screens that joined as display members see them as well as the host does.

use bevy::prelude::*;
use serde::{Deserialize, Serialize};

use crate::ids::{PeerId, TrackId};

/// How many recent reactions the session keeps: enough for a screen to float them up, small
/// enough that the component costs little on the wire.
pub const MAX_RECENT_REACTIONS: usize = 24;

/// One of the six reactions.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Emoji {
    /// 🔥
    Fire,
    /// ❤️
    Heart,
    /// 👎
    ThumbsDown,
    /// 🤯
    MindBlown,
    /// 😴
    Sleeping,
    /// 🥳
    Party,
}

impl Emoji {
    /// Every reaction, in the order pages show them.
    pub const ALL: [Emoji; 6] = [
        Emoji::Fire,
        Emoji::Heart,
        Emoji::ThumbsDown,
        Emoji::MindBlown,
        Emoji::Sleeping,
        Emoji::Party,
    ];

    /// The name used by the control protocol and the phone page (`thumbs_down`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Emoji::Fire => "fire",
            Emoji::Heart => "heart",
            Emoji::ThumbsDown => "thumbs_down",
            Emoji::MindBlown => "mind_blown",
            Emoji::Sleeping => "sleeping",
            Emoji::Party => "party",
        }
    }

    /// The reaction named `name`, if it is one of the six.
    pub fn from_name(name: &str) -> Option<Emoji> {
        Emoji::ALL.into_iter().find(|e| e.as_str() == name)
    }

    /// The emoji itself, for screens that can draw it.
    pub fn glyph(self) -> &'static str {
        match self {
            Emoji::Fire => "🔥",
            Emoji::Heart => "❤️",
            Emoji::ThumbsDown => "👎",
            Emoji::MindBlown => "🤯",
            Emoji::Sleeping => "😴",
            Emoji::Party => "🥳",
        }
    }
}

/// One reaction someone sent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reaction {
    /// Numbered by the host, increasing: screens show each id once.
    pub id: u64,
    /// Which reaction.
    pub emoji: Emoji,
    /// Who sent it.
    pub from: PeerId,
    /// The track it was about (the one playing when it was sent), if any.
    pub track_id: Option<TrackId>,
    /// When the host applied it, in wall-clock ms.
    pub at_ms: u64,
}

/// On the session entity: the most recent reactions, oldest first, at most
/// [`MAX_RECENT_REACTIONS`]. Written by the host only; replicated to members.
#[derive(Component, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reactions {
    /// The id the next reaction gets.
    pub next_id: u64,
    /// The recent reactions, oldest first.
    pub recent: Vec<Reaction>,
}

impl Reactions {
    /// Records a reaction, forgetting the oldest past the cap; returns its id.
    pub fn push(
        &mut self,
        emoji: Emoji,
        from: PeerId,
        track_id: Option<TrackId>,
        at_ms: u64,
    ) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.recent.push(Reaction {
            id,
            emoji,
            from,
            track_id,
            at_ms,
        });
        let excess = self.recent.len().saturating_sub(MAX_RECENT_REACTIONS);
        self.recent.drain(..excess);
        id
    }

    /// Reactions newer than `seen` (an id already shown), oldest first.
    pub fn after(&self, seen: Option<u64>) -> impl Iterator<Item = &Reaction> {
        self.recent
            .iter()
            .filter(move |r| seen.is_none_or(|s| r.id > s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_emoji_name_reads_back_and_unknown_names_are_refused() {
        for emoji in Emoji::ALL {
            assert_eq!(Emoji::from_name(emoji.as_str()), Some(emoji));
        }
        assert_eq!(Emoji::from_name("poop"), None);
    }

    #[test]
    fn the_list_keeps_only_the_most_recent_reactions_with_increasing_ids() {
        let mut reactions = Reactions::default();
        for i in 0..(MAX_RECENT_REACTIONS as u64 + 5) {
            assert_eq!(reactions.push(Emoji::Fire, PeerId::new("p"), None, i), i);
        }
        assert_eq!(reactions.recent.len(), MAX_RECENT_REACTIONS);
        assert_eq!(reactions.recent[0].id, 5);
        let newer: Vec<u64> = reactions.after(Some(26)).map(|r| r.id).collect();
        assert_eq!(newer, vec![27, 28]);
    }
}

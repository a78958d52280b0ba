//! Identifiers shared by every peer. They are plain data so that the core stays free of I/O
//! and of libp2p; the network layer converts to and from libp2p's own types.

use std::fmt;
use std::str::FromStr;

use bevy::prelude::Component;
use rand::Rng;
use serde::{Deserialize, Serialize};

/// A peer's identity: the text form of its libp2p PeerId (base58), derived from its ed25519 key.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PeerId(pub String);

impl PeerId {
    /// A peer id from its text form.
    pub fn new(text: impl Into<String>) -> Self {
        Self(text.into())
    }
    /// The text form.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A short, stable rendering of this peer's key, to compare by eye or read aloud before
    /// letting someone in: `7F3A-91C2-0B5E`, 48 bits of an FNV-1a hash of the peer id (which
    /// is derived from the key). A name can be chosen by anyone; this cannot.
    pub fn fingerprint(&self) -> String {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in self.0.as_bytes() {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        let hex = format!("{:012X}", hash >> 16);
        format!("{}-{}-{}", &hex[0..4], &hex[4..8], &hex[8..12])
    }
}

impl fmt::Display for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A track in a session's queue. Chosen at random by the author of the add, so a guest's
/// pending track and the authority's confirmed one share an id.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TrackId(pub u64);

impl TrackId {
    /// A fresh random track id.
    pub fn random(rng: &mut impl Rng) -> Self {
        Self(rng.r#gen())
    }
}

impl fmt::Display for TrackId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// The text of a track id was not 16 hexadecimal digits.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("`{0}` is not a track id (expected 16 hexadecimal digits)")]
pub struct BadTrackId(pub String);

impl FromStr for TrackId {
    type Err = BadTrackId;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.len() != 16 {
            return Err(BadTrackId(text.to_owned()));
        }
        u64::from_str_radix(text, 16)
            .map(TrackId)
            .map_err(|_| BadTrackId(text.to_owned()))
    }
}

/// A session, named in invites. Random, 16 characters of an unambiguous alphabet.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SessionId(pub String);

/// Letters and digits without look-alikes (no 0/O, 1/I/L), shared with short codes.
pub const UNAMBIGUOUS_ALPHABET: &[u8] = b"23456789ABCDEFGHJKMNPQRSTUVWXYZ";

impl SessionId {
    /// A fresh random session id.
    pub fn random(rng: &mut impl Rng) -> Self {
        let text = (0..16)
            .map(|_| UNAMBIGUOUS_ALPHABET[rng.gen_range(0..UNAMBIGUOUS_ALPHABET.len())] as char)
            .collect();
        Self(text)
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The stable network id of a replicated entity: the same on every peer, unlike `Entity`.
#[derive(
    Component, Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
pub struct NetId(pub u64);

impl NetId {
    /// A new random id. Only the authority allocates them, never from a peer's input: a
    /// chosen id could collide with another entity's and merge into it on every member.
    pub fn fresh() -> Self {
        Self(rand::random())
    }
}

/// Names one intent for ever: its author and that author's counter. Re-delivery of the same
/// id is recognised and ignored, which makes the offline outbox safe to resend.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct IntentId {
    /// The peer whose device wrote the intent.
    pub author: PeerId,
    /// That device's counter, increasing.
    pub counter: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fingerprint_is_short_stable_and_tells_peers_apart() {
        let a = PeerId::new("12D3KooW9tHTtS3inCZiYykw4u5G4frbjVFqhkmJX12gSNCVeH3e");
        let b = PeerId::new("12D3KooW9xCm2jWjNVrwh51SWCQBMYdMyeU3NpT85QhLVkF6PcNM");
        let shown = a.fingerprint();
        assert_eq!(shown.len(), 14, "{shown}");
        assert!(
            shown
                .chars()
                .all(|c| c == '-' || c.is_ascii_hexdigit() && !c.is_ascii_lowercase()),
            "{shown}"
        );
        assert_eq!(
            shown,
            a.clone().fingerprint(),
            "the same key, the same print"
        );
        assert_ne!(shown, b.fingerprint());
    }
}

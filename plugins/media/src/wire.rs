//! The media transfer's messages, carried by the network as `Request::Media` and
//! `Response::Media` (postcard). New variants go last: postcard numbers them.

use serde::{Deserialize, Serialize};
use whatnext_core::media::ContentHash;
use whatnext_network::transport::as_bytes;

/// The most leaves one range asks for: 1 MiB, well under the transport's frame cap.
pub const MAX_RANGE_LEAVES: u32 = 16;

/// What a peer asks a holder for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MediaAsk {
    /// The file's outboard (leaf chaining values), to check the leaves against.
    Outboard {
        /// Which file.
        hash: ContentHash,
    },
    /// Leaves `first .. first + count` of the file.
    Range {
        /// Which file.
        hash: ContentHash,
        /// The first leaf.
        first: u64,
        /// How many leaves, at most [`MAX_RANGE_LEAVES`].
        count: u32,
    },
}

/// A holder's answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MediaReply {
    /// The outboard: 32 bytes per leaf (empty for a one-leaf file).
    Outboard(#[serde(with = "as_bytes")] Vec<u8>),
    /// The bytes of the leaves asked for, back to back.
    Range(#[serde(with = "as_bytes")] Vec<u8>),
    /// This peer does not hold the file.
    NotHere,
    /// Refused, with the reason (not a member, not a file of the session, a bad range).
    Refused(String),
}

/// Encodes a message (postcard cannot fail on these types; an empty body would be refused).
pub fn encode<T: Serialize>(message: &T) -> Vec<u8> {
    postcard::to_allocvec(message).unwrap_or_default()
}

#![allow(dead_code)] // not every crate that includes this uses every helper
//! Shared by the wire fuzz tests (core, network, replication, control): how many cases to
//! run, and valid inputs mutated the way a hostile or broken peer would (bit flips,
//! truncations, bytes inserted or dropped, length fields overwritten). Included with
//! `#[path]`, so each crate keeps its one test binary.

use proptest::prelude::*;

/// Cases per fuzz property: `WHATNEXT_FUZZ_CASES` (a million for the long run), else 20,000,
/// which a normal test run spends well under a second or two on.
pub fn fuzz_cases() -> u32 {
    std::env::var("WHATNEXT_FUZZ_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(20_000)
}

/// A fuzz property's config: the case count, and no failure files written into the tree.
pub fn fuzz_config() -> ProptestConfig {
    ProptestConfig {
        cases: fuzz_cases(),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// One change to a valid message.
#[derive(Clone, Debug)]
pub enum Mutation {
    /// Flip one bit of the byte at this position (modulo the length).
    Flip(usize, u8),
    /// Cut the message at this length (modulo the length).
    Truncate(usize),
    /// Overwrite the byte at this position with this value: a length or tag changed.
    Set(usize, u8),
    /// Overwrite up to 5 bytes from this position with a varint of this value: a length
    /// field made huge (or small).
    Varint(usize, u64),
    /// Insert a byte here.
    Insert(usize, u8),
    /// Drop the byte here.
    Remove(usize),
}

/// Any mutation.
pub fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 0u8..8).prop_map(|(at, bit)| Mutation::Flip(at, bit)),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), any::<u8>()).prop_map(|(at, b)| Mutation::Set(at, b)),
        (any::<usize>(), any::<u64>()).prop_map(|(at, v)| Mutation::Varint(at, v)),
        (any::<usize>(), any::<u8>()).prop_map(|(at, b)| Mutation::Insert(at, b)),
        any::<usize>().prop_map(Mutation::Remove),
    ]
}

/// Applies `mutations` to `bytes` in order.
pub fn mutate(mut bytes: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for m in mutations {
        let len = bytes.len();
        match *m {
            Mutation::Flip(at, bit) if len > 0 => bytes[at % len] ^= 1 << bit,
            Mutation::Truncate(at) if len > 0 => bytes.truncate(at % len),
            Mutation::Set(at, b) if len > 0 => bytes[at % len] = b,
            Mutation::Varint(at, mut v) if len > 0 => {
                let mut i = at % len;
                loop {
                    let more = v >= 0x80;
                    let byte = (v as u8 & 0x7f) | if more { 0x80 } else { 0 };
                    if i < bytes.len() {
                        bytes[i] = byte;
                    } else {
                        bytes.push(byte);
                    }
                    i += 1;
                    v >>= 7;
                    if !more {
                        break;
                    }
                }
            }
            Mutation::Insert(at, b) => bytes.insert(at % (len + 1), b),
            Mutation::Remove(at) if len > 0 => {
                bytes.remove(at % len);
            }
            _ => {}
        }
    }
    bytes
}

/// Random bytes, mostly short (where decoders branch) and sometimes longer.
pub fn random_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => proptest::collection::vec(any::<u8>(), 0..64),
        1 => proptest::collection::vec(any::<u8>(), 0..2048),
    ]
}

//! Queue order by fractional index keys.
//!
//! A key is a base-62 fraction written as ASCII digits `0-9A-Za-z` with no trailing `0`, so
//! plain string order is numeric order and there is always room between two keys. The
//! authority assigns keys: a move rewrites one key and concurrent adds never collide.
//! Appends and prepends step the first [`HEAD_DIGITS`] digits by a fixed amount, which keeps
//! keys short (8 digits for millions of appends) instead of creeping towards 1.

use std::fmt;

use serde::{Deserialize, Serialize};

const DIGITS: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const BASE: u64 = 62;
/// Width of the part of a key that appends and prepends step through.
const HEAD_DIGITS: usize = 8;
/// How far an append or prepend moves the head: 62^4, leaving 62^4 slots between neighbours.
const STEP: u64 = BASE.pow(4);

/// A position in the queue. Compare keys to order tracks.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct QueueKey(String);

/// The text is not a valid key.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BadQueueKey {
    /// The text was empty.
    #[error("a queue key cannot be empty")]
    Empty,
    /// The text ends in `0` (no key between it and its prefix).
    #[error("a queue key cannot end in `0`")]
    TrailingZero,
    /// A character that is not a base-62 digit.
    #[error("`{0}` is not a base-62 digit")]
    NotADigit(char),
}

fn digit_value(byte: u8) -> Option<u64> {
    DIGITS.iter().position(|&d| d == byte).map(|v| v as u64)
}

impl QueueKey {
    /// Parses a key received from storage or the network.
    pub fn parse(text: &str) -> Result<Self, BadQueueKey> {
        if text.is_empty() {
            return Err(BadQueueKey::Empty);
        }
        if let Some(bad) = text
            .chars()
            .find(|c| !c.is_ascii() || digit_value(*c as u8).is_none())
        {
            return Err(BadQueueKey::NotADigit(bad));
        }
        if text.ends_with('0') {
            return Err(BadQueueKey::TrailingZero);
        }
        Ok(Self(text.to_owned()))
    }

    /// Any text as a key, unchecked: for text that was a key already (the queue index keeps
    /// keys in pieces), and in tests for what a peer's message may carry (deserializing does
    /// not check keys).
    pub(crate) fn unchecked(text: &str) -> Self {
        Self(text.to_owned())
    }

    /// The key's text, for storage and the network.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A key strictly between `before` and `after` (`None` is the open end of the queue).
    ///
    /// # Panics
    /// If `before >= after`: the caller passed neighbours in the wrong order, a bug.
    pub fn between(before: Option<&QueueKey>, after: Option<&QueueKey>) -> QueueKey {
        if let (Some(a), Some(b)) = (before, after) {
            assert!(a < b, "queue keys out of order: {a} >= {b}");
        }
        let text = match (before, after) {
            (None, None) => head_to_key(BASE.pow(HEAD_DIGITS as u32) / 2),
            (Some(a), None) => {
                let head = key_head(&a.0);
                match head.checked_add(STEP) {
                    Some(next) if next < BASE.pow(HEAD_DIGITS as u32) => head_to_key(next),
                    _ => midpoint(&a.0, None),
                }
            }
            (None, Some(b)) => {
                let head = key_head(&b.0);
                // The head of `b` may equal `b` itself (when `b` is no longer than the head),
                // so step down only when that still leaves a non-zero key below `b`.
                if head > STEP {
                    head_to_key(head - STEP)
                } else {
                    midpoint("", Some(&b.0))
                }
            }
            (Some(a), Some(b)) => midpoint(&a.0, Some(&b.0)),
        };
        QueueKey(text)
    }
}

impl fmt::Display for QueueKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The first `HEAD_DIGITS` digits of a key as a number, missing digits counting as zero.
fn key_head(key: &str) -> u64 {
    let bytes = key.as_bytes();
    (0..HEAD_DIGITS).fold(0, |acc, i| {
        acc * BASE + bytes.get(i).and_then(|b| digit_value(*b)).unwrap_or(0)
    })
}

/// Writes a head number as a key, dropping trailing zero digits.
fn head_to_key(mut head: u64) -> String {
    let mut digits = [b'0'; HEAD_DIGITS];
    for slot in digits.iter_mut().rev() {
        *slot = DIGITS[(head % BASE) as usize];
        head /= BASE;
    }
    let text = std::str::from_utf8(&digits).unwrap_or_default();
    text.trim_end_matches('0').to_owned()
}

/// The shortest-ish digit string strictly between the fractions `a` and `b` (`None` = 1).
/// `a` may be empty (= 0). Neither may end in `0`.
fn midpoint(a: &str, b: Option<&str>) -> String {
    let a = a.as_bytes();
    let b = b.map(str::as_bytes);
    let mut out = Vec::new();
    let mut i = 0;
    // Copy the common prefix, reading `a` as padded with zeros.
    if let Some(b) = b {
        while i < b.len() && a.get(i).copied().unwrap_or(b'0') == b[i] {
            out.push(b[i]);
            i += 1;
        }
    }
    let mut a_rest: &[u8] = a.get(i..).unwrap_or(&[]);
    let mut b_rest: Option<&[u8]> = b.map(|b| &b[i..]);
    loop {
        let da = a_rest.first().and_then(|d| digit_value(*d)).unwrap_or(0);
        let db = match b_rest {
            Some(rest) => rest.first().and_then(|d| digit_value(*d)).unwrap_or(BASE),
            None => BASE,
        };
        if db - da > 1 {
            out.push(DIGITS[((da + db) / 2) as usize]);
            break;
        }
        // Consecutive first digits.
        match b_rest {
            Some(rest) if rest.len() > 1 => {
                // `b` truncated to its first digit is above `a` and below `b`.
                out.push(rest[0]);
                break;
            }
            _ => {
                // Keep `a`'s digit and look for room after it, below 1.
                out.push(DIGITS[da as usize]);
                a_rest = a_rest.get(1..).unwrap_or(&[]);
                b_rest = None;
            }
        }
    }
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key(text: &str) -> QueueKey {
        QueueKey::parse(text).expect("valid key")
    }

    #[test]
    fn first_key_is_in_the_middle() {
        assert_eq!(QueueKey::between(None, None).as_str(), "V");
    }

    #[test]
    fn appends_stay_short() {
        let mut last = QueueKey::between(None, None);
        for _ in 0..100_000 {
            let next = QueueKey::between(Some(&last), None);
            assert!(next > last);
            last = next;
        }
        assert!(last.as_str().len() <= HEAD_DIGITS, "{last}");
    }

    #[test]
    fn between_adjacent_digits_goes_deeper() {
        let k = QueueKey::between(Some(&key("A")), Some(&key("B")));
        assert!(key("A") < k && k < key("B"), "{k}");
    }

    #[test]
    fn between_a_key_and_its_extension() {
        let k = QueueKey::between(Some(&key("A")), Some(&key("A01")));
        assert!(key("A") < k && k < key("A01"), "{k}");
    }

    #[test]
    fn parse_rejects_bad_keys() {
        assert_eq!(QueueKey::parse(""), Err(BadQueueKey::Empty));
        assert_eq!(QueueKey::parse("A0"), Err(BadQueueKey::TrailingZero));
        assert_eq!(QueueKey::parse("A-"), Err(BadQueueKey::NotADigit('-')));
    }

    /// One step of a queue edit: insert a new item or move an existing one, to a position.
    #[derive(Debug, Clone)]
    enum Op {
        Insert(usize),
        Move(usize, usize),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            any::<usize>().prop_map(Op::Insert),
            (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Op::Move(a, b)),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        /// Sorting by key always gives the order the edits intended, and every key stays valid.
        #[test]
        fn any_inserts_and_moves_keep_the_intended_order(ops in prop::collection::vec(op(), 1..200)) {
            // The intended order, and each item's key.
            let mut intended: Vec<u32> = Vec::new();
            let mut keys: std::collections::HashMap<u32, QueueKey> = Default::default();
            let mut next_item = 0u32;
            for op in ops {
                let (item, pos) = match op {
                    Op::Insert(p) => {
                        next_item += 1;
                        (next_item, p % (intended.len() + 1))
                    }
                    Op::Move(_, _) if intended.is_empty() => continue,
                    Op::Move(from, to) => {
                        let item = intended.remove(from % intended.len());
                        (item, to % (intended.len() + 1))
                    }
                };
                let before = pos.checked_sub(1).map(|i| keys[&intended[i]].clone());
                let after = intended.get(pos).map(|it| keys[it].clone());
                let k = QueueKey::between(before.as_ref(), after.as_ref());
                prop_assert!(QueueKey::parse(k.as_str()).is_ok());
                intended.insert(pos, item);
                keys.insert(item, k);
            }
            let mut by_key = intended.clone();
            by_key.sort_by(|a, b| keys[a].cmp(&keys[b]));
            prop_assert_eq!(by_key, intended);
        }
    }
}

//! Secrets: the link's token, and each phone's own key, which stands for a pseudo peer id
//! (`phone-<random>`) the host applies the phone's intents under.

use std::collections::HashMap;

use rand::RngCore;
use whatnext_core::limits::MAX_TEXT_CHARS;
use whatnext_core::prelude::PeerId;

/// Most phones one session's page accepts (each is a participant, within the session's cap).
pub const MAX_PHONES: usize = 40;
/// What a phone's name gets after it, so everyone sees who is on a phone.
pub const PHONE_SUFFIX: &str = " (phone)";
/// Longest name a phone may choose: with the suffix it stays within the app's text cap.
pub const MAX_PHONE_NAME_CHARS: usize = MAX_TEXT_CHARS - PHONE_SUFFIX.len();

/// 128 random bits as 32 hex digits: a link token or a phone's key.
pub fn random_secret() -> String {
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Compares secrets in time independent of where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// One phone: who it is in the session and what it is called.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Phone {
    /// Its pseudo peer id.
    pub peer: PeerId,
    /// The name it chose (without the suffix).
    pub name: String,
}

/// A name a phone chose was empty or too long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadName(pub String);

/// Trims a chosen name and checks its length.
pub fn clean_name(name: &str) -> Result<String, BadName> {
    let name = name.trim();
    if name.is_empty() {
        return Err(BadName("a name cannot be empty".into()));
    }
    if name.chars().count() > MAX_PHONE_NAME_CHARS {
        return Err(BadName(format!(
            "a name is at most {MAX_PHONE_NAME_CHARS} characters"
        )));
    }
    Ok(name.to_owned())
}

/// The phones that said hello, by their key.
#[derive(Debug, Default)]
pub struct Phones {
    by_key: HashMap<String, Phone>,
}

/// No room for another phone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooManyPhones;

impl Phones {
    /// The phone with this key, if it said hello.
    pub fn get(&self, key: &str) -> Option<&Phone> {
        self.by_key.get(key)
    }

    /// Registers a phone, or renames the one with `key`; returns its key and itself.
    pub fn hello(
        &mut self,
        key: Option<&str>,
        name: String,
    ) -> Result<(String, Phone), TooManyPhones> {
        if let Some(key) = key
            && let Some(phone) = self.by_key.get_mut(key)
        {
            phone.name = name;
            return Ok((key.to_owned(), phone.clone()));
        }
        if self.by_key.len() >= MAX_PHONES {
            return Err(TooManyPhones);
        }
        let key = random_secret();
        let phone = Phone {
            peer: PeerId::new(format!("phone-{}", &random_secret()[..16])),
            name,
        };
        self.by_key.insert(key.clone(), phone.clone());
        Ok((key, phone))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_128_bits_of_hex_and_differ() {
        let a = random_secret();
        assert_eq!(a.len(), 32);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, random_secret());
        assert!(same_secret(&a, &a.clone()));
        assert!(!same_secret(&a, &random_secret()));
        assert!(!same_secret(&a, &a[..31]));
    }

    #[test]
    fn a_known_key_renames_its_phone_and_an_unknown_one_makes_a_new_phone() {
        let mut phones = Phones::default();
        let (key, first) = phones.hello(None, "Ana".into()).expect("room");
        assert!(first.peer.as_str().starts_with("phone-"));
        let (same, renamed) = phones.hello(Some(&key), "Ana B".into()).expect("room");
        assert_eq!((same.as_str(), &renamed.peer), (key.as_str(), &first.peer));
        let (other, _) = phones.hello(Some("forged"), "Bo".into()).expect("room");
        assert_ne!(other, "forged", "a phone cannot choose its own key");
    }

    #[test]
    fn names_are_trimmed_and_capped() {
        assert_eq!(clean_name("  Ana "), Ok("Ana".into()));
        assert!(clean_name("   ").is_err());
        assert!(clean_name(&"x".repeat(MAX_PHONE_NAME_CHARS)).is_ok());
        assert!(clean_name(&"x".repeat(MAX_PHONE_NAME_CHARS + 1)).is_err());
    }

    #[test]
    fn no_more_than_the_cap_of_phones() {
        let mut phones = Phones::default();
        for i in 0..MAX_PHONES {
            phones.hello(None, format!("p{i}")).expect("room");
        }
        assert_eq!(phones.hello(None, "late".into()), Err(TooManyPhones));
    }
}

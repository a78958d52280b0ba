//! Invites: the `whtnxt://connect/…` URL and the short code. Pure parsing, no I/O.

use std::fmt;
use std::str::FromStr;

use multiaddr::{Multiaddr, PeerId as Libp2pPeerId};
use rand::Rng;

use crate::ids::{PeerId, SessionId, UNAMBIGUOUS_ALPHABET};
use crate::relay::validate_relay_addr;

/// The URL schemes an invite may use; the first is the one whatnext writes.
pub const SCHEMES: [&str; 2] = ["whtnxt", "whatnext"];

/// A parsed invite link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InviteUrl {
    /// The session's host.
    pub host: PeerId,
    /// A relay the host holds a reservation on, with its `/p2p/<relay id>`.
    pub relay: Option<String>,
    /// The session to join.
    pub session: SessionId,
    /// The invite secret: a holder joins without approval.
    pub key: Option<String>,
}

/// What is wrong with an invite. Each names the part at fault.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BadInvite {
    /// Not a `whtnxt://` (or `whatnext://`) link.
    #[error("the link must start with whtnxt:// (or whatnext://)")]
    Scheme,
    /// An action other than `connect`.
    #[error("the link's action must be `connect`, not `{0}`")]
    Action(String),
    /// The host's peer id does not parse.
    #[error("the host's peer ID `{0}` is not a valid peer ID")]
    PeerId(String),
    /// The relay address is not usable.
    #[error("the relay address is not usable: {0}")]
    Relay(String),
    /// No session named.
    #[error("the link has no session")]
    Session,
    #[error(
        "`{0}` is neither an invite link nor a short code (6 letters and digits, without 0, O, 1, I or L)"
    )]
    /// Neither a link nor a short code.
    NotACode(String),
}

impl InviteUrl {
    /// A fresh invite secret.
    pub fn new_secret(rng: &mut impl Rng) -> String {
        (0..22)
            .map(|_| UNAMBIGUOUS_ALPHABET[rng.gen_range(0..UNAMBIGUOUS_ALPHABET.len())] as char)
            .collect::<String>()
            .to_lowercase()
    }
}

impl fmt::Display for InviteUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://connect/{}?", SCHEMES[0], self.host)?;
        if let Some(relay) = &self.relay {
            write!(f, "relay={}&", percent_encode(relay))?;
        }
        write!(f, "session={}", percent_encode(&self.session.0))?;
        if let Some(key) = &self.key {
            write!(f, "&key={}", percent_encode(key))?;
        }
        Ok(())
    }
}

impl FromStr for InviteUrl {
    type Err = BadInvite;

    fn from_str(text: &str) -> Result<Self, BadInvite> {
        let text = text.trim();
        let rest = SCHEMES
            .iter()
            .find_map(|s| text.strip_prefix(s).and_then(|r| r.strip_prefix("://")))
            .ok_or(BadInvite::Scheme)?;
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (action, peer) = path.split_once('/').unwrap_or((path, ""));
        if action != "connect" {
            return Err(BadInvite::Action(action.to_owned()));
        }
        let peer = peer.trim_end_matches('/');
        Libp2pPeerId::from_str(peer).map_err(|_| BadInvite::PeerId(peer.to_owned()))?;
        let mut relay = None;
        let mut session = None;
        let mut key = None;
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = percent_decode(value)
                .ok_or_else(|| BadInvite::Relay(format!("bad %-escape in `{name}`")))?;
            match name {
                "relay" => {
                    relay = Some(
                        validate_relay_addr(&value).map_err(|e| BadInvite::Relay(e.to_string()))?,
                    )
                }
                "session" if !value.is_empty() => session = Some(SessionId(value)),
                "key" if !value.is_empty() => key = Some(value),
                _ => {} // unknown parameters are for newer versions
            }
        }
        Ok(InviteUrl {
            host: PeerId::new(peer),
            relay,
            session: session.ok_or(BadInvite::Session)?,
            key,
        })
    }
}

/// A short code, shown large and read aloud: 6 characters without look-alikes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ShortCode(String);

/// How many characters a short code has.
pub const SHORT_CODE_LEN: usize = 6;

impl ShortCode {
    /// A fresh random short code.
    pub fn random(rng: &mut impl Rng) -> Self {
        Self(
            (0..SHORT_CODE_LEN)
                .map(|_| UNAMBIGUOUS_ALPHABET[rng.gen_range(0..UNAMBIGUOUS_ALPHABET.len())] as char)
                .collect(),
        )
    }

    /// The session's code for the invite link whose secret is `link_secret`: whoever can
    /// make the link (the host, and any co-host holding the session's key) gets the same
    /// code, so a code outlives the device that registered it; and whoever holds the link
    /// can find the party's current host by it. The secret cannot be worked back from it.
    pub fn of_link(link_secret: &str) -> Self {
        let digest = blake3::hash(format!("whatnext short code v1 {link_secret}").as_bytes());
        let mut n = u64::from_le_bytes(
            digest.as_bytes()[..8].try_into().unwrap_or([0; 8]), // eight bytes of a 32-byte digest: always there
        );
        let base = UNAMBIGUOUS_ALPHABET.len() as u64;
        Self(
            (0..SHORT_CODE_LEN)
                .map(|_| {
                    let c = UNAMBIGUOUS_ALPHABET[(n % base) as usize] as char;
                    n /= base;
                    c
                })
                .collect(),
        )
    }

    /// The code's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The rendezvous namespace the host registers the code under.
    pub fn namespace(&self) -> String {
        format!("whatnext/code/{}", self.0)
    }
}

impl fmt::Display for ShortCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for ShortCode {
    type Err = BadInvite;

    /// Accepts lower case, spaces and dashes, as people type what they hear.
    fn from_str(text: &str) -> Result<Self, BadInvite> {
        let cleaned: String = text
            .chars()
            .filter(|c| !c.is_whitespace() && *c != '-')
            .map(|c| c.to_ascii_uppercase())
            .collect();
        let valid = cleaned.len() == SHORT_CODE_LEN
            && cleaned.bytes().all(|b| UNAMBIGUOUS_ALPHABET.contains(&b));
        if valid {
            Ok(Self(cleaned))
        } else {
            Err(BadInvite::NotACode(text.trim().to_owned()))
        }
    }
}

/// What a hello carries instead of a secret: a keyed hash of the secret and the guest's own
/// peer id. Whoever checks it needs the secret too, and what it learns admits nobody but that
/// guest (whose peer id the connection proves), so saying hello to the wrong device, say a
/// stranger who registered the party's code after its host went, gives nothing away.
pub fn hello_proof(secret: &str, guest: &PeerId) -> String {
    let key = blake3::hash(format!("whatnext hello proof v1 {secret}").as_bytes());
    blake3::keyed_hash(key.as_bytes(), guest.as_str().as_bytes()).to_hex()[..32].to_owned()
}

/// What a welcome carries to show it comes from a device that holds the secret the guest
/// proved (the party's host, or a co-host that took over), not from whoever answered for it.
pub fn welcome_proof(secret: &str, guest: &PeerId) -> String {
    hello_proof(&format!("welcome {secret}"), guest)
}

/// What a user pasted or typed to join.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Invite {
    /// An invite link.
    Url(InviteUrl),
    /// A short code, looked up on the relay.
    Code(ShortCode),
}

impl FromStr for Invite {
    type Err = BadInvite;

    fn from_str(text: &str) -> Result<Self, BadInvite> {
        if text.contains("://") {
            text.parse().map(Invite::Url)
        } else {
            text.parse().map(Invite::Code)
        }
    }
}

/// A relay multiaddr's transport part and relay peer id, for dialling through it.
pub fn relay_circuit_to(relay: &str, host: &PeerId) -> Option<Multiaddr> {
    format!("{relay}/p2p-circuit/p2p/{host}").parse().ok()
}

fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = text.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// What replaces an invite secret in [`redact_secrets`].
pub const REDACTED: &str = "<hidden>";

/// `text` with the value of every invite secret (a link's `key=` parameter) replaced by
/// [`REDACTED`], for logs above debug level: whoever reads the secret joins without approval.
pub fn redact_secrets(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("key=") {
        let (before, from_key) = rest.split_at(at);
        out.push_str(before);
        out.push_str("key=");
        let value = &from_key["key=".len()..];
        // Only a parameter named `key` (after `?` or `&`), not e.g. `monkey=`.
        let is_parameter = before.ends_with(['?', '&']);
        let end = value
            .find(|c: char| c == '&' || c == '#' || c == '"' || c.is_whitespace())
            .unwrap_or(value.len());
        if is_parameter && end > 0 {
            out.push_str(REDACTED);
            rest = &value[end..];
        } else {
            rest = value;
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    const HOST: &str = "12D3KooWCgGdKwhBMXUEgtzxRHtBoRH5VxnqUcNYdXMV7V6ptq9a";
    const RELAY: &str =
        "/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN";

    #[test]
    fn an_invite_round_trips_through_its_url() {
        let invite = InviteUrl {
            host: PeerId::new(HOST),
            relay: Some(RELAY.into()),
            session: SessionId("ABCDEFGH23456789".into()),
            key: Some("secret".into()),
        };
        let url = invite.to_string();
        assert!(
            url.starts_with(&format!("whtnxt://connect/{HOST}?relay=%2Fip4%2F127.0.0.1")),
            "{url}"
        );
        assert_eq!(url.parse::<InviteUrl>(), Ok(invite));
    }

    #[test]
    fn a_links_code_is_a_valid_code_that_only_that_secret_gives() {
        let code = ShortCode::of_link("0123456789abcdef0123456789abcdef");
        assert_eq!(code.as_str().parse::<ShortCode>(), Ok(code.clone()));
        assert_eq!(
            ShortCode::of_link("0123456789abcdef0123456789abcdef"),
            code,
            "whoever holds the secret makes the same code"
        );
        let others: std::collections::HashSet<ShortCode> = (0..1_000)
            .map(|i| ShortCode::of_link(&format!("secret {i}")))
            .collect();
        assert_eq!(others.len(), 1_000, "different links, different codes");
    }

    #[test]
    fn a_hello_proof_is_bound_to_its_secret_and_its_guest() {
        let ana = PeerId::new("ana");
        let proof = hello_proof("s3cret", &ana);
        assert_eq!(proof, hello_proof("s3cret", &ana));
        assert_ne!(proof, hello_proof("s3cret", &PeerId::new("bob")));
        assert_ne!(proof, hello_proof("other", &ana));
        assert!(!proof.contains("s3cret"));
        assert_ne!(
            proof,
            welcome_proof("s3cret", &ana),
            "a hello is no welcome"
        );
    }

    #[rstest]
    #[case::scheme("http://connect/x?session=s", BadInvite::Scheme)]
    #[case::action(&format!("whtnxt://join/{HOST}?session=s"), BadInvite::Action("join".into()))]
    #[case::peer("whtnxt://connect/notapeer?session=s", BadInvite::PeerId("notapeer".into()))]
    #[case::session(&format!("whtnxt://connect/{HOST}?relay=%2Fip4%2F127.0.0.1%2Ftcp%2F1%2Fp2p%2F{HOST}"), BadInvite::Session)]
    fn a_bad_link_names_the_part_at_fault(#[case] url: &str, #[case] expected: BadInvite) {
        assert_eq!(url.parse::<InviteUrl>(), Err(expected));
    }

    #[test]
    fn a_relay_without_peer_id_is_named() {
        let url = format!("whtnxt://connect/{HOST}?relay=%2Fip4%2F127.0.0.1%2Ftcp%2F1&session=s");
        assert!(matches!(url.parse::<InviteUrl>(), Err(BadInvite::Relay(_))));
    }

    #[test]
    fn short_codes_are_forgiving_about_case_and_dashes() {
        assert_eq!(
            "abc-def".parse::<ShortCode>().map(|c| c.0),
            Ok("ABCDEF".to_owned())
        );
        assert!("ABCDE0".parse::<ShortCode>().is_err(), "0 is a look-alike");
        assert!("ABCDE".parse::<ShortCode>().is_err(), "too short");
    }

    #[test]
    fn random_codes_use_the_unambiguous_alphabet() {
        let mut rng = rand::thread_rng();
        for _ in 0..100 {
            let code = ShortCode::random(&mut rng);
            assert_eq!(code.as_str().parse::<ShortCode>(), Ok(code.clone()));
            assert!(!code.as_str().contains(['0', 'O', '1', 'I', 'L']));
        }
    }

    #[test]
    fn redaction_hides_every_invite_secret_and_keeps_the_rest() {
        let link = format!("whtnxt://connect/{HOST}?relay=%2Fip4%2F1.2.3.4&session=S&key=s3cr3t");
        let redacted = redact_secrets(&link);
        assert_eq!(
            redacted,
            format!("whtnxt://connect/{HOST}?relay=%2Fip4%2F1.2.3.4&session=S&key={REDACTED}")
        );
        let two = format!("a {link} b \"{link}&x=1\" whtnxt://connect/{HOST}?key=first&session=S");
        let redacted = redact_secrets(&two);
        assert!(
            !redacted.contains("s3cr3t") && !redacted.contains("first"),
            "{redacted}"
        );
        assert!(
            redacted.contains("&x=1\"") && redacted.contains("&session=S"),
            "{redacted}"
        );
        for untouched in [
            "monkey=banana",
            "no secret here",
            "key=",
            "?key=&session=S",
            "",
        ] {
            assert_eq!(redact_secrets(untouched), untouched);
        }
    }
}

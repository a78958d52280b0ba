//! Relay addresses as the user types them. A relay is usable only as a multiaddr that names
//! the relay's peer id (`/p2p/<id>`), because the id is what invites and reservations trust.

use multiaddr::{Multiaddr, Protocol};

/// Why a typed relay address is unusable.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BadRelayAddr {
    /// The text does not parse as a multiaddr.
    #[error("`{addr}` is not a multiaddr: {reason}")]
    NotAMultiaddr {
        /// The text as typed.
        addr: String,
        /// The parser's complaint.
        reason: String,
    },
    /// The address has no `/p2p/<peer id>`.
    #[error("`{0}` has no /p2p/<peer id> part; copy the full address the relay printed at start")]
    NoPeerId(String),
    /// The address has only a `/p2p/` part.
    #[error("`{0}` has no transport (such as /ip4/…/tcp/…) before its /p2p/ part")]
    NoTransport(String),
}

/// Checks a relay address and returns it in canonical text form.
pub fn validate_relay_addr(text: &str) -> Result<String, BadRelayAddr> {
    let text = text.trim();
    let addr: Multiaddr =
        text.parse()
            .map_err(|e: multiaddr::Error| BadRelayAddr::NotAMultiaddr {
                addr: text.to_owned(),
                reason: e.to_string(),
            })?;
    let protocols: Vec<Protocol> = addr.iter().collect();
    match protocols.last() {
        Some(Protocol::P2p(_)) => {}
        _ => return Err(BadRelayAddr::NoPeerId(text.to_owned())),
    }
    if protocols.len() < 2 {
        return Err(BadRelayAddr::NoTransport(text.to_owned()));
    }
    Ok(addr.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const RELAY: &str =
        "/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN";

    #[test]
    fn a_full_relay_address_is_accepted() {
        assert_eq!(validate_relay_addr(RELAY).as_deref(), Ok(RELAY));
    }

    #[test]
    fn an_address_without_peer_id_is_refused() {
        assert!(matches!(
            validate_relay_addr("/ip4/127.0.0.1/tcp/4001"),
            Err(BadRelayAddr::NoPeerId(_))
        ));
    }

    #[test]
    fn garbage_is_refused_with_the_reason() {
        assert!(matches!(
            validate_relay_addr("relay.example:4001"),
            Err(BadRelayAddr::NotAMultiaddr { .. })
        ));
    }

    #[test]
    fn a_bare_peer_id_has_no_transport() {
        let bare = "/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN";
        assert!(matches!(
            validate_relay_addr(bare),
            Err(BadRelayAddr::NoTransport(_))
        ));
    }
}

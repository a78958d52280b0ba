//! Short codes on the relay's code registry (`/whatnext/code/1`): keeping ours registered
//! (and refreshed before it lapses), and looking up someone else's to say hello to its
//! holder. The relay answers a code only to whoever sends it, keeps one owner per code, and
//! rate-limits lookups; see `whatnext-code-protocol`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use libp2p::multiaddr::Protocol;
use libp2p::request_response::{self, OutboundFailure, OutboundRequestId, ProtocolSupport};
use libp2p::{Multiaddr, PeerId};
use tracing::debug;
use whatnext_code_protocol::{
    CODE_PROTOCOL, CodeCodec, CodeRequest, CodeResponse, Refusal, addrs_from_wire, addrs_to_wire,
    normalize_code, peer_from_wire,
};
use whatnext_core::intent::ErrorCode;

use super::Task;
use super::relay_link::relay_peer;
use crate::NetEvent;

/// When a registration got no answer (or a refusal worth retrying), try again this soon.
const RETRY: Duration = Duration::from_secs(30);
/// When our code is someone else's (codes follow from the session's key, so that is the
/// party's previous host), try again this soon.
const TAKEN_RETRY: Duration = Duration::from_secs(3);

/// The client side of `/whatnext/code/1`: it asks, it never answers.
pub fn behaviour() -> request_response::Behaviour<CodeCodec> {
    request_response::Behaviour::with_codec(
        CodeCodec,
        [(CODE_PROTOCOL, ProtocolSupport::Outbound)],
        request_response::Config::default().with_request_timeout(Duration::from_secs(15)),
    )
}

/// The short-code side of the task's state.
#[derive(Default)]
pub(super) struct Codes {
    /// The short code to keep registered.
    code: Option<String>,
    /// When to refresh the registration (half its TTL after the relay confirmed it).
    refresh_at: Option<Instant>,
    /// Registrations in flight: request → code.
    registering: HashMap<OutboundRequestId, String>,
    /// Lookups in flight: request → (join token, hello, the relay asked).
    lookups: HashMap<OutboundRequestId, (u64, Vec<u8>, Multiaddr)>,
}

/// What a failed code request to the relay means, as a sentence.
fn failure_text(error: &OutboundFailure) -> String {
    match error {
        OutboundFailure::UnsupportedProtocols => {
            "the relay does not serve short codes (it lacks /whatnext/code/1): share the invite link instead".into()
        }
        other => format!("the relay did not answer: {other}"),
    }
}

impl Task {
    /// Registers (or refreshes) the short code on the reserved relay.
    pub(super) fn register_code(&mut self) {
        let (Some(code), Some((_, relay))) = (self.codes.code.clone(), self.relays.reserved())
        else {
            return;
        };
        if self.codes.registering.values().any(|c| *c == code) {
            return;
        }
        let addrs: Vec<Multiaddr> = self.swarm.external_addresses().cloned().collect();
        let request = CodeRequest::Register {
            code: code.clone(),
            addrs: addrs_to_wire(&addrs),
        };
        let id = self
            .swarm
            .behaviour_mut()
            .codes
            .send_request(&relay, request);
        self.codes.registering.insert(id, code);
        // If no answer comes, the next attempt is due then.
        self.codes.refresh_at = Some(Instant::now() + RETRY);
    }

    /// Keeps `code` registered from now on, in place of the old one.
    pub(super) fn set_code(&mut self, code: Option<String>) {
        if code == self.codes.code {
            return;
        }
        if let (Some(old), Some((_, relay))) = (self.codes.code.take(), self.relays.reserved()) {
            self.swarm
                .behaviour_mut()
                .codes
                .send_request(&relay, CodeRequest::Unregister { code: old });
        }
        self.codes.code = code;
        self.codes.refresh_at = None;
        self.register_code();
    }

    /// Refreshes the short code before its registration lapses; returns when to look again.
    pub(super) fn renew_code(&mut self, now: Instant) -> Option<Instant> {
        self.codes.code.as_ref()?;
        let at = self.codes.refresh_at?;
        if at <= now {
            self.codes.refresh_at = Some(now + RETRY);
            self.register_code();
        }
        self.codes.refresh_at
    }

    /// Looks `code` up on `through` (or our reserved relay); the hello goes to whoever
    /// holds it.
    pub(super) fn resolve_code(
        &mut self,
        token: u64,
        code: &str,
        through: Option<Multiaddr>,
        hello: Vec<u8>,
    ) {
        let relay = match through {
            Some(addr) => match relay_peer(&addr.to_string()) {
                Some(found) => Some(found),
                None => {
                    let message = format!("the relay address {addr} does not name its peer id");
                    self.join_failed(token, ErrorCode::InvalidInvite, message);
                    return;
                }
            },
            None => self
                .relays
                .reserved()
                .and_then(|(addr, peer)| Some((addr.parse().ok()?, peer))),
        };
        let Some((relay_addr, relay)) = relay else {
            self.join_failed(
                token,
                ErrorCode::Unreachable,
                "a short code is resolved through your relay, and none is connected: add a relay and wait until it shows reserved".into(),
            );
            return;
        };
        let Some(code) = normalize_code(code) else {
            self.join_failed(
                token,
                ErrorCode::InvalidInvite,
                format!("`{code}` is not a short code"),
            );
            return;
        };
        let id = self
            .swarm
            .behaviour_mut()
            .codes
            .send_request_with_addresses(
                &relay,
                CodeRequest::Lookup { code },
                vec![relay_addr.clone()],
            );
        self.codes.lookups.insert(id, (token, hello, relay_addr));
    }

    pub(super) fn on_code_event(
        &mut self,
        event: request_response::Event<CodeRequest, CodeResponse>,
    ) {
        use request_response::Event as E;
        match event {
            E::Message {
                message:
                    request_response::Message::Response {
                        request_id,
                        response,
                    },
                ..
            } => {
                if let Some(code) = self.codes.registering.remove(&request_id) {
                    self.on_registered(code, response);
                } else if let Some((token, hello, relay)) = self.codes.lookups.remove(&request_id) {
                    self.on_looked_up(token, hello, relay, response);
                }
            }
            E::OutboundFailure {
                request_id, error, ..
            } => {
                if let Some(code) = self.codes.registering.remove(&request_id) {
                    if self.codes.code.as_ref() == Some(&code) {
                        self.out.emit(NetEvent::CodeProblem(format!(
                            "cannot register the short code {code}: {}",
                            failure_text(&error)
                        )));
                    }
                } else if let Some((token, ..)) = self.codes.lookups.remove(&request_id) {
                    self.join_failed(
                        token,
                        ErrorCode::Unreachable,
                        format!("could not look up the code: {}", failure_text(&error)),
                    );
                }
            }
            _ => {}
        }
    }

    fn on_registered(&mut self, code: String, response: CodeResponse) {
        if self.codes.code.as_ref() != Some(&code) {
            return; // replaced meanwhile
        }
        match response {
            CodeResponse::Registered { ttl_secs } => {
                debug!(%code, ttl_secs, "short code registered");
                let half = Duration::from_secs(ttl_secs / 2).max(Duration::from_secs(5));
                self.codes.refresh_at = Some(Instant::now() + half);
                self.out.emit(NetEvent::CodeRegistered(code));
            }
            CodeResponse::Refused { reason } => {
                match reason {
                    // Held by the device that hosted before (until the relay sees it gone, or
                    // it lets go after handing over): ours soon, ask again.
                    Refusal::Taken => self.codes.refresh_at = Some(Instant::now() + TAKEN_RETRY),
                    Refusal::RateLimited => {}
                    // Caps, a bad code: asking again will not help; a new code will.
                    _ => self.codes.refresh_at = None,
                }
                self.out.emit(NetEvent::CodeProblem(format!(
                    "the relay refused the short code {code}: {reason}"
                )));
            }
            other => self.out.emit(NetEvent::CodeProblem(format!(
                "the relay answered a registration with {other:?}"
            ))),
        }
    }

    fn on_looked_up(
        &mut self,
        token: u64,
        hello: Vec<u8>,
        relay: Multiaddr,
        response: CodeResponse,
    ) {
        match response {
            CodeResponse::Found { peer, addrs } => {
                let Some(host) = peer_from_wire(&peer) else {
                    self.join_failed(
                        token,
                        ErrorCode::Unreachable,
                        "the relay answered the code with a malformed peer id".into(),
                    );
                    return;
                };
                let mut addresses = vec![circuit_to(&relay, host)];
                addresses.extend(addrs_from_wire(&addrs));
                self.send_hello(token, host, addresses, hello);
            }
            CodeResponse::NotFound => self.join_failed(
                token,
                ErrorCode::InvalidInvite,
                "that short code is unknown or has expired: check it with the host".into(),
            ),
            CodeResponse::Refused { reason } => self.join_failed(
                token,
                match reason {
                    Refusal::BadCode => ErrorCode::InvalidInvite,
                    _ => ErrorCode::Unreachable,
                },
                format!("the relay refused to look up the code: {reason}"),
            ),
            other => self.join_failed(
                token,
                ErrorCode::Unreachable,
                format!("the relay answered a lookup with {other:?}"),
            ),
        }
    }
}

/// The host's address through the relay we asked: it holds a reservation there.
fn circuit_to(relay: &Multiaddr, host: PeerId) -> Multiaddr {
    relay
        .clone()
        .with(Protocol::P2pCircuit)
        .with(Protocol::P2p(host))
}

//! Short codes on the relay's rendezvous service: keeping ours registered (and renewed before
//! it lapses), and resolving someone else's to say hello to its holder.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use libp2p::rendezvous;
use tracing::debug;
use whatnext_core::intent::ErrorCode;

use super::Task;
use crate::NetEvent;

/// How long a short code stays registered before renewal must refresh it.
pub const CODE_TTL_SECS: u64 = 600;

/// The rendezvous namespace a short code is registered under.
pub fn code_namespace(code: &str) -> String {
    format!("whatnext/code/{code}")
}

/// The short-code side of the task's state.
#[derive(Default)]
pub(super) struct Codes {
    /// The short code to keep registered, and when it was last registered.
    code: Option<String>,
    registered_at: Option<Instant>,
    /// Codes being resolved: namespace → (join token, hello).
    resolving: HashMap<String, (u64, Vec<u8>)>,
}

impl Task {
    /// Registers (or renews) the short code on the reserved relay.
    pub(super) fn register_code(&mut self) {
        let (Some(code), Some((_, relay))) = (self.codes.code.clone(), self.relays.reserved())
        else {
            return;
        };
        let Ok(namespace) = rendezvous::Namespace::new(code_namespace(&code)) else {
            return;
        };
        match self
            .swarm
            .behaviour_mut()
            .rendezvous
            .register(namespace, relay, Some(CODE_TTL_SECS))
        {
            Ok(()) => self.codes.registered_at = Some(Instant::now()),
            Err(e) => self.out.emit(NetEvent::CodeProblem(format!(
                "cannot register the short code: {e}"
            ))),
        }
    }

    /// Keeps `code` registered from now on, in place of the old one.
    pub(super) fn set_code(&mut self, code: Option<String>) {
        if code == self.codes.code {
            return;
        }
        if let (Some(old), Some((_, relay))) = (self.codes.code.take(), self.relays.reserved())
            && let Ok(ns) = rendezvous::Namespace::new(code_namespace(&old))
        {
            self.swarm.behaviour_mut().rendezvous.unregister(ns, relay);
        }
        self.codes.code = code;
        self.codes.registered_at = None;
        self.register_code();
    }

    /// Renews the short code before its registration lapses; returns when to look again.
    pub(super) fn renew_code(&mut self, now: Instant) -> Option<Instant> {
        let at = self.codes.registered_at? + Duration::from_secs(CODE_TTL_SECS / 2);
        if at <= now {
            self.register_code();
            return Some(now + Duration::from_secs(CODE_TTL_SECS / 2));
        }
        Some(at)
    }

    /// Looks `code` up on our relay; the hello goes to whoever holds it.
    pub(super) fn resolve_code(&mut self, token: u64, code: &str, hello: Vec<u8>) {
        let Some((_, relay)) = self.relays.reserved() else {
            self.join_failed(
                token,
                ErrorCode::Unreachable,
                "a short code is resolved through your relay, and none is connected: add a relay and wait until it shows reserved".into(),
            );
            return;
        };
        let namespace = code_namespace(code);
        let Ok(ns) = rendezvous::Namespace::new(namespace.clone()) else {
            self.join_failed(
                token,
                ErrorCode::InvalidInvite,
                format!("`{code}` is not a short code"),
            );
            return;
        };
        self.codes.resolving.insert(namespace, (token, hello));
        self.swarm
            .behaviour_mut()
            .rendezvous
            .discover(Some(ns), None, Some(4), relay);
    }

    pub(super) fn on_rendezvous(&mut self, event: rendezvous::client::Event) {
        use rendezvous::client::Event as E;
        match event {
            E::Registered { namespace, ttl, .. } => {
                debug!(%namespace, ttl, "short code registered");
                if let Some(code) = self
                    .codes
                    .code
                    .clone()
                    .filter(|c| code_namespace(c) == namespace.to_string())
                {
                    self.out.emit(NetEvent::CodeRegistered(code));
                }
            }
            E::RegisterFailed {
                namespace, error, ..
            } => {
                self.out.emit(NetEvent::CodeProblem(format!(
                    "the relay refused the short code {namespace}: {error:?}"
                )));
            }
            E::Discovered {
                registrations,
                cookie,
                ..
            } => {
                let namespace = cookie.namespace().map(|n| n.to_string());
                let Some((token, hello)) = namespace.and_then(|n| self.codes.resolving.remove(&n))
                else {
                    return;
                };
                match registrations.first() {
                    Some(found) => {
                        let host = found.record.peer_id();
                        let addresses = found.record.addresses().to_vec();
                        self.send_hello(token, host, addresses, hello);
                    }
                    None => self.join_failed(
                        token,
                        ErrorCode::InvalidInvite,
                        "that short code is unknown or has expired: check it with the host".into(),
                    ),
                }
            }
            E::DiscoverFailed {
                namespace, error, ..
            } => {
                let key = namespace.map(|n| n.to_string());
                if let Some((token, _)) = key.and_then(|k| self.codes.resolving.remove(&k)) {
                    self.join_failed(
                        token,
                        ErrorCode::Unreachable,
                        format!("the relay could not look up the code: {error:?}"),
                    );
                }
            }
            _ => {}
        }
    }
}

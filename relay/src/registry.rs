//! The short-code registry's rules, apart from the network: who may register, refresh,
//! drop and look up a code, and how often.
//!
//! - No listing: the only way to learn a code's holder is to send the code.
//! - One owner per code: the first registration wins until it expires (or its owner leaves
//!   the relay); only the owner refreshes or drops it.
//! - Capped: codes per peer, per network ([`Prefix`]) and in total; registrations last a
//!   short, fixed TTL.
//! - Rate-limited: every register and lookup costs a token from the peer's bucket and from its
//!   network's, so guessing codes (887 million of them) is hopeless from one network.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use libp2p::{Multiaddr, PeerId};
use whatnext_code_protocol::{
    CodeRequest, CodeResponse, Refusal, addrs_from_wire, addrs_to_wire, normalize_code,
};

use crate::prefix::{Buckets, Prefix};

/// The registry's limits; each is a flag of the relay.
#[derive(Clone, Copy, Debug)]
pub struct RegistryLimits {
    /// How long a registration lasts unless its owner refreshes it.
    pub ttl: Duration,
    /// Codes one peer may hold.
    pub per_peer: usize,
    /// Codes the peers of one network may hold together.
    pub per_prefix: usize,
    /// Codes the relay holds in total.
    pub total: usize,
    /// Registers and lookups one peer may send a minute (also the burst).
    pub queries_per_peer_per_minute: u32,
    /// Registers and lookups one network may send a minute (also the burst).
    pub queries_per_prefix_per_minute: u32,
}

struct Entry {
    owner: PeerId,
    prefix: Option<Prefix>,
    addrs: Vec<Multiaddr>,
    expires: Instant,
}

/// What a request did, for the relay's metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Answered as asked.
    Served,
    /// Refused by a rate limit.
    RateLimited,
    /// Refused otherwise (taken, caps, bad code).
    Refused,
}

/// The live codes and the request buckets.
pub struct Registry {
    limits: RegistryLimits,
    codes: HashMap<String, Entry>,
    per_peer: HashMap<PeerId, usize>,
    per_prefix: HashMap<Prefix, usize>,
    peer_queries: Buckets<PeerId>,
    prefix_queries: Buckets<Prefix>,
}

impl Registry {
    /// An empty registry with these limits.
    pub fn new(limits: RegistryLimits) -> Self {
        Self {
            limits,
            codes: HashMap::new(),
            per_peer: HashMap::new(),
            per_prefix: HashMap::new(),
            peer_queries: Buckets::new(limits.queries_per_peer_per_minute),
            prefix_queries: Buckets::new(limits.queries_per_prefix_per_minute),
        }
    }

    /// How many codes are registered (expired ones until [`Registry::purge`]).
    pub fn len(&self) -> usize {
        self.codes.len()
    }

    /// Answers one request from `peer`, connected from `prefix`.
    pub fn handle(
        &mut self,
        peer: PeerId,
        prefix: Option<Prefix>,
        request: CodeRequest,
        now: Instant,
    ) -> (CodeResponse, Outcome) {
        let refused = |reason| (CodeResponse::Refused { reason }, Outcome::Refused);
        let code = match &request {
            CodeRequest::Register { code, .. }
            | CodeRequest::Unregister { code }
            | CodeRequest::Lookup { code } => code,
        };
        let Some(code) = normalize_code(code) else {
            return refused(Refusal::BadCode);
        };
        match request {
            CodeRequest::Unregister { .. } => {
                if self.codes.get(&code).is_some_and(|e| e.owner == peer) {
                    self.remove(&code);
                }
                (CodeResponse::Unregistered, Outcome::Served)
            }
            CodeRequest::Register { addrs, .. } => {
                if !self.take_token(peer, prefix, now) {
                    return (
                        CodeResponse::Refused {
                            reason: Refusal::RateLimited,
                        },
                        Outcome::RateLimited,
                    );
                }
                match self.register(peer, prefix, code, addrs_from_wire(&addrs), now) {
                    Ok(ttl) => (
                        CodeResponse::Registered {
                            ttl_secs: ttl.as_secs(),
                        },
                        Outcome::Served,
                    ),
                    Err(reason) => refused(reason),
                }
            }
            CodeRequest::Lookup { .. } => {
                if !self.take_token(peer, prefix, now) {
                    return (
                        CodeResponse::Refused {
                            reason: Refusal::RateLimited,
                        },
                        Outcome::RateLimited,
                    );
                }
                let answer = match self.codes.get(&code).filter(|e| e.expires > now) {
                    Some(entry) => CodeResponse::Found {
                        peer: entry.owner.to_bytes(),
                        addrs: addrs_to_wire(&entry.addrs),
                    },
                    None => CodeResponse::NotFound,
                };
                (answer, Outcome::Served)
            }
        }
    }

    /// Both the peer's and its network's bucket must have a token; only then are both spent.
    fn take_token(&mut self, peer: PeerId, prefix: Option<Prefix>, now: Instant) -> bool {
        let prefix_ok = prefix.is_none_or(|p| self.prefix_queries.would_allow(p, now));
        if !prefix_ok || !self.peer_queries.would_allow(peer, now) {
            return false;
        }
        if let Some(p) = prefix {
            self.prefix_queries.try_take(p, now);
        }
        self.peer_queries.try_take(peer, now)
    }

    fn register(
        &mut self,
        peer: PeerId,
        prefix: Option<Prefix>,
        code: String,
        addrs: Vec<Multiaddr>,
        now: Instant,
    ) -> Result<Duration, Refusal> {
        let ttl = self.limits.ttl;
        if self.codes.get(&code).is_some_and(|e| e.expires <= now) {
            self.remove(&code);
        }
        if let Some(entry) = self.codes.get_mut(&code) {
            if entry.owner != peer {
                return Err(Refusal::Taken);
            }
            entry.addrs = addrs;
            entry.expires = now + ttl;
            return Ok(ttl);
        }
        if self.per_peer.get(&peer).copied().unwrap_or(0) >= self.limits.per_peer {
            return Err(Refusal::TooManyCodes);
        }
        if prefix.is_some_and(|p| {
            self.per_prefix.get(&p).copied().unwrap_or(0) >= self.limits.per_prefix
        }) {
            return Err(Refusal::TooManyCodes);
        }
        if self.codes.len() >= self.limits.total {
            self.purge(now);
            if self.codes.len() >= self.limits.total {
                return Err(Refusal::Full);
            }
        }
        *self.per_peer.entry(peer).or_default() += 1;
        if let Some(p) = prefix {
            *self.per_prefix.entry(p).or_default() += 1;
        }
        self.codes.insert(
            code,
            Entry {
                owner: peer,
                prefix,
                addrs,
                expires: now + ttl,
            },
        );
        Ok(ttl)
    }

    fn remove(&mut self, code: &str) {
        let Some(entry) = self.codes.remove(code) else {
            return;
        };
        decrement(&mut self.per_peer, entry.owner);
        if let Some(p) = entry.prefix {
            decrement(&mut self.per_prefix, p);
        }
    }

    /// Drops every expired registration.
    pub fn purge(&mut self, now: Instant) {
        let expired: Vec<String> = self
            .codes
            .iter()
            .filter(|(_, e)| e.expires <= now)
            .map(|(c, _)| c.clone())
            .collect();
        for code in expired {
            self.remove(&code);
        }
    }

    /// Drops `peer`'s codes: it left the relay, so nobody could reach it through them.
    pub fn forget_peer(&mut self, peer: PeerId) {
        let theirs: Vec<String> = self
            .codes
            .iter()
            .filter(|(_, e)| e.owner == peer)
            .map(|(c, _)| c.clone())
            .collect();
        for code in theirs {
            self.remove(&code);
        }
    }
}

fn decrement<K: std::hash::Hash + Eq>(counts: &mut HashMap<K, usize>, key: K) {
    if let Some(n) = counts.get_mut(&key) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            counts.remove(&key);
        }
    }
}

#[cfg(test)]
#[path = "registry_tests.rs"]
mod tests;

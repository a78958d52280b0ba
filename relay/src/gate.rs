//! Connections per network: a behaviour that refuses an inbound connection when the remote's
//! [`Prefix`] (IPv4 /32, IPv6 /64) already has as many pending or established connections as
//! it may. libp2p's `connection_limits` counts per peer and in total, but a peer id costs
//! nothing to make; an address does.

use std::collections::HashMap;
use std::convert::Infallible;
use std::task::{Context, Poll};

use libp2p::core::Endpoint;
use libp2p::core::transport::PortUse;
use libp2p::swarm::{
    ConnectionClosed, ConnectionDenied, ConnectionId, FromSwarm, ListenFailure, NetworkBehaviour,
    THandler, THandlerInEvent, THandlerOutEvent, ToSwarm, dummy,
};
use libp2p::{Multiaddr, PeerId};

use crate::prefix::Prefix;

/// Why a connection was refused.
#[derive(Debug, thiserror::Error)]
#[error("{prefix} already has {count} {kind} connections, the most one network may have")]
pub struct TooManyFromNetwork {
    prefix: Prefix,
    count: usize,
    kind: &'static str,
}

/// The per-network connection gate.
pub struct PrefixGate {
    max_pending: usize,
    max_established: usize,
    pending: HashMap<ConnectionId, Prefix>,
    established: HashMap<ConnectionId, Prefix>,
    counts_pending: HashMap<Prefix, usize>,
    counts_established: HashMap<Prefix, usize>,
}

impl PrefixGate {
    /// At most `max_pending` handshaking and `max_established` open inbound connections per
    /// network.
    pub fn new(max_pending: usize, max_established: usize) -> Self {
        Self {
            max_pending,
            max_established,
            pending: HashMap::new(),
            established: HashMap::new(),
            counts_pending: HashMap::new(),
            counts_established: HashMap::new(),
        }
    }

    /// The network an open inbound connection comes from.
    pub fn prefix_of(&self, connection: ConnectionId) -> Option<Prefix> {
        self.established.get(&connection).copied()
    }

    fn end_pending(&mut self, connection: ConnectionId) -> Option<Prefix> {
        let prefix = self.pending.remove(&connection)?;
        decrement(&mut self.counts_pending, prefix);
        Some(prefix)
    }
}

fn decrement(counts: &mut HashMap<Prefix, usize>, prefix: Prefix) {
    if let Some(n) = counts.get_mut(&prefix) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            counts.remove(&prefix);
        }
    }
}

fn check(
    counts: &HashMap<Prefix, usize>,
    prefix: Prefix,
    max: usize,
    kind: &'static str,
) -> Result<(), ConnectionDenied> {
    let count = counts.get(&prefix).copied().unwrap_or(0);
    if count >= max {
        return Err(ConnectionDenied::new(TooManyFromNetwork {
            prefix,
            count,
            kind,
        }));
    }
    Ok(())
}

impl NetworkBehaviour for PrefixGate {
    type ConnectionHandler = dummy::ConnectionHandler;
    type ToSwarm = Infallible;

    fn handle_pending_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        _local: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        let Some(prefix) = Prefix::of(remote) else {
            return Ok(());
        };
        check(
            &self.counts_pending,
            prefix,
            self.max_pending,
            "handshaking",
        )?;
        // Refused early: an established connection costs a handshake.
        check(
            &self.counts_established,
            prefix,
            self.max_established,
            "open",
        )?;
        self.pending.insert(connection_id, prefix);
        *self.counts_pending.entry(prefix).or_default() += 1;
        Ok(())
    }

    fn handle_established_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        _peer: PeerId,
        _local: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        let prefix = self
            .end_pending(connection_id)
            .or_else(|| Prefix::of(remote));
        if let Some(prefix) = prefix {
            check(
                &self.counts_established,
                prefix,
                self.max_established,
                "open",
            )?;
        }
        Ok(dummy::ConnectionHandler)
    }

    fn handle_established_outbound_connection(
        &mut self,
        _: ConnectionId,
        _: PeerId,
        _: &Multiaddr,
        _: Endpoint,
        _: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(dummy::ConnectionHandler)
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        match event {
            // Counted only once every behaviour accepted the connection.
            FromSwarm::ConnectionEstablished(e) if e.endpoint.is_listener() => {
                if let Some(prefix) = Prefix::of(e.endpoint.get_remote_address()) {
                    self.established.insert(e.connection_id, prefix);
                    *self.counts_established.entry(prefix).or_default() += 1;
                }
            }
            FromSwarm::ConnectionClosed(ConnectionClosed { connection_id, .. }) => {
                if let Some(prefix) = self.established.remove(&connection_id) {
                    decrement(&mut self.counts_established, prefix);
                }
            }
            FromSwarm::ListenFailure(ListenFailure { connection_id, .. }) => {
                self.end_pending(connection_id);
            }
            _ => {}
        }
    }

    fn on_connection_handler_event(
        &mut self,
        _: PeerId,
        _: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        match event {}
    }

    fn poll(&mut self, _: &mut Context<'_>) -> Poll<ToSwarm<Infallible, THandlerInEvent<Self>>> {
        Poll::Pending
    }
}

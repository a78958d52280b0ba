//! The network thread: a tokio runtime that owns the libp2p `Swarm`. It talks to Bevy only
//! through channels ([`NetCommand`] in, [`NetEvent`] out) and never touches the `World`.
//!
//! One job a module, each owning its part of the task's state:
//! - [`connections`]: how each peer is connected (direct, relayed, LAN);
//! - [`relay_link`]: the reservation on one of the user's relays;
//! - [`codes`]: the short code registered on the relay's code registry, and looking up
//!   others' codes;
//! - [`requests`]: the session transport's requests and answers, and joins' hellos;
//! - [`strikes`]: counting malformed messages per peer.

mod codes;
mod connections;
mod relay_link;
mod requests;
mod strikes;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use futures::StreamExt;
use libp2p::multiaddr::Protocol;
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::NetworkBehaviour;
use libp2p::swarm::SwarmEvent;
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::{Swarm, connection_limits, dcutr, identify, mdns, noise, ping, relay, tcp, yamux};
use tokio::sync::mpsc::UnboundedReceiver;
use tracing::{debug, info, warn};

use crate::transport::{FrameCodec, SESSION_PROTOCOL};
use crate::{NetCommand, NetConfig, NetEvent};

pub use strikes::{GARBAGE_LIMIT, GARBAGE_WINDOW};

/// How often the relay link is pinged; a dead link is noticed within about two periods.
pub const HEARTBEAT: Duration = Duration::from_secs(15);

/// Most open connections to one peer: direct, relayed and LAN, over TCP and QUIC, with room
/// for a hole punch racing a relayed link.
pub const MAX_CONNECTIONS_PER_PEER: u32 = 8;
/// Most open connections in all: a large party, its relays and some to spare.
pub const MAX_CONNECTIONS: u32 = 512;
/// Most inbound connections still handshaking.
pub const MAX_PENDING_INBOUND: u32 = 64;

pub use behaviour::{Behaviour, BehaviourEvent};

mod behaviour {
    // The derive writes `BehaviourEvent`, whose variants cannot carry docs.
    #![allow(missing_docs)]
    use super::*;

    /// Every protocol this peer speaks.
    #[derive(NetworkBehaviour)]
    pub struct Behaviour {
        /// Connection limits (first, so a refused connection reaches no other behaviour).
        pub limits: connection_limits::Behaviour,
        /// Reservations and circuits on relays.
        pub relay_client: relay::client::Behaviour,
        /// Hole punching (off with `--no-hole-punch`).
        pub dcutr: Toggle<dcutr::Behaviour>,
        /// Tells peers our addresses and learns our observed one.
        pub identify: identify::Behaviour,
        /// The heartbeat that notices a dead relay link.
        pub ping: ping::Behaviour,
        /// LAN discovery (off with `--no-mdns`).
        pub mdns: Toggle<mdns::tokio::Behaviour>,
        /// Short codes on the relay's code registry, `/whatnext/code/1`.
        pub codes: request_response::Behaviour<whatnext_code_protocol::CodeCodec>,
        /// The session transport, `/whatnext/session/2`.
        pub session: request_response::Behaviour<FrameCodec>,
        /// Plain streams for bulk bytes (the media transfer): one long stream moves a file
        /// without a request, an answer and a Bevy frame per piece.
        pub streams: libp2p_stream::Behaviour,
    }
}

/// The swarm could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// TCP with noise and yamux.
    #[error("cannot set up TCP: {0}")]
    Tcp(String),
    /// The relay client's transport.
    #[error("cannot set up the relay client: {0}")]
    RelayClient(String),
    /// One of the behaviours (mDNS is not one: without it the LAN is simply not searched).
    #[error("cannot set up the network behaviours: {0}")]
    Behaviour(String),
}

/// Builds the swarm for this configuration.
pub fn build_swarm(config: &NetConfig) -> Result<Swarm<Behaviour>, BuildError> {
    let mdns_enabled = config.mdns;
    let hole_punch = config.hole_punch;
    let swarm = libp2p::SwarmBuilder::with_existing_identity(config.keypair.clone())
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .map_err(|e| BuildError::Tcp(e.to_string()))?
        .with_quic()
        .with_relay_client(noise::Config::new, yamux::Config::default)
        .map_err(|e| BuildError::RelayClient(e.to_string()))?
        .with_behaviour(|key, relay_client| {
            let peer_id = key.public().to_peer_id();
            let mdns = if mdns_enabled {
                match mdns::tokio::Behaviour::new(mdns::Config::default(), peer_id) {
                    Ok(m) => Some(m),
                    Err(e) => {
                        warn!(error = %e, "mDNS is unavailable; LAN discovery is off");
                        None
                    }
                }
            } else {
                None
            };
            Behaviour {
                limits: connection_limits::Behaviour::new(
                    connection_limits::ConnectionLimits::default()
                        .with_max_established_per_peer(Some(MAX_CONNECTIONS_PER_PEER))
                        .with_max_established(Some(MAX_CONNECTIONS))
                        .with_max_pending_incoming(Some(MAX_PENDING_INBOUND)),
                ),
                relay_client,
                dcutr: Toggle::from(hole_punch.then(|| dcutr::Behaviour::new(peer_id))),
                identify: identify::Behaviour::new(identify::Config::new(
                    "/whatnext/id/1".into(),
                    key.public(),
                )),
                ping: ping::Behaviour::new(ping::Config::new().with_interval(HEARTBEAT)),
                mdns: Toggle::from(mdns),
                codes: codes::behaviour(),
                session: request_response::Behaviour::with_codec(
                    FrameCodec,
                    [(SESSION_PROTOCOL, ProtocolSupport::Full)],
                    request_response::Config::default()
                        .with_request_timeout(Duration::from_secs(30)),
                ),
                streams: libp2p_stream::Behaviour::new(),
            }
        })
        .map_err(|e| BuildError::Behaviour(e.to_string()))?
        .with_swarm_config(|c| {
            c.with_idle_connection_timeout(Duration::from_secs(120))
                // A new stream's request leaves with its protocol's name instead of a round
                // trip after it: through a relay that trip was a third of an intent's way
                // (`docs/decisions/lazy-stream-negotiation.md`).
                .with_substream_upgrade_protocol_override(libp2p::core::upgrade::Version::V1Lazy)
        })
        .build();
    Ok(swarm)
}

/// The events channel back to Bevy, and how to wake the app when something arrives.
struct Outbound {
    events: crossbeam_channel::Sender<NetEvent>,
    wake: Box<dyn Fn() + Send>,
}

impl Outbound {
    fn emit(&self, event: NetEvent) {
        if self.events.send(event).is_ok() {
            (self.wake)();
        }
    }
}

/// The network thread's state: the swarm, and one part per job.
struct Task {
    swarm: Swarm<Behaviour>,
    out: Outbound,
    relays: relay_link::RelayLink,
    connections: connections::Connections,
    codes: codes::Codes,
    requests: requests::Requests,
    strikes: strikes::Strikes,
}

impl Task {
    fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                endpoint,
                ..
            } => {
                let relay = self.relay_connected(&peer_id);
                if !relay {
                    self.peer_connected(peer_id, connection_id, &endpoint);
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                connection_id,
                num_established,
                cause,
                ..
            } => {
                let cause = cause.map(|c| c.to_string());
                let relay = self.relay_closed(&peer_id, num_established, cause);
                if !relay {
                    self.peer_closed(peer_id, connection_id);
                }
            }
            SwarmEvent::OutgoingConnectionError {
                peer_id: Some(peer_id),
                error,
                ..
            } => self.relay_unreachable(&peer_id, &error.to_string()),
            SwarmEvent::ListenerClosed {
                listener_id,
                reason,
                ..
            } => self.circuit_closed(listener_id, reason),
            SwarmEvent::NewListenAddr { address, .. } => {
                debug!(%address, "listening");
                if address.iter().any(|p| matches!(p, Protocol::P2pCircuit)) {
                    // A circuit address is how others reach us; the code registry hands it out.
                    self.swarm.add_external_address(address.clone());
                }
                self.out.emit(NetEvent::Listening(address.to_string()));
            }
            SwarmEvent::Behaviour(BehaviourEvent::RelayClient(
                relay::client::Event::ReservationReqAccepted {
                    relay_peer_id,
                    renewal,
                    ..
                },
            )) => {
                let ours = self.reserved(&relay_peer_id, renewal);
                if ours && !renewal {
                    self.register_code();
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Codes(event)) => self.on_code_event(event),
            SwarmEvent::Behaviour(BehaviourEvent::Session(event)) => self.on_session(event),
            // The heartbeat: a relay that stops answering is a dead link, even if TCP has
            // not noticed yet.
            SwarmEvent::Behaviour(BehaviourEvent::Ping(ping::Event {
                peer,
                result: Err(error),
                ..
            })) if self.relays.is_relay(&peer) => {
                warn!(%peer, %error, "the relay stopped answering pings; reconnecting");
                let _ = self.swarm.disconnect_peer_id(peer);
            }
            // A peer that stops answering (a frozen device, a network that drops packets
            // without resetting the connection) is gone: libp2p keeps such a connection open
            // forever, so the link would look alive and nobody would take over from a host.
            // A peer that does not speak ping (a tool, a test) is not a dead one.
            SwarmEvent::Behaviour(BehaviourEvent::Ping(ping::Event {
                peer,
                connection,
                result: Err(error),
            })) if !matches!(error, ping::Failure::Unsupported) => {
                info!(%peer, %error, "a peer stopped answering pings; closing the link");
                self.swarm.close_connection(connection);
            }
            SwarmEvent::Behaviour(BehaviourEvent::Mdns(mdns::Event::Discovered(found))) => {
                for (peer, addr) in found {
                    self.connections.lan_peers.insert(peer);
                    self.out.emit(NetEvent::LanPeer {
                        peer,
                        addr: addr.to_string(),
                    });
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Mdns(mdns::Event::Expired(gone))) => {
                for (peer, _) in gone {
                    self.connections.lan_peers.remove(&peer);
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Dcutr(dcutr::Event {
                remote_peer_id,
                result,
            })) => match result {
                Ok(_) => info!(peer = %remote_peer_id, "hole punch succeeded: now direct"),
                Err(e) => {
                    info!(peer = %remote_peer_id, error = %e, "hole punch failed; staying relayed")
                }
            },
            _ => {}
        }
    }

    /// Carries out one command; `false` once the thread should stop.
    fn on_command(&mut self, command: NetCommand) -> bool {
        match command {
            NetCommand::SetRelays(addrs) => {
                self.relays.manager.set_relays(addrs);
                self.publish_statuses();
            }
            NetCommand::JoinViaUrl {
                token,
                host,
                relay,
                hello,
            } => {
                let addresses = relay
                    .map(|r| r.with(Protocol::P2pCircuit))
                    .into_iter()
                    .collect();
                self.send_hello(token, host, addresses, hello);
            }
            NetCommand::JoinViaCode {
                token,
                code,
                relay,
                hello,
            } => self.resolve_code(token, &code, relay, hello),
            NetCommand::Respond { reply, response } => self.respond(reply, response),
            NetCommand::SetCode(code) => self.set_code(code),
            NetCommand::Send {
                token,
                peer,
                request,
            }
            | NetCommand::Publish {
                token,
                peer,
                request,
            } => self.send(token, peer, request),
            NetCommand::Strike { peer, what } => self.strike(peer, what),
            NetCommand::Shutdown => return false,
        }
        true
    }
}

/// Runs the swarm until `Shutdown` or until Bevy drops its end of the channel.
pub async fn run(
    config: NetConfig,
    mut commands: UnboundedReceiver<NetCommand>,
    events: crossbeam_channel::Sender<NetEvent>,
    wake: Box<dyn Fn() + Send>,
    streams: crate::StreamControl,
) {
    let out = Outbound { events, wake };
    let mut swarm = match build_swarm(&config) {
        Ok(swarm) => swarm,
        Err(e) => {
            out.emit(NetEvent::Error(e.to_string()));
            return;
        }
    };
    streams.set(swarm.behaviour().streams.new_control());
    // TCP listeners on all interfaces, until they report an address other than loopback
    // (only such an address is used for dials to other machines).
    let mut tcp_listeners = HashSet::new();
    for addr in &config.listen {
        let wildcard_tcp = addr.iter().any(|p| matches!(p, Protocol::Tcp(_)))
            && addr.iter().any(|p| match p {
                Protocol::Ip4(ip) => ip.is_unspecified(),
                Protocol::Ip6(ip) => ip.is_unspecified(),
                _ => false,
            });
        match swarm.listen_on(addr.clone()) {
            Ok(id) if wildcard_tcp => {
                tcp_listeners.insert(id);
            }
            Ok(_) => {}
            Err(e) => out.emit(NetEvent::Error(format!("cannot listen on {addr}: {e}"))),
        }
    }
    let mut task = Task {
        swarm,
        out,
        relays: Default::default(),
        connections: Default::default(),
        codes: Default::default(),
        requests: Default::default(),
        strikes: Default::default(),
    };
    // A TCP dial leaves from the listening port (port reuse) only once the listener has
    // reported its address. A relay dialled before that sees a random port, and that
    // observed address is useless for hole punching. So relays wait for the listeners.
    let ready_by = Instant::now() + Duration::from_secs(2);
    while !tcp_listeners.is_empty() {
        match tokio::time::timeout_at(ready_by.into(), task.swarm.select_next_some()).await {
            Ok(event) => {
                if let SwarmEvent::NewListenAddr {
                    listener_id,
                    address,
                } = &event
                    && !address.iter().any(|p| match p {
                        Protocol::Ip4(ip) => ip.is_loopback(),
                        Protocol::Ip6(ip) => ip.is_loopback(),
                        _ => false,
                    })
                {
                    tcp_listeners.remove(listener_id);
                }
                task.on_swarm_event(event);
            }
            Err(_) => {
                debug!("no TCP listen address beyond loopback within 2 s");
                break;
            }
        }
    }
    loop {
        let mut next = task.drive_relays();
        if let Some(renew) = task.renew_code(Instant::now()) {
            next = next.min(renew);
        }
        tokio::select! {
            command = commands.recv() => match command {
                Some(command) => if !task.on_command(command) { break },
                None => break,
            },
            event = task.swarm.select_next_some() => task.on_swarm_event(event),
            _ = tokio::time::sleep_until(next.into()) => {}
        }
    }
    info!("network stopped");
}

//! The network thread: a tokio runtime that owns the libp2p `Swarm`. It talks to Bevy only
//! through channels (`NetCommand` in, `NetEvent` out) and never touches the `World`.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use futures::StreamExt;
use libp2p::core::ConnectedPoint;
use libp2p::core::transport::ListenerId;
use libp2p::multiaddr::Protocol;
use libp2p::request_response::{self, OutboundRequestId, ProtocolSupport, ResponseChannel};
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::swarm::{ConnectionId, NetworkBehaviour, SwarmEvent};
use libp2p::{
    Multiaddr, PeerId, Swarm, dcutr, identify, mdns, noise, ping, relay, rendezvous, tcp, yamux,
};
use tokio::sync::mpsc::UnboundedReceiver;
use tracing::{debug, info, warn};
use whatnext_core::intent::ErrorCode;

use crate::protocol::{Hello, PostcardCodec, SESSION_PROTOCOL, SessionRequest, SessionResponse};
use crate::relays::{RelayManager, Status, Step};
use crate::{ConnectionKind, NetCommand, NetConfig, NetEvent};

/// A peer that sends more than `GARBAGE_LIMIT` unreadable messages within `GARBAGE_WINDOW`
/// is disconnected.
pub const GARBAGE_LIMIT: usize = 10;
pub const GARBAGE_WINDOW: Duration = Duration::from_secs(60);

/// How long a short code stays registered before renewal must refresh it.
pub const CODE_TTL_SECS: u64 = 600;

/// How often the relay link is pinged; a dead link is noticed within about two periods.
pub const HEARTBEAT: Duration = Duration::from_secs(15);

#[derive(NetworkBehaviour)]
pub struct Behaviour {
    pub relay_client: relay::client::Behaviour,
    pub dcutr: Toggle<dcutr::Behaviour>,
    pub identify: identify::Behaviour,
    pub ping: ping::Behaviour,
    pub mdns: Toggle<mdns::tokio::Behaviour>,
    pub rendezvous: rendezvous::client::Behaviour,
    pub session: request_response::Behaviour<PostcardCodec<SessionRequest, SessionResponse>>,
}

pub fn build_swarm(config: &NetConfig) -> Result<Swarm<Behaviour>, String> {
    let mdns_enabled = config.mdns;
    let hole_punch = config.hole_punch;
    let swarm = libp2p::SwarmBuilder::with_existing_identity(config.keypair.clone())
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .map_err(|e| format!("cannot set up TCP: {e}"))?
        .with_quic()
        .with_relay_client(noise::Config::new, yamux::Config::default)
        .map_err(|e| format!("cannot set up the relay client: {e}"))?
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
                relay_client,
                dcutr: Toggle::from(hole_punch.then(|| dcutr::Behaviour::new(peer_id))),
                identify: identify::Behaviour::new(identify::Config::new(
                    "/whatnext/id/1".into(),
                    key.public(),
                )),
                ping: ping::Behaviour::new(ping::Config::new().with_interval(HEARTBEAT)),
                mdns: Toggle::from(mdns),
                rendezvous: rendezvous::client::Behaviour::new(key.clone()),
                session: request_response::Behaviour::with_codec(
                    PostcardCodec::default(),
                    [(SESSION_PROTOCOL, ProtocolSupport::Full)],
                    request_response::Config::default()
                        .with_request_timeout(Duration::from_secs(30)),
                ),
            }
        })
        .map_err(|e| format!("cannot set up the network behaviours: {e}"))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(120)))
        .build();
    Ok(swarm)
}

/// The relay a circuit address or dial goes through: its multiaddr text and peer id.
fn relay_peer(addr: &str) -> Option<(Multiaddr, PeerId)> {
    let multiaddr: Multiaddr = addr.parse().ok()?;
    let peer = multiaddr.iter().find_map(|p| match p {
        Protocol::P2p(peer) => Some(peer),
        _ => None,
    })?;
    Some((multiaddr, peer))
}

fn kind_of(
    endpoint: &ConnectedPoint,
    lan_peers: &HashSet<PeerId>,
    peer: &PeerId,
) -> ConnectionKind {
    // An inbound circuit shows the relay in its local address, an outbound one in the
    // remote address.
    let through_relay = |addr: &Multiaddr| addr.iter().any(|p| matches!(p, Protocol::P2pCircuit));
    let relayed = match endpoint {
        ConnectedPoint::Dialer { address, .. } => through_relay(address),
        ConnectedPoint::Listener {
            local_addr,
            send_back_addr,
        } => through_relay(local_addr) || through_relay(send_back_addr),
    };
    if relayed {
        ConnectionKind::Relayed
    } else if lan_peers.contains(peer) {
        ConnectionKind::Lan
    } else {
        ConnectionKind::Direct
    }
}

struct Task {
    swarm: Swarm<Behaviour>,
    events: crossbeam_channel::Sender<NetEvent>,
    wake: Box<dyn Fn() + Send>,
    manager: RelayManager,
    /// The circuit listener we opened on each relay, to know which relay a closed one was.
    circuit_listeners: HashMap<ListenerId, String>,
    /// Relays by peer id, for connection events.
    relay_by_peer: HashMap<PeerId, String>,
    lan_peers: HashSet<PeerId>,
    last_statuses: Vec<(String, Status)>,
    /// Open connections to each (non-relay) peer, and how each goes.
    links: HashMap<PeerId, HashMap<ConnectionId, ConnectionKind>>,
    /// Our Hello requests in flight, by request: the join token.
    joins: HashMap<OutboundRequestId, u64>,
    /// Short codes being resolved: namespace → (join token, hello).
    resolving: HashMap<String, (u64, Hello)>,
    /// Recent unreadable messages per peer.
    garbage: HashMap<PeerId, Vec<Instant>>,
    /// Bevy's own requests in flight: request → token.
    sends: HashMap<OutboundRequestId, u64>,
    /// Inbound requests waiting for Bevy's answer.
    replies: HashMap<u64, ResponseChannel<SessionResponse>>,
    next_reply: u64,
    /// The short code to keep registered, and when it was last registered.
    code: Option<String>,
    code_registered_at: Option<Instant>,
}

impl Task {
    fn emit(&self, event: NetEvent) {
        if self.events.send(event).is_ok() {
            (self.wake)();
        }
    }

    fn best_link(&self, peer: &PeerId) -> Option<ConnectionKind> {
        let links = self.links.get(peer)?;
        [
            ConnectionKind::Lan,
            ConnectionKind::Direct,
            ConnectionKind::Relayed,
        ]
        .into_iter()
        .find(|k| links.values().any(|v| v == k))
    }

    fn publish_link(&self, peer: &PeerId, before: Option<ConnectionKind>) {
        let now = self.best_link(peer);
        if now != before {
            self.emit(NetEvent::PeerLink {
                peer: peer.to_base58(),
                kind: now,
            });
        }
    }

    fn relay_peer_id(&self, addr: &str) -> Option<PeerId> {
        relay_peer(addr).map(|(_, p)| p)
    }

    /// Registers (or renews) the short code on the reserved relay.
    fn register_code(&mut self) {
        let (Some(code), Some(relay)) = (
            self.code.clone(),
            self.manager.reserved().map(str::to_owned),
        ) else {
            return;
        };
        let Some(relay_peer) = self.relay_peer_id(&relay) else {
            return;
        };
        let Ok(namespace) = rendezvous::Namespace::new(code_namespace(&code)) else {
            return;
        };
        match self.swarm.behaviour_mut().rendezvous.register(
            namespace,
            relay_peer,
            Some(CODE_TTL_SECS),
        ) {
            Ok(()) => self.code_registered_at = Some(Instant::now()),
            Err(e) => self.emit(NetEvent::CodeProblem(format!(
                "cannot register the short code: {e}"
            ))),
        }
    }

    fn join_failed(&self, token: u64, code: ErrorCode, message: String) {
        self.emit(NetEvent::JoinFailed {
            token,
            code,
            message,
        });
    }

    fn send_hello(&mut self, token: u64, host: PeerId, addresses: Vec<Multiaddr>, hello: Hello) {
        let id = self
            .swarm
            .behaviour_mut()
            .session
            .send_request_with_addresses(&host, SessionRequest::Hello(hello), addresses);
        self.joins.insert(id, token);
    }

    fn publish_statuses(&mut self) {
        let statuses = self.manager.statuses();
        if statuses != self.last_statuses {
            self.last_statuses = statuses.clone();
            self.emit(NetEvent::RelayStatus(statuses));
        }
    }

    fn relay_failed(&mut self, addr: &str, reason: String) {
        info!(relay = addr, %reason, "relay link failed");
        self.manager
            .failed(addr, reason, Instant::now(), &mut rand::thread_rng());
        self.publish_statuses();
    }

    /// Runs the relay manager's next step; returns when to look again.
    fn drive_relays(&mut self) -> Instant {
        let now = Instant::now();
        loop {
            match self.manager.next_step(now) {
                Step::Idle => return now + Duration::from_secs(3600),
                Step::WaitUntil(at) => {
                    self.publish_statuses();
                    return at;
                }
                Step::Dial(addr) => {
                    self.publish_statuses();
                    let Some((multiaddr, peer)) = relay_peer(&addr) else {
                        self.relay_failed(&addr, "the address has no /p2p/<peer id>".into());
                        continue;
                    };
                    self.relay_by_peer.insert(peer, addr.clone());
                    if self.swarm.is_connected(&peer) {
                        self.listen_via(&addr, multiaddr);
                    } else if let Err(e) = self.swarm.dial(multiaddr) {
                        self.relay_failed(&addr, format!("cannot dial: {e}"));
                        continue;
                    }
                    return now + Duration::from_secs(3600);
                }
            }
        }
    }

    /// Asks the relay for a reservation by listening on its circuit address.
    fn listen_via(&mut self, addr: &str, relay: Multiaddr) {
        if self.circuit_listeners.values().any(|a| a == addr) {
            return;
        }
        match self.swarm.listen_on(relay.with(Protocol::P2pCircuit)) {
            Ok(id) => {
                self.circuit_listeners.insert(id, addr.to_owned());
            }
            Err(e) => self.relay_failed(addr, format!("cannot listen through the relay: {e}")),
        }
    }

    fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                endpoint,
                num_established,
                ..
            } => {
                if let Some(addr) = self.relay_by_peer.get(&peer_id).cloned() {
                    if self.manager.active_addr() == Some(addr.as_str())
                        && let Some((multiaddr, _)) = relay_peer(&addr)
                    {
                        self.listen_via(&addr, multiaddr);
                    }
                    return;
                }
                let kind = kind_of(&endpoint, &self.lan_peers, &peer_id);
                debug!(%peer_id, ?kind, num_established = num_established.get(), "connected");
                let before = self.best_link(&peer_id);
                let links = self.links.entry(peer_id).or_default();
                links.insert(connection_id, kind);
                if kind != ConnectionKind::Relayed {
                    // Requests are spread over every connection to a peer; once a direct one
                    // is up (hole punched, or on the LAN), the relayed ones only cost the
                    // relay's bandwidth and our latency. The peers dial the relay again if
                    // the direct path dies.
                    let relayed: Vec<ConnectionId> = links
                        .iter()
                        .filter(|(_, k)| **k == ConnectionKind::Relayed)
                        .map(|(id, _)| *id)
                        .collect();
                    for id in relayed {
                        info!(peer = %peer_id, ?kind, "a direct connection is up; closing the relayed one");
                        self.swarm.close_connection(id);
                    }
                }
                self.publish_link(&peer_id, before);
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                connection_id,
                num_established,
                cause,
                ..
            } => {
                if let Some(addr) = self.relay_by_peer.get(&peer_id).cloned() {
                    if num_established == 0 {
                        let reason = cause
                            .map_or("the relay closed the connection".to_owned(), |c| {
                                c.to_string()
                            });
                        self.relay_failed(&addr, reason);
                    }
                    return;
                }
                let before = self.best_link(&peer_id);
                if let Some(links) = self.links.get_mut(&peer_id) {
                    links.remove(&connection_id);
                    if links.is_empty() {
                        self.links.remove(&peer_id);
                    }
                }
                self.publish_link(&peer_id, before);
            }
            SwarmEvent::OutgoingConnectionError {
                peer_id: Some(peer_id),
                error,
                ..
            } => {
                if let Some(addr) = self.relay_by_peer.get(&peer_id).cloned() {
                    self.relay_failed(&addr, format!("cannot connect: {error}"));
                }
            }
            SwarmEvent::ListenerClosed {
                listener_id,
                reason,
                ..
            } => {
                if let Some(addr) = self.circuit_listeners.remove(&listener_id) {
                    let reason = match reason {
                        Ok(()) => "the reservation ended".to_owned(),
                        Err(e) => format!("the reservation failed: {e}"),
                    };
                    self.relay_failed(&addr, reason);
                }
            }
            SwarmEvent::NewListenAddr { address, .. } => {
                debug!(%address, "listening");
                if address.iter().any(|p| matches!(p, Protocol::P2pCircuit)) {
                    // A circuit address is how others reach us; rendezvous publishes it.
                    self.swarm.add_external_address(address.clone());
                }
                self.emit(NetEvent::Listening(address.to_string()));
            }
            SwarmEvent::Behaviour(BehaviourEvent::RelayClient(
                relay::client::Event::ReservationReqAccepted {
                    relay_peer_id,
                    renewal,
                    ..
                },
            )) => {
                if let Some(addr) = self.relay_by_peer.get(&relay_peer_id).cloned() {
                    if !renewal {
                        info!(relay = %addr, "reserved a slot on the relay");
                    }
                    self.manager.reserved_on(&addr);
                    self.publish_statuses();
                    if !renewal {
                        self.register_code();
                    }
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Rendezvous(event)) => self.on_rendezvous(event),
            SwarmEvent::Behaviour(BehaviourEvent::Session(event)) => self.on_session(event),
            // The heartbeat: a relay that stops answering is a dead link, even if TCP has
            // not noticed yet.
            SwarmEvent::Behaviour(BehaviourEvent::Ping(ping::Event {
                peer,
                result: Err(error),
                ..
            })) if self.relay_by_peer.contains_key(&peer) => {
                warn!(%peer, %error, "the relay stopped answering pings; reconnecting");
                let _ = self.swarm.disconnect_peer_id(peer);
            }
            SwarmEvent::Behaviour(BehaviourEvent::Mdns(mdns::Event::Discovered(found))) => {
                for (peer, addr) in found {
                    self.lan_peers.insert(peer);
                    self.emit(NetEvent::LanPeer {
                        peer: peer.to_base58(),
                        addr: addr.to_string(),
                    });
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Mdns(mdns::Event::Expired(gone))) => {
                for (peer, _) in gone {
                    self.lan_peers.remove(&peer);
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

    fn on_command(&mut self, command: NetCommand) -> bool {
        match command {
            NetCommand::SetRelays(addrs) => {
                self.manager.set_relays(addrs);
                self.publish_statuses();
            }
            NetCommand::JoinViaUrl {
                token,
                host,
                relay,
                hello,
            } => {
                let Ok(host) = host.parse::<PeerId>() else {
                    self.join_failed(
                        token,
                        ErrorCode::InvalidInvite,
                        format!("`{host}` is not a peer ID"),
                    );
                    return true;
                };
                let mut addresses = Vec::new();
                if let Some(circuit) =
                    relay.and_then(|r| format!("{r}/p2p-circuit").parse::<Multiaddr>().ok())
                {
                    addresses.push(circuit);
                }
                self.send_hello(token, host, addresses, hello);
            }
            NetCommand::JoinViaCode { token, code, hello } => {
                let Some(relay) = self.manager.reserved().map(str::to_owned) else {
                    self.join_failed(
                        token,
                        ErrorCode::Unreachable,
                        "a short code is resolved through your relay, and none is connected: add a relay and wait until it shows reserved".into(),
                    );
                    return true;
                };
                let namespace = code_namespace(&code);
                let (Some(relay_peer), Ok(ns)) = (
                    self.relay_peer_id(&relay),
                    rendezvous::Namespace::new(namespace.clone()),
                ) else {
                    self.join_failed(
                        token,
                        ErrorCode::InvalidInvite,
                        format!("`{code}` is not a short code"),
                    );
                    return true;
                };
                self.resolving.insert(namespace, (token, hello));
                self.swarm
                    .behaviour_mut()
                    .rendezvous
                    .discover(Some(ns), None, Some(4), relay_peer);
            }
            NetCommand::Respond { reply, response } => {
                if let Some(channel) = self.replies.remove(&reply)
                    && self
                        .swarm
                        .behaviour_mut()
                        .session
                        .send_response(channel, response)
                        .is_err()
                {
                    debug!("a guest left before its answer was sent");
                }
            }
            NetCommand::SetCode(code) => {
                if code != self.code {
                    if let (Some(old), Some(relay)) =
                        (self.code.take(), self.manager.reserved().map(str::to_owned))
                        && let (Some(relay_peer), Ok(ns)) = (
                            self.relay_peer_id(&relay),
                            rendezvous::Namespace::new(code_namespace(&old)),
                        )
                    {
                        self.swarm
                            .behaviour_mut()
                            .rendezvous
                            .unregister(ns, relay_peer);
                    }
                    self.code = code;
                    self.code_registered_at = None;
                    self.register_code();
                }
            }
            NetCommand::Send {
                token,
                peer,
                request,
            } => match peer.parse::<PeerId>() {
                Ok(to) => {
                    let id = self
                        .swarm
                        .behaviour_mut()
                        .session
                        .send_request(&to, request);
                    self.sends.insert(id, token);
                }
                Err(_) => self.emit(NetEvent::SendFailed {
                    token,
                    peer,
                    error: "not a peer ID".into(),
                }),
            },
            NetCommand::Shutdown => return false,
        }
        true
    }

    fn on_rendezvous(&mut self, event: rendezvous::client::Event) {
        use rendezvous::client::Event as E;
        match event {
            E::Registered { namespace, ttl, .. } => {
                debug!(%namespace, ttl, "short code registered");
                if let Some(code) = self
                    .code
                    .clone()
                    .filter(|c| code_namespace(c) == namespace.to_string())
                {
                    self.emit(NetEvent::CodeRegistered(code));
                }
            }
            E::RegisterFailed {
                namespace, error, ..
            } => {
                self.emit(NetEvent::CodeProblem(format!(
                    "the relay refused the short code {namespace}: {error:?}"
                )));
            }
            E::Discovered {
                registrations,
                cookie,
                ..
            } => {
                let namespace = cookie.namespace().map(|n| n.to_string());
                let Some((token, hello)) = namespace.and_then(|n| self.resolving.remove(&n)) else {
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
                if let Some((token, _)) = key.and_then(|k| self.resolving.remove(&k)) {
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

    fn on_session(&mut self, event: request_response::Event<SessionRequest, SessionResponse>) {
        use request_response::{Event as E, Message};
        match event {
            E::Message {
                message:
                    Message::Request {
                        request: SessionRequest::Ping(n),
                        channel,
                        ..
                    },
                ..
            } => {
                let pong = SessionResponse::Pong(n);
                let _ = self
                    .swarm
                    .behaviour_mut()
                    .session
                    .send_response(channel, pong);
            }
            E::Message {
                message:
                    Message::Request {
                        request: SessionRequest::Time,
                        channel,
                        ..
                    },
                ..
            } => {
                let now_ms = whatnext_core::session::now_ms();
                let time = SessionResponse::Time { now_ms };
                let _ = self
                    .swarm
                    .behaviour_mut()
                    .session
                    .send_response(channel, time);
            }
            E::Message {
                peer,
                message:
                    Message::Request {
                        request: SessionRequest::Malformed(reason),
                        channel,
                        ..
                    },
                ..
            } => {
                warn!(%peer, %reason, "a malformed session request was refused");
                let refusal = SessionResponse::Refused {
                    reason: format!("malformed message: {reason}"),
                };
                let _ = self
                    .swarm
                    .behaviour_mut()
                    .session
                    .send_response(channel, refusal);
                // One bad frame is refused and the connection goes on; a peer that keeps
                // sending garbage is cut off.
                let now = Instant::now();
                let strikes = self.garbage.entry(peer).or_default();
                strikes.retain(|at| now.duration_since(*at) < GARBAGE_WINDOW);
                strikes.push(now);
                if strikes.len() > GARBAGE_LIMIT {
                    warn!(%peer, "too many malformed messages; disconnecting");
                    self.garbage.remove(&peer);
                    let _ = self.swarm.disconnect_peer_id(peer);
                }
            }
            E::Message {
                peer,
                message:
                    Message::Request {
                        request, channel, ..
                    },
                ..
            } => {
                self.next_reply += 1;
                self.replies.insert(self.next_reply, channel);
                self.emit(NetEvent::Request {
                    peer: peer.to_base58(),
                    reply: self.next_reply,
                    request,
                });
            }
            E::Message {
                peer,
                message:
                    Message::Response {
                        request_id,
                        response,
                    },
                ..
            } => {
                if let Some(token) = self.joins.remove(&request_id) {
                    self.emit(NetEvent::JoinAnswer {
                        token,
                        host: peer.to_base58(),
                        response,
                    });
                } else if let Some(token) = self.sends.remove(&request_id) {
                    let peer = peer.to_base58();
                    self.emit(NetEvent::Response {
                        token,
                        peer,
                        response,
                    });
                }
            }
            E::OutboundFailure {
                request_id,
                error,
                peer,
                ..
            } => {
                if let Some(token) = self.joins.remove(&request_id) {
                    self.join_failed(
                        token,
                        ErrorCode::Unreachable,
                        format!("could not reach the host {peer}: {error}"),
                    );
                } else if let Some(token) = self.sends.remove(&request_id) {
                    let (peer, error) = (peer.to_base58(), error.to_string());
                    self.emit(NetEvent::SendFailed { token, peer, error });
                }
            }
            E::InboundFailure { peer, error, .. } => {
                // A stream cut short by a closing connection, or a timeout. (Frames that do
                // not decode arrive as `SessionRequest::Malformed`.)
                debug!(%peer, %error, "a session request went unanswered");
            }
            E::ResponseSent { .. } => {}
        }
    }

    /// Renews the short code before its registration lapses.
    fn renew_code(&mut self, now: Instant) -> Option<Instant> {
        let at = self.code_registered_at? + Duration::from_secs(CODE_TTL_SECS / 2);
        if at <= now {
            self.register_code();
            return Some(now + Duration::from_secs(CODE_TTL_SECS / 2));
        }
        Some(at)
    }
}

/// The rendezvous namespace a short code is registered under.
pub fn code_namespace(code: &str) -> String {
    format!("whatnext/code/{code}")
}

/// Runs the swarm until `Shutdown` or until Bevy drops its end of the channel.
pub async fn run(
    config: NetConfig,
    mut commands: UnboundedReceiver<NetCommand>,
    events: crossbeam_channel::Sender<NetEvent>,
    wake: Box<dyn Fn() + Send>,
) {
    let mut swarm = match build_swarm(&config) {
        Ok(swarm) => swarm,
        Err(e) => {
            let _ = events.send(NetEvent::Error(e));
            wake();
            return;
        }
    };
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
            Err(e) => {
                let _ = events.send(NetEvent::Error(format!("cannot listen on {addr}: {e}")));
            }
        }
    }
    let mut task = Task {
        swarm,
        events,
        wake,
        manager: RelayManager::default(),
        circuit_listeners: HashMap::new(),
        relay_by_peer: HashMap::new(),
        lan_peers: HashSet::new(),
        last_statuses: Vec::new(),
        links: HashMap::new(),
        joins: HashMap::new(),
        resolving: HashMap::new(),
        replies: HashMap::new(),
        sends: HashMap::new(),
        garbage: HashMap::new(),
        next_reply: 0,
        code: None,
        code_registered_at: None,
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

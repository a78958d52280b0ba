//! A bare libp2p peer for the relay's tests: speaks `/whatnext/code/1` (and, to show the
//! old hole is closed, a rendezvous DISCOVER) with a fresh peer id, from 127.0.0.1.

use std::time::Duration;

use futures::StreamExt;
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{Multiaddr, PeerId, Swarm, noise, relay, rendezvous, tcp, yamux};
use whatnext_code_protocol::{CODE_PROTOCOL, CodeCodec, CodeRequest, CodeResponse};

#[derive(NetworkBehaviour)]
pub struct ClientBehaviour {
    relay_client: relay::client::Behaviour,
    codes: request_response::Behaviour<CodeCodec>,
    rendezvous: rendezvous::client::Behaviour,
}

/// One peer with a fresh identity, connected to one relay.
pub struct CodePeer {
    swarm: Swarm<ClientBehaviour>,
    relay: PeerId,
}

const WAIT: Duration = Duration::from_secs(20);

impl CodePeer {
    /// A fresh identity dials `relay_addr` (with its /p2p/ id); an error if the relay
    /// refuses or drops the connection.
    pub async fn connect(relay_addr: &str) -> Result<CodePeer, String> {
        let addr: Multiaddr = relay_addr.parse().map_err(|e| format!("{e}"))?;
        let relay = addr
            .iter()
            .find_map(|p| match p {
                libp2p::multiaddr::Protocol::P2p(id) => Some(id),
                _ => None,
            })
            .ok_or("no /p2p/ in the relay address")?;
        let mut swarm = libp2p::SwarmBuilder::with_new_identity()
            .with_tokio()
            .with_tcp(
                tcp::Config::default(),
                noise::Config::new,
                yamux::Config::default,
            )
            .map_err(|e| e.to_string())?
            .with_relay_client(noise::Config::new, yamux::Config::default)
            .map_err(|e| e.to_string())?
            .with_behaviour(|key, relay_client| ClientBehaviour {
                relay_client,
                codes: request_response::Behaviour::with_codec(
                    CodeCodec,
                    [(CODE_PROTOCOL, ProtocolSupport::Outbound)],
                    request_response::Config::default(),
                ),
                rendezvous: rendezvous::client::Behaviour::new(key.clone()),
            })
            .map_err(|e| e.to_string())?
            .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(120)))
            .build();
        swarm.dial(addr).map_err(|e| e.to_string())?;
        let mut peer = CodePeer { swarm, relay };
        peer.until(|event| match event {
            SwarmEvent::ConnectionEstablished { .. } => Some(Ok(())),
            SwarmEvent::OutgoingConnectionError { error, .. } => Some(Err(error.to_string())),
            _ => None,
        })
        .await??;
        // A connection a gate refuses is closed right after the handshake: give it a moment.
        let closed = tokio::time::timeout(Duration::from_millis(300), async {
            loop {
                if let SwarmEvent::ConnectionClosed { cause, .. } =
                    peer.swarm.select_next_some().await
                {
                    return format!("{cause:?}");
                }
            }
        })
        .await;
        match closed {
            Ok(cause) => Err(format!("the relay closed the connection: {cause}")),
            Err(_) => Ok(peer),
        }
    }

    async fn until<T>(
        &mut self,
        mut pick: impl FnMut(SwarmEvent<ClientBehaviourEvent>) -> Option<T>,
    ) -> Result<T, String> {
        tokio::time::timeout(WAIT, async {
            loop {
                if let Some(found) = pick(self.swarm.select_next_some().await) {
                    return found;
                }
            }
        })
        .await
        .map_err(|_| "no answer in time".to_owned())
    }

    /// Sends one code request and waits for its answer.
    pub async fn ask(&mut self, request: CodeRequest) -> Result<CodeResponse, String> {
        let relay = self.relay;
        let id = self
            .swarm
            .behaviour_mut()
            .codes
            .send_request(&relay, request);
        self.until(|event| match event {
            SwarmEvent::Behaviour(ClientBehaviourEvent::Codes(
                request_response::Event::Message {
                    message:
                        request_response::Message::Response {
                            request_id,
                            response,
                        },
                    ..
                },
            )) if request_id == id => Some(Ok(response)),
            SwarmEvent::Behaviour(ClientBehaviourEvent::Codes(
                request_response::Event::OutboundFailure {
                    request_id, error, ..
                },
            )) if request_id == id => Some(Err(error.to_string())),
            _ => None,
        })
        .await?
    }

    /// Asks the relay at `relay_addr` for a reservation; whether it was accepted.
    pub async fn reserve(&mut self, relay_addr: &str) -> Result<(), String> {
        let addr: Multiaddr = relay_addr.parse().map_err(|e| format!("{e}"))?;
        let listener = self
            .swarm
            .listen_on(addr.with(libp2p::multiaddr::Protocol::P2pCircuit))
            .map_err(|e| e.to_string())?;
        self.until(|event| match event {
            SwarmEvent::Behaviour(ClientBehaviourEvent::RelayClient(
                relay::client::Event::ReservationReqAccepted { .. },
            )) => Some(Ok(())),
            SwarmEvent::ListenerClosed {
                listener_id,
                reason,
                ..
            } if listener_id == listener => Some(Err(format!("{reason:?}"))),
            SwarmEvent::ListenerError { listener_id, error } if listener_id == listener => {
                Some(Err(error.to_string()))
            }
            _ => None,
        })
        .await?
    }

    /// A rendezvous DISCOVER with no namespace: every registration the relay would list,
    /// as (namespace, peer id), or why it failed.
    pub async fn discover_everything(&mut self) -> Result<Vec<(String, PeerId)>, String> {
        let relay = self.relay;
        self.swarm
            .behaviour_mut()
            .rendezvous
            .discover(None, None, None, relay);
        self.until(|event| match event {
            SwarmEvent::Behaviour(ClientBehaviourEvent::Rendezvous(
                rendezvous::client::Event::Discovered { registrations, .. },
            )) => Some(Ok(registrations
                .iter()
                .map(|r| (r.namespace.to_string(), r.record.peer_id()))
                .collect())),
            SwarmEvent::Behaviour(ClientBehaviourEvent::Rendezvous(
                rendezvous::client::Event::DiscoverFailed { error, .. },
            )) => Some(Err(format!("{error:?}"))),
            _ => None,
        })
        .await?
    }
}

//! A modified client built from whatnext's own parts (swarm, transport, session messages):
//! it says whatever a test tells it to, through a real relay. Shared by the rogue-peer tests
//! and the strangers benchmark.

use std::time::Duration;

use futures::StreamExt;
use libp2p::request_response::{Event as RrEvent, Message};
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId as NetPeerId, Swarm, identity};
use whatnext_core::invite::InviteUrl;
use whatnext_core::prelude::*;
use whatnext_network::NetConfig;
use whatnext_network::swarm::{Behaviour, BehaviourEvent, build_swarm};
use whatnext_network::transport::{Request, Response};
use whatnext_replication::protocol::{Hello, SessionRequest, SessionResponse, decode, encode};

/// How long the rogue waits for any answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// A client built from whatnext's own parts, that says whatever the test tells it to.
pub struct Rogue {
    runtime: tokio::runtime::Runtime,
    swarm: Swarm<Behaviour>,
    host: NetPeerId,
    circuit: Multiaddr,
    invite: InviteUrl,
    counter: u64,
}

impl Rogue {
    /// A rogue with a fresh key, aimed at the host of `url` through the link's relay.
    pub fn aimed_at(url: &str) -> Self {
        let invite: InviteUrl = url.parse().expect("a link");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let mut config = NetConfig::new(identity::Keypair::generate_ed25519());
        config.mdns = false;
        config.hole_punch = false;
        config.listen.clear();
        let swarm = runtime
            .block_on(async { build_swarm(&config) })
            .expect("swarm");
        let host: NetPeerId = invite.host.as_str().parse().expect("host id");
        let relay = invite.relay.clone().expect("a relayed link");
        let circuit = format!("{relay}/p2p-circuit/p2p/{host}")
            .parse()
            .expect("circuit address");
        Self {
            runtime,
            swarm,
            host,
            circuit,
            invite,
            counter: 0,
        }
    }

    pub fn peer_id(&self) -> PeerId {
        PeerId::new(self.swarm.local_peer_id().to_string())
    }

    /// Sends raw bytes as a session payload and waits for the answer (or says why none came).
    pub fn try_send_bytes(&mut self, payload: Vec<u8>) -> Result<Response, String> {
        let id = self
            .swarm
            .behaviour_mut()
            .session
            .send_request_with_addresses(
                &self.host,
                Request::Payload(payload),
                vec![self.circuit.clone()],
            );
        let swarm = &mut self.swarm;
        self.runtime.block_on(async {
            let wait = async {
                loop {
                    match swarm.select_next_some().await {
                        SwarmEvent::Behaviour(BehaviourEvent::Session(RrEvent::Message {
                            message:
                                Message::Response {
                                    request_id,
                                    response,
                                },
                            ..
                        })) if request_id == id => return Ok(response),
                        SwarmEvent::Behaviour(BehaviourEvent::Session(
                            RrEvent::OutboundFailure {
                                request_id, error, ..
                            },
                        )) if request_id == id => return Err(error.to_string()),
                        _ => {}
                    }
                }
            };
            tokio::time::timeout(ANSWER_TIMEOUT, wait)
                .await
                .unwrap_or_else(|_| Err("no answer in time".into()))
        })
    }

    /// Sends a session request and decodes the answer, or says why there is none.
    pub fn try_send(&mut self, request: &SessionRequest) -> Result<SessionResponse, String> {
        match self.try_send_bytes(encode(request).map_err(|e| e.to_string())?)? {
            Response::Payload(bytes) => decode(&bytes).map_err(|e| e.to_string()),
            other => Err(format!("not a session answer: {other:?}")),
        }
    }

    /// Sends a session request that must be answered.
    pub fn send(&mut self, request: &SessionRequest) -> SessionResponse {
        self.try_send(request)
            .unwrap_or_else(|e| panic!("the host did not answer: {e}"))
    }

    /// For `for_how_long`, answers the media requests that come in with `answer` (the body
    /// of a `Request::Media` → the body of the `Response::Media`). Returns how many it answered.
    #[allow(dead_code)]
    pub fn serve_media_for(
        &mut self,
        for_how_long: Duration,
        mut answer: impl FnMut(&[u8]) -> Vec<u8>,
    ) -> usize {
        let swarm = &mut self.swarm;
        let mut answered = 0;
        self.runtime.block_on(async {
            let serve = async {
                loop {
                    if let SwarmEvent::Behaviour(BehaviourEvent::Session(RrEvent::Message {
                        message:
                            Message::Request {
                                request: Request::Media(body),
                                channel,
                                ..
                            },
                        ..
                    })) = swarm.select_next_some().await
                    {
                        let reply = Response::Media(answer(&body));
                        let _ = swarm.behaviour_mut().session.send_response(channel, reply);
                        answered += 1;
                    }
                }
            };
            let _ = tokio::time::timeout(for_how_long, serve).await;
        });
        answered
    }

    pub fn hello(&self, key: Option<String>, code: Option<String>, name: &str) -> Hello {
        Hello {
            // The rogue runs this build: its protocol hash is the host's.
            protocol: whatnext_replication_protocol_hash(),
            session: key.as_ref().map(|_| self.invite.session.clone()),
            key,
            code,
            display_name: name.into(),
            display: false,
        }
    }

    /// Joins with the link's secret, as a real guest would.
    pub fn join(&mut self) -> SessionResponse {
        let hello = self.hello(self.invite.key.clone(), None, "Mallory");
        self.send(&SessionRequest::Hello(hello))
    }

    pub fn intent(&mut self, action: Action) -> SessionResponse {
        self.counter += 1;
        let intent = Intent {
            id: IntentId {
                author: self.peer_id(),
                counter: self.counter,
            },
            action,
        };
        self.send(&SessionRequest::Intent(intent))
    }
}

/// The session protocol hash of this build, as the app computes it.
pub fn whatnext_replication_protocol_hash() -> u64 {
    use bevy::prelude::*;
    let mut app = App::new();
    app.add_plugins(SessionPlugin)
        .add_plugins(whatnext_replication::ReplicationPlugin);
    app.world()
        .resource::<whatnext_replication::Registry>()
        .protocol_hash()
}

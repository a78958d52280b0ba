//! A modified client built from whatnext's own parts (swarm, transport, session messages):
//! it says whatever a test tells it to, through a real relay. Shared by the rogue-peer tests
//! and the strangers benchmark.

use std::time::Duration;

use futures::stream::FuturesUnordered;
use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use libp2p::request_response::{Event as RrEvent, Message};
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId as NetPeerId, Swarm, identity};
use whatnext_core::invite::InviteUrl;
use whatnext_core::prelude::*;
use whatnext_media::wire::{MediaAnswer, MediaAsk};
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
    /// Media streams opened to the rogue: it speaks the protocol from the start (streams
    /// wait here until [`Rogue::serve_media_for`] answers them).
    media_streams: whatnext_network::IncomingStreams,
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
        let media_streams = swarm
            .behaviour()
            .streams
            .new_control()
            .accept(whatnext_media::wire::PROTOCOL)
            .expect("the media protocol");
        let host: NetPeerId = invite.host.as_str().parse().expect("host id");
        let relay = invite.relay.clone().expect("a relayed link");
        let circuit: Multiaddr = format!("{relay}/p2p-circuit/p2p/{host}")
            .parse()
            .expect("circuit address");
        // Streams dial by peer id: this is where the host is.
        let mut swarm = swarm;
        swarm.add_peer_address(host, circuit.clone());
        Self {
            runtime,
            swarm,
            host,
            circuit,
            invite,
            counter: 0,
            media_streams,
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

    /// For `for_how_long`, answers the media streams that open to it: reads each ask and
    /// writes back whatever `answer` makes of it (the answer frame and the bytes after it),
    /// then closes the stream. Returns how many it answered.
    #[allow(dead_code)]
    pub fn serve_media_for(
        &mut self,
        for_how_long: Duration,
        mut answer: impl FnMut(&MediaAsk) -> Vec<u8>,
    ) -> usize {
        let incoming = &mut self.media_streams;
        let swarm = &mut self.swarm;
        let mut answered = 0;
        self.runtime.block_on(async {
            // The swarm must be polled while streams are read and written: it moves their bytes.
            let mut asks = FuturesUnordered::new();
            let mut writes = FuturesUnordered::new();
            let serve = async {
                loop {
                    tokio::select! {
                        _ = swarm.select_next_some() => {}
                        Some((_, mut stream)) = incoming.next() => asks.push(async move {
                            let ask = whatnext_media::wire::read::<MediaAsk, _>(&mut stream).await;
                            (stream, ask)
                        }),
                        Some((mut stream, ask)) = asks.next(), if !asks.is_empty() => {
                            if let Ok(ask) = ask {
                                let bytes = answer(&ask);
                                answered += 1;
                                writes.push(async move {
                                    let _ = stream.write_all(&bytes).await;
                                    let _ = stream.close().await;
                                });
                            }
                        }
                        Some(()) = writes.next(), if !writes.is_empty() => {}
                    }
                }
            };
            let _ = tokio::time::timeout(for_how_long, serve).await;
        });
        answered
    }

    /// Opens a media stream to the host, writes `raw` (an ask frame, or anything), and reads
    /// the answer frame and, when it is `Sending`, `then` bytes more. Says why when the host
    /// closed the stream or did not answer.
    #[allow(dead_code)]
    pub fn ask_media(
        &mut self,
        raw: Vec<u8>,
        then: usize,
    ) -> Result<(MediaAnswer, Vec<u8>), String> {
        let mut opener = self.swarm.behaviour().streams.new_control();
        let host = self.host;
        let swarm = &mut self.swarm;
        self.runtime.block_on(async {
            let exchange = async move {
                let mut stream = opener
                    .open_stream(host, whatnext_media::wire::PROTOCOL)
                    .await
                    .map_err(|e| e.to_string())?;
                stream.write_all(&raw).await.map_err(|e| e.to_string())?;
                let answer: MediaAnswer = whatnext_media::wire::read(&mut stream)
                    .await
                    .map_err(|e| e.to_string())?;
                let mut bytes = vec![
                    0u8;
                    if answer == MediaAnswer::Sending {
                        then
                    } else {
                        0
                    }
                ];
                stream
                    .read_exact(&mut bytes)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok((answer, bytes))
            };
            // The swarm must be polled while the stream is used: it moves the bytes.
            let polled = async {
                loop {
                    swarm.select_next_some().await;
                }
            };
            tokio::time::timeout(ANSWER_TIMEOUT, async {
                tokio::select! {
                    done = exchange => done,
                    _ = polled => Err("the swarm stopped".to_string()),
                }
            })
            .await
            .unwrap_or_else(|_| Err("no answer in time".into()))
        })
    }

    /// A hello proving `key` (a link's or member's secret) as this build's guests do.
    pub fn hello(&self, key: Option<String>, code: Option<String>, name: &str) -> Hello {
        Hello {
            // The rogue runs this build: its protocol hash is the host's.
            protocol: whatnext_replication_protocol_hash(),
            session: key.as_ref().map(|_| self.invite.session.clone()),
            key: key.map(|k| whatnext_core::invite::hello_proof(&k, &self.peer_id())),
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

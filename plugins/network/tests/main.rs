//! The network thread against peers that are not whatnext: one that sends malformed frames on
//! `/whatnext/session/2` (one bad frame is refused and the connection goes on; a peer that
//! keeps at it is cut off), and one that reads what a session request puts on the wire.
//! A real swarm on loopback, driven through `whatnext_network::swarm::run` as the app does.

mod fuzz;
#[path = "../../core/tests/mutate.rs"]
mod mutate;

use std::io;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use futures::{AsyncRead, AsyncWrite, AsyncWriteExt, StreamExt};
use libp2p::core::muxing::{StreamMuxerBox, StreamMuxerExt, SubstreamBox};
use libp2p::core::transport::{DialOpts, PortUse, Transport};
use libp2p::core::{Endpoint, upgrade};
use libp2p::request_response::{self, Event as RrEvent, Message, ProtocolSupport};
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId, StreamProtocol, Swarm, identity, noise, tcp, yamux};
use whatnext_network::swarm::{GARBAGE_LIMIT, run};
use whatnext_network::transport::{Request, Response, SESSION_PROTOCOL, encode_frame, read_frame};
use whatnext_network::{NetCommand, NetConfig, NetEvent};

/// Writes requests as raw bytes (well-formed or not); reads responses as whatnext does.
#[derive(Clone, Default)]
struct RawCodec;

#[async_trait::async_trait]
impl request_response::Codec for RawCodec {
    type Protocol = StreamProtocol;
    type Request = Vec<u8>;
    type Response = Response;

    async fn read_request<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        _: &mut T,
    ) -> io::Result<Vec<u8>> {
        Err(io::Error::other("this peer only asks"))
    }

    async fn read_response<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<Response> {
        read_frame(io).await
    }

    async fn write_request<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        bytes: Vec<u8>,
    ) -> io::Result<()> {
        io.write_all(&bytes).await?;
        io.close().await
    }

    async fn write_response<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        _: &mut T,
        _: Response,
    ) -> io::Result<()> {
        Err(io::Error::other("this peer only asks"))
    }
}

type Raw = request_response::Behaviour<RawCodec>;

fn raw_peer() -> Swarm<Raw> {
    libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            tcp::Config::default(),
            noise::Config::new,
            yamux::Config::default,
        )
        .expect("tcp")
        .with_behaviour(|_| {
            request_response::Behaviour::with_codec(
                RawCodec,
                [(SESSION_PROTOCOL, ProtocolSupport::Outbound)],
                request_response::Config::default(),
            )
        })
        .expect("behaviour")
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build()
}

/// A frame with a valid length prefix and a body no session message decodes from.
fn garbage() -> Vec<u8> {
    let body = [0xFF, 0xFF, 0xFF, 0xFF, 0x0F];
    let mut frame = (body.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    frame
}

/// What came of one request: its response, or the connection closing.
#[derive(Debug, PartialEq)]
enum Outcome {
    Answered(Response),
    Failed,
    Disconnected,
}

async fn ask(swarm: &mut Swarm<Raw>, host: PeerId, bytes: Vec<u8>) -> Outcome {
    swarm.behaviour_mut().send_request(&host, bytes);
    loop {
        match swarm.select_next_some().await {
            SwarmEvent::Behaviour(RrEvent::Message {
                message: Message::Response { response, .. },
                ..
            }) => return Outcome::Answered(response),
            SwarmEvent::Behaviour(RrEvent::OutboundFailure { .. }) => return Outcome::Failed,
            SwarmEvent::ConnectionClosed { peer_id, .. } if peer_id == host => {
                return Outcome::Disconnected;
            }
            _ => {}
        }
    }
}

/// `ask`, with a generous timeout so a hung exchange fails the test instead of hanging it.
async fn ask_in_time(swarm: &mut Swarm<Raw>, host: PeerId, bytes: Vec<u8>) -> Outcome {
    tokio::time::timeout(Duration::from_secs(30), ask(swarm, host, bytes))
        .await
        .expect("an answer, a failure or a hang-up within 30 s")
}

fn is_refused_as_malformed(outcome: &Outcome) -> bool {
    matches!(outcome, Outcome::Answered(Response::Refused { reason }) if reason.starts_with("malformed message"))
}

/// whatnext's own network thread on a thread of its own, listening on loopback only.
struct Host {
    peer: PeerId,
    addr: Multiaddr,
    commands: tokio::sync::mpsc::UnboundedSender<NetCommand>,
    events: crossbeam_channel::Receiver<NetEvent>,
    thread: std::thread::JoinHandle<()>,
}

impl Host {
    fn start() -> Self {
        let keypair = identity::Keypair::generate_ed25519();
        let peer = keypair.public().to_peer_id();
        let mut config = NetConfig::new(keypair);
        config.listen = vec!["/ip4/127.0.0.1/tcp/0".parse().expect("addr")];
        config.mdns = false;
        config.hole_punch = false;
        let (commands, command_rx) = tokio::sync::mpsc::unbounded_channel::<NetCommand>();
        let (event_tx, events) = crossbeam_channel::unbounded::<NetEvent>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Runtime::new().expect("runtime");
            runtime.block_on(run(
                config,
                command_rx,
                event_tx,
                Box::new(|| {}),
                whatnext_network::StreamControl::default(),
            ));
        });
        let addr: Multiaddr = loop {
            match events.recv_timeout(Duration::from_secs(30)) {
                Ok(NetEvent::Listening(addr)) => break addr.parse().expect("listen addr"),
                Ok(_) => {}
                Err(e) => panic!("the host never listened: {e}"),
            }
        };
        Host {
            peer,
            addr,
            commands,
            events,
            thread,
        }
    }

    /// Waits until the network thread counts `peer` as connected.
    fn wait_linked(&self, peer: PeerId) {
        loop {
            match self.events.recv_timeout(Duration::from_secs(30)) {
                Ok(NetEvent::PeerLink {
                    peer: p,
                    kind: Some(_),
                }) if p == peer => return,
                Ok(_) => {}
                Err(e) => panic!("the host never counted the peer as connected: {e}"),
            }
        }
    }

    fn stop(self) {
        let _ = self.commands.send(NetCommand::Shutdown);
        self.thread.join().expect("host thread");
    }
}

#[test]
fn one_malformed_frame_is_refused_and_a_peer_that_keeps_sending_them_is_cut_off() {
    let server = Host::start();
    let (host, addr) = (server.peer, server.addr.clone());

    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let mut peer = raw_peer();
        peer.dial(addr.with(libp2p::multiaddr::Protocol::P2p(host)))
            .expect("dial");
        let ping = || encode_frame(&Request::Ping(7)).expect("ping frame");

        assert_eq!(
            ask_in_time(&mut peer, host, ping()).await,
            Outcome::Answered(Response::Pong(7))
        );
        // One bad frame: refused with the reason, and the same connection still answers.
        let refused = ask_in_time(&mut peer, host, garbage()).await;
        assert!(is_refused_as_malformed(&refused), "{refused:?}");
        assert_eq!(
            ask_in_time(&mut peer, host, ping()).await,
            Outcome::Answered(Response::Pong(7))
        );
        // Keep at it: past the limit, the host hangs up.
        let mut outcomes = Vec::new();
        for _ in 0..GARBAGE_LIMIT + 5 {
            let outcome = ask_in_time(&mut peer, host, garbage()).await;
            let done = outcome != Outcome::Disconnected && !is_refused_as_malformed(&outcome);
            outcomes.push(outcome);
            if done || outcomes.last() == Some(&Outcome::Disconnected) {
                break;
            }
        }
        let refusals = outcomes.iter().filter(|o| is_refused_as_malformed(o)).count();
        // The answer to the last straw and the hang-up race; either way the count holds.
        assert!(
            outcomes.contains(&Outcome::Disconnected) || outcomes.last() == Some(&Outcome::Failed),
            "never cut off: {outcomes:?}"
        );
        assert!(
            (GARBAGE_LIMIT - 1..=GARBAGE_LIMIT).contains(&refusals),
            "cut off after {refusals} more refusals (limit {GARBAGE_LIMIT} in a minute, one sent before): {outcomes:?}"
        );
        assert!(!peer.is_connected(&host), "still connected");
    });
    server.stop();
}

/// Dials `addr` as a bare libp2p connection: noise and yamux, and nothing that answers the
/// streams the other side opens.
async fn bare_connection(addr: Multiaddr) -> (PeerId, StreamMuxerBox) {
    let keypair = identity::Keypair::generate_ed25519();
    let mut transport = tcp::tokio::Transport::new(tcp::Config::default())
        .upgrade(upgrade::Version::V1)
        .authenticate(noise::Config::new(&keypair).expect("noise"))
        .multiplex(yamux::Config::default())
        .map(|(peer, muxer), _| (peer, StreamMuxerBox::new(muxer)))
        .boxed();
    let dial = transport
        .dial(
            addr,
            DialOpts {
                role: Endpoint::Dialer,
                port_use: PortUse::New,
            },
        )
        .expect("dial");
    let (_, muxer) = dial.await.expect("connected");
    (keypair.public().to_peer_id(), muxer)
}

/// Reads every stream the other side opens, answering nothing, until one holds `wanted`; or
/// says what they held when the connection ended.
async fn read_streams_until(muxer: &mut StreamMuxerBox, wanted: &[u8]) -> Result<(), String> {
    let mut streams: Vec<(SubstreamBox, Vec<u8>)> = Vec::new();
    futures::future::poll_fn(|cx| {
        while let Poll::Ready(event) = muxer.poll_unpin(cx) {
            if let Err(error) = event {
                let read: Vec<_> = streams
                    .iter()
                    .map(|(_, read)| String::from_utf8_lossy(read).into_owned())
                    .collect();
                return Poll::Ready(Err(format!("{error}; the streams held {read:?}")));
            }
        }
        while let Poll::Ready(stream) = muxer.poll_inbound_unpin(cx) {
            streams.push((stream.expect("an inbound stream"), Vec::new()));
        }
        let mut chunk = [0u8; 1024];
        for (stream, read) in &mut streams {
            while let Poll::Ready(Ok(n @ 1..)) = Pin::new(&mut *stream).poll_read(cx, &mut chunk) {
                read.extend_from_slice(&chunk[..n]);
            }
            if read.windows(wanted.len()).any(|w| w == wanted) {
                return Poll::Ready(Ok(()));
            }
        }
        Poll::Pending
    })
    .await
}

#[test]
fn a_session_request_leaves_with_its_protocol_name_without_waiting_for_a_reply() {
    let host = Host::start();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let (peer, mut muxer) = bare_connection(host.addr.clone()).await;
        host.wait_linked(peer);
        let request = Request::Ping(0x5EED_5EED);
        host.commands
            .send(NetCommand::Send {
                token: 1,
                peer,
                request: request.clone(),
            })
            .expect("the network thread takes commands");
        // The bare peer never confirms the protocol: the request's bytes reach it only if the
        // sender did not wait for that confirmation (a round trip, through a relay two).
        let mut wanted = SESSION_PROTOCOL.as_ref().as_bytes().to_vec();
        wanted.push(b'\n');
        wanted.extend(encode_frame(&request).expect("frame"));
        let read = tokio::time::timeout(
            Duration::from_secs(30),
            read_streams_until(&mut muxer, &wanted),
        )
        .await
        .expect("the request's bytes right after its protocol's name, unconfirmed, within 30 s");
        if let Err(ended) = read {
            panic!("the connection ended before the request's bytes came: {ended}");
        }
    });
    host.stop();
}

//! `NetworkPlugin`: libp2p on its own thread, bridged to Bevy by two channels. A transport:
//! it carries bytes and link events, and knows nothing of sessions.
//!
//! - [`NetCommand`] goes in: the relay list, the short code to keep registered, hellos and
//!   requests to peers (opaque payloads), answers to their requests.
//! - [`NetEvent`] comes out, drained every frame into Bevy messages, and wakes the app loop
//!   through `AppWaker`, so a network event costs no frame of latency.
//!
//! No Bevy system blocks on I/O, and the swarm never touches the `World`. The session
//! protocol that rides on this transport lives in `whatnext-replication`.

pub mod backoff;
mod bridge;
mod links;
pub mod relays;
pub mod swarm;
pub mod transport;

use bevy::prelude::*;
use libp2p::Multiaddr;
use whatnext_core::prelude::*;

pub use bridge::{NetBridge, NetworkPlugin};
pub use libp2p::{Stream, StreamProtocol};
pub use libp2p_stream::{Control as StreamOpener, IncomingStreams, OpenStreamError};
pub use links::{PeerLinks, presence_of};
pub use relays::Status as LinkStatus;
pub use swarm::HEARTBEAT;
pub use transport::{Request, Response};

/// The reason of the `Refused` answer that replaces every answer to a peer from a frame
/// whose write to disk failed (see `docs/decisions/confirm-after-commit.md`).
pub const STORAGE_REFUSED: &str =
    "storage: the peer could not save the change, so nothing changed; ask again later";

/// Opens and accepts plain streams to peers (bulk bytes such as the media transfer), once
/// the network thread has built its swarm. Streams are read and written on the caller's
/// threads; the swarm's task moves the bytes.
#[derive(Resource, Clone, Default)]
pub struct StreamControl(std::sync::Arc<std::sync::OnceLock<StreamOpener>>);

impl StreamControl {
    /// The swarm's stream control, or `None` before the swarm is up (or if it failed).
    pub fn get(&self) -> Option<StreamOpener> {
        self.0.get().cloned()
    }

    /// Called once by the network thread when its swarm is built (later calls do nothing).
    pub(crate) fn set(&self, control: StreamOpener) {
        let _ = self.0.set(control);
    }
}

/// A peer id as the network knows it: parsed once, where it enters.
pub type NetPeerId = libp2p::PeerId;

/// The core's text form of a network peer id.
pub fn peer_of(net: &NetPeerId) -> PeerId {
    PeerId::new(net.to_base58())
}

/// A core peer id as the network's, or `None` when the text is not a peer id.
pub fn net_peer(peer: &PeerId) -> Option<NetPeerId> {
    peer.as_str().parse().ok()
}

/// How the network thread is set up.
#[derive(Clone)]
pub struct NetConfig {
    /// This device's key; its peer id comes from it.
    pub keypair: libp2p::identity::Keypair,
    /// Direct listen addresses; empty for a peer reachable only through its relay.
    pub listen: Vec<Multiaddr>,
    /// Discover peers on the LAN by mDNS.
    pub mdns: bool,
    /// Try to upgrade relayed connections to direct ones (DCUtR).
    pub hole_punch: bool,
}

impl NetConfig {
    /// All interfaces, a free TCP and QUIC port each, mDNS on.
    pub fn new(keypair: libp2p::identity::Keypair) -> Self {
        let listen = ["/ip4/0.0.0.0/tcp/0", "/ip4/0.0.0.0/udp/0/quic-v1"]
            .iter()
            .filter_map(|a| a.parse().ok())
            .collect();
        Self {
            keypair,
            listen,
            mdns: true,
            hole_punch: true,
        }
    }
}

/// The network's place in the frame. Readers of [`NetEvent`] run after `NetSet::Receive`
/// (replication reads them in `Update`); writers of [`NetCommand`] run before `NetSet::Send`.
#[derive(SystemSet, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NetSet {
    /// `PreUpdate`: the network thread's events become [`NetEvent`] messages, and
    /// [`PeerLinks`] and the relay statuses follow them.
    Receive,
    /// `Last`, before `PersistSet`: this frame's [`NetCommand::Publish`] messages go to the
    /// network thread, so the host's updates do not wait for the disk.
    Publish,
    /// `Last`, after `PersistSet`: this frame's other [`NetCommand`] messages go to the
    /// network thread, so an answer that confirms a change leaves only once it is on disk.
    Send,
}

/// Into the network thread. Systems write these as Bevy messages; they leave in
/// [`NetSet::Send`] at the end of the frame.
#[derive(Message, Debug, Clone, PartialEq, Eq)]
pub enum NetCommand {
    /// The user's relays, in order. The relay manager works through them.
    SetRelays(Vec<String>),
    /// Say hello to a host from an invite link: through its relay if given, else by any
    /// address known (LAN). The answer is [`NetEvent::JoinAnswer`] or [`NetEvent::JoinFailed`].
    JoinViaUrl {
        /// Matches the answer; from [`RequestTokens`].
        token: u64,
        /// The host.
        host: NetPeerId,
        /// The relay the host is reachable through.
        relay: Option<Multiaddr>,
        /// The hello, encoded by the session protocol.
        hello: Vec<u8>,
    },
    /// Resolve a short code through a relay, then say hello to whoever holds it.
    JoinViaCode {
        /// Matches the answer; from [`RequestTokens`].
        token: u64,
        /// The short code, as typed.
        code: String,
        /// The relay to ask (an invite link's, to find the party's host now); `None`: our
        /// reserved relay.
        relay: Option<Multiaddr>,
        /// The hello, encoded by the session protocol.
        hello: Vec<u8>,
    },
    /// Answer an inbound [`NetEvent::Request`].
    Respond {
        /// The request's `reply`.
        reply: u64,
        /// The answer.
        response: Response,
    },
    /// The short code to keep registered on our relay (`None`: none).
    SetCode(Option<String>),
    /// Send a request to a connected (or reachable) peer; the answer comes back as
    /// [`NetEvent::Response`] or [`NetEvent::SendFailed`] with the same token.
    Send {
        /// Matches the answer; from [`RequestTokens`].
        token: u64,
        /// To whom.
        peer: NetPeerId,
        /// What.
        request: Request,
    },
    /// Like [`NetCommand::Send`], for a request that confirms nothing (the host's updates to
    /// its members): it leaves before the frame's write to disk instead of after it, so
    /// storage is not on its path. A change a failed write undoes is reversed by the next one.
    Publish {
        /// Matches the answer; from [`RequestTokens`].
        token: u64,
        /// To whom.
        peer: NetPeerId,
        /// What.
        request: Request,
    },
    /// This peer sent something it should not have (a payload that did not decode, bytes
    /// that did not match their hash): count it like a malformed frame (a peer that keeps
    /// doing it is cut off).
    Strike {
        /// Who sent it.
        peer: NetPeerId,
        /// What it sent, for the log.
        what: &'static str,
    },
    /// Stop the network thread.
    Shutdown,
}

/// How a connection to a peer goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionKind {
    /// Straight to the peer (hole punched, or reachable).
    Direct,
    /// Through a relay's circuit.
    Relayed,
    /// Straight to a peer found on the local network by mDNS.
    Lan,
}

/// Out of the network thread, as a Bevy message (written in [`NetSet::Receive`]).
#[derive(Message, Debug, Clone, PartialEq, Eq)]
pub enum NetEvent {
    /// A new listen address (a circuit address once a relay reserved a slot for us).
    Listening(String),
    /// Every relay's status, when one changed.
    RelayStatus(Vec<(String, LinkStatus)>),
    /// How we are connected to a peer now; `None` when no connection is left.
    PeerLink {
        /// The peer.
        peer: NetPeerId,
        /// The best connection left.
        kind: Option<ConnectionKind>,
    },
    /// mDNS found a peer on the local network.
    LanPeer {
        /// The peer.
        peer: NetPeerId,
        /// One of its addresses.
        addr: String,
    },
    /// A host answered our hello.
    JoinAnswer {
        /// The join's token.
        token: u64,
        /// The host that answered (found through the code, for a code join).
        host: NetPeerId,
        /// Its answer.
        response: Response,
    },
    /// A join could not be delivered.
    JoinFailed {
        /// The join's token.
        token: u64,
        /// `Unreachable` (may pass) or `InvalidInvite` (final).
        code: ErrorCode,
        /// What went wrong, as a sentence.
        message: String,
    },
    /// A peer sent us a session payload; answer with [`NetCommand::Respond`].
    Request {
        /// Who asked.
        peer: NetPeerId,
        /// Goes back in the answer.
        reply: u64,
        /// The session message, undecoded.
        payload: Vec<u8>,
    },
    /// The answer to one of our [`NetCommand::Send`]s.
    Response {
        /// The send's token.
        token: u64,
        /// Who answered.
        peer: NetPeerId,
        /// The answer.
        response: Response,
    },
    /// One of our [`NetCommand::Send`]s got no answer.
    SendFailed {
        /// The send's token.
        token: u64,
        /// To whom it went.
        peer: NetPeerId,
        /// Why, as a sentence.
        error: String,
    },
    /// The short code is registered on the relay.
    CodeRegistered(String),
    /// The short code could not be registered or renewed, and why.
    CodeProblem(String),
    /// Something the user should know went wrong.
    Error(String),
}

/// Tokens for requests this device sends, one counter for every kind (joins, updates,
/// intents, clock readings), so an answer is never mistaken for another's.
#[derive(Resource, Debug, Default)]
pub struct RequestTokens(u64);

impl RequestTokens {
    /// A token no other request of this run has.
    pub fn fresh(&mut self) -> u64 {
        self.0 += 1;
        self.0
    }
}

/// This device's network key: the invite secret is derived from it.
#[derive(Resource, Clone)]
pub struct NetKeys(pub libp2p::identity::Keypair);

impl From<ConnectionKind> for Connection {
    fn from(kind: ConnectionKind) -> Self {
        match kind {
            ConnectionKind::Direct => Connection::Direct,
            ConnectionKind::Lan => Connection::Lan,
            ConnectionKind::Relayed => Connection::Relayed,
        }
    }
}

impl NetKeys {
    /// Signs `message` with this device's key (empty if the key cannot sign).
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        self.0.sign(message).unwrap_or_default()
    }
}

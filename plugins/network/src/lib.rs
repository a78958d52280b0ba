//! `NetworkPlugin`: libp2p on its own thread, bridged to Bevy by two crossbeam channels.
//!
//! - `NetCommand` goes in: the relay list today; dials and session traffic next.
//! - `NetEvent` comes out, drained every frame into Bevy messages, and wakes the app loop
//!   through `AppWaker`, so a network event costs no frame of latency.
//!
//! No Bevy system blocks on I/O, and the swarm never touches the `World`.

pub mod backoff;
pub mod protocol;
pub mod relays;
pub mod session_link;
pub mod swarm;

use std::sync::Mutex;
use std::thread::JoinHandle;

use bevy::prelude::*;
use crossbeam_channel::{Receiver, Sender};
use libp2p::Multiaddr;
use whatnext_core::prelude::*;

pub use protocol::{Hello, SessionRequest, SessionResponse};
pub use relays::Status as LinkStatus;
pub use session_link::{Members, PeerLinks};
pub use swarm::HEARTBEAT;

/// How the network thread is set up.
#[derive(Clone)]
pub struct NetConfig {
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

/// Into the network thread. Systems write these as Bevy messages; `forward_net_commands`
/// hands them to the thread at the end of each frame.
#[derive(Message, Debug, Clone, PartialEq, Eq)]
pub enum NetCommand {
    /// The user's relays, in order. The relay manager works through them.
    SetRelays(Vec<String>),
    /// Say hello to a host from an invite link: through its relay if given, else by any
    /// address known (LAN).
    JoinViaUrl {
        token: u64,
        host: String,
        relay: Option<String>,
        hello: Hello,
    },
    /// Resolve a short code through our reserved relay, then say hello to whoever holds it.
    JoinViaCode {
        token: u64,
        code: String,
        hello: Hello,
    },
    /// Answer an inbound request.
    Respond {
        reply: u64,
        response: SessionResponse,
    },
    /// The short code to keep registered on our relay (`None`: none).
    SetCode(Option<String>),
    /// Send a request to a connected (or reachable) peer; the answer comes back as
    /// `NetEvent::Response` or `NetEvent::SendFailed` with the same token.
    Send {
        token: u64,
        peer: String,
        request: SessionRequest,
    },
    Shutdown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionKind {
    Direct,
    Relayed,
    Lan,
}

/// Out of the network thread, as a Bevy message.
#[derive(Message, Debug, Clone, PartialEq, Eq)]
pub enum NetEvent {
    Listening(String),
    RelayStatus(Vec<(String, LinkStatus)>),
    /// How we are connected to a peer now; `None` when no connection is left.
    PeerLink {
        peer: String,
        kind: Option<ConnectionKind>,
    },
    LanPeer {
        peer: String,
        addr: String,
    },
    /// A host answered our hello.
    JoinAnswer {
        token: u64,
        host: String,
        response: SessionResponse,
    },
    JoinFailed {
        token: u64,
        code: ErrorCode,
        message: String,
    },
    /// A peer asked us something; answer with `NetCommand::Respond`.
    Request {
        peer: String,
        reply: u64,
        request: SessionRequest,
    },
    Response {
        token: u64,
        peer: String,
        response: SessionResponse,
    },
    SendFailed {
        token: u64,
        peer: String,
        error: String,
    },
    CodeRegistered(String),
    CodeProblem(String),
    /// Something the user should know went wrong.
    Error(String),
}

pub struct NetworkPlugin {
    config: Mutex<Option<NetConfig>>,
}

impl NetworkPlugin {
    pub fn new(config: NetConfig) -> Self {
        Self {
            config: Mutex::new(Some(config)),
        }
    }
}

/// Bevy's ends of the channels, and the thread, joined on exit.
#[derive(Resource)]
pub struct NetBridge {
    commands: Sender<NetCommand>,
    events: Receiver<NetEvent>,
    thread: Option<JoinHandle<()>>,
}

impl NetBridge {
    pub fn send(&self, command: NetCommand) {
        if self.commands.send(command).is_err() {
            tracing::warn!("the network thread has stopped; a command was dropped");
        }
    }
}

impl Drop for NetBridge {
    fn drop(&mut self) {
        let _ = self.commands.send(NetCommand::Shutdown);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Plugin for NetworkPlugin {
    fn build(&self, app: &mut App) {
        let Some(config) = self.config.lock().ok().and_then(|mut c| c.take()) else {
            tracing::error!("NetworkPlugin was added twice; the second copy does nothing");
            return;
        };
        let waker = app
            .world()
            .get_resource::<AppWaker>()
            .cloned()
            .unwrap_or_else(AppWaker::none);
        let config_keypair = config.keypair.clone();
        let (command_tx, command_rx) = crossbeam_channel::unbounded::<NetCommand>();
        let (event_tx, event_rx) = crossbeam_channel::unbounded::<NetEvent>();
        let thread = std::thread::Builder::new()
            .name("network".into())
            .spawn(move || run_network_thread(config, command_rx, event_tx, waker))
            .map_err(|e| tracing::error!("cannot start the network thread: {e}"))
            .ok();
        app.insert_resource(session_link::NetKeys(config_keypair))
            .insert_resource(NetworkPresent)
            .init_resource::<session_link::PeerLinks>();
        app.insert_resource(NetBridge {
            commands: command_tx,
            events: event_rx,
            thread,
        })
        .add_message::<NetEvent>()
        .add_message::<NetCommand>()
        .add_systems(PreUpdate, drain_net_events)
        .add_systems(Last, forward_net_commands)
        .add_systems(
            Update,
            (send_relay_list, apply_relay_statuses).after(SessionSet::Apply),
        )
        .add_plugins(session_link::SessionLinkPlugin);
    }
}

fn run_network_thread(
    config: NetConfig,
    commands: Receiver<NetCommand>,
    events: Sender<NetEvent>,
    waker: AppWaker,
) {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let _ = events.send(NetEvent::Error(format!(
                "cannot start the network runtime: {e}"
            )));
            return;
        }
    };
    // crossbeam at the Bevy boundary; a forwarding thread feeds the async loop without polling.
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    std::thread::Builder::new()
        .name("network-commands".into())
        .spawn(move || {
            for command in commands {
                if tx.send(command).is_err() {
                    break;
                }
            }
        })
        .ok();
    runtime.block_on(swarm::run(
        config,
        rx,
        events,
        Box::new(move || waker.wake()),
    ));
}

fn forward_net_commands(bridge: Res<NetBridge>, mut commands: MessageReader<NetCommand>) {
    for command in commands.read() {
        bridge.send(command.clone());
    }
}

fn drain_net_events(bridge: Res<NetBridge>, mut out: MessageWriter<NetEvent>) {
    out.write_batch(bridge.events.try_iter());
}

/// Sends the relay list to the network when the user edits it.
fn send_relay_list(
    bridge: Res<NetBridge>,
    relays: Res<Relays>,
    mut sent: Local<Option<Vec<String>>>,
) {
    let addrs: Vec<String> = relays.0.iter().map(|r| r.addr.clone()).collect();
    if sent.as_ref() != Some(&addrs) {
        bridge.send(NetCommand::SetRelays(addrs.clone()));
        *sent = Some(addrs);
    }
}

/// Copies the relay manager's statuses into the `Relays` resource.
fn apply_relay_statuses(mut events: MessageReader<NetEvent>, mut relays: ResMut<Relays>) {
    for event in events.read() {
        let NetEvent::RelayStatus(statuses) = event else {
            continue;
        };
        for (addr, status) in statuses {
            let status = match status {
                LinkStatus::Connecting => RelayStatus::Connecting,
                LinkStatus::Reserved => RelayStatus::Reserved,
                LinkStatus::Failed(reason) => RelayStatus::Failed {
                    reason: reason.clone(),
                },
                LinkStatus::Disconnected => RelayStatus::Disconnected,
            };
            // Only a real change marks `Relays` changed, so listeners are not woken for nothing.
            let index = relays
                .0
                .iter()
                .position(|r| r.addr == *addr && r.status != status);
            if let Some(i) = index {
                relays.0[i].status = status;
            }
        }
    }
}

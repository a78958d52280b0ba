//! The plugin and its bridge: the network thread with its tokio runtime, and the two channels
//! that carry [`NetCommand`]s in and [`NetEvent`]s out.

use std::sync::Mutex;
use std::thread::JoinHandle;

use bevy::prelude::*;
use crossbeam_channel::{Receiver, Sender};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};
use whatnext_core::prelude::*;

use crate::links::{PeerLinks, track_links};
use crate::{
    LinkStatus, NetCommand, NetConfig, NetEvent, NetKeys, NetSet, RequestTokens, Response,
    StreamControl, swarm,
};

/// Runs libp2p on its own thread. Adds [`NetBridge`], [`NetKeys`], [`PeerLinks`] and
/// [`RequestTokens`]; the messages [`NetCommand`] and [`NetEvent`]; in [`NetSet::Receive`]
/// (`PreUpdate`) the drain of network events, the link table and the relay statuses; in
/// `Update` the relay list's hand-over; in [`NetSet::Publish`] (`Last`, before `PersistSet`)
/// the hand-over of this frame's publications, and in [`NetSet::Send`] (`Last`, after
/// `PersistSet`) of its other commands.
pub struct NetworkPlugin {
    config: Mutex<Option<NetConfig>>,
}

impl NetworkPlugin {
    /// A network with this key, listen addresses and discovery settings.
    pub fn new(config: NetConfig) -> Self {
        Self {
            config: Mutex::new(Some(config)),
        }
    }
}

/// Bevy's ends of the channels, and the thread, joined on exit.
#[derive(Resource)]
pub struct NetBridge {
    commands: UnboundedSender<NetCommand>,
    events: Receiver<NetEvent>,
    thread: Option<JoinHandle<()>>,
}

impl NetBridge {
    /// Hands a command to the network thread at once. Systems write [`NetCommand`]
    /// messages instead, which leave in [`NetSet::Send`].
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
        let keys = NetKeys(config.keypair.clone());
        let streams = StreamControl::default();
        // Commands go straight into the async loop's channel (its sender is not async), so
        // no thread sits between Bevy and the swarm.
        let (command_tx, command_rx) = tokio::sync::mpsc::unbounded_channel::<NetCommand>();
        let (event_tx, event_rx) = crossbeam_channel::unbounded::<NetEvent>();
        let thread = std::thread::Builder::new()
            .name("network".into())
            .spawn({
                let streams = streams.clone();
                move || run_network_thread(config, command_rx, event_tx, waker, streams)
            })
            .map_err(|e| tracing::error!("cannot start the network thread: {e}"))
            .ok();
        app.insert_resource(keys)
            .insert_resource(NetworkPresent)
            .insert_resource(streams)
            .init_resource::<PeerLinks>()
            .init_resource::<RequestTokens>()
            .insert_resource(NetBridge {
                commands: command_tx,
                events: event_rx,
                thread,
            })
            .add_message::<NetEvent>()
            .add_message::<NetCommand>()
            .configure_sets(Last, NetSet::Publish.before(PersistSet))
            .configure_sets(Last, NetSet::Send.after(PersistSet))
            .add_systems(
                PreUpdate,
                (drain_net_events, (track_links, apply_relay_statuses))
                    .chain()
                    .in_set(NetSet::Receive),
            )
            .add_systems(Update, send_relay_list.after(SessionSet::Apply))
            .add_systems(Last, forward_publications.in_set(NetSet::Publish))
            .add_systems(Last, forward_net_commands.in_set(NetSet::Send));
    }
}

fn run_network_thread(
    config: NetConfig,
    commands: UnboundedReceiver<NetCommand>,
    events: Sender<NetEvent>,
    waker: AppWaker,
    streams: StreamControl,
) {
    // One thread runs the swarm and every connection's task: a message in or out then costs
    // no hand-off between threads (each one a wake-up on a small machine).
    let runtime = match tokio::runtime::Builder::new_current_thread()
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
    runtime.block_on(swarm::run(
        config,
        commands,
        events,
        Box::new(move || waker.wake()),
        streams,
    ));
}

/// Hands this frame's publications (requests that confirm nothing) to the network thread
/// before the write to disk.
fn forward_publications(bridge: Res<NetBridge>, mut commands: MessageReader<NetCommand>) {
    for command in commands.read() {
        if let NetCommand::Publish { .. } = command {
            bridge.send(command.clone());
        }
    }
}

/// Hands this frame's other commands to the network thread. When this frame's write failed, its
/// answers to peers become refusals: storage undid what they would confirm, and the peer
/// asks again later (a guest keeps its intent in its outbox).
fn forward_net_commands(
    bridge: Res<NetBridge>,
    persistence: Option<Res<Persistence>>,
    mut commands: MessageReader<NetCommand>,
) {
    let failed = persistence.is_some_and(|p| p.failed_this_frame);
    for command in commands.read() {
        match command {
            NetCommand::Publish { .. } => {} // gone before the write
            NetCommand::Respond { reply, .. } if failed => bridge.send(NetCommand::Respond {
                reply: *reply,
                response: Response::Refused {
                    reason: crate::STORAGE_REFUSED.into(),
                },
            }),
            _ => bridge.send(command.clone()),
        }
    }
}

fn drain_net_events(bridge: Res<NetBridge>, mut out: MessageWriter<NetEvent>) {
    out.write_batch(bridge.events.try_iter());
}

/// Sends the relay list to the network when the user edits it.
fn send_relay_list(
    relays: Res<Relays>,
    mut net: MessageWriter<NetCommand>,
    mut sent: Local<Option<Vec<String>>>,
) {
    let addrs: Vec<String> = relays.0.iter().map(|r| r.addr.clone()).collect();
    if sent.as_ref() != Some(&addrs) {
        net.write(NetCommand::SetRelays(addrs.clone()));
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

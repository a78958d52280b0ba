//! whatnext's replication next to bevy_replicon 0.42, on one workload, in one run:
//! 10,000 replicated queue entries (`Track` + `QueuePosition`, whatnext's own components),
//! 1% of them moving each tick (a new `QueuePosition`), with 1 and with 20 receivers.
//!
//! Both sides run in-process: a server app and its receiver apps, each a real Bevy app with
//! the library's plugin; what the server sends is handed to each receiver as its messaging
//! backend would (whatnext: `NetCommand`s in, `NetEvent`s out; replicon: `ServerMessages` /
//! `ClientMessages`), with nothing lost. Printed per tick, medians over `TICKS` ticks:
//! - send: the server app's `update` (change detection, diff, encoding, one message per
//!   receiver);
//! - receive: one receiver app's `update` (decoding and applying);
//! - bytes per change: what the server sent one receiver during the busy ticks, divided by
//!   the changes (acknowledgements back are not counted on either side).
//!
//! Run: `scripts/bench` (all figures), or on its own:
//! `cargo run --release --manifest-path benches/versus-replicon/Cargo.toml`

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bevy::prelude::*;
use bevy::state::app::StatesPlugin;
use bevy_replicon::prelude::{
    ClientMessages, Replicated as RepliconReplicated, RepliconPlugins, ServerMessages, ServerPlugin,
};
use bevy_replicon::shared::replication::rules::AppRuleExt;
use bevy_replicon::test_app::{ServerTestAppExt, TestClientEntity};
use whatnext_core::prelude::*;
use whatnext_network::{ConnectionKind, NetCommand, NetEvent, NetPeerId, PeerLinks, Request};
use whatnext_replication::protocol::{Snapshot, Welcome};
use whatnext_replication::{Members, PendingWelcomes, Registry};
use whatnext_test_support::{Author, HOST, replicating_app};

const ENTITIES: u64 = 10_000;
const CHANGING: u64 = ENTITIES / 100;
const TICKS: usize = 100;

/// What one configuration measured.
struct Figures {
    send: Duration,
    receive: Duration,
    bytes_per_change: f64,
    idle_send: Duration,
    /// A receiver's frame with nothing to receive: what its app costs anyway.
    idle_receive: Duration,
}

/// What one tick of one library took.
struct Tick {
    send: Duration,
    /// Each receiver's update.
    receive: Vec<Duration>,
    /// What the server sent the first receiver.
    bytes: usize,
}

/// One library's server and receivers, stepped a tick at a time.
trait Side {
    /// One tick: the server moves this tick's tracks (none when `tick` is `None`), updates,
    /// and each receiver takes what it sent.
    fn tick(&mut self, tick: Option<usize>) -> Tick;
    /// Asserts every receiver holds the server's queue.
    fn check(&mut self);
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Which entities move on `tick`: a spread of 1%, different each tick.
fn moving(tick: usize) -> impl Iterator<Item = usize> {
    (0..CHANGING).map(move |k| ((tick as u64 * 977 + k * 101) % ENTITIES) as usize)
}

/// Moves `entities[i]` for every `i` of this tick to just after where it is, as a move in
/// the queue does: a new `QueuePosition` is inserted.
fn move_some(world: &mut World, entities: &[Entity], tick: usize) {
    for i in moving(tick) {
        let Some(position) = world.get::<QueuePosition>(entities[i]) else {
            continue;
        };
        let next = QueueKey::between(Some(&position.0), None);
        world.entity_mut(entities[i]).insert(QueuePosition(next));
    }
}

/// The queue as a receiver holds it: every (position, track) pair, in order.
fn queue(app: &mut App) -> Vec<(String, TrackId)> {
    let mut q = app.world_mut().query::<(&QueuePosition, &Track)>();
    let mut v: Vec<(String, TrackId)> = q
        .iter(app.world())
        .map(|(p, t)| (p.0.as_str().to_owned(), t.id))
        .collect();
    v.sort();
    v
}

fn track(i: u64) -> Track {
    Track {
        id: TrackId(i + 1),
        title: format!("Track number {i}"),
        artist: "Some Artist".into(),
        duration_ms: 200_000,
        media: None,
        added_by: PeerId::new(HOST),
    }
}

// ---------------------------------------------------------------- whatnext

/// The whatnext side: a host app with the session and its tracks, `receivers` member apps
/// welcomed with a snapshot, and a loss-free router between them.
struct Whatnext {
    host: App,
    members: Vec<(NetPeerId, App)>,
    /// Each member's join, which its welcome answers.
    join_tokens: Vec<u64>,
    /// A request's reply id → (who asked, the asker's token).
    replies: HashMap<u64, (usize, u64)>,
    next_reply: u64,
    tracks: Vec<Entity>,
}

/// Who sends or receives: the host or member `i`.
#[derive(Clone, Copy, PartialEq)]
enum End {
    Host,
    Member(usize),
}

impl Whatnext {
    fn new(receivers: usize) -> Self {
        let mut host = replicating_app(HOST);
        let mut me = Author::new(HOST);
        me.act(
            &mut host,
            Action::Local(LocalAction::CreateSession {
                session_id: SessionId("BENCH".into()),
                name: "Bench".into(),
            }),
        )
        .expect("create");
        for i in 0..ENTITIES {
            let t = track(i);
            me.act(
                &mut host,
                Action::Session(SessionAction::AddTrack {
                    track_id: t.id,
                    title: t.title,
                    artist: t.artist,
                    duration_ms: t.duration_ms,
                    media: None,
                }),
            )
            .expect("add");
        }
        host.update();
        let mut members = Vec::new();
        let mut pending = Vec::new();
        let mut join_tokens = Vec::new();
        for i in 0..receivers {
            let net = NetPeerId::random();
            let peer = PeerId::new(net.to_string());
            let mut app = replicating_app(&peer.to_string());
            app.world_mut()
                .resource_mut::<PeerLinks>()
                .0
                .insert(PeerId::new(HOST), ConnectionKind::Relayed);
            // The member asks to join, as a user would; the welcome answers that join.
            let invite = whatnext_core::invite::InviteUrl {
                host: PeerId::new(HOST),
                relay: None,
                session: SessionId("BENCH".into()),
                key: Some("bench".into()),
            };
            app.world_mut().write_message(Intent {
                id: IntentId {
                    author: peer.clone(),
                    counter: 0,
                },
                action: Action::Local(LocalAction::JoinSession {
                    invite: invite.to_string(),
                }),
            });
            app.update();
            let join = app
                .world_mut()
                .resource_mut::<Messages<NetCommand>>()
                .drain()
                .find_map(|c| match c {
                    NetCommand::JoinViaUrl { token, .. } => Some(token),
                    _ => None,
                })
                .expect("the member says hello");
            join_tokens.push(join);
            // What admission does: a member, a participant, a welcome waiting for a snapshot.
            host.world_mut()
                .resource_mut::<Members>()
                .0
                .insert(peer.clone());
            host.world_mut().spawn((
                Participant {
                    peer: peer.clone(),
                    display_name: format!("Member {i}"),
                    display: false,
                },
                Presence {
                    online: true,
                    connection: Connection::Relayed,
                },
                NetId::fresh(),
                Replicated,
            ));
            let welcome = Welcome {
                protocol: host.world().resource::<Registry>().protocol_hash(),
                session: SessionId("BENCH".into()),
                name: "Bench".into(),
                host: PeerId::new(HOST),
                term: 0,
                snapshot: Snapshot::default(),
                rejoin: None,
                proof: Some(whatnext_core::invite::welcome_proof("bench", &peer)),
            };
            pending.push((u64::MAX - i as u64, peer, welcome));
            members.push((net, app));
        }
        host.world_mut()
            .resource_mut::<PendingWelcomes>()
            .0
            .extend(pending);
        let tracks = {
            let mut q = host
                .world_mut()
                .query_filtered::<Entity, (With<Track>, With<QueuePosition>)>();
            let mut v: Vec<Entity> = q.iter(host.world()).collect();
            v.sort();
            v
        };
        let mut bench = Self {
            host,
            members,
            join_tokens,
            replies: HashMap::new(),
            next_reply: 0,
            tracks,
        };
        // Welcomes out, snapshots applied, acknowledgements back.
        for _ in 0..3 {
            bench.host.update();
            bench.route_from(End::Host);
            for i in 0..bench.members.len() {
                bench.members[i].1.update();
                bench.route_from(End::Member(i));
            }
        }
        for (_, app) in &mut bench.members {
            assert_eq!(
                queue(app).len() as u64,
                ENTITIES,
                "a member got the whole queue"
            );
        }
        bench
    }

    fn app(&mut self, end: End) -> &mut App {
        match end {
            End::Host => &mut self.host,
            End::Member(i) => &mut self.members[i].1,
        }
    }

    fn net_of(&self, end: End) -> NetPeerId {
        match end {
            End::Host => HOST.parse().expect("host id"),
            End::Member(i) => self.members[i].0,
        }
    }

    fn end_of(&self, peer: &NetPeerId) -> Option<End> {
        if peer.to_string() == HOST {
            return Some(End::Host);
        }
        self.members
            .iter()
            .position(|(p, _)| p == peer)
            .map(End::Member)
    }

    /// Hands what `from` sent to its receivers; returns the bytes sent to member 0.
    fn route_from(&mut self, from: End) -> usize {
        let commands: Vec<NetCommand> = self
            .app(from)
            .world_mut()
            .resource_mut::<Messages<NetCommand>>()
            .drain()
            .collect();
        let mut to_first = 0;
        for command in commands {
            match command {
                NetCommand::Send {
                    token,
                    peer,
                    request: Request::Payload(payload),
                }
                | NetCommand::Publish {
                    token,
                    peer,
                    request: Request::Payload(payload),
                } => {
                    let Some(to) = self.end_of(&peer) else {
                        continue;
                    };
                    if to == End::Member(0) {
                        to_first += payload.len();
                    }
                    self.next_reply += 1;
                    let asker = match from {
                        End::Host => usize::MAX,
                        End::Member(i) => i,
                    };
                    self.replies.insert(self.next_reply, (asker, token));
                    let event = NetEvent::Request {
                        peer: self.net_of(from),
                        reply: self.next_reply,
                        payload,
                    };
                    self.app(to).world_mut().write_message(event);
                }
                NetCommand::Respond { reply, response } if reply > u64::MAX - 1_000 => {
                    // A welcome: delivered as the member's join answer.
                    let i = (u64::MAX - reply) as usize;
                    let event = NetEvent::JoinAnswer {
                        token: self.join_tokens[i],
                        host: HOST.parse().expect("host id"),
                        response,
                    };
                    self.members[i].1.world_mut().write_message(event);
                }
                NetCommand::Respond { reply, response } => {
                    let Some((asker, token)) = self.replies.remove(&reply) else {
                        continue;
                    };
                    let to = if asker == usize::MAX {
                        End::Host
                    } else {
                        End::Member(asker)
                    };
                    let event = NetEvent::Response {
                        token,
                        peer: self.net_of(from),
                        response,
                    };
                    self.app(to).world_mut().write_message(event);
                }
                _ => {}
            }
        }
        to_first
    }
}

impl Side for Whatnext {
    fn tick(&mut self, tick: Option<usize>) -> Tick {
        if let Some(tick) = tick {
            move_some(self.host.world_mut(), &self.tracks.clone(), tick);
        }
        let t = Instant::now();
        self.host.update();
        let send = t.elapsed();
        let bytes = self.route_from(End::Host);
        let mut receive = Vec::new();
        for i in 0..self.members.len() {
            let t = Instant::now();
            self.members[i].1.update();
            receive.push(t.elapsed());
            self.route_from(End::Member(i));
        }
        Tick {
            send,
            receive,
            bytes,
        }
    }

    fn check(&mut self) {
        let expected = queue(&mut self.host);
        for (_, app) in &mut self.members {
            assert!(
                queue(app) == expected,
                "a member's queue matches the host's"
            );
        }
    }
}

// ---------------------------------------------------------------- bevy_replicon

fn replicon_app() -> App {
    let mut app = App::new();
    app.add_plugins((
        MinimalPlugins,
        StatesPlugin,
        RepliconPlugins.set(ServerPlugin::new(PostUpdate)),
    ))
    // whatnext's components keep an index through hooks; they need it on both sides
    // (replicon writes a mutation in place, so the index is only kept on insert there).
    .init_resource::<QueueIndex>()
    .replicate::<Track>()
    .replicate::<QueuePosition>();
    app.finish();
    // The same executor as whatnext's apps here, so the figures compare the libraries.
    whatnext_test_support::single_threaded(&mut app);
    app
}

/// `ServerTestAppExt::exchange_with_client`, counting what the server sent.
fn exchange(server: &mut App, client: &mut App) -> usize {
    let client_entity = **client.world().resource::<TestClientEntity>();
    let mut client_messages = client.world_mut().resource_mut::<ClientMessages>();
    let mut server_messages = server.world_mut().resource_mut::<ServerMessages>();
    for (channel, message) in client_messages.drain_sent() {
        server_messages.insert_received(client_entity, channel, message);
    }
    let mut bytes = 0;
    server_messages.retain_sent(|(entity, channel, message)| {
        if *entity == client_entity {
            bytes += message.len();
            client_messages.insert_received(*channel, message.clone());
            false
        } else {
            true
        }
    });
    bytes
}

/// The replicon side: a server with the same 10,000 tracks and `receivers` clients.
struct Replicon {
    server: App,
    clients: Vec<App>,
    tracks: Vec<Entity>,
}

impl Replicon {
    fn new(receivers: usize) -> Self {
        let mut server = replicon_app();
        let mut clients: Vec<App> = (0..receivers).map(|_| replicon_app()).collect();
        for client in &mut clients {
            server.connect_client(client);
        }
        let mut tracks = Vec::new();
        let mut key = None;
        for i in 0..ENTITIES {
            let next = QueueKey::between(key.as_ref(), None);
            key = Some(next.clone());
            tracks.push(
                server
                    .world_mut()
                    .spawn((RepliconReplicated, track(i), QueuePosition(next)))
                    .id(),
            );
        }
        let mut side = Self {
            server,
            clients,
            tracks,
        };
        for _ in 0..3 {
            side.tick(None);
        }
        for client in &mut side.clients {
            assert_eq!(
                queue(client).len() as u64,
                ENTITIES,
                "a client got every entity"
            );
        }
        side
    }
}

impl Side for Replicon {
    fn tick(&mut self, tick: Option<usize>) -> Tick {
        if let Some(tick) = tick {
            move_some(self.server.world_mut(), &self.tracks, tick);
        }
        let t = Instant::now();
        self.server.update();
        let send = t.elapsed();
        let (mut receive, mut bytes) = (Vec::new(), 0);
        for (i, client) in self.clients.iter_mut().enumerate() {
            let sent = exchange(&mut self.server, client);
            if i == 0 {
                bytes = sent;
            }
            let t = Instant::now();
            client.update();
            receive.push(t.elapsed());
        }
        Tick {
            send,
            receive,
            bytes,
        }
    }

    fn check(&mut self) {
        // One more round so the last mutations (sent unreliably, acknowledged) land.
        self.tick(None);
        let expected = queue(&mut self.server);
        for client in &mut self.clients {
            assert!(
                queue(client) == expected,
                "a client's queue matches the server's"
            );
        }
    }
}

/// Runs both libraries' ticks in turns (idle ticks, then busy ones) and returns each one's
/// figures. Turns, not one library after the other: this machine's speed drifts by tens of
/// percent over seconds (the hypervisor), and taking turns gives both sides the same drift.
fn measure(sides: &mut [&mut dyn Side]) -> Vec<Figures> {
    let mut idle: Vec<Vec<Tick>> = sides.iter().map(|_| Vec::new()).collect();
    let mut busy: Vec<Vec<Tick>> = sides.iter().map(|_| Vec::new()).collect();
    for _ in 0..20 {
        for (side, ticks) in sides.iter_mut().zip(&mut idle) {
            ticks.push(side.tick(None));
        }
    }
    for tick in 0..TICKS {
        for (side, ticks) in sides.iter_mut().zip(&mut busy) {
            ticks.push(side.tick(Some(tick)));
        }
    }
    for side in sides.iter_mut() {
        side.check();
    }
    idle.into_iter()
        .zip(busy)
        .map(|(idle, busy)| Figures {
            send: median(busy.iter().map(|t| t.send).collect()),
            receive: median(busy.iter().flat_map(|t| t.receive.clone()).collect()),
            bytes_per_change: busy.iter().map(|t| t.bytes).sum::<usize>() as f64
                / (TICKS as u64 * CHANGING) as f64,
            idle_send: median(idle.iter().map(|t| t.send).collect()),
            idle_receive: median(idle.iter().flat_map(|t| t.receive.clone()).collect()),
        })
        .collect()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    println!(
        "replication, {ENTITIES} entities, {CHANGING} (1%) changing per tick, medians over {TICKS} ticks (release, in-process)"
    );
    println!(
        "{:<10} {:>9} {:>12} {:>12} {:>14} {:>14} {:>14}",
        "", "receivers", "send ms", "receive ms", "bytes/change", "idle send ms", "idle recv ms"
    );
    for receivers in [1, 20] {
        let (mut whatnext, mut replicon) = (Whatnext::new(receivers), Replicon::new(receivers));
        let figures = measure(&mut [&mut whatnext, &mut replicon]);
        for (name, figures) in ["whatnext", "replicon"].into_iter().zip(figures) {
            // Ours is held to replicon's figure; replicon's rows are the reference.
            let target = if name == "whatnext" {
                "at or below replicon"
            } else {
                "(reference)"
            };
            println!(
                "{name:<10} {receivers:>9} {:>12.3} {:>12.3} {:>14.1} {:>14.3} {:>14.3}",
                ms(figures.send),
                ms(figures.receive),
                figures.bytes_per_change,
                ms(figures.idle_send),
                ms(figures.idle_receive),
            );
            println!(
                "figure: diff {name} send, {receivers} receiver(s) | {:.3} ms | {target}",
                ms(figures.send)
            );
            println!(
                "figure: diff {name} receive, {receivers} receiver(s) | {:.3} ms | {target}",
                ms(figures.receive)
            );
            println!(
                "figure: diff {name} bytes per change, {receivers} receiver(s) | {:.1} B | {target}",
                figures.bytes_per_change
            );
        }
    }
}

//! A simulated party: several devices, each a full app (session model, replication, storage
//! on a real redb file), on a simulated relay that links every two devices while both run
//! and neither is cut off. Devices crash (the app is dropped between two frames) and restart
//! (a new app on the same files); they are cut off and healed; requests are lost and
//! delayed. One seeded generator makes every choice, so a seed replays a run.
//!
//! Time: each frame moves the apps' `Time<Real>` by [`PARTY_FRAME`], so the real deadlines
//! (hellos every second, the takeover after [`PARTY_TAKEOVER_AFTER`]) pass in tens of frames.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use bevy::prelude::*;
use bevy::time::TimeUpdateStrategy;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use whatnext_core::prelude::*;
use whatnext_network::{
    ConnectionKind, NetCommand, NetEvent, NetKeys, NetPeerId, PeerLinks, Request,
};
use whatnext_replication::{ReplicationPlugin, TakeoverAfter};
use whatnext_storage::{KEY_FILE, StoragePlugin};

/// How far every app's clock moves in one frame of the party.
pub const PARTY_FRAME: Duration = Duration::from_millis(250);
/// The takeover deadline the party's devices use.
pub const PARTY_TAKEOVER_AFTER: Duration = Duration::from_secs(2);
/// The relay every device "holds a reservation on" (no such process: the party routes).
pub const PARTY_RELAY: &str =
    "/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN";

/// One device of the party.
pub struct Device {
    /// Its data directory (identity key and database).
    pub dir: PathBuf,
    /// Its peer id.
    pub peer: PeerId,
    net: NetPeerId,
    /// The running app; `None` while crashed.
    pub app: Option<App>,
    /// Cut off from the relay (and so from everyone).
    pub cut: bool,
}

/// The devices, the relay between them and what is on its way.
pub struct Party {
    /// The devices, by index.
    pub devices: Vec<Device>,
    rng: StdRng,
    /// Frames so far.
    pub tick: u64,
    in_flight: Vec<(u64, usize, NetEvent)>,
    next_reply: u64,
    /// Reply id → (asker, its token, whether it is a join's hello, who must answer).
    replies: HashMap<u64, (usize, u64, bool, usize)>,
    links: HashSet<(usize, usize)>,
    /// The chance each request or answer is lost.
    pub drop_chance: f64,
    /// The most frames a message is delayed.
    pub max_delay: u64,
}

/// Writes a fixed identity key for device `index`, so a seed gives the same peer ids.
fn write_key(dir: &Path, index: usize) {
    let hex: String = (0..32)
        .map(|b| format!("{:02x}", (index * 37 + b + 1) % 256))
        .collect();
    std::fs::create_dir_all(dir).expect("the device's directory");
    std::fs::write(
        dir.join(KEY_FILE),
        format!("whatnext-identity ed25519 v1\n{hex}\n"),
    )
    .expect("the device's key");
}

/// A device's app on its data directory, as the real app builds it minus the network
/// thread: the party plays the network's part.
fn device_app(dir: &Path) -> App {
    let storage = StoragePlugin::open(dir).expect("the device's storage opens");
    let keys = storage
        .identity()
        .expect("the device's identity")
        .libp2p_keypair();
    let mut app = App::new();
    app.add_plugins(SessionPlugin)
        .add_plugins(storage)
        .add_plugins(ReplicationPlugin)
        .add_plugins(bevy::time::TimePlugin)
        .insert_resource(TimeUpdateStrategy::ManualDuration(PARTY_FRAME))
        .insert_resource(NetKeys(keys))
        .insert_resource(NetworkPresent)
        .insert_resource(TakeoverAfter(PARTY_TAKEOVER_AFTER))
        .insert_resource(WallClock {
            now_ms: 5_000_000,
            frozen: true,
            ..Default::default()
        });
    crate::apps::single_threaded(&mut app);
    app.world_mut().resource_mut::<Relays>().0 = vec![RelayEntry {
        addr: PARTY_RELAY.into(),
        status: RelayStatus::Disconnected,
    }];
    app
}

impl Party {
    /// `count` devices, all running, none in a session; later choices come from `seed`.
    /// Their files live under `root`.
    pub fn new(seed: u64, count: usize, root: &Path) -> Party {
        let devices = (0..count)
            .map(|i| {
                let dir = root.join(format!("device{i}"));
                write_key(&dir, i);
                let app = device_app(&dir);
                let peer = app.world().resource::<LocalPeer>().peer.clone();
                let net = peer.as_str().parse().expect("a real peer id");
                Device {
                    dir,
                    peer,
                    net,
                    app: Some(app),
                    cut: false,
                }
            })
            .collect();
        Party {
            devices,
            rng: StdRng::seed_from_u64(seed),
            tick: 0,
            in_flight: Vec::new(),
            next_reply: 0,
            replies: HashMap::new(),
            links: HashSet::new(),
            drop_chance: 0.0,
            max_delay: 0,
        }
    }

    /// The generator behind every choice, for the schedule's own.
    pub fn rng(&mut self) -> &mut StdRng {
        &mut self.rng
    }

    /// Device `i`'s app, if it runs.
    pub fn app(&mut self, i: usize) -> Option<&mut App> {
        self.devices[i].app.as_mut()
    }

    /// Device `i` sends `action` as its user would (a fresh intent id).
    pub fn act(&mut self, i: usize, action: Action) {
        let tick = self.tick;
        let Some(app) = self.app(i) else { return };
        let author = app.world().resource::<LocalPeer>().peer.clone();
        let counter = {
            let mut c = app.world_mut().resource_mut::<IntentCounter>();
            c.0 += 1;
            c.0
        };
        if std::env::var("WHATNEXT_TRACE").is_ok() {
            let text: String = format!("{action:?}").chars().take(120).collect();
            eprintln!("t{tick}: {i} acts {text}");
        }
        app.world_mut().write_message(Intent {
            id: IntentId { author, counter },
            action,
        });
    }

    /// Device `i` crashes: its app is gone between two frames (what it wrote stays).
    pub fn crash(&mut self, i: usize) {
        if std::env::var("WHATNEXT_TRACE").is_ok() {
            eprintln!("t{}: {i} crashes", self.tick);
        }
        self.devices[i].app = None;
    }

    /// Device `i` starts again on its files.
    pub fn restart(&mut self, i: usize) {
        if self.devices[i].app.is_none() {
            if std::env::var("WHATNEXT_TRACE").is_ok() {
                eprintln!("t{}: {i} restarts", self.tick);
            }
            self.devices[i].app = Some(device_app(&self.devices[i].dir));
        }
    }

    /// Cuts device `i` off from the relay (`true`) or heals it (`false`).
    pub fn cut(&mut self, i: usize, cut: bool) {
        if std::env::var("WHATNEXT_TRACE").is_ok() && self.devices[i].cut != cut {
            eprintln!(
                "t{}: {i} {}",
                self.tick,
                if cut { "cut off" } else { "healed" }
            );
        }
        self.devices[i].cut = cut;
    }

    fn reachable(&self, i: usize) -> bool {
        self.devices[i].app.is_some() && !self.devices[i].cut
    }

    fn index_of(&self, peer: &NetPeerId) -> Option<usize> {
        self.devices.iter().position(|d| d.net == *peer)
    }

    fn later(&mut self) -> u64 {
        self.tick + self.rng.gen_range(0..=self.max_delay)
    }

    fn lost(&mut self) -> bool {
        self.drop_chance > 0.0 && self.rng.gen_bool(self.drop_chance)
    }

    /// Links follow who is reachable; each side hears of a change as the network plugin
    /// would tell it (its `PeerLinks` and a `PeerLink` event). Reservations likewise.
    fn update_links(&mut self) {
        let n = self.devices.len();
        for i in 0..n {
            for j in (i + 1)..n {
                let want = self.reachable(i) && self.reachable(j);
                let have = self.links.contains(&(i, j));
                if want == have {
                    continue;
                }
                if want {
                    self.links.insert((i, j));
                } else {
                    self.links.remove(&(i, j));
                }
                for (me, other) in [(i, j), (j, i)] {
                    let peer = self.devices[other].net;
                    let other_id = self.devices[other].peer.clone();
                    if let Some(app) = self.devices[me].app.as_mut() {
                        let kind = want.then_some(ConnectionKind::Relayed);
                        let mut links = app.world_mut().resource_mut::<PeerLinks>();
                        match kind {
                            Some(kind) => links.0.insert(other_id, kind),
                            None => links.0.remove(&other_id),
                        };
                        app.world_mut()
                            .write_message(NetEvent::PeerLink { peer, kind });
                    }
                }
            }
        }
        // A request whose two ends are no longer linked fails, as libp2p's does when the
        // connection under it closes (the device crashed, or one end was cut off).
        let mut broken: Vec<u64> = self
            .replies
            .iter()
            .filter(|(_, (asker, _, _, responder))| !self.linked(*asker, *responder))
            .map(|(reply, _)| *reply)
            .collect();
        broken.sort_unstable();
        for reply in broken {
            let Some((asker, token, join, responder)) = self.replies.remove(&reply) else {
                continue;
            };
            let peer = self.devices[responder].net;
            let failed = if join {
                NetEvent::JoinFailed {
                    token,
                    code: ErrorCode::Unreachable,
                    message: "the connection closed".into(),
                }
            } else {
                NetEvent::SendFailed {
                    token,
                    peer,
                    error: "the connection closed".into(),
                }
            };
            self.in_flight.push((self.tick, asker, failed));
        }
        for i in 0..n {
            let status = if self.reachable(i) {
                RelayStatus::Reserved
            } else {
                RelayStatus::Disconnected
            };
            if let Some(app) = self.devices[i].app.as_mut() {
                let mut relays = app.world_mut().resource_mut::<Relays>();
                if let Some(entry) = relays.bypass_change_detection().0.first()
                    && entry.status != status
                {
                    relays.0[0].status = status;
                }
            }
        }
    }

    /// One frame: links and reservations follow the cuts and crashes, what is due arrives
    /// (shuffled), then every running device updates once and its commands go on the way.
    pub fn tick(&mut self) {
        self.tick += 1;
        self.update_links();
        let (mut due, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut self.in_flight)
            .into_iter()
            .partition(|(at, _, _)| *at <= self.tick);
        self.in_flight = rest;
        for i in (1..due.len()).rev() {
            let j = self.rng.gen_range(0..=i);
            due.swap(i, j);
        }
        let trace = std::env::var("WHATNEXT_TRACE").is_ok();
        for (_, to, event) in due {
            // Nothing arrives over a connection that closed while it was on its way.
            let Some(event) = self.across_the_link(to, event) else {
                continue;
            };
            if trace {
                let text: String = format!("{event:?}").chars().take(300).collect();
                eprintln!("t{} -> {to}: {text}", self.tick);
            }
            // A crashed device hears nothing; what was on its way to it is gone.
            if let Some(app) = self.devices[to].app.as_mut() {
                app.world_mut().write_message(event);
            }
        }
        for i in 0..self.devices.len() {
            let Some(app) = self.devices[i].app.as_mut() else {
                continue;
            };
            app.update();
            let mut commands: Vec<NetCommand> = app
                .world_mut()
                .resource_mut::<Messages<NetCommand>>()
                .drain()
                .collect();
            // An app's hash maps order its commands differently in every process; in a
            // fixed order the generator's draws, and so the schedule, follow from the seed.
            commands.sort_by_key(order_key);
            if trace {
                let world = app.world_mut();
                let view: Vec<String> = world
                    .query::<(
                        &Session,
                        &Host,
                        Option<&HostTerm>,
                        &CoHosts,
                        Has<SessionAccess>,
                    )>()
                    .iter(world)
                    .map(|(s, h, t, c, access)| {
                        let host: String = h.0.as_str().chars().rev().take(4).collect();
                        let cohosts: Vec<String> =
                            c.0.iter()
                                .map(|c| c.as_str().chars().rev().take(4).collect())
                                .collect();
                        format!(
                            "{} host …{host} term {} cohosts {cohosts:?} access {access}",
                            s.id,
                            t.map_or(0, |t| t.term)
                        )
                    })
                    .collect();
                eprintln!("t{} {i}: {view:?}", self.tick);
            }
            for command in commands {
                if trace {
                    let text: String = format!("{command:?}").chars().take(200).collect();
                    eprintln!("t{} {i} sends {text}", self.tick);
                }
                self.route(i, command);
            }
        }
    }

    /// `event` as it reaches device `to`: as sent while the sender and `to` are still
    /// linked; else an answer becomes its failure and a request is gone (its asker hears of
    /// it when the link's loss fails its reply).
    fn across_the_link(&self, to: usize, event: NetEvent) -> Option<NetEvent> {
        let sender = match &event {
            NetEvent::Request { peer, .. } | NetEvent::Response { peer, .. } => self.index_of(peer),
            NetEvent::JoinAnswer { host, .. } => self.index_of(host),
            _ => None,
        };
        let Some(sender) = sender else {
            return Some(event);
        };
        if self.linked(sender, to) {
            return Some(event);
        }
        match event {
            NetEvent::Response { token, peer, .. } => Some(NetEvent::SendFailed {
                token,
                peer,
                error: "the connection closed".into(),
            }),
            NetEvent::JoinAnswer { token, .. } => Some(NetEvent::JoinFailed {
                token,
                code: ErrorCode::Unreachable,
                message: "the connection closed".into(),
            }),
            _ => None,
        }
    }

    fn deliver_request(
        &mut self,
        from: usize,
        to: usize,
        token: u64,
        join: bool,
        payload: Vec<u8>,
    ) {
        self.next_reply += 1;
        self.replies
            .insert(self.next_reply, (from, token, join, to));
        let at = self.later();
        let event = NetEvent::Request {
            peer: self.devices[from].net,
            reply: self.next_reply,
            payload,
        };
        self.in_flight.push((at, to, event));
    }

    fn linked(&self, a: usize, b: usize) -> bool {
        self.links.contains(&(a.min(b), a.max(b)))
    }

    /// What one command from device `from` causes.
    fn route(&mut self, from: usize, command: NetCommand) {
        match command {
            NetCommand::Send {
                token,
                peer,
                request,
            }
            | NetCommand::Publish {
                token,
                peer,
                request,
            } => {
                let to = self.index_of(&peer);
                let at = self.later();
                match (to, request) {
                    (Some(to), Request::Payload(payload))
                        if self.linked(from, to) && !self.lost() =>
                    {
                        self.deliver_request(from, to, token, false, payload);
                    }
                    // The clock reading is the network thread's; the party leaves it be.
                    (_, Request::Time) => {}
                    _ => {
                        let error = "not reachable".to_owned();
                        self.in_flight.push((
                            at,
                            from,
                            NetEvent::SendFailed { token, peer, error },
                        ));
                    }
                }
            }
            NetCommand::JoinViaUrl {
                token, host, hello, ..
            } => {
                let to = self.index_of(&host);
                let at = self.later();
                match to {
                    Some(to) if to != from && self.reachable(from) && self.reachable(to) => {
                        self.deliver_request(from, to, token, true, hello);
                    }
                    _ => {
                        let failed = NetEvent::JoinFailed {
                            token,
                            code: ErrorCode::Unreachable,
                            message: "the host is not reachable".into(),
                        };
                        self.in_flight.push((at, from, failed));
                    }
                }
            }
            NetCommand::Respond { reply, response } => {
                let Some((asker, token, join, _)) = self.replies.remove(&reply) else {
                    return;
                };
                let at = self.later();
                let peer = self.devices[from].net;
                let arrives = self.linked(from, asker) && !self.lost();
                let event = match (arrives, join) {
                    (true, true) => NetEvent::JoinAnswer {
                        token,
                        host: peer,
                        response,
                    },
                    (true, false) => NetEvent::Response {
                        token,
                        peer,
                        response,
                    },
                    (false, true) => NetEvent::JoinFailed {
                        token,
                        code: ErrorCode::Unreachable,
                        message: "the answer was lost".into(),
                    },
                    (false, false) => NetEvent::SendFailed {
                        token,
                        peer,
                        error: "the answer was lost".into(),
                    },
                };
                self.in_flight.push((at, asker, event));
            }
            // Codes, relays, strikes: nothing the party models.
            _ => {}
        }
    }
}

/// Where a command goes, as a sort key: commands to one peer keep their order.
fn order_key(command: &NetCommand) -> (u8, String, u64) {
    match command {
        NetCommand::Send { peer, .. } | NetCommand::Publish { peer, .. } => {
            (0, peer.to_string(), 0)
        }
        NetCommand::JoinViaUrl { host, .. } => (1, host.to_string(), 0),
        NetCommand::Respond { reply, .. } => (2, String::new(), *reply),
        _ => (3, String::new(), 0),
    }
}

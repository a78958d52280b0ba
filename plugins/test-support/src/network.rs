//! A simulated network between one host app and one member app. Requests and answers travel
//! as `NetCommand`s out of one app and `NetEvent`s into the other, through a link
//! conditioner: each message may be lost (the sender sees `SendFailed`), delayed by up to
//! `max_delay` ticks, duplicated, and what arrives in one tick arrives shuffled. Every choice
//! comes from one seeded generator, so a seed replays a schedule exactly.

use std::collections::HashMap;

use bevy::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use whatnext_network::{NetCommand, NetEvent, NetPeerId, Request};

/// The host app's peer id (a real one: the network speaks in parsed peer ids).
pub const HOST: &str = "12D3KooW9tHTtS3inCZiYykw4u5G4frbjVFqhkmJX12gSNCVeH3e";
/// The member app's peer id.
pub const MEMBER: &str = "12D3KooW9xCm2jWjNVrwh51SWCQBMYdMyeU3NpT85QhLVkF6PcNM";
/// A third peer id, for a stranger that is no member.
pub const STRANGER: &str = "12D3KooWA284B2yjxoAAqAFwwVj6eRQ8DogF3t8wdpMzZ8Hh8wh4";

/// One of the constant peer ids above, as the network's type.
pub fn net_id(peer: &str) -> NetPeerId {
    peer.parse().expect("the test peer ids are valid")
}
/// The reply id of the member's welcome: the host's answer to it is delivered as the
/// member's `JoinAnswer` (to the join the member started, see [`member_joins`]), never lost.
pub const WELCOME_REPLY: u64 = u64::MAX;

/// The secret in the link the simulated member joins by.
pub const SIMULATED_SECRET: &str = "simulated";

/// The member starts joining the host's session `session` by link, as a user would: the
/// welcome the host then sends with [`WELCOME_REPLY`] answers this join (a member takes no
/// welcome it did not ask for). Updates `member` once, and puts its hello on `net`.
pub fn member_joins(
    member: &mut App,
    net: &mut Network,
    session: &whatnext_core::prelude::SessionId,
) {
    use whatnext_core::prelude::*;
    let invite = whatnext_core::invite::InviteUrl {
        host: PeerId::new(HOST),
        relay: None,
        session: session.clone(),
        key: Some(SIMULATED_SECRET.into()),
    };
    member.world_mut().write_message(Intent {
        id: IntentId {
            author: PeerId::new(MEMBER),
            counter: 0,
        },
        action: Action::Local(LocalAction::JoinSession {
            invite: invite.to_string(),
        }),
    });
    member.update();
    let commands: Vec<NetCommand> = member
        .world_mut()
        .resource_mut::<Messages<NetCommand>>()
        .drain()
        .collect();
    for command in commands {
        net.route(Side::Member, command);
    }
}

/// One end of the simulated link.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Side {
    /// The app that hosts the session (`HOST`).
    Host,
    /// The app that joined it (`MEMBER`).
    Member,
}

impl Side {
    /// The other end.
    pub fn other(self) -> Side {
        match self {
            Side::Host => Side::Member,
            Side::Member => Side::Host,
        }
    }

    /// This end's peer id.
    pub fn peer(self) -> NetPeerId {
        match self {
            Side::Host => net_id(HOST),
            Side::Member => net_id(MEMBER),
        }
    }
}

/// Messages in flight, who waits for which answer, and the link conditioner's knobs.
pub struct Network {
    rng: StdRng,
    /// The current tick; `tick` advances it.
    pub tick: u64,
    /// Messages on their way: (due tick, receiving side, event).
    pub in_flight: Vec<(u64, Side, NetEvent)>,
    next_reply: u64,
    replies: HashMap<u64, (Side, u64)>,
    /// The chance each request or answer is lost (1.0 cuts the link).
    pub drop_chance: f64,
    /// The most ticks a message is delayed; different delays reorder messages.
    pub max_delay: u64,
    /// The chance a delivered request arrives twice (both answers go back to the asker).
    pub duplicate_chance: f64,
    /// The token of the member's join, which the host's welcome answers.
    join_token: u64,
}

impl Network {
    /// A reliable, instant network whose later choices come from `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            rng: StdRng::seed_from_u64(seed),
            tick: 0,
            in_flight: Vec::new(),
            next_reply: 0,
            replies: HashMap::new(),
            drop_chance: 0.0,
            max_delay: 0,
            duplicate_chance: 0.0,
            join_token: 0,
        }
    }

    fn later(&mut self) -> u64 {
        self.tick + self.rng.gen_range(0..=self.max_delay)
    }

    fn dropped(&mut self) -> bool {
        self.rng.gen_bool(self.drop_chance)
    }

    /// Draws only when duplication is on, so schedules without it stay as they were.
    fn duplicated(&mut self) -> bool {
        self.duplicate_chance > 0.0 && self.rng.gen_bool(self.duplicate_chance)
    }

    /// Delivers a request from `from` to the other side at `at`, with a fresh reply id.
    /// Only session payloads reach the app; the network thread answers the rest itself
    /// (the clock reading), which this simulation leaves unanswered.
    fn deliver_request(&mut self, at: u64, from: Side, token: u64, request: &Request) {
        self.next_reply += 1;
        self.replies.insert(self.next_reply, (from, token));
        if let Request::Payload(payload) = request {
            let event = NetEvent::Request {
                peer: from.peer(),
                reply: self.next_reply,
                payload: payload.clone(),
            };
            self.in_flight.push((at, from.other(), event));
        }
    }

    /// Takes one command an app sent and puts what it causes on the way.
    pub fn route(&mut self, from: Side, command: NetCommand) {
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
                let at = self.later();
                if self.dropped() {
                    let error = "timed out".to_owned();
                    self.in_flight
                        .push((at, from, NetEvent::SendFailed { token, peer, error }));
                } else {
                    self.deliver_request(at, from, token, &request);
                    if self.duplicated() {
                        let again = self.later();
                        self.deliver_request(again, from, token, &request);
                    }
                }
            }
            NetCommand::Respond {
                reply: WELCOME_REPLY,
                response,
            } => {
                // The welcome itself is delivered; the chaos starts after joining.
                let event = NetEvent::JoinAnswer {
                    token: self.join_token,
                    host: net_id(HOST),
                    response,
                };
                self.in_flight.push((self.tick, Side::Member, event));
            }
            NetCommand::JoinViaUrl { token, .. } => self.join_token = token,
            NetCommand::Respond { reply, response } => {
                let Some((asker, token)) = self.replies.remove(&reply) else {
                    return;
                };
                let at = self.later();
                let event = if self.dropped() {
                    NetEvent::SendFailed {
                        token,
                        peer: from.peer(),
                        error: "lost".into(),
                    }
                } else {
                    NetEvent::Response {
                        token,
                        peer: from.peer(),
                        response,
                    }
                };
                self.in_flight.push((at, asker, event));
            }
            _ => {}
        }
    }
}

/// One frame of both apps, and the network between them: what is due arrives (shuffled),
/// then the host and the member each update once and their commands go on the way.
/// `WHATNEXT_TRACE=1` prints every delivery.
pub fn tick(host: &mut App, member: &mut App, net: &mut Network) {
    net.tick += 1;
    let due: Vec<(u64, Side, NetEvent)> = {
        let (now, rest): (Vec<_>, Vec<_>) = net
            .in_flight
            .drain(..)
            .partition(|(at, _, _)| *at <= net.tick);
        net.in_flight = rest;
        now
    };
    // Reorder what arrives in the same frame, too.
    let mut due = due;
    for i in (1..due.len()).rev() {
        let j = net.rng.gen_range(0..=i);
        due.swap(i, j);
    }
    let trace = std::env::var("WHATNEXT_TRACE").is_ok();
    for (_, side, event) in due {
        if trace {
            let text: String = format!("{event:?}").chars().take(400).collect();
            eprintln!("t{} -> {side:?}: {text}", net.tick);
        }
        let target = if side == Side::Host {
            &mut *host
        } else {
            &mut *member
        };
        target.world_mut().write_message(event);
    }
    for (side, app) in [(Side::Host, &mut *host), (Side::Member, &mut *member)] {
        app.update();
        let commands: Vec<NetCommand> = app
            .world_mut()
            .resource_mut::<Messages<NetCommand>>()
            .drain()
            .collect();
        for command in commands {
            net.route(side, command);
        }
    }
}

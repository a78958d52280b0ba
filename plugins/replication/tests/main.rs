//! Convergence under stress: a host and a member, each a real Bevy app with `SessionPlugin`
//! and `ReplicationPlugin`, joined by a simulated network that delays, reorders and drops
//! messages and cuts the link for a while. For 1,000 seeded schedules the member must end
//! with exactly the host's session state. A failing seed is printed, so it can be replayed.

use bevy::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use whatnext_core::prelude::*;
use whatnext_core::session::apply_intent;
use whatnext_network::{ConnectionKind, NetCommand, NetEvent, PeerLinks};
use whatnext_replication::protocol::{Snapshot, Welcome};
use whatnext_replication::{Members, PendingWelcomes, Registry};
use whatnext_test_support::{
    HOST, MEMBER, Network, SIMULATED_SECRET, STRANGER, WELCOME_REPLY, member_joins, net_id,
    replicating_app, session_state, tick,
};

mod admission;
mod failover;
mod fuzz;
mod hostile_members;
#[path = "../../core/tests/mutate.rs"]
mod mutate;
mod own_changes;
mod versions;
mod wire_ids;

/// A host app with a session `id` it created, updated once.
fn hosting(id: &str) -> App {
    let mut host = replicating_app(HOST);
    let create = Intent {
        id: IntentId {
            author: PeerId::new(HOST),
            counter: 0,
        },
        action: Action::Local(LocalAction::CreateSession {
            session_id: SessionId(id.into()),
            name: id.into(),
        }),
    };
    apply_intent(host.world_mut(), &create).expect("create");
    host.update();
    host
}

fn host_acts(host: &mut App, rng: &mut StdRng, counter: &mut u64, next_track: &mut u64) {
    let tracks: Vec<TrackId> = host
        .world()
        .resource::<QueueIndex>()
        .in_order()
        .map(|(id, _)| id)
        .collect();
    let pick = |rng: &mut StdRng| tracks.get(rng.gen_range(0..tracks.len().max(1))).copied();
    let action = match rng.gen_range(0..10) {
        0..=3 => {
            *next_track += 1;
            SessionAction::AddTrack {
                track_id: TrackId(*next_track),
                title: format!("T{next_track}"),
                artist: "A".into(),
                duration_ms: 60_000,
                media: None,
            }
        }
        4 => match pick(rng) {
            Some(track_id) => SessionAction::RemoveTrack { track_id },
            None => return,
        },
        5 | 6 => match pick(rng) {
            Some(track_id) => SessionAction::MoveTrack {
                track_id,
                after: pick(rng).filter(|a| *a != track_id),
            },
            None => return,
        },
        7 => SessionAction::Play,
        8 => SessionAction::Pause,
        _ => SessionAction::Next,
    };
    *counter += 1;
    let intent = Intent {
        id: IntentId {
            author: PeerId::new(HOST),
            counter: *counter,
        },
        action: Action::Session(action),
    };
    let _ = apply_intent(host.world_mut(), &intent);
}

/// The member adds a track now and then, and sometimes tries what a guest may not (pause):
/// its additions show pending at once, then must end confirmed, exactly once.
fn member_acts(member: &mut App, rng: &mut StdRng, counter: &mut u64) {
    *counter += 1;
    let action = if rng.gen_bool(0.8) {
        SessionAction::AddTrack {
            track_id: TrackId(1_000_000 + *counter),
            title: format!("M{counter}"),
            artist: "G".into(),
            duration_ms: 60_000,
            media: None,
        }
    } else {
        SessionAction::Pause
    };
    member.world_mut().write_message(Intent {
        id: IntentId {
            author: PeerId::new(MEMBER),
            counter: *counter,
        },
        action: Action::Session(action),
    });
}

fn run_schedule(seed: u64) -> Result<(), String> {
    run_schedule_with(seed, 0.0)
}

/// One seeded schedule; `duplicate_chance` makes the chaotic network deliver some requests
/// twice (0.0: never, and the schedule is exactly as without the knob).
fn run_schedule_with(seed: u64, duplicate_chance: f64) -> Result<(), String> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut host = replicating_app(HOST);
    let mut member = replicating_app(MEMBER);
    let mut counter = 0;
    let mut next_track = 0;
    let create = Intent {
        id: IntentId {
            author: PeerId::new(HOST),
            counter: 0,
        },
        action: Action::Local(LocalAction::CreateSession {
            session_id: SessionId("SIM".into()),
            name: "Sim".into(),
        }),
    };
    apply_intent(host.world_mut(), &create).map_err(|e| e.to_string())?;
    for _ in 0..rng.gen_range(0..5) {
        host_acts(&mut host, &mut rng, &mut counter, &mut next_track);
    }
    let mut net = Network::new(seed ^ 0x5eed);
    host.update();
    host.world_mut()
        .resource_mut::<Members>()
        .0
        .insert(PeerId::new(MEMBER));
    // What the network plugin does on admission: the member becomes a participant, and
    // each side sees a link to the other.
    host.world_mut().spawn((
        Participant {
            peer: PeerId::new(MEMBER),
            display_name: "Member".into(),
            display: false,
        },
        Presence {
            online: true,
            connection: Connection::Relayed,
        },
        NetId(rng.r#gen()),
        Replicated,
    ));
    member
        .world_mut()
        .resource_mut::<PeerLinks>()
        .0
        .insert(PeerId::new(HOST), ConnectionKind::Relayed);
    let mut member_counter = 0;
    member_joins(&mut member, &mut net, &SessionId("SIM".into()));
    let welcome = Welcome {
        protocol: host.world().resource::<Registry>().protocol_hash(),
        session: SessionId("SIM".into()),
        name: "Sim".into(),
        host: PeerId::new(HOST),
        term: 0,
        snapshot: Snapshot::default(),
        rejoin: None,
        // As a host that checked the member's link would prove it.
        proof: Some(whatnext_core::invite::welcome_proof(
            SIMULATED_SECRET,
            &PeerId::new(MEMBER),
        )),
    };
    host.world_mut().resource_mut::<PendingWelcomes>().0.push((
        WELCOME_REPLY,
        PeerId::new(MEMBER),
        welcome,
    ));
    tick(&mut host, &mut member, &mut net);
    // Chaos: random delays and drops, and now and then the link is cut for a while.
    net.drop_chance = rng.gen_range(0.0..0.3);
    net.duplicate_chance = duplicate_chance;
    net.max_delay = rng.gen_range(0..6);
    for step in 0..40 {
        if rng.gen_bool(0.6) {
            host_acts(&mut host, &mut rng, &mut counter, &mut next_track);
        }
        if rng.gen_bool(0.3) {
            member_acts(&mut member, &mut rng, &mut member_counter);
        }
        if step % 13 == 7 && rng.gen_bool(0.3) {
            net.drop_chance = 1.0; // cut
        } else if net.drop_chance == 1.0 && rng.gen_bool(0.3) {
            net.drop_chance = rng.gen_range(0.0..0.3); // back
        }
        tick(&mut host, &mut member, &mut net);
    }
    // Calm: a reliable network. The host has nothing new to say; a member that lost
    // updates must still catch up (the host resends the latest update to it).
    net.drop_chance = 0.0;
    net.duplicate_chance = 0.0;
    net.max_delay = 2;
    for _ in 0..60 {
        tick(&mut host, &mut member, &mut net);
        let delivered = member.world().resource::<Outbox>().0.is_empty();
        if net.in_flight.is_empty()
            && delivered
            && session_state(&mut host) == session_state(&mut member)
        {
            let titles: Vec<String> = session_state(&mut host)
                .map(|(s, _)| s.queue.into_iter().map(|t| t.title).collect())
                .unwrap_or_default();
            let unique: std::collections::HashSet<&String> = titles.iter().collect();
            if unique.len() != titles.len() {
                return Err(format!("seed {seed}: a track twice in {titles:?}"));
            }
            return Ok(());
        }
    }
    Err(format!(
        "seed {seed}: diverged\nhost:   {:?}\nmember: {:?}",
        session_state(&mut host),
        session_state(&mut member)
    ))
}

/// Runs the schedule of the seed in `WHATNEXT_SEED`, if set, and panics with its failure.
fn replay_seed_from_the_environment(run: fn(u64) -> Result<(), String>) {
    if let Some(seed) = std::env::var("WHATNEXT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        run(seed).unwrap_or_else(|e| panic!("{e}"));
    }
}

/// The failures of the schedules of seeds `0..count`, on two threads: this machine has two
/// cores, and each schedule is independent.
fn failures_over_seeds(count: u64, run: fn(u64) -> Result<(), String>) -> Vec<String> {
    std::thread::scope(|scope| {
        let halves: Vec<_> = (0..2u64)
            .map(|half| {
                scope.spawn(move || {
                    (0..count.div_ceil(2))
                        .map(|i| i * 2 + half)
                        .filter(|seed| *seed < count)
                        .filter_map(|seed| run(seed).err())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        halves
            .into_iter()
            .flat_map(|h| h.join().expect("schedules"))
            .collect()
    })
}

/// `WHATNEXT_SEED=44 cargo nextest run -p whatnext-replication replay` replays one schedule.
#[test]
fn replay_one_schedule_from_the_environment() {
    replay_seed_from_the_environment(run_schedule);
}

#[test]
fn every_member_ends_with_exactly_the_authoritys_state_over_1000_seeded_schedules() {
    let failures = failures_over_seeds(1000, run_schedule);
    assert!(
        failures.is_empty(),
        "{} of 1000 schedules diverged; first: {}",
        failures.len(),
        failures[0]
    );
}

#[test]
fn members_converge_when_requests_arrive_twice() {
    let failures: Vec<String> = (0..100u64)
        .filter_map(|seed| run_schedule_with(seed, 0.2).err())
        .collect();
    assert!(
        failures.is_empty(),
        "{} of 100 schedules diverged with duplicates; first: {}",
        failures.len(),
        failures[0]
    );
}

/// Fuzz-style: random bytes that happen to decode as session requests, and well-formed but
/// unwelcome requests (updates, intents, resyncs), from a peer that is not a member: the host
/// neither panics nor changes anything.
#[test]
fn requests_from_strangers_change_nothing_whatever_they_carry() {
    use whatnext_replication::protocol::{Change, SessionRequest, Update, encode};
    let mut rng = StdRng::seed_from_u64(99);
    let mut host = hosting("F");
    let before = session_state(&mut host);
    let mut asked = 0;
    for i in 0..3_000u64 {
        let request = match i % 4 {
            // Random bytes reach the app as a payload: most do not decode (refused and
            // counted against the peer), a few decode as some request.
            0 => Ok((0..rng.gen_range(0..48)).map(|_| rng.r#gen()).collect()),
            1 => encode(&SessionRequest::Update(Update {
                epoch: rng.r#gen(),
                seq: rng.r#gen(),
                changes: vec![Change::Despawn {
                    net_id: rng.r#gen(),
                }],
            })),
            2 => encode(&SessionRequest::Intent(Intent {
                id: IntentId {
                    author: PeerId::new("stranger"),
                    counter: i,
                },
                action: Action::Session(SessionAction::AddTrack {
                    track_id: TrackId(i),
                    title: "sneaky".into(),
                    artist: String::new(),
                    duration_ms: 1,
                    media: None,
                }),
            })),
            _ => encode(&SessionRequest::Resync {
                epoch: rng.r#gen(),
                after: rng.r#gen(),
            }),
        };
        let Ok(payload) = request else {
            panic!("a request did not encode");
        };
        asked += 1;
        host.world_mut().write_message(NetEvent::Request {
            peer: net_id(STRANGER),
            reply: i,
            payload,
        });
        host.update();
        let _ = host
            .world_mut()
            .resource_mut::<Messages<NetCommand>>()
            .drain()
            .count();
    }
    assert_eq!(asked, 3_000);
    assert_eq!(
        session_state(&mut host),
        before,
        "a stranger changed the session"
    );
}

/// A welcome this device did not ask for (no join of its own, no session whose host or
/// newer host sent it) changes nothing: a stranger cannot put a device into its party. A
/// real host's real welcome, handed to a member that never joined.
#[test]
fn a_welcome_nobody_asked_for_puts_no_device_into_a_party() {
    let mut host = hosting("W");
    let welcome = Welcome {
        protocol: host.world().resource::<Registry>().protocol_hash(),
        session: SessionId("W".into()),
        name: "W".into(),
        host: PeerId::new(HOST),
        term: 0,
        snapshot: Snapshot::default(),
        rejoin: None,
        proof: None,
    };
    host.world_mut()
        .resource_mut::<PendingWelcomes>()
        .0
        .push((7, PeerId::new(MEMBER), welcome));
    host.update();
    let response = host
        .world_mut()
        .resource_mut::<Messages<NetCommand>>()
        .drain()
        .find_map(|c| match c {
            NetCommand::Respond { reply: 7, response } => Some(response),
            _ => None,
        })
        .expect("the host sends the welcome with its snapshot");
    let mut member = replicating_app(MEMBER);
    member.world_mut().write_message(NetEvent::JoinAnswer {
        token: 12_345,
        host: net_id(HOST),
        response,
    });
    member.update();
    member.update();
    assert_eq!(session_state(&mut member), None, "the device stays out");
}

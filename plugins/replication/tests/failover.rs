//! The party outlives its host, over many seeded schedules: three devices (a host, a co-host,
//! a guest), each a full app on its own redb file, on a simulated relay. Devices crash and
//! restart, are cut off and healed, requests are lost and delayed, and everyone adds tracks.
//! Checked every frame: no two devices host the same term. Checked at the end, once every
//! device runs and is reachable again: exactly one host, everyone in the same session with
//! the same state, nothing waiting in any outbox, no track twice.

use std::collections::HashMap;

use rand::Rng;
use whatnext_core::prelude::*;
use whatnext_test_support::{Party, session_state};

const HOST: usize = 0;
const COHOST: usize = 1;
const GUEST: usize = 2;
/// Frames of chaos (a frame is `PARTY_FRAME`, a quarter second): about 40 s of a party.
const CHAOS_FRAMES: usize = 160;
/// The most frames the calm after it may take to settle (a minute).
const CALM_FRAMES: usize = 240;

/// Where the devices keep their files: memory when the machine has it (a frame's write
/// syncs to disk, and a thousand schedules write a lot), else the temp directory.
fn scratch() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("whatnext-failover")
        .tempdir_in("/dev/shm")
        .or_else(|_| tempfile::tempdir())
        .expect("a scratch directory")
}

/// Device `i`'s view: (session id, host, term) if in a session.
fn view(party: &mut Party, i: usize) -> Option<(SessionId, PeerId, u64)> {
    let app = party.app(i)?;
    let world = app.world_mut();
    let mut query = world.query::<(&Session, &Host, Option<&HostTerm>)>();
    query
        .iter(world)
        .next()
        .map(|(s, h, t)| (s.id.clone(), h.0.clone(), t.map_or(0, |t| t.term)))
}

fn has_access(party: &mut Party, i: usize) -> bool {
    party.app(i).is_some_and(|app| {
        let world = app.world_mut();
        world.query::<&SessionAccess>().iter(world).next().is_some()
    })
}

fn outbox_len(party: &mut Party, i: usize) -> usize {
    party
        .app(i)
        .map_or(0, |app| app.world().resource::<Outbox>().0.len())
}

/// Runs frames until `done` or `limit` frames; whether it got there.
fn settle(party: &mut Party, limit: usize, mut done: impl FnMut(&mut Party) -> bool) -> bool {
    for _ in 0..limit {
        party.tick();
        if done(party) {
            return true;
        }
    }
    false
}

/// Every device that hosts claims its term; two devices claiming one term is split brain.
fn check_terms(party: &mut Party, claims: &mut HashMap<u64, PeerId>) -> Result<(), String> {
    for i in 0..party.devices.len() {
        let me = party.devices[i].peer.clone();
        if let Some((_, host, term)) = view(party, i)
            && host == me
        {
            let holder = claims.entry(term).or_insert_with(|| me.clone());
            if *holder != me {
                return Err(format!(
                    "two hosts of term {term}: {holder} and {me} (frame {})",
                    party.tick
                ));
            }
        }
    }
    Ok(())
}

fn run_failover_schedule(seed: u64) -> Result<(), String> {
    let root = scratch();
    let mut party = Party::new(seed, 3, root.path());
    let fail = |what: &str| format!("seed {seed}: {what}");
    let session = SessionId(format!("FAIL{seed}"));
    party.tick();
    party.act(
        HOST,
        Action::Local(LocalAction::CreateSession {
            session_id: session.clone(),
            name: "Failover".into(),
        }),
    );
    let mut url = None;
    settle(&mut party, 20, |p| {
        url = p
            .app(HOST)
            .and_then(|app| app.world().resource::<SessionInvite>().url.clone());
        url.as_ref().is_some_and(|u| u.contains("relay="))
    });
    let url = url.ok_or_else(|| fail("no invite link"))?;
    for joiner in [COHOST, GUEST] {
        party.act(
            joiner,
            Action::Local(LocalAction::JoinSession {
                invite: url.clone(),
            }),
        );
    }
    if !settle(&mut party, 50, |p| {
        view(p, COHOST).is_some() && view(p, GUEST).is_some()
    }) {
        return Err(fail("the co-host and the guest did not get in"));
    }
    let cohost_peer = party.devices[COHOST].peer.clone();
    party.act(
        HOST,
        Action::Session(SessionAction::AddCohost { peer: cohost_peer }),
    );
    if !settle(&mut party, 50, |p| has_access(p, COHOST)) {
        return Err(fail("the co-host never got the session's access"));
    }

    // Chaos.
    let mut claims: HashMap<u64, PeerId> = HashMap::new();
    let mut next_track = 0u64;
    party.drop_chance = party.rng().gen_range(0.0..0.2);
    party.max_delay = party.rng().gen_range(0..4);
    for _ in 0..CHAOS_FRAMES {
        let roll: f64 = party.rng().gen_range(0.0..1.0);
        let who = party.rng().gen_range(0..3);
        match roll {
            r if r < 0.10 => {
                next_track += 1;
                party.act(
                    who,
                    Action::Session(SessionAction::AddTrack {
                        track_id: TrackId(seed << 16 | next_track),
                        title: format!("T{next_track}"),
                        artist: format!("by {who}"),
                        duration_ms: 60_000,
                        media: None,
                    }),
                );
            }
            r if r < 0.12 => party.crash(who),
            r if r < 0.17 => party.restart(who),
            r if r < 0.19 => party.cut(who, true),
            r if r < 0.24 => party.cut(who, false),
            _ => {}
        }
        party.tick();
        check_terms(&mut party, &mut claims).map_err(|e| fail(&e))?;
    }

    // Calm: everyone back, a reliable network; the party must settle on one host.
    party.drop_chance = 0.0;
    party.max_delay = 1;
    for i in 0..3 {
        party.restart(i);
        party.cut(i, false);
    }
    let mut last = String::new();
    for _ in 0..CALM_FRAMES {
        party.tick();
        check_terms(&mut party, &mut claims).map_err(|e| fail(&e))?;
        let views: Vec<_> = (0..3).map(|i| view(&mut party, i)).collect();
        let hosts: Vec<&PeerId> = views.iter().flatten().map(|(_, h, _)| h).collect();
        let one_host = views.iter().all(|v| {
            v.as_ref()
                .is_some_and(|(s, h, _)| *s == session && Some(&h) == hosts.first())
        });
        let states: Vec<_> = (0..3)
            .map(|i| party.app(i).and_then(session_state))
            .collect();
        let same = states.windows(2).all(|w| w[0] == w[1]);
        let quiet = (0..3).all(|i| outbox_len(&mut party, i) == 0);
        if one_host && same && quiet {
            let titles: Vec<String> = states[0]
                .as_ref()
                .map(|(s, _)| s.queue.iter().map(|t| t.title.clone()).collect())
                .unwrap_or_default();
            let unique: std::collections::HashSet<&String> = titles.iter().collect();
            if unique.len() != titles.len() {
                return Err(fail(&format!("a track twice in {titles:?}")));
            }
            if states[0]
                .as_ref()
                .is_some_and(|(s, _)| s.queue.iter().any(|t| t.pending))
            {
                return Err(fail("a track still pending after everything settled"));
            }
            return Ok(());
        }
        let summary: Vec<String> = states
            .iter()
            .zip(&views)
            .map(|(state, view)| {
                let Some((s, people)) = state else {
                    return "no session".to_owned();
                };
                let host: String = view
                    .as_ref()
                    .map(|(_, h, t)| format!("…{} t{t}", &h.as_str()[h.as_str().len() - 4..]))
                    .unwrap_or_default();
                let queue: Vec<String> = s
                    .queue
                    .iter()
                    .map(|t| format!("{}{}", t.title, if t.pending { "*" } else { "" }))
                    .collect();
                format!(
                    "{host} {queue:?} owner …{} {:?} people {}",
                    &s.playback_owner.as_str()[s.playback_owner.as_str().len() - 4..],
                    s.playback.state,
                    people.len()
                )
            })
            .collect();
        last = format!(
            "outboxes {:?}; {summary:?}",
            (0..3)
                .map(|i| outbox_len(&mut party, i))
                .collect::<Vec<_>>()
        );
    }
    Err(fail(&format!("never settled: {last}")))
}

/// `WHATNEXT_SEED=44 cargo nextest run -p whatnext-replication replay_one_failover` replays
/// one schedule.
#[test]
fn replay_one_failover_schedule_from_the_environment() {
    crate::replay_seed_from_the_environment(run_failover_schedule);
}

#[test]
fn through_crashes_restarts_and_partitions_one_host_per_term_and_everyone_converges_over_1000_schedules()
 {
    let count: u64 = std::env::var("WHATNEXT_FAILOVER_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    let failures = crate::failures_over_seeds(count, run_failover_schedule);
    let short: Vec<String> = failures
        .iter()
        .map(|f| f.chars().take(240).collect())
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {count} schedules failed: {short:#?}\nfirst: {}",
        failures.len(),
        failures[0]
    );
}

/// Two co-hosts cut off from the host and from each other both take over: the first in
/// line and the second take different terms, so no term has two hosts, and the higher one
/// stays host once they meet.
#[test]
fn two_cohosts_that_take_over_apart_take_different_terms() {
    use bevy::prelude::{Entity, With};
    use whatnext_replication::TakeoverAfter;
    use whatnext_test_support::{Author, HOST, MEMBER, STRANGER, replicating_app};
    let term_after_taking_over = |me: &str, line: [&str; 2]| -> (PeerId, u64) {
        let mut app = replicating_app(me);
        Author::new(me)
            .act(
                &mut app,
                Action::Local(LocalAction::CreateSession {
                    session_id: SessionId("APART".into()),
                    name: "Apart".into(),
                }),
            )
            .expect("create");
        app.insert_resource(TakeoverAfter(std::time::Duration::from_millis(10)));
        app.world_mut().resource_mut::<Relays>().0 = vec![RelayEntry {
            addr: whatnext_test_support::PARTY_RELAY.into(),
            status: RelayStatus::Reserved,
        }];
        // The session as a co-host holds it: someone else hosts, and this device is in line.
        let world = app.world_mut();
        let session = world
            .query_filtered::<Entity, With<Session>>()
            .single(world)
            .expect("the session");
        world.entity_mut(session).insert((
            Host(PeerId::new(HOST)),
            CoHosts(line.iter().map(|p| PeerId::new(*p)).collect()),
        ));
        for _ in 0..60 {
            app.update();
        }
        let world = app.world_mut();
        let (host, term) = world
            .query::<(&Host, Option<&HostTerm>)>()
            .single(world)
            .expect("the session");
        (host.0.clone(), term.map_or(0, |t| t.term))
    };
    let first = term_after_taking_over(STRANGER, [STRANGER, MEMBER]);
    let second = term_after_taking_over(MEMBER, [STRANGER, MEMBER]);
    assert_eq!(first, (PeerId::new(STRANGER), 1), "the first in line");
    assert_eq!(second, (PeerId::new(MEMBER), 2), "the second in line");
}

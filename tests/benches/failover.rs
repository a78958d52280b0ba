//! Prints how long a party is without a host that confirms guests' changes, with real
//! processes and a relay on loopback (every byte through the relay): from the host's crash
//! (SIGKILL) to the new host confirming a guest's track, and the same from a host's clean
//! `session.leave`. p50 and max over 20 runs each; the takeover deadline is the default 10 s.
//! After each crash, also how long a newcomer holding only the link made before it takes to
//! join (its named host is gone: it finds the new host by the link's code).
//!
//! `cargo bench --workspace --bench failover` (drives the binaries of its profile when
//! built, else the debug ones; `scripts/bench` runs it in release).

#[allow(unused)]
#[path = "../tests/harness.rs"]
mod harness;
#[allow(unused)]
#[path = "../tests/relay.rs"]
mod relay;

use std::time::{Duration, Instant};

use harness::*;
use relay::{RELAY_ONLY, Relay, peer_on};
use serde_json::{Value, json};

const RUNS: usize = 20;

fn online(state: &Value, peer: &str) -> bool {
    state["participants"].as_array().is_some_and(|ps| {
        ps.iter()
            .any(|p| p["peer_id"] == json!(peer) && p["online"] == json!(true))
    })
}

/// One party (host, co-host, guest); `end` takes the host away; returns the time from then
/// until the new host has confirmed a track the guest added, and how long a newcomer with
/// the old link then took to join.
fn one_run(end: fn(&mut Headless)) -> (Duration, Duration) {
    let dir = tempfile::tempdir().expect("tempdir");
    let relay = Relay::start(&dir.path().join("relay.key"), 0, &[]);
    let mut host = peer_on(&relay, &dir.path().join("host"), "Hana");
    host.ok("session.create", json!({"name": "Failover"}));
    let url = host.relayed_invite_url();
    let mut cohost = peer_on(&relay, &dir.path().join("cohost"), "Cole");
    let mut guest = Headless::start_with(&dir.path().join("guest"), RELAY_ONLY);
    let cohost_id = peer_id(&mut cohost);
    cohost.ok("session.join", json!({"invite": url}));
    guest.ok("session.join", json!({"invite": url}));
    host.ok("cohost.add", json!({"peer_id": cohost_id}));
    wait_state(&mut host, "the co-host online", |s| online(s, &cohost_id));
    std::thread::sleep(Duration::from_secs(1));
    let started = Instant::now();
    end(&mut host);
    wait_state_for(&mut guest, "the new host", Duration::from_secs(60), |s| {
        s["host"] == json!(cohost_id) && online(s, &cohost_id)
    });
    let added = guest.ok(
        "track.add",
        json!({"title": "Confirmed", "artist": "G", "duration_ms": 1000}),
    );
    if added["pending"] == json!(true) {
        // Not welcomed by the new host yet: it is confirmed once the outbox delivers it.
        wait_state_for(
            &mut guest,
            "the track confirmed",
            Duration::from_secs(60),
            |s| {
                s["queue"]
                    .as_array()
                    .is_some_and(|q| q.iter().any(|t| t["pending"] == json!(false)))
            },
        );
    }
    let confirmed = started.elapsed();
    let mut newcomer = Headless::start_with(&dir.path().join("newcomer"), RELAY_ONLY);
    let joining = Instant::now();
    newcomer.ok("session.join", json!({"invite": url}));
    (confirmed, joining.elapsed())
}

fn crash(host: &mut Headless) {
    let _ = host.child.kill();
    let _ = host.child.wait();
}

fn leave(host: &mut Headless) {
    host.ok("session.leave", json!(null));
}

fn report(label: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let p50 = samples[samples.len() / 2].as_secs_f64();
    let max = samples[samples.len() - 1].as_secs_f64();
    println!(
        "{label} → the new host confirms a guest's track: p50 {p50:.2} s, max {max:.2} s over {} runs (relayed)",
        samples.len()
    );
    println!("figure: failover, {label} to a confirmed track, p50 | {p50:.2} s | —");
    println!("figure: failover, {label} to a confirmed track, max | {max:.2} s | —");
}

fn main() {
    let (crashes, old_links): (Vec<_>, Vec<_>) = (0..RUNS).map(|_| one_run(crash)).unzip();
    report("host crash (10 s deadline)", crashes);
    let mut joins = old_links;
    joins.sort();
    let (p50, max) = (joins[joins.len() / 2], joins[joins.len() - 1]);
    println!(
        "after a crash, a newcomer with the old link joins in p50 {:.0} ms, max {:.0} ms",
        p50.as_secs_f64() * 1e3,
        max.as_secs_f64() * 1e3
    );
    println!(
        "figure: failover, old link after a crash, join p50 | {:.0} ms | —",
        p50.as_secs_f64() * 1e3
    );
    let leaves = (0..RUNS).map(|_| one_run(leave).0).collect();
    report("host's session.leave", leaves);
}
